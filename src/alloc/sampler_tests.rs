//! Tests of the sampler (a file of their own: sampler.rs stays short).

use super::*;

#[test]
fn weights_follow_the_sampling_probability() {
    // An allocation as big as the interval is sampled with p = 1 − 1/e.
    let w = weight(1000, 1000);
    assert!((w - 1.0 / (1.0 - (-1.0f64).exp())).abs() < 1e-12);
    // Huge blocks are always sampled and stand for themselves.
    assert!((weight(1 << 40, 512 * 1024) - 1.0).abs() < 1e-9);
    // Tiny blocks stand for about interval/size blocks.
    let w = weight(8, 512 * 1024);
    assert!((w / 65536.0 - 1.0).abs() < 1e-3, "{w}");
}

#[test]
fn estimates_are_unbiased_on_synthetic_streams() {
    // A mix of tiny, medium and interval-sized blocks over many seeds;
    // the estimate of blocks per size class must land on the truth
    // within 4 standard errors (1/√samples), and bytes overall within
    // 2 %. Weighting by interval/size alone (no e^(−s/R) term) is off
    // by 25 % at 20,000 bytes and 9× at 300,000.
    let sizes = [16u64, 24, 200, 4096, 20_000, 70_000, 300_000];
    let interval = 32 * 1024;
    let mut est = [0.0f64; 7];
    let mut samples = [0u64; 7];
    let mut counts = [0u64; 7];
    let mut rng = 7u64;
    for seed in 0..20 {
        let mut cd = Countdown::new(seed * 7919 + 1, interval);
        for _ in 0..50_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let k = (rng % 7) as usize;
            counts[k] += 1;
            if cd.sample(sizes[k], interval) {
                est[k] += weight(sizes[k], interval);
                samples[k] += 1;
            }
        }
    }
    for k in 0..7 {
        let err = est[k] / counts[k] as f64 - 1.0;
        let bound = 4.0 / (samples[k].max(1) as f64).sqrt();
        assert!(
            err.abs() < bound,
            "size {}: {err:.3} (bound {bound:.3}, {} samples)",
            sizes[k],
            samples[k]
        );
    }
    let total: f64 = (0..7).map(|k| est[k] * sizes[k] as f64).sum();
    let truth: f64 = (0..7).map(|k| (counts[k] * sizes[k]) as f64).sum();
    assert!((total / truth - 1.0).abs() < 0.02, "{}", total / truth);
}

#[test]
fn intervals_have_the_asked_mean() {
    let mut cd = Countdown::new(3, 1000);
    let n = 100_000;
    let sum: i64 = (0..n).map(|_| cd.draw(1000)).sum();
    let mean = sum as f64 / n as f64;
    assert!((mean / 1000.0 - 1.0).abs() < 0.02, "{mean}");
}

#[test]
fn frees_of_unsampled_blocks_skip_the_lock_and_sampled_ones_balance() {
    let t = Box::new(SampleTable::new());
    t.start();
    t.record(0x1000, 100, 2.0, &[1, 2, 3], 0);
    t.record(0x2000, 50, 4.0, &[1, 2, 3], 0);
    t.record(0x3000, 10, 1.0, &[9], 0);
    assert_eq!(t.live_blocks(), 3);
    // Unsampled addresses: the filter answers without the lock (a held
    // lock would block here).
    {
        let _held = t.lock();
        let misses = (0..10_000usize)
            .map(|i| 0x10_0000 + i * 16)
            .filter(|&a| t.filter[slot(a)].load(Ordering::Relaxed) == 0)
            .filter(|&a| !t.on_free(a))
            .count();
        assert!(misses > 9_990, "{misses}");
    }
    // Freed from another thread.
    std::thread::scope(|s| {
        s.spawn(|| assert!(t.on_free(0x1000)));
    });
    assert!(!t.on_free(0x1000), "freed once only");
    let h = t.stop(1);
    let a = &h.sites[0];
    assert_eq!(a.samples, 2);
    assert_eq!(a.alloc_bytes, 400.0);
    assert_eq!(a.inuse_bytes, 200.0);
    assert_eq!(a.inuse_objects, 4.0);
    assert_eq!(a.peak_bytes, 400.0);
    // The filter is back to zero once every block is gone.
    assert!(t.on_free(0x2000) && t.on_free(0x3000));
    assert!(t.filter.iter().all(|c| c.load(Ordering::Relaxed) == 0));
}

#[test]
fn a_new_start_forgets_old_blocks() {
    let t = Box::new(SampleTable::new());
    t.start();
    t.record(0x1000, 100, 1.0, &[1], 0);
    t.start();
    assert_eq!(t.live_blocks(), 0);
    assert!(t.filter.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    assert!(t.stop(1).sites.is_empty());
}

#[test]
fn one_stack_under_two_labels_is_two_sites() {
    let t = Box::new(SampleTable::new());
    t.start();
    t.record(0x1000, 100, 1.0, &[1, 2], 7);
    t.record(0x2000, 100, 1.0, &[1, 2], 8);
    t.record(0x3000, 100, 1.0, &[1, 2], 7);
    t.record(0x4000, 100, 1.0, &[1, 2], 0);
    let h = t.stop(1);
    let by: Vec<(u32, u64)> = h.sites.iter().map(|s| (s.label, s.samples)).collect();
    assert_eq!(by, [(7, 2), (8, 1), (0, 1)]);
    assert!(h.sites.iter().all(|s| s.stack == [1, 2]));
}
