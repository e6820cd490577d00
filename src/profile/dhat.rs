//! The dhat file model: DHAT's JSON format (version 2), as dhat-rs and
//! `valgrind --tool=dhat` write it and `dh_view.html` loads it, with its
//! frame parsing. Reading checks every index and total, so a damaged file is
//! one error naming the field, never a wrapped sum.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors reading a dhat file.
#[derive(Debug, thiserror::Error)]
pub enum DhatError {
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
    pub fn read(path: &Path) -> Result<DhatFile, DhatError> {
        let bytes = std::fs::read(path).map_err(|source| DhatError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        DhatFile::parse(&bytes).map_err(|e| match e {
            Ok(source) => DhatError::Parse {
                path: path.to_path_buf(),
                source,
            },
            Err(reason) => DhatError::Invalid {
                path: path.to_path_buf(),
                reason,
            },
        })
    }

    /// Parses and checks dhat JSON: a JSON error, or what is inconsistent.
    pub fn parse(bytes: &[u8]) -> Result<DhatFile, Result<serde_json::Error, String>> {
        let file: DhatFile = serde_json::from_slice(bytes).map_err(Ok)?;
        file.validate().map_err(Err)?;
        Ok(file)
    }

    /// Peak live bytes: the sum of every site's bytes at the global peak
    /// (`pps[].gb`); checked by [`DhatFile::read`] to fit in 64 bits.
    pub fn peak_bytes(&self) -> u64 {
        self.pps
            .iter()
            .map(|pp| pp.gb.unwrap_or(0))
            .fold(0u64, u64::saturating_add)
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
        // Every total a summary adds up must fit in 64 bits.
        type Field = (&'static str, fn(&DhatPp) -> u64);
        let fields: [Field; 8] = [
            ("tb", |p| p.tb),
            ("tbk", |p| p.tbk),
            ("gb", |p| p.gb.unwrap_or(0)),
            ("gbk", |p| p.gbk.unwrap_or(0)),
            ("eb", |p| p.eb.unwrap_or(0)),
            ("ebk", |p| p.ebk.unwrap_or(0)),
            ("mb", |p| p.mb.unwrap_or(0)),
            ("tl", |p| p.tl.unwrap_or(0)),
        ];
        for (name, get) in fields {
            let mut sum = 0u64;
            for (i, pp) in self.pps.iter().enumerate() {
                sum = sum
                    .checked_add(get(pp))
                    .ok_or_else(|| format!("the sum of '{name}' overflows 64 bits at pps[{i}]"))?;
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small dhat file: a leaky site under `preview` and a short-lived one.
    pub(crate) fn sample() -> DhatFile {
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
    fn bad_frame_indices_are_rejected() {
        let mut f = sample();
        f.validate().unwrap();
        f.pps[0].fs.push(99);
        assert!(f.validate().unwrap_err().contains("frame 99"));
    }

    #[test]
    fn wrapping_totals_are_rejected_naming_the_field() {
        let mut f = sample();
        f.pps[0].tb = u64::MAX;
        f.pps[1].tb = u64::MAX;
        let e = f.validate().unwrap_err();
        assert!(e.contains("'tb'") && e.contains("pps[1]"), "{e}");
        assert_eq!(sample().peak_bytes(), 960);
    }
}
