//! Reading run folders, profile sessions and baselines back into the run
//! model ([`crate::analyze::rundata`]).

use std::path::{Path, PathBuf};

use super::{files, read_json, read_opt_json, read_opt_text, OutputError};
use crate::analyze::findings::Findings;
use crate::analyze::rundata::{Index, LoadedRun, Manifest, RunSet, MANIFEST_VERSION};
use crate::analyze::stacks::{self, Folded};
use crate::measure::{self, BenchResult};
use crate::profile::dhat::DhatFile;
use crate::units::{Nanos, OpsPerSec};

/// Errors finding or reading runs.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The path is neither a run folder nor a profile session nor a baseline.
    #[error("'{}' is not a run folder (no bench.json, nor manifest.json with a heap profile), a profile session (no index.json) or a baseline name", path.display())]
    NotARun {
        /// What was given.
        path: PathBuf,
    },
    /// The path does not exist at all (nor is it a baseline's name).
    #[error("'{}' does not exist (nor is it the name of a baseline under '{}')", path.display(), baselines.display())]
    Missing {
        /// What was given.
        path: PathBuf,
        /// Where baselines were looked for.
        baselines: PathBuf,
    },
    /// The path does not exist.
    #[error("'{}' does not exist", path.display())]
    NoSuchPath {
        /// What was given.
        path: PathBuf,
    },
    /// No profile session to pick.
    #[error("no profile session under '{}'; run `profkit profile` first or name a run folder", out.display())]
    NoSession {
        /// The folder searched.
        out: PathBuf,
    },
    /// A session names a run that is not there.
    #[error("'{}' lists run '{run}', which is missing", index.display())]
    MissingRun {
        /// The index file.
        index: PathBuf,
        /// The run id.
        run: String,
    },
    /// A file of the run is unreadable or invalid.
    #[error(transparent)]
    File(#[from] OutputError),
}

/// The folder baselines live in: `<out>/baselines`.
pub fn baselines_dir(out: &Path) -> PathBuf {
    out.join("baselines")
}

fn folded(dir: &Path, name: &str) -> Result<Option<Folded>, OutputError> {
    let path = dir.join(name);
    let Some(text) = read_opt_text(&path)? else {
        return Ok(None);
    };
    stacks::parse_folded(&text)
        .map(Some)
        .map_err(|e| OutputError::Invalid {
            path,
            what: "folded stacks file",
            reason: e.to_string(),
        })
}

/// Whether `dir` is a run folder: `bench.json`, or (a `profkit heap` run)
/// `manifest.json` with a heap profile.
pub fn is_run_folder(dir: &Path) -> bool {
    dir.join(files::BENCH).is_file()
        || (dir.join(files::MANIFEST).is_file()
            && (dir.join(files::ALLOC).is_file() || dir.join(files::HEAP_JSON).is_file()))
}

/// The files in a run folder (none when it cannot be read).
pub fn run_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Refuses a file of a schema version this profkit does not know.
fn check_version(path: &Path, found: u32, known: u32) -> Result<(), OutputError> {
    if found == known {
        return Ok(());
    }
    Err(OutputError::Invalid {
        path: path.to_path_buf(),
        what: "profkit file",
        reason: format!("schema_version {found} is not understood (this profkit reads {known}); use the profkit that wrote it"),
    })
}

/// Refuses a bench result whose latency histogram does not count its
/// operations (a damaged or edited file: comparisons resample it). A run
/// measured elsewhere (a Locust load: percentiles, no histogram) has none,
/// and comparisons then give no bootstrap interval.
fn check_histogram(path: &Path, bench: &BenchResult) -> Result<(), OutputError> {
    if bench.latency.histogram.is_empty() {
        return Ok(());
    }
    let counted = bench
        .latency
        .histogram
        .iter()
        .try_fold(0u64, |acc, &(_, n)| acc.checked_add(n));
    if counted == Some(bench.ops) {
        return Ok(());
    }
    Err(OutputError::Invalid {
        path: path.to_path_buf(),
        what: "bench result",
        reason: match counted {
            Some(n) => format!(
                "the latency histogram counts {n} operations but ops is {}",
                bench.ops
            ),
            None => "the latency histogram's counts overflow 64 bits".into(),
        },
    })
}

/// The empty bench result of a `profkit heap` run (no `bench.json`).
fn heap_only_bench(manifest: &Manifest) -> BenchResult {
    BenchResult {
        schema_version: measure::SCHEMA_VERSION,
        workload: manifest.workload.clone(),
        plan: manifest.plan,
        ops: 0,
        errors: 0,
        error_rate: 0.0,
        first_error: None,
        elapsed: Nanos(0),
        throughput: OpsPerSec(0.0),
        latency: Default::default(),
        cpu: Default::default(),
        memory: Default::default(),
        pool: None,
        sql: None,
        metrics: Default::default(),
        interrupted: manifest.interrupted,
        breakdown: None,
        instrumented: false,
    }
}

/// Reads a run folder.
pub fn load_run(dir: &Path) -> Result<LoadedRun, RunError> {
    if !dir.exists() {
        return Err(RunError::NoSuchPath {
            path: dir.to_path_buf(),
        });
    }
    if !is_run_folder(dir) {
        return Err(RunError::NotARun {
            path: dir.to_path_buf(),
        });
    }
    let manifest_path = dir.join(files::MANIFEST);
    let manifest: Option<Manifest> = read_opt_json(&manifest_path, "run manifest")?;
    if let Some(m) = &manifest {
        check_version(&manifest_path, m.schema_version, MANIFEST_VERSION)?;
    }
    let bench_path = dir.join(files::BENCH);
    let heap_only = !bench_path.is_file();
    let bench: BenchResult = match &manifest {
        Some(m) if heap_only => heap_only_bench(m),
        _ => {
            let b: BenchResult = read_json(&bench_path, "bench result")?;
            check_version(&bench_path, b.schema_version, measure::SCHEMA_VERSION)?;
            check_histogram(&bench_path, &b)?;
            b
        }
    };
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (findings, advice) =
        read_opt_json::<Findings>(&dir.join(files::FINDINGS), "findings file")?
            .map(|f| (f.findings, f.advice))
            .unwrap_or_default();
    let cpu_folded = folded(dir, files::CPU_FOLDED)?;
    let cpu_samples: Option<u64> = cpu_folded.as_ref().map(|f| f.values().sum());
    let (findings, withheld_cpu_findings) =
        crate::analyze::findings::supported(findings, cpu_samples);
    let alloc: Option<crate::analyze::alloc::AllocSummary> =
        read_opt_json(&dir.join(files::ALLOC), "allocation summary")?;
    let heap_json = dir.join(files::HEAP_JSON);
    let dhat_peak = if alloc.is_none() && heap_json.is_file() {
        let file = DhatFile::read(&heap_json).map_err(|e| OutputError::Invalid {
            path: heap_json.clone(),
            what: "dhat heap profile",
            reason: e.to_string(),
        })?;
        Some(file.peak_bytes())
    } else {
        None
    };
    let mut plots = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut names: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".svg"))
            .collect();
        names.sort();
        for n in names {
            if let Some(t) = read_opt_text(&dir.join(&n))? {
                plots.push((n, t));
            }
        }
    }
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        workload: bench.workload.clone(),
        id: manifest.as_ref().map(|m| m.run_id.clone()).unwrap_or(id),
        manifest,
        heap_only,
        findings,
        advice,
        withheld_cpu_findings,
        sql: read_opt_json(&dir.join(files::SQL_JSON), "SQL report")?,
        cpu_folded,
        heap_folded: folded(dir, files::HEAP_FOLDED)?,
        sql_folded: folded(dir, files::SQL_FOLDED)?,
        alloc,
        dhat_peak,
        leaks: read_opt_json(&dir.join(files::LEAKS), "leak report")?,
        sweep: read_opt_json(&dir.join(files::SWEEP), "sweep result")?,
        plots,
        bench,
    })
}

/// The newest profile session (`<ts>-profile` with `index.json`) under `out`.
pub fn newest_session(out: &Path) -> Result<PathBuf, RunError> {
    let none = || RunError::NoSession {
        out: out.to_path_buf(),
    };
    let entries = std::fs::read_dir(out).map_err(|_| none())?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join(files::INDEX_JSON).is_file() && !p.join(files::BENCH).is_file())
        .filter_map(|p| {
            // `<ts>-profile`, or `<ts>-profile-N` for a second one that second.
            let name = p.file_name()?.to_string_lossy().into_owned();
            let (stem, n) = match name.rsplit_once('-') {
                Some((stem, n)) if n.chars().all(|c| c.is_ascii_digit()) => {
                    (stem.to_string(), n.parse::<u32>().ok()?)
                }
                _ => (name.clone(), 0),
            };
            stem.ends_with("-profile").then_some(((stem, n), p))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, p)| p)
        .ok_or_else(none)
}

/// Resolves `arg`: a run folder, a folder with `index.json` (a profile
/// session or a baseline), or the name of a baseline under `out`.
pub fn resolve(arg: &str, out: &Path) -> Result<RunSet, RunError> {
    let path = PathBuf::from(arg);
    let dir = if path.is_dir() {
        path
    } else {
        let b = baselines_dir(out).join(arg);
        let plain_name = !arg.is_empty() && !arg.contains(['/', '\\']) && arg != "..";
        if plain_name && b.is_dir() {
            b
        } else if !path.exists() {
            return Err(RunError::Missing {
                path,
                baselines: baselines_dir(out),
            });
        } else {
            return Err(RunError::NotARun { path });
        }
    };
    let mut set = load_set(&dir)?;
    set.label = arg.to_string();
    Ok(set)
}

/// Reads a run folder or a folder with `index.json`.
pub fn load_set(dir: &Path) -> Result<RunSet, RunError> {
    let label = dir.display().to_string();
    if is_run_folder(dir) {
        return Ok(RunSet {
            label,
            runs: vec![load_run(dir)?],
        });
    }
    let index_path = dir.join(files::INDEX_JSON);
    if !index_path.is_file() {
        return Err(RunError::NotARun {
            path: dir.to_path_buf(),
        });
    }
    let index: Index = read_json(&index_path, "profile index")?;
    let mut runs = Vec::new();
    for entry in &index.runs {
        let id = &entry.run_id;
        // Runs sit inside a baseline folder, or beside a session's index.
        let candidates = [
            dir.join(id),
            dir.parent().map(|p| p.join(id)).unwrap_or_default(),
        ];
        let Some(run_dir) = candidates.iter().find(|c| is_run_folder(c)) else {
            return Err(RunError::MissingRun {
                index: index_path.clone(),
                run: id.to_string(),
            });
        };
        runs.push(load_run(run_dir)?);
    }
    if runs.is_empty() {
        return Err(RunError::NotARun {
            path: dir.to_path_buf(),
        });
    }
    Ok(RunSet { label, runs })
}
