//! Sampled heap profiling with profkit's allocator installed in this test
//! binary: cross-thread frees and reallocs keep the books straight. One
//! test only: the sampler sees every thread's allocations.

#[global_allocator]
static ALLOC: profkit::alloc::ProfkitAlloc = profkit::alloc::ProfkitAlloc;

use profkit::alloc::sampler::{weight, TABLE};
use profkit::profile::sampled::SampledProfiler;

#[test]
fn cross_thread_frees_and_reallocs_balance() {
    // One byte between samples: every block is sampled (weight ≈ 1).
    profkit::alloc::enable_sampled_heap_profiling(1).unwrap();
    assert!(profkit::alloc::sampled_heap_profiling_enabled());
    let before = TABLE.live_blocks();
    let profiler = SampledProfiler::start().unwrap();
    assert_eq!(
        TABLE.live_blocks(),
        0,
        "a start forgets older blocks ({before})"
    );

    // Allocated here, freed on another thread.
    let blocks: Vec<Vec<u8>> = (0..100).map(|_| vec![7u8; 1000]).collect();
    let tracked = TABLE.live_blocks();
    assert!(tracked >= 100, "{tracked}");
    std::thread::spawn(move || drop(blocks)).join().unwrap();

    // Grown by realloc: the old block is forgotten, the new one tracked.
    let mut grown: Vec<u8> = Vec::with_capacity(64);
    for i in 0..100_000u32 {
        grown.push(i as u8);
    }
    let kept = std::hint::black_box(grown);
    let heap = profiler.finish();
    drop(kept);

    let alloc_bytes: f64 = heap.sites.iter().map(|s| s.alloc_bytes).sum();
    let inuse_bytes: f64 = heap.sites.iter().map(|s| s.inuse_bytes).sum();
    // 100 × 1000 bytes, plus the doublings of `grown` (64 → 131,072).
    let doublings: f64 = (6..=17).map(|k| (1u64 << k) as f64).sum();
    let w = weight(1000, 1);
    assert!(
        alloc_bytes >= 100.0 * 1000.0 * w + doublings,
        "{alloc_bytes}"
    );
    // Live at the end: `grown`'s last buffer and little else; none of the
    // freed 1000-byte blocks.
    assert!(
        (131_072.0..131_072.0 + 20_000.0).contains(&inuse_bytes),
        "{inuse_bytes}"
    );
    let thousand: f64 = heap
        .sites
        .iter()
        .filter(|s| s.alloc_bytes >= 100_000.0 && s.inuse_bytes < 1.0)
        .map(|s| s.alloc_bytes)
        .sum();
    assert!(thousand >= 100_000.0, "the cross-thread frees balanced");
    // Every block freed since is forgotten.
    assert!(TABLE.live_blocks() < tracked);
}
