//! profkit's global allocator: the system allocator, dhat's tracking
//! allocator when exact heap profiling was switched on for this process, or
//! the system allocator with [`sampler`]'s hooks (one stack per 512 KiB
//! allocated on average, or every allocation's with the interval
//! [`sampler::EXACT`], profkit's exact mode) when sampled heap profiling was.
//!
//! `dhat::Alloc` locks one global mutex on every allocation even when no
//! profiler is running (two threads of allocation-heavy code ran 3.2× slower
//! with it idle). [`ProfkitAlloc`] instead reads one atomic flag per call and
//! goes straight to [`std::alloc::System`] while the flag is off, so a binary
//! can keep it installed for good. See BENCHMARKS.md, "Heap profiling", for the measured
//! cost (none measurable).
//!
//! Install it in your binary, example or test crate:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: profkit::alloc::ProfkitAlloc = profkit::alloc::ProfkitAlloc;
//!
//! fn main() {
//!     // First thing, before other threads start, when this process is
//!     // meant to profile its heap:
//!     if std::env::var_os("MY_HEAP_PROFILE").is_some() {
//!         profkit::alloc::enable_heap_profiling();
//!     }
//!     // …
//! }
//! ```
//!
//! Switching on is memory-safe at any moment (both paths allocate from
//! `System`, and dhat ignores frees of blocks it never saw), but only blocks
//! allocated after the switch are tracked, so switch on first thing in `main`.
//! profkit never switches off again: blocks tracked by dhat must be freed
//! through it for its books to balance.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

pub mod sampler;

/// Off, exact (dhat) or sampled: set once, first thing in `main`.
static MODE: AtomicU8 = AtomicU8::new(MODE_OFF);
const MODE_OFF: u8 = 0;
const MODE_EXACT: u8 = 1;
const MODE_SAMPLED: u8 = 2;

/// Set by the first allocation through [`ProfkitAlloc`]: proves it is the
/// global allocator of this process.
static SEEN: AtomicU8 = AtomicU8::new(0);

/// A global allocator routing to `dhat::Alloc` when exact heap profiling
/// is on, to the system allocator with [`sampler`]'s hooks when sampled
/// profiling is on, and to the system allocator otherwise (one relaxed
/// atomic load per call).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProfkitAlloc;

#[inline(always)]
fn mode() -> u8 {
    MODE.load(Ordering::Relaxed)
}

// SAFETY: every call forwards to `System` or to `dhat::Alloc`, which itself
// allocates from `System`; a block allocated through one path may be freed
// through the other (dhat ignores blocks it did not record, the sampler
// blocks it did not sample). The sampler's hooks never touch the block.
unsafe impl GlobalAlloc for ProfkitAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match mode() {
            MODE_OFF => {
                if SEEN.load(Ordering::Relaxed) == 0 {
                    SEEN.store(1, Ordering::Relaxed);
                }
                System.alloc(layout)
            }
            MODE_EXACT => dhat::Alloc.alloc(layout),
            _ => {
                let p = System.alloc(layout);
                sampler::on_alloc(p, layout.size());
                p
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match mode() {
            MODE_OFF => System.alloc_zeroed(layout),
            MODE_EXACT => dhat::Alloc.alloc_zeroed(layout),
            _ => {
                let p = System.alloc_zeroed(layout);
                sampler::on_alloc(p, layout.size());
                p
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match mode() {
            MODE_OFF => System.dealloc(ptr, layout),
            MODE_EXACT => dhat::Alloc.dealloc(ptr, layout),
            _ => {
                // Before the block goes back: its address may be reused at once.
                sampler::on_dealloc(ptr);
                System.dealloc(ptr, layout)
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match mode() {
            MODE_OFF => System.realloc(ptr, layout, new_size),
            MODE_EXACT => dhat::Alloc.realloc(ptr, layout, new_size),
            _ => {
                // A free of the old block and an allocation of the new one,
                // as dhat counts it; the old block is forgotten first, as
                // its address may be handed out again once `System` moves it.
                let sampled = sampler::forget_for_realloc(ptr);
                let q = System.realloc(ptr, layout, new_size);
                if q.is_null() {
                    sampler::unforget(ptr, sampled);
                } else {
                    sampler::on_alloc(q, new_size);
                }
                q
            }
        }
    }
}

/// Errors of switching heap profiling on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    /// [`ProfkitAlloc`] is not this process's global allocator.
    #[error(
        "heap profiling needs profkit's allocator: add `#[global_allocator] static ALLOC: \
         profkit::alloc::ProfkitAlloc = profkit::alloc::ProfkitAlloc;` to your binary"
    )]
    NotInstalled,
}

/// Whether [`ProfkitAlloc`] is this process's global allocator.
pub fn is_installed() -> bool {
    if SEEN.load(Ordering::Relaxed) != 0 || mode() != MODE_OFF {
        return true;
    }
    // An allocation through the global allocator marks it, when it is ours.
    let probe = std::hint::black_box(Box::new(0u64));
    drop(probe);
    SEEN.load(Ordering::Relaxed) != 0
}

/// Switches heap profiling on for the rest of this process: from now on
/// allocations go through `dhat::Alloc` (which records them while a
/// `dhat::Profiler` runs). Call it first thing in `main`; calling it again
/// does nothing.
pub fn enable_heap_profiling() -> Result<(), AllocError> {
    switch_on(MODE_EXACT)
}

/// Switches sampled heap profiling on for the rest of this process, with
/// a mean of `interval` bytes between samples: allocations go to the
/// system allocator, and those sampled (while a
/// [`sampler::SampleTable`] records) take a backtrace. Call it first thing
/// in `main`; a second switch-on (either kind) does nothing.
pub fn enable_sampled_heap_profiling(interval: u64) -> Result<(), AllocError> {
    sampler::set_interval(interval);
    switch_on(MODE_SAMPLED)
}

fn switch_on(mode: u8) -> Result<(), AllocError> {
    if !is_installed() {
        return Err(AllocError::NotInstalled);
    }
    let _ = MODE.compare_exchange(MODE_OFF, mode, Ordering::SeqCst, Ordering::SeqCst);
    Ok(())
}

/// Whether exact (dhat) heap profiling is on in this process.
pub fn heap_profiling_enabled() -> bool {
    mode() == MODE_EXACT
}

/// Whether sampled heap profiling is on in this process.
pub fn sampled_heap_profiling_enabled() -> bool {
    mode() == MODE_SAMPLED
}
