//! Sampled heap profiling: a Poisson process over allocated bytes, as Go's
//! runtime, tcmalloc and jemalloc's profiler sample.
//!
//! Each thread keeps a count of bytes until its next sample, drawn from an
//! exponential distribution of mean [`interval`]; an allocation that
//! crosses the count is sampled, so an allocation of `s` bytes is sampled
//! with probability `1 − e^(−s/R)`, and each sample stands for
//! `1 / (1 − e^(−s/R))` allocations ([`weight`]): the estimates are
//! unbiased. Only sampled allocations take a backtrace (return addresses
//! into a fixed array, no allocation) and a lock; their blocks are tracked
//! until freed. A free checks one counter of a fixed array keyed by the
//! address's hash ([`SampleTable::on_free`]), and locks only when a sampled
//! block may be at that address.
//!
//! The sampler's own bookkeeping (the tables, their growth) allocates
//! through the global allocator with a thread-local guard set, and goes
//! straight to the system allocator.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Defaults of heap sampling, defined once.
pub mod defaults {
    /// Mean bytes between samples (Go's runtime and tcmalloc use 512 KiB).
    pub const INTERVAL: u64 = 512 * 1024;
    /// Return addresses kept per sampled backtrace.
    pub const MAX_FRAMES: usize = 64;
}

/// Counters of the free-path filter (a power of two).
const FILTER_SLOTS: usize = 1 << 16;

static INTERVAL: AtomicU64 = AtomicU64::new(defaults::INTERVAL);

/// The mean sample interval in bytes.
pub fn interval() -> u64 {
    INTERVAL.load(Ordering::Relaxed)
}

/// Sets the mean sample interval; 0 ([`EXACT`]) records every allocation.
pub fn set_interval(bytes: u64) {
    INTERVAL.store(bytes, Ordering::Relaxed);
}

/// The interval that records every allocation, each standing for itself:
/// exact heap profiling through the same table.
pub const EXACT: u64 = 0;

/// How many allocations of `size` bytes one sample stands for when the mean
/// interval is `interval` bytes: `1 / (1 − e^(−size/interval))`; 1 when
/// every allocation is recorded ([`EXACT`]).
pub fn weight(size: u64, interval: u64) -> f64 {
    if interval == EXACT {
        return 1.0;
    }
    let p = -(-(size.max(1) as f64) / interval as f64).exp_m1();
    1.0 / p
}

/// One thread's sampling state: bytes left until the next sample, and the
/// random generator the intervals are drawn from.
#[derive(Clone, Copy, Debug)]
pub struct Countdown {
    left: i64,
    rng: u64,
}

impl Countdown {
    /// A countdown seeded with `seed` (any value), its first interval drawn.
    pub fn new(seed: u64, interval: u64) -> Countdown {
        let mut c = Countdown {
            left: 0,
            rng: seed | 1,
        };
        c.left = c.draw(interval);
        c
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// An exponential interval of mean `interval` bytes.
    fn draw(&mut self, interval: u64) -> i64 {
        // Uniform in (0, 1]: 53 random bits, plus one.
        let u = ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let d = -u.ln() * interval as f64;
        d.min(i64::MAX as f64 / 2.0) as i64
    }

    /// Whether an allocation of `size` bytes is sampled; draws the next
    /// interval when it is.
    pub fn sample(&mut self, size: u64, interval: u64) -> bool {
        self.left -= size.min(i64::MAX as u64) as i64;
        if self.left > 0 {
            return false;
        }
        self.left = self.draw(interval);
        true
    }
}

thread_local! {
    static COUNTDOWN: Cell<Option<Countdown>> = const { Cell::new(None) };
    static GUARD: Cell<bool> = const { Cell::new(false) };
    static LABEL: Cell<u32> = const { Cell::new(0) };
}

/// Labels this thread's allocations from now on (`0`: none): a sampled
/// block records its thread's label with its stack, so that one stack run
/// for two labels (say, two endpoints of a service) is two sites.
/// `profkit::service`'s layer sets the label of the request it polls.
#[inline]
pub fn set_thread_label(label: u32) {
    let _ = LABEL.try_with(|l| l.set(label));
}

fn thread_label() -> u32 {
    LABEL.try_with(Cell::get).unwrap_or(0)
}

static SEEDS: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

/// Whether this thread is inside the sampler (its own allocations then go
/// straight to the system allocator). Threads being torn down count as
/// inside.
#[inline]
pub fn in_sampler() -> bool {
    GUARD.try_with(Cell::get).unwrap_or(true)
}

/// Runs `f` with none of its allocations recorded (the profiler's own
/// work on a thread of its own). Not from inside the allocator's hooks.
pub fn untracked<T>(f: impl FnOnce() -> T) -> T {
    guarded(f)
}

/// Runs `f` with this thread's guard set.
fn guarded<T>(f: impl FnOnce() -> T) -> T {
    let _ = GUARD.try_with(|g| g.set(true));
    let out = f();
    let _ = GUARD.try_with(|g| g.set(false));
    out
}

/// Counts `size` bytes against this thread's countdown: whether to sample.
#[inline]
fn should_sample(size: usize) -> bool {
    if interval() == EXACT {
        return true;
    }
    COUNTDOWN
        .try_with(|c| {
            let iv = interval();
            let mut cd = c.get().unwrap_or_else(|| {
                let seed = SEEDS.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
                Countdown::new(seed ^ (c as *const Cell<_> as usize as u64), iv)
            });
            let hit = cd.sample(size as u64, iv);
            c.set(Some(cd));
            hit
        })
        .unwrap_or(false)
}

/// A sampled block taken out of the table (see [`forget_for_realloc`]).
#[derive(Clone, Copy, Debug)]
pub struct Forgotten(LiveBlock);

/// What a sampled block still live holds.
#[derive(Clone, Copy, Debug)]
struct LiveBlock {
    site: u32,
    size: u64,
    weight: f64,
    at: Instant,
}

/// Estimates of one allocation site (one distinct stack).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SiteStats {
    /// Return addresses, innermost first.
    pub stack: Vec<usize>,
    /// The allocating thread's label ([`set_thread_label`]; 0: none).
    pub label: u32,
    /// Samples taken here.
    pub samples: u64,
    /// Estimated blocks allocated.
    pub alloc_objects: f64,
    /// Estimated bytes allocated.
    pub alloc_bytes: f64,
    /// Estimated blocks live.
    pub inuse_objects: f64,
    /// Estimated bytes live.
    pub inuse_bytes: f64,
    /// Estimated bytes live at the peak of the estimated total.
    pub peak_bytes: f64,
    /// Estimated blocks live then.
    pub peak_objects: f64,
    /// Estimated total lifetime of the freed blocks, µs.
    pub lifetime_us: f64,
}

/// Hashes addresses and stacks of them: a multiply and a rotate per word
/// (SipHash's resistance to chosen keys is not needed for our own return
/// addresses, and in exact mode every allocation hashes its stack).
#[derive(Default, Clone, Copy)]
struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
    }
    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

type Fast = std::hash::BuildHasherDefault<AddrHasher>;

#[derive(Default)]
struct Inner {
    sites: Vec<SiteStats>,
    by_stack: HashMap<Vec<usize>, u32, Fast>,
    live: HashMap<usize, LiveBlock, Fast>,
    inuse: f64,
    peak: f64,
    peak_at: Option<Instant>,
    /// A new peak was reached and the sites' figures at it are not copied
    /// yet: they are, at the next free (the heap is still at the peak
    /// until then) or at the snapshot, once per peak instead of once per
    /// allocation while the heap grows.
    peak_pending: bool,
    started: Option<Instant>,
}

impl Inner {
    /// Copies the sites' live figures as their figures at the peak, when a
    /// new peak is pending.
    fn settle_peak(&mut self) {
        if std::mem::take(&mut self.peak_pending) {
            for s in &mut self.sites {
                s.peak_bytes = s.inuse_bytes;
                s.peak_objects = s.inuse_objects;
            }
        }
    }
}

/// What a sampled span leaves: the sites with their estimates.
#[derive(Clone, Debug, Default)]
pub struct SampledHeap {
    /// Mean sample interval, bytes.
    pub interval: u64,
    /// The sites.
    pub sites: Vec<SiteStats>,
    /// Length of the span, µs.
    pub duration_us: u64,
    /// When the estimated live bytes peaked, µs after the start.
    pub peak_at_us: Option<u64>,
}

/// The sampled blocks and site estimates of a process (one static
/// instance, [`TABLE`]; tests make their own).
pub struct SampleTable {
    filter: [AtomicU32; FILTER_SLOTS],
    active: AtomicBool,
    inner: Mutex<Option<Inner>>,
}

/// The process's table.
pub static TABLE: SampleTable = SampleTable::new();

#[inline]
fn slot(addr: usize) -> usize {
    ((addr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - 16)) as usize
        & (FILTER_SLOTS - 1)
}

impl Default for SampleTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SampleTable {
    /// An empty, inactive table.
    pub const fn new() -> SampleTable {
        SampleTable {
            filter: [const { AtomicU32::new(0) }; FILTER_SLOTS],
            active: AtomicBool::new(false),
            inner: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Inner>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether samples are being recorded.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Forgets every site and block and starts recording.
    pub fn start(&self) {
        guarded(|| {
            let mut g = self.lock();
            if let Some(old) = g.take() {
                for addr in old.live.keys() {
                    self.filter[slot(*addr)].fetch_sub(1, Ordering::Relaxed);
                }
            }
            *g = Some(Inner {
                started: Some(Instant::now()),
                ..Inner::default()
            });
            self.active.store(true, Ordering::SeqCst);
        })
    }

    /// Stops recording and returns the estimates (blocks still live keep
    /// being tracked until freed or the next start).
    pub fn stop(&self, interval: u64) -> SampledHeap {
        self.active.store(false, Ordering::SeqCst);
        guarded(|| self.snapshot(interval))
    }

    /// The estimates so far, recording going on (a server's running heap
    /// profile).
    pub fn peek(&self, interval: u64) -> SampledHeap {
        guarded(|| self.snapshot(interval))
    }

    fn snapshot(&self, interval: u64) -> SampledHeap {
        let mut g = self.lock();
        let Some(inner) = g.as_mut() else {
            return SampledHeap {
                interval,
                ..SampledHeap::default()
            };
        };
        inner.settle_peak();
        let started = inner.started.unwrap_or_else(Instant::now);
        SampledHeap {
            interval,
            sites: inner.sites.clone(),
            duration_us: started.elapsed().as_micros() as u64,
            peak_at_us: inner
                .peak_at
                .map(|t| t.saturating_duration_since(started).as_micros() as u64),
        }
    }

    /// Records a sampled block of `size` bytes at `addr`, allocated from
    /// `stack` (return addresses, innermost first), standing for `weight`
    /// allocations, labelled `label` (0: none). Call with the thread's
    /// guard set.
    pub fn record(&self, addr: usize, size: u64, weight: f64, stack: &[usize], label: u32) {
        let mut g = self.lock();
        let Some(inner) = g.as_mut() else { return };
        // The label, when there is one, ends the key: a stack run for two
        // labels is two sites.
        let labelled;
        let key = if label == 0 {
            stack
        } else {
            labelled = [stack, &[usize::MAX, label as usize]].concat();
            &labelled[..]
        };
        let site = match inner.by_stack.get(key) {
            Some(&s) => s,
            None => {
                let s = inner.sites.len() as u32;
                inner.by_stack.insert(key.to_vec(), s);
                inner.sites.push(SiteStats {
                    stack: stack.to_vec(),
                    label,
                    ..SiteStats::default()
                });
                s
            }
        };
        let bytes = weight * size as f64;
        let st = &mut inner.sites[site as usize];
        st.samples += 1;
        st.alloc_objects += weight;
        st.alloc_bytes += bytes;
        st.inuse_objects += weight;
        st.inuse_bytes += bytes;
        let block = LiveBlock {
            site,
            size,
            weight,
            at: Instant::now(),
        };
        if inner.live.insert(addr, block).is_none() {
            self.filter[slot(addr)].fetch_add(1, Ordering::Relaxed);
        }
        inner.inuse += bytes;
        if inner.inuse > inner.peak {
            inner.peak = inner.inuse;
            inner.peak_at = Some(block.at);
            inner.peak_pending = true;
        }
    }

    /// A block at `addr` is freed: cheap unless a sampled block may live
    /// there (one relaxed load of the filter), then its site's in-use
    /// estimates go down. Returns whether it was a sampled block.
    #[inline]
    pub fn on_free(&self, addr: usize) -> bool {
        if self.filter[slot(addr)].load(Ordering::Relaxed) == 0 {
            return false;
        }
        guarded(|| self.forget(addr))
    }

    /// Like [`SampleTable::on_free`], returning the forgotten block.
    #[inline]
    pub fn take(&self, addr: usize) -> Option<Forgotten> {
        if self.filter[slot(addr)].load(Ordering::Relaxed) == 0 {
            return None;
        }
        guarded(|| self.remove(addr))
    }

    /// Undoes [`SampleTable::take`].
    pub fn restore(&self, addr: usize, b: Forgotten) {
        let mut g = self.lock();
        let Some(inner) = g.as_mut() else { return };
        let b = b.0;
        let bytes = b.weight * b.size as f64;
        if inner.live.insert(addr, b).is_none() {
            self.filter[slot(addr)].fetch_add(1, Ordering::Relaxed);
        }
        inner.inuse += bytes;
        if let Some(st) = inner.sites.get_mut(b.site as usize) {
            st.inuse_objects += b.weight;
            st.inuse_bytes += bytes;
        }
    }

    #[cold]
    fn forget(&self, addr: usize) -> bool {
        self.remove(addr).is_some()
    }

    fn remove(&self, addr: usize) -> Option<Forgotten> {
        let mut g = self.lock();
        let inner = g.as_mut()?;
        let b = inner.live.remove(&addr)?;
        inner.settle_peak();
        self.filter[slot(addr)].fetch_sub(1, Ordering::Relaxed);
        let bytes = b.weight * b.size as f64;
        inner.inuse -= bytes;
        let st = &mut inner.sites[b.site as usize];
        st.inuse_objects -= b.weight;
        st.inuse_bytes -= bytes;
        st.lifetime_us += b.weight * b.at.elapsed().as_micros() as f64;
        Some(Forgotten(b))
    }

    /// Estimated bytes live now per site (indices of
    /// [`SampledHeap::sites`]; new sites are appended), while recording.
    pub fn inuse_by_site(&self) -> Vec<f64> {
        guarded(|| {
            let g = self.lock();
            g.as_ref().map_or_else(Vec::new, |i| {
                i.sites.iter().map(|s| s.inuse_bytes.max(0.0)).collect()
            })
        })
    }

    /// Sampled blocks tracked now.
    pub fn live_blocks(&self) -> usize {
        self.lock().as_ref().map_or(0, |i| i.live.len())
    }
}

/// The allocator's hook after `System` returned `ptr` for `size` bytes:
/// counts the bytes and, on a sample, takes the backtrace and records it.
#[inline]
pub fn on_alloc(ptr: *mut u8, size: usize) {
    if ptr.is_null() || !TABLE.is_active() || in_sampler() || !should_sample(size) {
        return;
    }
    sample_now(ptr as usize, size);
}

#[cold]
#[inline(never)]
fn sample_now(addr: usize, size: usize) {
    guarded(|| {
        let mut ips = [0usize; defaults::MAX_FRAMES];
        // Return addresses from here on, read without allocating.
        let n = crate::unwind::here(&mut ips);
        let iv = interval();
        let label = thread_label();
        TABLE.record(addr, size as u64, weight(size as u64, iv), &ips[..n], label);
    })
}

/// The allocator's hook before `System` reallocates `ptr`: forgets the
/// block if it was sampled and returns what [`unforget`] needs should the
/// reallocation fail.
#[inline]
pub fn forget_for_realloc(ptr: *mut u8) -> Option<Forgotten> {
    if in_sampler() {
        return None;
    }
    TABLE.take(ptr as usize)
}

/// Puts back a block [`forget_for_realloc`] took when the reallocation
/// failed (the block stays where it was).
#[cold]
pub fn unforget(ptr: *mut u8, block: Option<Forgotten>) {
    if let Some(b) = block {
        guarded(|| TABLE.restore(ptr as usize, b));
    }
}

/// The allocator's hook before a block goes back to `System`.
#[inline]
pub fn on_dealloc(ptr: *mut u8) {
    if in_sampler() {
        return;
    }
    TABLE.on_free(ptr as usize);
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;
