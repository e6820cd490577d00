//! Run folders on disk: `profiles/<run-id>/` with `manifest.json` and the
//! files each pass adds, read back into the typed run model
//! ([`crate::analyze::rundata`]); baselines; atomic writes, so no reader
//! ever sees half a file.
//!
//! Every file name of a run folder is a constant in [`files`].

pub mod baseline;
pub mod runs;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::analyze::budget::{Budget, BudgetError};
use crate::analyze::rundata::{CpuSampling, Host, Manifest, Pass, ToolVersions, MANIFEST_VERSION};
use crate::measure::{sys, RunPlan};

pub use runs::{load_run, load_set, newest_session, resolve, run_files, RunError};

/// Where run folders and flamegraphs go unless told otherwise.
pub mod defaults {
    /// Root of run folders (`--out`).
    pub const OUT_DIR: &str = "profiles";
    /// Where flamegraphs go.
    pub const FLAMEGRAPH_DIR: &str = "flamegraphs";
    /// The budget file `check` and `report` read.
    pub const BUDGET_FILE: &str = "profkit.toml";
}

/// The names of the files in a run folder, defined once.
pub mod files {
    /// What ran.
    pub const MANIFEST: &str = "manifest.json";
    /// Closed-loop measurement.
    pub const BENCH: &str = "bench.json";
    /// Open-loop measurement.
    pub const LOAD: &str = "load.json";
    /// Ranked findings.
    pub const FINDINGS: &str = "findings.json";
    /// Fixes tried on scratch copies of the database, measured.
    pub const ADVICE: &str = "advice.json";
    /// CPU profile, pprof protobuf, gzipped.
    pub const CPU_PPROF: &str = "cpu.pb.gz";
    /// CPU profile, folded stacks.
    pub const CPU_FOLDED: &str = "cpu.folded";
    /// CPU analysis.
    pub const CPU_JSON: &str = "cpu.json";
    /// SQL report.
    pub const SQL_JSON: &str = "sql.json";
    /// Database time by statement, folded.
    pub const SQL_FOLDED: &str = "sql.folded";
    /// dhat's heap profile.
    pub const HEAP_JSON: &str = "heap.json";
    /// Heap profile in pprof's heap format.
    pub const HEAP_PB: &str = "heap.pb.gz";
    /// Bytes allocated per stack.
    pub const HEAP_FOLDED: &str = "heap.folded";
    /// Blocks allocated per stack.
    pub const HEAP_BLOCKS_FOLDED: &str = "heap-blocks.folded";
    /// Bytes live at the end per stack.
    pub const HEAP_LIVE_FOLDED: &str = "heap-live.folded";
    /// Allocation summary.
    pub const ALLOC: &str = "alloc.json";
    /// Leak check.
    pub const LEAKS: &str = "leaks.json";
    /// What a probe (the service layer) saw during the SQL pass.
    pub const OBSERVED: &str = "observed.json";
    /// Sweep result.
    pub const SWEEP: &str = "sweep.json";
    /// Stress result.
    pub const STRESS: &str = "stress.json";
    /// A session's or baseline's list of runs.
    pub const INDEX_JSON: &str = "index.json";
    /// A session's human index.
    pub const INDEX_MD: &str = "index.md";
    /// A comparison.
    pub const COMPARE: &str = "compare.json";
    /// A baseline's description.
    pub const BASELINE: &str = "baseline.json";
    /// Markdown report.
    pub const REPORT_MD: &str = "report.md";
    /// HTML report.
    pub const REPORT_HTML: &str = "report.html";
}

/// Errors writing or reading run folders.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or folder could not be written.
    #[error("cannot write '{}': {source}", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read '{}': {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A text file did not parse as what it should hold.
    #[error("'{}' is not a valid {what}: {reason}", path.display())]
    Invalid {
        /// The path.
        path: PathBuf,
        /// What it should be.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An output path that names one of the command's input files.
    #[error("refusing to write '{}': it is the input file '{}'; choose another output path", path.display(), input.display())]
    WouldOverwrite {
        /// The output path.
        path: PathBuf,
        /// The input it names.
        input: PathBuf,
    },
    /// An output folder (`--out`) that is an existing file.
    #[error("'{}' is a file, not a folder; pass a folder to --out", path.display())]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// A JSON file did not parse as what it should hold.
    #[error("'{}' is not a valid {what}: {source}", path.display())]
    Parse {
        /// The path.
        path: PathBuf,
        /// What it should be.
        what: &'static str,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// flushed, then renamed over `path`. Creates the folder if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let err = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".profkit-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    // Temporary files are created private (0600); outputs are meant to be
    // shared like any file the user writes.
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(err)?;
    }
    tmp.as_file().sync_data().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Whether `a` and `b` are the same file (device and inode: a symlink or
/// hard link to it counts); false when either does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Refuses an `output` path that names one of `inputs`: profkit never
/// writes over a file it reads.
pub fn refuse_overwrite<'a>(
    output: &Path,
    inputs: impl IntoIterator<Item = &'a Path>,
) -> Result<(), OutputError> {
    match inputs.into_iter().find(|i| same_file(output, i)) {
        Some(input) => Err(OutputError::WouldOverwrite {
            path: output.to_path_buf(),
            input: input.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Refuses an output root (`--out`) that is an existing file.
pub fn check_out_dir(root: &Path) -> Result<(), OutputError> {
    if root.exists() && !root.is_dir() {
        return Err(OutputError::NotAFolder {
            path: root.to_path_buf(),
        });
    }
    Ok(())
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), OutputError> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("result types serialise");
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file as `T`, naming the file in any error.
pub fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    what: &'static str,
) -> Result<T, OutputError> {
    let bytes = std::fs::read(path).map_err(|source| OutputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| OutputError::Parse {
        path: path.to_path_buf(),
        what,
        source,
    })
}

/// UTC time as `2026-11-23T18:45:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// UTC time as `20261123T184500Z`: sorts by time and is safe in a file name.
pub fn compact_timestamp(t: SystemTime) -> String {
    rfc3339(t).replace(['-', ':'], "")
}

/// This machine.
pub fn host() -> Host {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    Host {
        hostname: read("/proc/sys/kernel/hostname"),
        os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        kernel: read("/proc/sys/kernel/osrelease"),
        cores: sys::cores(),
        memory: sys::total_memory(),
    }
}

/// The versions linked into this binary.
pub fn tool_versions() -> ToolVersions {
    ToolVersions {
        profkit: env!("CARGO_PKG_VERSION").to_string(),
        sqlite: rusqlite::version().to_string(),
        debug_build: cfg!(debug_assertions),
    }
}

/// The current git revision (with `-dirty` when the tree has changes), if
/// the working directory is in a git checkout.
pub fn git_revision() -> Option<String> {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = run(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{rev}-dirty") } else { rev })
}

/// The manifest of a run of `workload` with `plan` that started at
/// `started` and ends now.
pub fn manifest(
    dir: &RunDir,
    workload: &str,
    description: &str,
    plan: RunPlan,
    passes: &[Pass],
    started: SystemTime,
) -> Manifest {
    Manifest {
        schema_version: MANIFEST_VERSION,
        run_id: dir.id.clone(),
        workload: workload.to_string(),
        description: description.to_string(),
        plan,
        passes: passes.to_vec(),
        git_revision: git_revision(),
        host: host(),
        tools: tool_versions(),
        started_at: rfc3339(started),
        finished_at: rfc3339(SystemTime::now()),
        cpu_sampling: None,
        interrupted: crate::measure::interrupted(),
        measured: None,
    }
}

/// Reads a run folder's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest, OutputError> {
    read_json(&dir.join(files::MANIFEST), "run manifest")
}

/// Held while a `manifest.json` is read, changed and written again: the
/// main job's passes of one run folder may finish on two threads at once.
static MANIFEST_UPDATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Records how a run's CPU pass sampled in its `manifest.json`.
pub fn set_cpu_sampling(dir: &Path, sampling: CpuSampling) -> Result<(), OutputError> {
    let _update = MANIFEST_UPDATE.lock().unwrap_or_else(|p| p.into_inner());
    let mut manifest = read_manifest(dir)?;
    manifest.cpu_sampling = Some(sampling);
    write_json(&dir.join(files::MANIFEST), &manifest)
}

/// Adds passes to a run folder's `manifest.json` (after a pass that ran
/// later, or in a child process).
pub fn add_passes(dir: &Path, passes: &[Pass]) -> Result<(), OutputError> {
    let _update = MANIFEST_UPDATE.lock().unwrap_or_else(|p| p.into_inner());
    let mut manifest = read_manifest(dir)?;
    manifest.add_passes(passes);
    write_json(&dir.join(files::MANIFEST), &manifest)
}

/// Reads and validates a budget file (`profkit.toml`).
pub fn read_budget(path: &Path) -> Result<Budget, BudgetError> {
    let text = std::fs::read_to_string(path).map_err(|source| BudgetError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Budget::parse(&text).map_err(|message| BudgetError::Invalid {
        path: path.to_path_buf(),
        message,
    })
}

/// Reads an optional JSON file: `None` when it is not there.
pub fn read_opt_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    what: &'static str,
) -> Result<Option<T>, OutputError> {
    if !path.is_file() {
        return Ok(None);
    }
    read_json(path, what).map(Some)
}

/// Reads an optional text file: `None` when it is not there.
pub fn read_opt_text(path: &Path) -> Result<Option<String>, OutputError> {
    if !path.is_file() {
        return Ok(None);
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|source| OutputError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// A run folder, `<root>/<run-id>/`.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// `<timestamp>-<workload>`.
    pub id: String,
    /// The folder.
    pub path: PathBuf,
}

impl RunDir {
    /// Creates a new run folder for `workload` under `root`; a numeric
    /// suffix keeps two runs in the same second apart.
    pub fn create(root: &Path, workload: &str, started: SystemTime) -> Result<RunDir, OutputError> {
        check_out_dir(root)?;
        let base = format!("{}-{}", compact_timestamp(started), workload);
        for n in 0..1000 {
            let id = if n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let path = root.join(&id);
            std::fs::create_dir_all(root).map_err(|source| OutputError::Write {
                path: root.to_path_buf(),
                source,
            })?;
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(RunDir { id, path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(OutputError::Write { path, source }),
            }
        }
        Err(OutputError::Write {
            path: root.join(base),
            source: std::io::Error::other("too many runs with the same name"),
        })
    }

    /// A file in the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// An existing folder as a run folder (its name is the run id).
    pub fn open(path: &Path) -> Option<RunDir> {
        let id = path.file_name()?.to_string_lossy().into_owned();
        Some(RunDir {
            id,
            path: path.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.json");
        write_json(&p, &vec![1, 2, 3]).unwrap();
        write_json(&p, &vec![4]).unwrap();
        let back: Vec<i32> = read_json(&p, "list").unwrap();
        assert_eq!(back, vec![4]);
        let leftovers = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn run_ids_sort_by_time_and_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let a = RunDir::create(dir.path(), "point-read", t).unwrap();
        let b = RunDir::create(dir.path(), "point-read", t).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.id, "20261118T110640Z-point-read");
        assert!(a.id.ends_with("Z-point-read"));
    }

    #[test]
    fn corrupt_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bench.json");
        std::fs::write(&p, "{ not json").unwrap();
        let err = read_json::<serde_json::Value>(&p, "bench result")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bench.json") && err.contains("not a valid bench result"),
            "{err}"
        );
    }
}
