//! Answers from a CPU profile: the hottest frames by self and by total
//! samples, and which layer (profkit/workload code, rusqlite, SQLite's C
//! code, the allocator, libc/kernel) the time is spent in.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::profile::cpu::{CpuProfile, Frame};
use crate::units::Nanos;

/// Version of `cpu.json`.
pub const SCHEMA_VERSION: u32 = 1;

/// Defaults of CPU analysis, defined once.
pub mod defaults {
    /// Frames listed in the top-N tables.
    pub const TOP: usize = 15;
}

/// Where a sample's leaf frame lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// profkit and the workload's own Rust code.
    Profkit,
    /// rusqlite and the r2d2 pool.
    Rusqlite,
    /// SQLite's C code (the bundled library).
    Sqlite,
    /// malloc/free and Rust's allocation glue.
    Allocator,
    /// The C library and the kernel (system calls, memcpy, locks).
    LibcKernel,
    /// Everything else (Rust's std, other crates, unknown frames).
    Other,
}

impl Layer {
    /// All layers, in report order.
    pub const ALL: [Layer; 6] = [
        Layer::Profkit,
        Layer::Rusqlite,
        Layer::Sqlite,
        Layer::Allocator,
        Layer::LibcKernel,
        Layer::Other,
    ];

    /// A short human name.
    pub fn label(self) -> &'static str {
        match self {
            Layer::Profkit => "profkit/workload",
            Layer::Rusqlite => "rusqlite",
            Layer::Sqlite => "SQLite (C)",
            Layer::Allocator => "allocator",
            Layer::LibcKernel => "libc/kernel",
            Layer::Other => "other",
        }
    }
}

const ALLOCATOR: &[&str] = &[
    "malloc",
    "free",
    "calloc",
    "realloc",
    "cfree",
    "_int_malloc",
    "_int_free",
    "_int_realloc",
    "malloc_consolidate",
    "__libc_malloc",
    "__libc_free",
    "__libc_calloc",
    "__libc_realloc",
    "__rust_alloc",
    "__rust_dealloc",
    "__rust_realloc",
    "__rust_alloc_zeroed",
    "__rdl_alloc",
    "__rdl_dealloc",
    "__rdl_realloc",
    "tcache_get",
    "tcache_put",
    "unlink_chunk",
    "sysmalloc",
    "alloc_perturb",
];

const LIBC_MODULES: &[&str] = &[
    "libc.so",
    "ld-linux",
    "linux-vdso",
    "libpthread",
    "libm.so",
    "libdl.so",
    "librt.so",
];

/// The first crate path segment named in a Rust function name, e.g.
/// `rusqlite` for `<rusqlite::Rows as Iterator>::next`.
pub(crate) fn first_crate(name: &str) -> Option<&str> {
    let i = name.find("::")?;
    let head = &name[..i];
    let start = head
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |j| j + 1);
    Some(&head[start..])
}

/// The layer of a leaf frame.
pub fn layer_of(frame: &Frame) -> Layer {
    let name = frame.function.as_str();
    let bare = name.trim_start_matches('_');
    if ALLOCATOR.contains(&name)
        || name.starts_with("alloc::alloc::")
        || name.starts_with("<alloc::alloc::Global")
        || bare.starts_with("rust_alloc")
        || bare.starts_with("rdl_")
    {
        return Layer::Allocator;
    }
    let in_sqlite_c = frame
        .file
        .as_deref()
        .is_some_and(|f| f.ends_with("sqlite3.c") || f.ends_with("sqlite3.h"));
    if in_sqlite_c || (name.starts_with("sqlite3") && !name.contains("::")) {
        return Layer::Sqlite;
    }
    match first_crate(name) {
        Some("rusqlite" | "r2d2" | "r2d2_sqlite" | "libsqlite3_sys") => return Layer::Rusqlite,
        Some("profkit") => return Layer::Profkit,
        _ => {}
    }
    if frame
        .module
        .as_deref()
        .is_some_and(|m| LIBC_MODULES.iter().any(|l| m.starts_with(l)))
    {
        return Layer::LibcKernel;
    }
    Layer::Other
}

/// A frame with its share of the samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameShare {
    /// Function name.
    pub function: String,
    /// Samples.
    pub samples: u64,
    /// Share of all samples, in percent.
    pub percent: f64,
    /// Estimated CPU time (samples × true sample period).
    pub cpu_time: Nanos,
}

/// A layer with its share of the samples (by leaf frame).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerShare {
    /// The layer.
    pub layer: Layer,
    /// Samples whose leaf lies in it.
    pub samples: u64,
    /// Share of all samples, in percent.
    pub percent: f64,
}

/// A thread name with its share of the samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadShare {
    /// Thread name.
    pub thread: String,
    /// Samples.
    pub samples: u64,
    /// Share, in percent.
    pub percent: f64,
}

/// What `cpu.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Workload name.
    pub workload: String,
    /// Frequency asked of the timer (Hz).
    pub frequency: u32,
    /// The clock that drove the samples.
    #[serde(default)]
    pub sampler: crate::profile::perf::Sampler,
    /// Samples taken.
    pub samples: u64,
    /// Samples per CPU-second actually taken.
    pub effective_rate: f64,
    /// samples ÷ (frequency × CPU seconds).
    pub capture: f64,
    /// Process CPU time measured during the profile.
    pub cpu_time: Nanos,
    /// Wall time of the profile.
    pub wall_time: Nanos,
    /// CPU time one sample stands for (CPU time ÷ samples).
    pub sample_period: Nanos,
    /// Hottest frames by self samples (the leaf).
    pub top_self: Vec<FrameShare>,
    /// Hottest frames by total samples (anywhere in the stack, counted
    /// once per sample).
    pub top_total: Vec<FrameShare>,
    /// Share of samples per layer, by leaf frame; every layer listed.
    pub layers: Vec<LayerShare>,
    /// Samples per thread name.
    pub threads: Vec<ThreadShare>,
    /// Warnings: frequency not honoured, too few samples.
    pub warnings: Vec<String>,
    /// Known causes of CPU time in database code (read-lock churn, memory
    /// statistics, preparation, …) with their shares.
    #[serde(default)]
    pub causes: Vec<super::causes::CauseShare>,
    /// Samples of an async runtime parking or waking its threads (a system
    /// call under tokio's park/unpark), by leaf frame: the runtime idling
    /// between tasks, not work of the code profiled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runtime_wait: BTreeMap<String, u64>,
    /// Samples in per-statement work (read lock, reset, statement-cache
    /// lookup, pool checkout), which batching statements removes
    /// ([`super::predict`]).
    #[serde(default)]
    pub statement_work: u64,
}

/// Whether a stack (root first) is an async runtime parking or waking a
/// thread: a system call (a C-level leaf) under a futex/epoll/condvar wait
/// or wake, under tokio's park, unpark, driver or idle blocking pool.
pub fn is_runtime_wait(frames: &[Frame]) -> bool {
    const RUNTIME: &[&str] = &[
        "tokio::runtime::park::",
        "tokio::runtime::scheduler::multi_thread::park::",
        "tokio::runtime::scheduler::multi_thread::worker::Context::park",
        "tokio::runtime::driver::",
        "tokio::runtime::io::driver::",
        "tokio::runtime::blocking::pool::Inner::run",
        "::unpark",
    ];
    const WAIT: &[&str] = &["futex", "epoll_wait", "Condvar", "::park", "::unpark"];
    let Some(leaf) = frames.last() else {
        return false;
    };
    !leaf.function.contains("::")
        && frames
            .iter()
            .any(|f| RUNTIME.iter().any(|r| f.function.contains(r)))
        && frames
            .iter()
            .any(|f| WAIT.iter().any(|w| f.function.contains(w)))
}

/// Analyses a profile: top `top` frames by self and total samples, the
/// layer breakdown, per-thread shares and warnings.
pub fn analyze(profile: &CpuProfile, workload: &str, top: usize) -> CpuReport {
    let total = profile.samples.max(1) as f64;
    let period = profile.sample_period();
    let pct = |n: u64| 100.0 * n as f64 / total;
    let mut self_samples: BTreeMap<&str, u64> = BTreeMap::new();
    let mut total_samples: BTreeMap<&str, u64> = BTreeMap::new();
    let mut layers: BTreeMap<Layer, u64> = BTreeMap::new();
    let mut runtime_wait: BTreeMap<String, u64> = BTreeMap::new();
    for s in &profile.stacks {
        let leaf_layer = match s.frames.last() {
            Some(leaf) => {
                *self_samples.entry(&leaf.function).or_default() += s.samples;
                if is_runtime_wait(&s.frames) {
                    *runtime_wait.entry(leaf.function.clone()).or_default() += s.samples;
                }
                layer_of(leaf)
            }
            None => Layer::Other,
        };
        *layers.entry(leaf_layer).or_default() += s.samples;
        let mut seen = HashSet::new();
        for f in &s.frames {
            if seen.insert(f.function.as_str()) {
                *total_samples.entry(&f.function).or_default() += s.samples;
            }
        }
    }
    let top_of = |m: BTreeMap<&str, u64>| {
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.into_iter()
            .take(top)
            .map(|(f, n)| FrameShare {
                function: f.to_string(),
                samples: n,
                percent: pct(n),
                cpu_time: Nanos(period.0 * n),
            })
            .collect::<Vec<_>>()
    };
    let mut warnings = Vec::new();
    if let Err(e) = profile.check_enough() {
        warnings.push(e.to_string());
    }
    if profile.samples < super::findings::CPU_FINDING_MIN_SAMPLES {
        warnings.push(format!(
            "{} samples: below {} no CPU finding is drawn (a share's 95 % interval would be wider than ±10 points)",
            profile.samples,
            super::findings::CPU_FINDING_MIN_SAMPLES
        ));
    }
    warnings.extend(profile.sampler_note.clone());
    warnings.extend(profile.rate_warning());
    CpuReport {
        schema_version: SCHEMA_VERSION,
        workload: workload.to_string(),
        frequency: profile.frequency,
        sampler: profile.sampler,
        samples: profile.samples,
        effective_rate: profile.effective_rate(),
        capture: profile.capture(),
        cpu_time: profile.cpu_time,
        wall_time: profile.wall_time,
        sample_period: period,
        top_self: top_of(self_samples),
        top_total: top_of(total_samples),
        runtime_wait,
        layers: Layer::ALL
            .iter()
            .map(|&layer| {
                let n = layers.get(&layer).copied().unwrap_or(0);
                LayerShare {
                    layer,
                    samples: n,
                    percent: pct(n),
                }
            })
            .collect(),
        threads: profile
            .threads()
            .into_iter()
            .map(|(thread, n)| ThreadShare {
                thread,
                samples: n,
                percent: pct(n),
            })
            .collect(),
        warnings,
        causes: super::causes::analyze(profile),
        statement_work: super::predict::statement_work(profile),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::cpu::Stack;

    fn frame(name: &str, file: Option<&str>, module: Option<&str>) -> Frame {
        Frame {
            function: name.to_string(),
            file: file.map(String::from),
            line: None,
            module: module.map(String::from),
            inlined: false,
        }
    }

    #[test]
    fn leaf_frames_fall_into_layers() {
        let l = |n, f, m| layer_of(&frame(n, f, m));
        assert_eq!(l("sqlite3VdbeExec", None, None), Layer::Sqlite);
        assert_eq!(
            l("vdbeRecordCompare", Some("/x/sqlite3/sqlite3.c"), None),
            Layer::Sqlite
        );
        assert_eq!(
            l("<rusqlite::Rows as Iterator>::next", None, None),
            Layer::Rusqlite
        );
        assert_eq!(
            l(
                "profkit::workload::synthetic::profkit_hot_function",
                None,
                None
            ),
            Layer::Profkit
        );
        assert_eq!(l("malloc", None, Some("libc.so.6")), Layer::Allocator);
        assert_eq!(
            l("__memcpy_avx_unaligned_erms", None, Some("libc.so.6")),
            Layer::LibcKernel
        );
        assert_eq!(l("core::fmt::write", None, Some("profkit")), Layer::Other);
    }

    #[test]
    fn self_and_total_shares() {
        let st = |frames: Vec<Frame>, samples| Stack {
            thread: "t".into(),
            frames,
            samples,
        };
        let a = frame("main", None, None);
        let b = frame("work", None, None);
        let c = frame("sqlite3_step", None, None);
        let p = CpuProfile {
            frequency: 100,
            sampler: Default::default(),
            sampler_note: None,
            samples: 10,
            cpu_time: Nanos(100_000_000),
            wall_time: Nanos(100_000_000),
            started_unix_nanos: 0,
            stacks: vec![st(vec![a.clone(), b.clone()], 3), st(vec![a, b, c], 7)],
        };
        let r = analyze(&p, "w", 5);
        assert_eq!(r.top_self[0].function, "sqlite3_step");
        assert_eq!(r.top_self[0].samples, 7);
        assert_eq!(r.top_total[0].samples, 10);
        let sqlite = r.layers.iter().find(|l| l.layer == Layer::Sqlite).unwrap();
        assert!((sqlite.percent - 70.0).abs() < 1e-9);
        assert_eq!(r.top_self[0].cpu_time, Nanos(70_000_000));
        assert!(r.warnings.iter().any(|w| w.contains("raise --ops")));
    }
}
