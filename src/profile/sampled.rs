//! Sampled heap profiling: a [`SampledProfiler`] records the allocations
//! [`crate::alloc::sampler`] samples while it runs, and turns the estimates
//! into a dhat file model ([`DhatFile`], values scaled up to estimates of
//! the whole), so that the exact mode's summaries, folded stacks,
//! flamegraphs and DHAT's viewer all read it.
//!
//! With the interval [`sampler::EXACT`] every allocation is recorded, each
//! standing for itself: the exact mode, faster than dhat-rs's (stacks by
//! [`crate::unwind`] instead of libgcc), writing the same dhat file.
//!
//! Needs [`crate::alloc::ProfkitAlloc`] installed and sampled profiling
//! switched on first thing in `main`
//! ([`crate::alloc::enable_sampled_heap_profiling`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::dhat::{DhatFile, DhatPp};
use super::heap::HeapError;
use super::symbols::SymbolCache;
use crate::alloc::sampler::{self, SampledHeap, TABLE};
use crate::alloc::{self};

static PROFILER_LOCK: Mutex<()> = Mutex::new(());

/// A running sampled heap profiler; only one runs at a time in a process.
#[derive(Debug)]
pub struct SampledProfiler {
    _lock: MutexGuard<'static, ()>,
    running: bool,
}

impl SampledProfiler {
    /// Forgets earlier samples and starts recording.
    pub fn start() -> Result<SampledProfiler, HeapError> {
        Self::start_inner(None)
    }

    /// Starts recording with a mean of `interval` bytes between samples
    /// from now on ([`sampler::EXACT`]: every allocation).
    pub fn start_with(interval: u64) -> Result<SampledProfiler, HeapError> {
        Self::start_inner(Some(interval))
    }

    fn start_inner(interval: Option<u64>) -> Result<SampledProfiler, HeapError> {
        if !alloc::sampled_heap_profiling_enabled() {
            return Err(HeapError::NotEnabled);
        }
        let lock = PROFILER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(iv) = interval {
            sampler::set_interval(iv);
        }
        warm_symbols();
        TABLE.start();
        Ok(SampledProfiler {
            _lock: lock,
            running: true,
        })
    }

    /// Stops recording and returns the estimates.
    pub fn finish(mut self) -> SampledHeap {
        self.running = false;
        TABLE.stop(sampler::interval())
    }
}

impl Drop for SampledProfiler {
    fn drop(&mut self) {
        if self.running {
            TABLE.stop(sampler::interval());
        }
    }
}

/// The estimates of the sampled heap profile recording now (by a
/// [`SampledProfiler`] another part of the process holds, a server's), or
/// `None` when none records.
pub fn snapshot() -> Option<SampledHeap> {
    TABLE.is_active().then(|| TABLE.peek(sampler::interval()))
}

/// Whether a frame is the sampler's own (the allocator hook, the unwinder):
/// left off the top of every stack.
fn is_sampler_frame(function: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "backtrace::",
        "<backtrace::",
        "profkit::alloc::sampler::",
        "<profkit::alloc::sampler::",
        "profkit::alloc::",
        "<profkit::alloc::",
        "profkit::unwind::",
        "<profkit::unwind::",
        "std::thread::local::",
        "<std::thread::local::",
        "core::ops::function::FnOnce::call_once",
        "_Unwind_Backtrace",
        "__rust_alloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rg_",
    ];
    PREFIXES.iter().any(|p| function.starts_with(p))
}

/// `/a/b/c/d/e.rs` → `c/d/e.rs`: the last three components, as dhat-rs
/// writes locations.
fn trim_path(path: &Path) -> String {
    let parts: Vec<_> = path.components().collect();
    let keep = parts.len().saturating_sub(3);
    parts[keep..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The frames of one return address (innermost inlined first), as dhat-rs
/// writes them: `0x…: name (file:line:col)`. Addresses outside the
/// executable (libc's thread start at the bottom of every stack) are named
/// from the dynamic symbol table: reading libc's separate debug file would
/// inflate its compressed sections, a third of a short run's time.
fn symbolize(ip: usize) -> Vec<String> {
    if let Some(frame) = outside_the_executable(ip) {
        return vec![frame];
    }
    resolve(ip)
        .into_iter()
        .map(|f| format!("{ip:#x}: {f}"))
        .collect()
}

/// [`symbolize`] with the executable's names from (and added to) `cache`.
fn symbolize_cached(cache: &mut SymbolCache, ip: usize) -> Vec<String> {
    match outside_the_executable(ip) {
        Some(frame) => vec![frame],
        None => cache.frames(ip, resolve),
    }
}

/// DWARF's frames of `ip` as `name (file:line:col)`, innermost first.
fn resolve(ip: usize) -> Vec<String> {
    let mut out = Vec::new();
    backtrace::resolve(ip as *mut std::ffi::c_void, |s| {
        let name = s
            .name()
            .map(|n| format!("{n:#}"))
            .unwrap_or_else(|| "???".to_string());
        let file = s.filename().map_or_else(|| "???".to_string(), trim_path);
        out.push(format!(
            "{name} ({file}:{}:{})",
            s.lineno().unwrap_or(0),
            s.colno().unwrap_or(0)
        ));
    });
    if out.is_empty() {
        out.push("??? (???:0:0)".to_string());
    }
    out
}

/// `0x…: symbol (object)` for an address in a shared object, from `dladdr`;
/// `None` for the executable's own code.
fn outside_the_executable(ip: usize) -> Option<String> {
    let info = |addr: usize| {
        // SAFETY: dladdr only reads the loader's tables into `info`.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        let found = unsafe { libc::dladdr(addr as *const libc::c_void, &mut info) } != 0;
        found.then_some(info)
    };
    let here = info(outside_the_executable as *const () as usize)?;
    let there = info(ip)?;
    if there.dli_fbase == here.dli_fbase {
        return None;
    }
    let text = |p: *const libc::c_char| {
        (!p.is_null())
            // SAFETY: dladdr's strings live as long as the object is loaded.
            .then(|| {
                unsafe { std::ffi::CStr::from_ptr(p) }
                    .to_string_lossy()
                    .into_owned()
            })
    };
    let name = text(there.dli_sname).unwrap_or_else(|| "???".to_string());
    let object = text(there.dli_fname).unwrap_or_default();
    let object = object.rsplit('/').next().unwrap_or("???");
    Some(format!("{ip:#x}: {name} ({object}:0:0)"))
}

/// Loads the executable's debug information on a thread of its own while
/// the workload runs (once per process), so that turning the records into
/// a dhat file later finds it parsed. The thread's allocations are not
/// recorded.
fn warm_symbols() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("profkit-symbols".into())
            .spawn(|| {
                sampler::untracked(|| {
                    // Not when an earlier run left the names.
                    if !SymbolCache::load().is_warm() {
                        let _ = symbolize(warm_symbols as *const () as usize);
                    }
                })
            });
    });
}

/// The estimates as a dhat file model: `tb`/`tbk` estimated bytes and
/// blocks allocated, `eb`/`ebk` live at the end, `gb`/`gbk` live at the
/// peak of the estimated total, `tl` estimated lifetimes (µs). Frames are
/// symbolized here; the sampler's own frames are left out.
pub fn to_dhat(heap: &SampledHeap) -> DhatFile {
    to_dhat_mapped(heap).0
}

/// [`to_dhat`], with the index in `pps` of every site of `heap` (sites
/// whose stacks differ only in the sampler's frames share one).
pub fn to_dhat_mapped(heap: &SampledHeap) -> (DhatFile, Vec<usize>) {
    let mut cache = SymbolCache::load();
    let out = to_dhat_with(heap, &mut |ip| symbolize_cached(&mut cache, ip), &|_| None);
    cache.save();
    out
}

/// The outermost frame of a site allocated while a service's request for
/// `endpoint` was polled: `[endpoint GET /orders/{id}]`.
pub fn endpoint_frame(endpoint: &str) -> String {
    format!("[endpoint {endpoint}]")
}

/// The endpoint of an [`endpoint_frame`] (a function name), if it is one.
pub fn frame_endpoint(function: &str) -> Option<&str> {
    function.strip_prefix("[endpoint ")?.strip_suffix(']')
}

/// [`to_dhat`], each labelled site's stack ending (outermost) in the frame
/// `label_frame` gives its label (a service's endpoint, say): sites of one
/// stack under two labels stay apart.
pub fn to_dhat_labelled(
    heap: &SampledHeap,
    label_frame: &dyn Fn(u32) -> Option<String>,
) -> DhatFile {
    let mut cache = SymbolCache::load();
    let out = to_dhat_with(
        heap,
        &mut |ip| symbolize_cached(&mut cache, ip),
        label_frame,
    );
    cache.save();
    out.0
}

fn to_dhat_with(
    heap: &SampledHeap,
    symbolize: &mut dyn FnMut(usize) -> Vec<String>,
    label_frame: &dyn Fn(u32) -> Option<String>,
) -> (DhatFile, Vec<usize>) {
    let mut ftbl = vec!["[root]".to_string()];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut by_ip: HashMap<usize, Vec<String>> = HashMap::new();
    let mut merged: HashMap<Vec<usize>, DhatPp> = HashMap::new();
    let mut order: Vec<Vec<usize>> = Vec::new();
    let mut site_pp: Vec<usize> = Vec::with_capacity(heap.sites.len());
    let mut pp_index: HashMap<Vec<usize>, usize> = HashMap::new();
    let round = |x: f64| x.max(0.0).round() as u64;
    for site in &heap.sites {
        let mut frames: Vec<String> = Vec::new();
        for &ip in &site.stack {
            let syms = by_ip.entry(ip).or_insert_with(|| symbolize(ip));
            frames.extend(syms.iter().cloned());
        }
        let top = frames
            .iter()
            .take_while(|f| is_sampler_frame(super::dhat::frame_function(f)))
            .count();
        let mut fs = Vec::with_capacity(frames.len() - top + 1);
        let label = (site.label != 0).then(|| label_frame(site.label)).flatten();
        for f in frames.into_iter().skip(top).chain(label) {
            let next = ftbl.len();
            let i = *index.entry(f.clone()).or_insert(next);
            if i == next {
                ftbl.push(f);
            }
            fs.push(i);
        }
        // Stacks differing only in the sampler's frames are one site.
        let next = pp_index.len();
        site_pp.push(*pp_index.entry(fs.clone()).or_insert(next));
        let pp = merged.entry(fs.clone()).or_insert_with(|| {
            order.push(fs.clone());
            DhatPp {
                tb: 0,
                tbk: 0,
                tl: Some(0),
                mb: Some(0),
                mbk: Some(0),
                gb: Some(0),
                gbk: Some(0),
                eb: Some(0),
                ebk: Some(0),
                fs,
            }
        });
        let add = |a: &mut Option<u64>, x: f64| *a = Some(a.unwrap_or(0) + round(x));
        pp.tb += round(site.alloc_bytes);
        pp.tbk += round(site.alloc_objects);
        add(&mut pp.tl, site.lifetime_us);
        add(&mut pp.mb, site.peak_bytes);
        add(&mut pp.mbk, site.peak_objects);
        add(&mut pp.gb, site.peak_bytes);
        add(&mut pp.gbk, site.peak_objects);
        add(&mut pp.eb, site.inuse_bytes);
        add(&mut pp.ebk, site.inuse_objects);
    }
    let pps = order
        .into_iter()
        .filter_map(|k| merged.remove(&k))
        .collect();
    let file = DhatFile {
        dhatFileVersion: 2,
        mode: "rust-heap".into(),
        verb: "Allocated".into(),
        bklt: true,
        bkacc: false,
        tu: "µs".into(),
        Mtu: "s".into(),
        tuth: Some(10),
        cmd: if heap.interval == sampler::EXACT {
            std::env::args().collect::<Vec<_>>().join(" ")
        } else {
            format!(
                "{} (sampled: one sample per {} bytes on average; values are estimates)",
                std::env::args().collect::<Vec<_>>().join(" "),
                heap.interval
            )
        },
        pid: std::process::id() as u64,
        tg: heap.peak_at_us,
        te: heap.duration_us,
        pps,
        ftbl,
    };
    (file, site_pp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::sampler::SiteStats;

    #[test]
    fn shared_objects_are_named_from_their_symbol_table() {
        let getpid = symbolize(libc::getpid as *const () as usize);
        assert_eq!(getpid.len(), 1);
        assert!(getpid[0].contains("getpid (libc.so"), "{getpid:?}");
        // The executable's own code still gets DWARF's names and lines.
        assert!(outside_the_executable(symbolize as *const () as usize).is_none());
        let own = symbolize(trim_path as *const () as usize + 1);
        assert!(own.iter().any(|f| f.contains("trim_path (")), "{own:?}");
        assert!(own.iter().any(|f| f.contains("sampled.rs:")), "{own:?}");
    }

    #[test]
    fn estimates_become_a_dhat_file_without_the_samplers_frames() {
        let mut names = |ip: usize| -> Vec<String> {
            match ip {
                1 => vec!["0x1: backtrace::trace_unsynchronized (src/x.rs:1:1)".into()],
                2 => vec!["0x2: <profkit::alloc::ProfkitAlloc as core::alloc::global::GlobalAlloc>::alloc (src/alloc.rs:1:1)".into()],
                3 => vec![
                    "0x3: inlined::leaf (src/a.rs:3:1)".into(),
                    "0x3: app::caller (src/a.rs:9:1)".into(),
                ],
                _ => vec![format!("{ip:#x}: main (src/main.rs:1:1)")],
            }
        };
        let site = |stack: Vec<usize>, bytes: f64, live: f64| SiteStats {
            stack,
            label: 0,
            samples: 1,
            alloc_objects: bytes / 10.0,
            alloc_bytes: bytes,
            inuse_objects: live / 10.0,
            inuse_bytes: live,
            peak_bytes: live,
            peak_objects: live / 10.0,
            lifetime_us: 5.0,
        };
        let heap = SampledHeap {
            interval: 512,
            sites: vec![
                site(vec![1, 2, 3, 4], 1000.0, 100.0),
                // The same stack reached through another sampler frame.
                site(vec![2, 3, 4], 500.0, -1e-9),
                site(vec![1, 4], 70.0, 0.0),
            ],
            duration_us: 9,
            peak_at_us: Some(4),
        };
        let (f, map) = to_dhat_with(&heap, &mut names, &|_| None);
        assert_eq!(map, vec![0, 0, 1]);
        assert_eq!(f.pps.len(), 2);
        assert_eq!(f.pps[0].tb, 1500);
        assert_eq!(f.pps[0].eb, Some(100));
        let funcs: Vec<&str> = f.pps[0].fs.iter().map(|&i| f.function(i)).collect();
        assert_eq!(funcs, vec!["inlined::leaf", "app::caller", "main"]);
        assert_eq!(f.pps.iter().map(|p| p.tb).sum::<u64>(), 1570);
        assert_eq!(f.pps[1].fs.len(), 1, "{:?}", f.pps[1]);
        // A dhat file that reads back.
        let json = serde_json::to_vec(&f).unwrap();
        assert_eq!(DhatFile::parse(&json).unwrap(), f);
        assert_eq!(trim_path(Path::new("/a/b/c/d.rs")), "b/c/d.rs");
        // A labelled site ends in its label's frame and stays apart.
        let mut labelled = heap.clone();
        labelled.sites[1].label = 5;
        let (f, _) = to_dhat_with(&labelled, &mut names, &|l| Some(format!("[endpoint {l}]")));
        assert_eq!(f.pps.len(), 3);
        let last = f.pps.iter().find(|p| p.tb == 500).unwrap();
        assert_eq!(f.function(*last.fs.last().unwrap()), "[endpoint 5]");
    }
}
