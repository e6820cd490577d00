//! profkit's global allocator: the system allocator, or dhat's tracking
//! allocator when heap profiling was switched on for this process.
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
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

static HEAP_PROFILING: AtomicBool = AtomicBool::new(false);

/// Set by the first allocation through [`ProfkitAlloc`]: proves it is the
/// global allocator of this process.
static SEEN: AtomicU8 = AtomicU8::new(0);

/// A global allocator routing to `dhat::Alloc` when heap profiling is on and
/// to the system allocator otherwise (one relaxed atomic load per call).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProfkitAlloc;

#[inline(always)]
fn profiling() -> bool {
    HEAP_PROFILING.load(Ordering::Relaxed)
}

// SAFETY: every call forwards to `System` or to `dhat::Alloc`, which itself
// allocates from `System`; a block allocated through one path may be freed
// through the other (dhat ignores blocks it did not record).
unsafe impl GlobalAlloc for ProfkitAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if profiling() {
            dhat::Alloc.alloc(layout)
        } else {
            if SEEN.load(Ordering::Relaxed) == 0 {
                SEEN.store(1, Ordering::Relaxed);
            }
            System.alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if profiling() {
            dhat::Alloc.alloc_zeroed(layout)
        } else {
            System.alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if profiling() {
            dhat::Alloc.dealloc(ptr, layout)
        } else {
            System.dealloc(ptr, layout)
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if profiling() {
            dhat::Alloc.realloc(ptr, layout, new_size)
        } else {
            System.realloc(ptr, layout, new_size)
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
    if SEEN.load(Ordering::Relaxed) != 0 || profiling() {
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
    if !is_installed() {
        return Err(AllocError::NotInstalled);
    }
    HEAP_PROFILING.store(true, Ordering::SeqCst);
    Ok(())
}

/// Whether heap profiling is on in this process.
pub fn heap_profiling_enabled() -> bool {
    profiling()
}
