//! Heap profiling with dhat: run a prepared workload under a
//! `dhat::Profiler`, then turn its `heap.json` into folded stacks,
//! allocation flamegraphs and an allocation summary (`alloc.json`).
//!
//! Heap tracking slows every allocation down (a mutex and a backtrace per
//! call), so a heap pass never shares a process with timing or CPU passes:
//! `profkit profile` runs it in a child process. It needs
//! [`crate::alloc::ProfkitAlloc`] installed as the global allocator and heap
//! profiling switched on ([`crate::alloc::enable_heap_profiling`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::alloc::{self, AllocError};
use crate::render::heap_svg;
use crate::rundir::{self, OutputError};
use crate::units::Bytes;

/// Version of `alloc.json`.
pub const ALLOC_SCHEMA_VERSION: u32 = 1;

/// Defaults of heap profiling, defined once.
pub mod defaults {
    /// Frames kept per allocation backtrace. dhat's default (10) cuts
    /// SQLite's deep stacks before the Rust caller is reached.
    pub const TRIM_FRAMES: usize = 64;
    /// Sites listed in each top list.
    pub const TOP_SITES: usize = 10;
    /// Frames in a short readable stack.
    pub const SHORT_STACK: usize = 4;
    /// A site is a short-lived hot spot when its blocks live this long on
    /// average, or less (µs)…
    pub const SHORT_LIVED_US: f64 = 100.0;
    /// …and it allocates at least this share of all blocks.
    pub const SHORT_LIVED_MIN_SHARE: f64 = 0.01;
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
    /// A dhat file that cannot be read.
    #[error("cannot read '{}': {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A dhat file that is not JSON of dhat's shape.
    #[error("'{}' is not a dhat heap profile: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A dhat file that parses but is inconsistent.
    #[error("'{}' is not a valid dhat heap profile: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing an output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// One program point (allocation site) of a dhat file: `pps[i]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DhatPp {
    /// Total bytes allocated here.
    pub tb: u64,
    /// Total blocks allocated here.
    pub tbk: u64,
    /// Total lifetime of those blocks (time units of the file, µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tl: Option<u64>,
    /// Most bytes live at once from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb: Option<u64>,
    /// Most blocks live at once from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbk: Option<u64>,
    /// Bytes live from here at the global peak (t-gmax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gb: Option<u64>,
    /// Blocks live from here at the global peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbk: Option<u64>,
    /// Bytes still live at the end (t-end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eb: Option<u64>,
    /// Blocks still live at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebk: Option<u64>,
    /// Frames, innermost first: indices into [`DhatFile::ftbl`].
    pub fs: Vec<usize>,
}

/// A dhat JSON file (DHAT's format, version 2), as written by dhat-rs and
/// by `valgrind --tool=dhat`, and loaded by `dh_view.html`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct DhatFile {
    /// Format version (2).
    pub dhatFileVersion: u32,
    /// `rust-heap` (dhat-rs) or `heap` (valgrind).
    pub mode: String,
    /// "Allocated".
    #[serde(default)]
    pub verb: String,
    /// Block lifetimes recorded.
    #[serde(default)]
    pub bklt: bool,
    /// Block accesses recorded (valgrind only).
    #[serde(default)]
    pub bkacc: bool,
    /// Time unit.
    #[serde(default)]
    pub tu: String,
    /// Time unit, long form.
    #[serde(default)]
    pub Mtu: String,
    /// Short-lifetime threshold of the viewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuth: Option<u64>,
    /// The profiled command.
    #[serde(default)]
    pub cmd: String,
    /// Its process id.
    #[serde(default)]
    pub pid: u64,
    /// Time of the global peak (t-gmax), in `tu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tg: Option<u64>,
    /// Time of the end (t-end), in `tu`.
    pub te: u64,
    /// Allocation sites.
    pub pps: Vec<DhatPp>,
    /// Frame table; entry 0 is `[root]`.
    pub ftbl: Vec<String>,
}

impl DhatFile {
    /// Reads and checks a dhat file; every error is one line naming it.
    pub fn read(path: &Path) -> Result<DhatFile, HeapError> {
        let bytes = std::fs::read(path).map_err(|source| HeapError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: DhatFile = serde_json::from_slice(&bytes).map_err(|source| HeapError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        file.validate().map_err(|reason| HeapError::Invalid {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(file)
    }

    fn validate(&self) -> Result<(), String> {
        if self.dhatFileVersion != 2 {
            return Err(format!(
                "dhatFileVersion {} (only 2 is understood)",
                self.dhatFileVersion
            ));
        }
        if !matches!(self.mode.as_str(), "rust-heap" | "heap") {
            return Err(format!(
                "mode '{}' is not a heap profile (ad hoc or copy profiles are not supported)",
                self.mode
            ));
        }
        for (i, pp) in self.pps.iter().enumerate() {
            if let Some(bad) = pp.fs.iter().find(|&&f| f >= self.ftbl.len()) {
                return Err(format!(
                    "pps[{i}] names frame {bad}, but ftbl has {} entries",
                    self.ftbl.len()
                ));
            }
        }
        Ok(())
    }

    /// A frame's function name (address and location stripped).
    pub fn function(&self, frame: usize) -> &str {
        frame_function(&self.ftbl[frame])
    }
}

/// `0x55d…: profkit::x::f (src/x.rs:10:5)` → `profkit::x::f`.
pub fn frame_function(frame: &str) -> &str {
    let s = match frame.split_once(": ") {
        Some((addr, rest)) if addr.starts_with("0x") => rest,
        _ => frame,
    };
    match s.rfind(" (") {
        Some(i) if s.ends_with(')') => &s[..i],
        _ => s,
    }
}

/// `0x55d…: f (src/x.rs:10:5)` → `f (src/x.rs:10:5)`: the frame without its
/// address, stable across processes.
pub fn frame_without_address(frame: &str) -> &str {
    match frame.split_once(": ") {
        Some((addr, rest)) if addr.starts_with("0x") => rest,
        _ => frame,
    }
}

/// A frame's source location: `f (src/x.rs:10:5)` → `src/x.rs:10:5`.
pub fn frame_location(frame: &str) -> &str {
    let s = frame_without_address(frame);
    match s.rfind(" (") {
        Some(i) if s.ends_with(')') => &s[i + 2..s.len() - 1],
        _ => "",
    }
}

/// Whether a frame (a `ftbl` entry) is allocator, runtime or
/// standard-library plumbing: left out of short stacks, so that a site
/// names the code that asked for the memory. Release builds with
/// line-tables-only debug info give bare function names (`alloc`,
/// `with_capacity_in<u8, …>`), so locations decide as much as names.
pub fn is_internal_frame(frame: &str) -> bool {
    const NAMES: &[&str] = &[
        "[root]",
        "???",
        "alloc",
        "alloc_zeroed",
        "realloc",
        "dealloc",
        "alloc_impl",
        "alloc_impl_runtime",
        "allocate",
        "allocate_in",
        "exchange_malloc",
        "grow",
        "grow_impl",
        "grow_amortized",
        "finish_grow",
        "x_malloc",
        "x_realloc",
        "malloc",
        "calloc",
        "mallocWithAlarm",
        "sqlite3Malloc",
        "sqlite3MallocZero",
        "sqlite3DbMallocRaw",
        "sqlite3DbMallocRawNN",
        "sqlite3DbMallocZero",
        "dbMallocRawFinish",
        "sqlite3Realloc",
        "sqlite3DbRealloc",
        "dbReallocFinish",
        "sqlite3_malloc",
        "sqlite3_malloc64",
        "sqlite3_realloc",
        "sqlite3_realloc64",
        "sqlite3MemMalloc",
        "sqlite3MemRealloc",
        "start_thread",
        "clone",
        "clone3",
    ];
    const NAME_PREFIXES: &[&str] = &[
        "alloc::",
        "<alloc::",
        "core::",
        "<core::",
        "std::",
        "<std::",
        "hashbrown::",
        "<hashbrown::",
        "dhat::",
        "<dhat::",
        "__rg_",
        "__rust",
        "<profkit::alloc::",
        "profkit::alloc::",
        "profkit::db::sqlite_alloc::",
    ];
    // dhat keeps the last three path components of a location.
    const LOCATION_PREFIXES: &[&str] = &[
        "alloc/src/",
        "core/src/",
        "std/src/",
        "dhat-",
        "hashbrown-",
        "src/raw_vec/",
        "src/vec/",
        "src/ops/",
        "src/sys/",
        "src/collections/",
        "src/boxed/",
        "src/str/",
        "src/fmt/",
        "src/iter/",
        "src/ptr/",
        "src/slice/",
        "src/sync/",
        "src/thread/",
        "src/hash/",
        "src/io/",
        "src/panic/",
        "src/panicking.rs",
        "src/rt.rs",
        "nptl/",
        "misc/../sysdeps/",
    ];
    let name = frame_function(frame);
    let generic_free = name.split('<').next().unwrap_or(name);
    let location = frame_location(frame);
    NAMES.contains(&generic_free)
        || NAME_PREFIXES.iter().any(|p| name.starts_with(p))
        || LOCATION_PREFIXES.iter().any(|p| location.starts_with(p))
}

/// How folded stacks are weighted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weight {
    /// Bytes allocated over the run (`tb`).
    Bytes,
    /// Blocks allocated over the run (`tbk`).
    Blocks,
    /// Bytes still live at the end (`eb`).
    LiveBytes,
}

fn folded_frame(name: &str) -> String {
    // ';' separates frames and a trailing number is the weight: keep both
    // out of names.
    name.replace(';', ":").replace('\n', " ")
}

/// Folded stacks (`root;…;leaf weight`, one line per site, sorted) of a dhat
/// file; sites of zero weight are left out.
pub fn dhat_to_folded(file: &DhatFile, weight: Weight) -> Vec<String> {
    let mut lines: Vec<String> = file
        .pps
        .iter()
        .filter_map(|pp| {
            let w = match weight {
                Weight::Bytes => pp.tb,
                Weight::Blocks => pp.tbk,
                Weight::LiveBytes => pp.eb.unwrap_or(0),
            };
            if w == 0 {
                return None;
            }
            let frames: Vec<String> = pp
                .fs
                .iter()
                .rev()
                .map(|&f| file.function(f))
                .filter(|f| *f != "[root]")
                .map(folded_frame)
                .collect();
            let stack = if frames.is_empty() {
                "[unknown]".to_string()
            } else {
                frames.join(";")
            };
            Some(format!("{stack} {w}"))
        })
        .collect();
    lines.sort();
    lines
}

/// Reads a dhat file (`heap.json`) and returns its folded stacks weighted by
/// bytes allocated: what `profkit flamegraph heap.json` renders.
pub fn heap_json_to_folded(path: &Path, weight: Weight) -> Result<Vec<String>, HeapError> {
    Ok(dhat_to_folded(&DhatFile::read(path)?, weight))
}

/// One allocation site in a summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteSummary {
    /// The first frame that is not allocator or std plumbing, with its location.
    pub site: String,
    /// A short readable stack: that frame and its callers.
    pub stack: Vec<String>,
    /// Bytes allocated here.
    pub total_bytes: Bytes,
    /// Blocks allocated here.
    pub total_blocks: u64,
    /// Bytes live from here at the global peak.
    pub peak_bytes: Bytes,
    /// Bytes live from here at the end.
    pub end_bytes: Bytes,
    /// Average block size.
    pub avg_block: f64,
    /// Average block lifetime, µs.
    pub avg_lifetime_us: f64,
}

/// What `alloc.json` holds: totals and the top allocation sites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocSummary {
    /// [`ALLOC_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Bytes allocated over the profiled span.
    pub total_bytes: Bytes,
    /// Blocks allocated.
    pub total_blocks: u64,
    /// Most bytes live at once (t-gmax).
    pub peak_bytes: Bytes,
    /// Blocks live then.
    pub peak_blocks: u64,
    /// When the peak happened, µs after profiling began.
    pub peak_at_us: Option<u64>,
    /// Length of the profiled span, µs.
    pub duration_us: u64,
    /// Bytes still live at the end (t-end).
    pub end_bytes: Bytes,
    /// Blocks still live at the end.
    pub end_blocks: u64,
    /// Bytes allocated by SQLite (sites with a `sqlite3` frame).
    pub sqlite_bytes: Bytes,
    /// Distinct allocation sites (stacks).
    pub sites: usize,
    /// Top sites by bytes allocated.
    pub top_by_bytes: Vec<SiteSummary>,
    /// Top sites by bytes live at the global peak.
    pub top_by_peak: Vec<SiteSummary>,
    /// Workload operations in the profiled span (warm-up included), when known.
    #[serde(default)]
    pub ops: Option<u64>,
    /// Bytes allocated per operation (`total_bytes ÷ ops`), when known.
    #[serde(default)]
    pub bytes_per_op: Option<f64>,
    /// Top sites by blocks allocated.
    pub top_by_blocks: Vec<SiteSummary>,
    /// Many small blocks freed quickly: candidates for reuse.
    pub short_lived: Vec<SiteSummary>,
}

/// The short readable stack of a site: up to `n` frames from the first one
/// that is not plumbing, without addresses.
pub fn short_stack(file: &DhatFile, pp: &DhatPp, n: usize) -> Vec<String> {
    let shown: Vec<String> = pp
        .fs
        .iter()
        .filter(|&&f| !is_internal_frame(&file.ftbl[f]))
        .take(n)
        .map(|&f| short_frame(frame_without_address(&file.ftbl[f])))
        .collect();
    if shown.is_empty() {
        // All plumbing (e.g. a runtime allocation): show the outermost frames.
        pp.fs
            .iter()
            .rev()
            .filter(|&&f| file.function(f) != "[root]")
            .take(n)
            .map(|&f| short_frame(frame_without_address(&file.ftbl[f])))
            .collect()
    } else {
        shown
    }
}

/// Shortens `f (/long/path/src/x.rs:10:5)` to `f (src/x.rs:10)`.
fn short_frame(frame: &str) -> String {
    let Some(i) = frame.rfind(" (") else {
        return frame.to_string();
    };
    let (name, loc) = (&frame[..i], &frame[i + 2..frame.len().saturating_sub(1)]);
    // Generic arguments make lines unreadable: `query_row<…>` → `query_row`.
    let name = match name.find('<') {
        Some(j) if j > 0 => &name[..j],
        _ => name,
    };
    let mut parts: Vec<&str> = loc.split(':').collect();
    if parts.len() == 3 {
        parts.pop(); // column
    }
    let file = parts.first().copied().unwrap_or("");
    let file = file.rsplit('/').take(2).collect::<Vec<_>>();
    let file = file.into_iter().rev().collect::<Vec<_>>().join("/");
    match parts.get(1) {
        Some(line) if !file.is_empty() => format!("{name} ({file}:{line})"),
        _ if !file.is_empty() => format!("{name} ({file})"),
        _ => name.to_string(),
    }
}

fn site_summary(file: &DhatFile, pp: &DhatPp) -> SiteSummary {
    let stack = short_stack(file, pp, defaults::SHORT_STACK);
    SiteSummary {
        site: stack.first().cloned().unwrap_or_else(|| "[unknown]".into()),
        stack,
        total_bytes: Bytes(pp.tb),
        total_blocks: pp.tbk,
        peak_bytes: Bytes(pp.gb.unwrap_or(0)),
        end_bytes: Bytes(pp.eb.unwrap_or(0)),
        avg_block: pp.tb as f64 / pp.tbk.max(1) as f64,
        avg_lifetime_us: pp.tl.unwrap_or(0) as f64 / pp.tbk.max(1) as f64,
    }
}

fn top_by(file: &DhatFile, key: impl Fn(&DhatPp) -> u64) -> Vec<SiteSummary> {
    let mut pps: Vec<&DhatPp> = file.pps.iter().filter(|pp| key(pp) > 0).collect();
    pps.sort_by_key(|pp| std::cmp::Reverse(key(pp)));
    pps.into_iter()
        .take(defaults::TOP_SITES)
        .map(|pp| site_summary(file, pp))
        .collect()
}

/// Totals and top sites of a dhat file.
pub fn summarize(file: &DhatFile) -> AllocSummary {
    let sum = |f: &dyn Fn(&DhatPp) -> u64| file.pps.iter().map(f).sum::<u64>();
    let total_blocks = sum(&|pp| pp.tbk);
    let is_sqlite = |pp: &DhatPp| {
        pp.fs.iter().any(|&f| {
            file.function(f).starts_with("sqlite3")
                || frame_location(&file.ftbl[f]).contains("sqlite3.c")
        })
    };
    let mut short: Vec<&DhatPp> = file
        .pps
        .iter()
        .filter(|pp| {
            pp.tbk > 0
                && pp.tl.is_some()
                && (pp.tbk as f64) >= defaults::SHORT_LIVED_MIN_SHARE * total_blocks as f64
                && pp.tl.unwrap_or(0) as f64 / pp.tbk as f64 <= defaults::SHORT_LIVED_US
        })
        .collect();
    short.sort_by_key(|pp| std::cmp::Reverse(pp.tbk));
    AllocSummary {
        schema_version: ALLOC_SCHEMA_VERSION,
        total_bytes: Bytes(sum(&|pp| pp.tb)),
        total_blocks,
        peak_bytes: Bytes(sum(&|pp| pp.gb.unwrap_or(0))),
        peak_blocks: sum(&|pp| pp.gbk.unwrap_or(0)),
        peak_at_us: file.tg,
        duration_us: file.te,
        end_bytes: Bytes(sum(&|pp| pp.eb.unwrap_or(0))),
        end_blocks: sum(&|pp| pp.ebk.unwrap_or(0)),
        sqlite_bytes: Bytes(sum(&|pp| if is_sqlite(pp) { pp.tb } else { 0 })),
        sites: file.pps.len(),
        top_by_bytes: top_by(file, |pp| pp.tb),
        top_by_peak: top_by(file, |pp| pp.gb.unwrap_or(0)),
        ops: None,
        bytes_per_op: None,
        top_by_blocks: top_by(file, |pp| pp.tbk),
        short_lived: short
            .into_iter()
            .take(defaults::TOP_SITES)
            .map(|pp| site_summary(file, pp))
            .collect(),
    }
}

/// A human summary of an [`AllocSummary`] (a few lines per list).
pub fn summary_text(s: &AllocSummary, top: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let secs = |us: u64| us as f64 / 1e6;
    let _ = writeln!(
        out,
        "allocated  {} in {} blocks over {:.2} s ({} by SQLite)",
        s.total_bytes,
        s.total_blocks,
        secs(s.duration_us),
        s.sqlite_bytes
    );
    let _ = writeln!(
        out,
        "peak live  {} in {} blocks (t-gmax){}",
        s.peak_bytes,
        s.peak_blocks,
        s.peak_at_us
            .map(|t| format!(" at {:.2} s", secs(t)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "live @end  {} in {} blocks (t-end)",
        s.end_bytes, s.end_blocks
    );
    let mut list = |title: &str, sites: &[SiteSummary], figure: &dyn Fn(&SiteSummary) -> String| {
        if sites.is_empty() {
            return;
        }
        let _ = writeln!(out, "{title}:");
        for site in sites.iter().take(top) {
            let _ = writeln!(out, "  {:>12}  {}", figure(site), site.stack.join(" ← "));
        }
    };
    list("top sites by bytes allocated", &s.top_by_bytes, &|x| {
        x.total_bytes.to_string()
    });
    list("top sites by bytes at peak", &s.top_by_peak, &|x| {
        x.peak_bytes.to_string()
    });
    list("top sites by blocks", &s.top_by_blocks, &|x| {
        format!("{} blk", x.total_blocks)
    });
    list(
        "short-lived hot spots (many blocks freed quickly: reuse candidates)",
        &s.short_lived,
        &|x| {
            format!(
                "{} × {:.0} B, {:.1} µs",
                x.total_blocks, x.avg_block, x.avg_lifetime_us
            )
        },
    );
    out
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
            std::fs::create_dir_all(dir).map_err(|source| {
                HeapError::Output(OutputError::Write {
                    path: dir.to_path_buf(),
                    source,
                })
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

/// The files a heap pass leaves in a run folder.
#[derive(Clone, Debug)]
pub struct HeapOutputs {
    /// `heap.json` (dhat's file).
    pub heap_json: PathBuf,
    /// `heap.folded` (bytes allocated per stack).
    pub folded: PathBuf,
    /// `flamegraphs/<run-id>-heap.svg`.
    pub svg: PathBuf,
    /// `flamegraphs/<run-id>-heap-live.svg`.
    pub live_svg: PathBuf,
    /// `alloc.json`.
    pub alloc_json: PathBuf,
    /// What `alloc.json` holds.
    pub summary: AllocSummary,
    /// Operations profiled, warm-up included (0 when unknown).
    pub ops: u64,
}

/// Turns the `heap.json` of a run folder into `heap.folded`,
/// `heap-blocks.folded`, `heap-live.folded`, the two flamegraphs and
/// `alloc.json`.
pub fn write_outputs(
    run_dir: &Path,
    run_id: &str,
    flamegraph_dir: &Path,
) -> Result<HeapOutputs, HeapError> {
    let heap_json = run_dir.join("heap.json");
    let file = DhatFile::read(&heap_json)?;
    let write_folded = |name: &str, lines: &[String]| -> Result<PathBuf, HeapError> {
        let path = run_dir.join(name);
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        rundir::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    };
    let bytes = dhat_to_folded(&file, Weight::Bytes);
    let live = dhat_to_folded(&file, Weight::LiveBytes);
    let folded = write_folded("heap.folded", &bytes)?;
    write_folded("heap-blocks.folded", &dhat_to_folded(&file, Weight::Blocks))?;
    write_folded("heap-live.folded", &live)?;
    let svg = flamegraph_dir.join(format!("{run_id}-heap.svg"));
    heap_svg::write_heap_flamegraph(&svg, &format!("{run_id}: bytes allocated"), "bytes", &bytes)?;
    let live_svg = flamegraph_dir.join(format!("{run_id}-heap-live.svg"));
    heap_svg::write_heap_flamegraph(
        &live_svg,
        &format!("{run_id}: bytes live at the end"),
        "bytes",
        &live,
    )?;
    let summary = summarize(&file);
    let alloc_json = run_dir.join("alloc.json");
    rundir::write_json(&alloc_json, &summary)?;
    Ok(HeapOutputs {
        heap_json,
        folded,
        svg,
        live_svg,
        alloc_json,
        summary,
        ops: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DhatFile {
        serde_json::from_str(
            r#"{"dhatFileVersion":2,"mode":"rust-heap","verb":"Allocated","bklt":true,"bkacc":false,
            "tu":"µs","Mtu":"s","tuth":10,"cmd":"x","pid":1,"tg":50,"te":100,
            "pps":[{"tb":960,"tbk":10,"tl":5,"mb":960,"mbk":10,"gb":960,"gbk":10,"eb":960,"ebk":10,"fs":[1,2,3]},
                   {"tb":100,"tbk":100,"tl":100,"mb":1,"mbk":1,"gb":0,"gbk":0,"eb":0,"ebk":0,"fs":[4,3]}],
            "ftbl":["[root]","0x1: alloc::alloc::alloc (alloc/src/alloc.rs:1:1)",
                    "0x2: profkit::workload::cache::preview (/home/x/src/workload/cache.rs:71:17)",
                    "0x3: main (src/main.rs:3:1)","0x4: a;b (x.rs:1:1)"]}"#,
        )
        .unwrap()
    }

    #[test]
    fn folds_and_summarises() {
        let f = sample();
        f.validate().unwrap();
        let lines = dhat_to_folded(&f, Weight::Bytes);
        assert_eq!(
            lines,
            vec![
                "main;a:b 100".to_string(),
                "main;profkit::workload::cache::preview;alloc::alloc::alloc 960".to_string()
            ]
        );
        assert_eq!(dhat_to_folded(&f, Weight::LiveBytes).len(), 1);
        let s = summarize(&f);
        assert_eq!(s.total_bytes, Bytes(1060));
        assert_eq!(s.end_bytes, Bytes(960));
        assert_eq!(
            s.top_by_bytes[0].site,
            "profkit::workload::cache::preview (workload/cache.rs:71)"
        );
        assert_eq!(s.top_by_blocks[0].total_blocks, 100);
        assert_eq!(s.short_lived.len(), 2);
        assert!(summary_text(&s, 3).contains("peak live"));
    }

    #[test]
    fn bad_frame_indices_are_rejected() {
        let mut f = sample();
        f.pps[0].fs.push(99);
        assert!(f.validate().unwrap_err().contains("frame 99"));
    }
}

/// Where a heap pass puts its files.
#[derive(Clone, Debug, Default)]
pub struct HeapRunOptions {
    /// Profile the workload's setup (database population) too, not just
    /// its warm-up and measured operations.
    pub include_setup: bool,
    /// Write into this existing run folder (no manifest) instead of a new one.
    pub into: Option<crate::rundir::RunDir>,
}

/// Runs one workload under the heap profiler (warm-up and measured
/// operations; setup too with [`HeapRunOptions::include_setup`]) and writes
/// `heap.json`, the folded stacks, flamegraphs and `alloc.json`. Returns the
/// run folder and the outputs. The profiler stops on every path, so
/// `heap.json` is written even when the run fails.
pub fn run_heap(
    session: &mut crate::session::Session,
    workload: Box<dyn crate::workload::Workload>,
    options: &crate::measure::RunOptions,
    heap: &HeapRunOptions,
) -> anyhow::Result<(crate::rundir::RunDir, HeapOutputs)> {
    let started = std::time::SystemTime::now();
    let name = workload.name().to_string();
    let dir = match &heap.into {
        Some(d) => d.clone(),
        None => session.run_dir(&name, started)?,
    };
    let path = dir.file("heap.json");
    let (prepared, profiler) = if heap.include_setup {
        let profiler = HeapProfiler::start(&path)?;
        (session.prepare(workload, options, false)?, profiler)
    } else {
        let prepared = session.prepare(workload, options, false)?;
        (prepared, HeapProfiler::start(&path)?)
    };
    // The result goes before the profiler stops, so that what is live at
    // the end is the workload's own memory.
    let measured = session.measure(&prepared).map(|b| {
        b.ops
            + match b.plan.warmup {
                crate::measure::Warmup::Ops(n) => n,
                _ => 0,
            }
    });
    let finished = profiler.finish();
    if heap.into.is_none() {
        session.write_manifest(&dir, &prepared, &["heap"], started)?;
    }
    session.discard(prepared);
    let ops = measured?;
    finished?;
    let mut outputs = write_outputs(&dir.path, &dir.id, &session.config().flamegraph_dir)?;
    outputs.ops = ops;
    if ops > 0 {
        outputs.summary.ops = Some(ops);
        outputs.summary.bytes_per_op = Some(outputs.summary.total_bytes.0 as f64 / ops as f64);
        rundir::write_json(&outputs.alloc_json, &outputs.summary)?;
    }
    Ok((dir, outputs))
}

/// Adds pass names to a run folder's `manifest.json` (after a heap pass
/// that ran in a child process).
pub fn add_passes(dir: &Path, passes: &[&str]) -> Result<(), OutputError> {
    let path = dir.join("manifest.json");
    let mut manifest: crate::rundir::Manifest = rundir::read_json(&path, "run manifest")?;
    for p in passes {
        if !manifest.passes.iter().any(|q| q == p) {
            manifest.passes.push(p.to_string());
        }
    }
    rundir::write_json(&path, &manifest)
}
