//! Heap profiling with dhat: a [`HeapProfiler`] tracks every allocation
//! while it runs and leaves dhat's `heap.json` behind; [`measure_heap`]
//! gives the statistics of one closure for tests.
//!
//! Heap tracking slows every allocation down (a mutex and a backtrace per
//! call), so a heap pass never shares a process with timing or CPU passes:
//! `profkit profile` runs it in a child process. It needs
//! [`crate::alloc::ProfkitAlloc`] installed as the global allocator and heap
//! profiling switched on ([`crate::alloc::enable_heap_profiling`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::dhat::DhatError;
use crate::alloc::{self, AllocError};

/// Defaults of heap capture, defined once.
pub mod defaults {
    /// Frames kept per allocation backtrace. dhat's default (10) cuts
    /// SQLite's deep stacks before the Rust caller is reached.
    pub const TRIM_FRAMES: usize = 64;
}

/// Errors of heap profiling.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    /// The allocator is not installed or not switched on.
    #[error("{0}")]
    Alloc(#[from] AllocError),
    /// Heap profiling was not switched on in this process.
    #[error("heap profiling is off in this process: call profkit::alloc::enable_heap_profiling() first thing in main")]
    NotEnabled,
    /// dhat wrote no file.
    #[error("dhat wrote no profile to '{}'", path.display())]
    NoOutput {
        /// Where it should be.
        path: PathBuf,
    },
    /// The folder for the profile could not be made.
    #[error("cannot write '{}': {source}", path.display())]
    Write {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The profile dhat wrote cannot be read.
    #[error(transparent)]
    Dhat(#[from] DhatError),
}

static PROFILER_LOCK: Mutex<()> = Mutex::new(());

/// A running dhat heap profiler. Dropping it (on any path, errors and
/// panics included) stops profiling and writes the file; only one runs at a
/// time in a process (a second [`HeapProfiler::start`] waits).
pub struct HeapProfiler {
    profiler: Option<dhat::Profiler>,
    path: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for HeapProfiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapProfiler")
            .field("path", &self.path)
            .finish()
    }
}

impl HeapProfiler {
    /// Starts heap profiling, writing to `path` when stopped.
    pub fn start(path: &Path) -> Result<HeapProfiler, HeapError> {
        Self::start_with(path, false)
    }

    fn start_with(path: &Path, testing: bool) -> Result<HeapProfiler, HeapError> {
        if !alloc::heap_profiling_enabled() {
            return Err(HeapError::NotEnabled);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| HeapError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let lock = PROFILER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut builder = dhat::Profiler::builder()
            .trim_backtraces(Some(defaults::TRIM_FRAMES))
            .file_name(path);
        if testing {
            builder = builder.testing();
        }
        // Everything the guard holds is allocated before profiling starts.
        let path = path.to_path_buf();
        let profiler = Some(builder.build());
        Ok(HeapProfiler {
            profiler,
            path,
            _lock: lock,
        })
    }

    /// Stops profiling, writes the file and returns its path.
    pub fn finish(mut self) -> Result<PathBuf, HeapError> {
        drop(self.profiler.take());
        if self.path.exists() {
            Ok(self.path.clone())
        } else {
            Err(HeapError::NoOutput {
                path: self.path.clone(),
            })
        }
    }
}

impl Drop for HeapProfiler {
    fn drop(&mut self) {
        // The profiler goes before the lock guard.
        drop(self.profiler.take());
    }
}

/// Runs `f` under dhat's testing mode and returns its result with the heap
/// statistics of the span: bytes and blocks allocated (`total_*`), live at
/// the peak (`max_*`) and still live at the end (`curr_*`). Use it to assert
/// "this operation allocates at most X bytes" or "leaves nothing behind"
/// (`curr_bytes == 0` once `f`'s result is dropped inside `f`).
///
/// Needs [`crate::alloc::ProfkitAlloc`] as the global allocator; switches heap
/// profiling on if it is not. dhat counts every thread's allocations, so
/// run such tests alone (their own test binary, or `--test-threads=1`).
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: profkit::alloc::ProfkitAlloc = profkit::alloc::ProfkitAlloc;
///
/// #[test]
/// fn lookup_allocates_little() {
///     let (_, stats) = profkit::profile::heap::measure_heap(|| lookup(42)).unwrap();
///     assert!(stats.total_bytes < 4096);
/// }
/// ```
pub fn measure_heap<T>(f: impl FnOnce() -> T) -> Result<(T, dhat::HeapStats), HeapError> {
    alloc::enable_heap_profiling()?;
    let profiler = HeapProfiler::start_with(Path::new("dhat-testing.json"), true)?;
    let value = f();
    let stats = dhat::HeapStats::get();
    drop(profiler);
    Ok((value, stats))
}
