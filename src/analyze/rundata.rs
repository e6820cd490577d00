//! Reading run folders back for budgets, comparisons and reports.
//!
//! A run folder must hold `bench.json`; every other file is optional and
//! read when present. Files written by other stages are read loosely (as
//! JSON values or lenient structs), so a new field or a missing file never
//! breaks a report. The fields read are:
//!
//! - `manifest.json`: `run_id`, `workload`, `plan`, `git_revision`, `host`
//!   (`hostname`, `os`, `cores`, `memory`), `tools`, `started_at`.
//! - `findings.json`: `findings[]` with `kind`, `severity`, `score`,
//!   `title`, `evidence`, `hint`.
//! - `sql.json`: `statements_per_op` and `operations[].statements[]` with
//!   `shape`, `executions`, `per_op`, `total`, `mean`.
//! - `cpu.folded`, `heap.folded`, `sql.folded`: folded stacks (frames joined
//!   by `;`, a space, a count).
//! - `alloc.json`: `peak_bytes`, `total_bytes`, and `bytes_per_op` or `ops`
//!   when present. Without `alloc.json`, `heap.json` (dhat format) gives the
//!   peak as the sum of `pps[].gb`.
//! - `leaks.json`: `leaked_bytes_per_op`, else `total_slope_bytes_per_op`.
//! - `sweep.json` is noted; `*.svg` plots in the run folder are embedded in
//!   HTML reports.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::measure::BenchResult;
use crate::rundir::{self, OutputError};

/// Errors finding or reading runs.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The path is neither a run folder nor a profile session nor a baseline.
    #[error("'{}' is not a run folder (no bench.json), a profile session (no index.json) or a baseline name", path.display())]
    NotARun {
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

/// One finding, read leniently from `findings.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FindingView {
    /// Kind (`n-plus-one`, `full-scan`, …).
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// Share at stake, 0–1.
    pub score: f64,
    /// One line.
    pub title: String,
    /// Figures behind it.
    pub evidence: Vec<String>,
    /// What to do.
    pub hint: String,
}

/// One SQL statement shape, read leniently from `sql.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatementView {
    /// Normalized statement.
    pub shape: String,
    /// Executions.
    pub executions: u64,
    /// Executions per operation.
    pub per_op: f64,
    /// Total time, ns.
    pub total: u64,
    /// Mean time, ns.
    pub mean: u64,
}

/// A folded-stacks profile: (stack, weight) pairs.
pub type Folded = Vec<(String, u64)>;

/// Parses folded stacks, skipping lines that are not `stack count`.
pub fn parse_folded(text: &str) -> Folded {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_end();
            let (stack, n) = l.rsplit_once(' ')?;
            let n: u64 = n.parse().ok()?;
            (!stack.is_empty()).then(|| (stack.to_string(), n))
        })
        .collect()
}

/// Everything a report needs from one run folder.
#[derive(Clone, Debug)]
pub struct LoadedRun {
    /// The folder.
    pub dir: PathBuf,
    /// Its name (the run id).
    pub id: String,
    /// Workload name.
    pub workload: String,
    /// `manifest.json`, when present.
    pub manifest: Option<Value>,
    /// `bench.json`.
    pub bench: BenchResult,
    /// `findings.json`, most important first.
    pub findings: Vec<FindingView>,
    /// `sql.json`, when present.
    pub sql: Option<Value>,
    /// `cpu.folded`.
    pub cpu_folded: Option<Folded>,
    /// `heap.folded`.
    pub heap_folded: Option<Folded>,
    /// `sql.folded`.
    pub sql_folded: Option<Folded>,
    /// `alloc.json`.
    pub alloc: Option<Value>,
    /// Peak live bytes from `heap.json` (dhat), when `alloc.json` lacks it.
    pub dhat_peak: Option<u64>,
    /// `leaks.json`.
    pub leaks: Option<Value>,
    /// `sweep.json`.
    pub sweep: Option<Value>,
    /// SVG plots in the run folder: (file name, contents).
    pub plots: Vec<(String, String)>,
}

fn read_opt_json(path: &Path, what: &'static str) -> Result<Option<Value>, OutputError> {
    if !path.is_file() {
        return Ok(None);
    }
    rundir::read_json(path, what).map(Some)
}

fn read_opt_text(path: &Path) -> Result<Option<String>, OutputError> {
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

impl LoadedRun {
    /// Reads a run folder.
    pub fn load(dir: &Path) -> Result<LoadedRun, RunError> {
        if !dir.join("bench.json").is_file() {
            return Err(RunError::NotARun {
                path: dir.to_path_buf(),
            });
        }
        let bench: BenchResult = rundir::read_json(&dir.join("bench.json"), "bench result")?;
        let manifest = read_opt_json(&dir.join("manifest.json"), "run manifest")?;
        let id = manifest
            .as_ref()
            .and_then(|m| m["run_id"].as_str())
            .map(String::from)
            .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let findings = match read_opt_json(&dir.join("findings.json"), "findings file")? {
            Some(v) => serde_json::from_value::<Vec<FindingView>>(v["findings"].clone())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let folded = |name: &str| -> Result<Option<Folded>, OutputError> {
            Ok(read_opt_text(&dir.join(name))?.map(|t| parse_folded(&t)))
        };
        let alloc = read_opt_json(&dir.join("alloc.json"), "allocation summary")?;
        let dhat_peak = if alloc.as_ref().is_some_and(|a| a["peak_bytes"].is_number()) {
            None
        } else {
            read_opt_json(&dir.join("heap.json"), "dhat heap profile")?
                .and_then(|h| dhat_peak_bytes(&h))
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
            id,
            manifest,
            findings,
            sql: read_opt_json(&dir.join("sql.json"), "SQL report")?,
            cpu_folded: folded("cpu.folded")?,
            heap_folded: folded("heap.folded")?,
            sql_folded: folded("sql.folded")?,
            alloc,
            dhat_peak,
            leaks: read_opt_json(&dir.join("leaks.json"), "leak report")?,
            sweep: read_opt_json(&dir.join("sweep.json"), "sweep result")?,
            plots,
            bench,
        })
    }

    /// SQL statements of every operation, from `sql.json`.
    pub fn statements(&self) -> Vec<StatementView> {
        let Some(sql) = &self.sql else {
            return Vec::new();
        };
        sql["operations"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|op| op["statements"].as_array().into_iter().flatten())
            .filter_map(|s| serde_json::from_value(s.clone()).ok())
            .collect()
    }

    /// The git revision in the manifest.
    pub fn git_revision(&self) -> Option<String> {
        self.manifest.as_ref()?["git_revision"]
            .as_str()
            .map(String::from)
    }

    /// One line naming the machine, from the manifest.
    pub fn machine(&self) -> Option<String> {
        let h = &self.manifest.as_ref()?["host"];
        let mem = h["memory"].as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0 * 1024.0);
        Some(format!(
            "{} ({}, {} cores, {:.1} GiB, kernel {})",
            h["hostname"].as_str().unwrap_or("?"),
            h["os"].as_str().unwrap_or("?"),
            h["cores"].as_u64().unwrap_or(0),
            mem,
            h["kernel"].as_str().unwrap_or("?"),
        ))
    }

    /// One line naming the parameters.
    pub fn parameters(&self) -> String {
        let p = &self.bench.plan;
        let stop = match p.stop {
            crate::measure::Stop::Ops(n) => format!("{n} ops"),
            crate::measure::Stop::Duration(d) => format!("{d}"),
        };
        format!(
            "{} rows, {} thread{}, {stop}, seed {}",
            p.rows,
            p.threads,
            if p.threads == 1 { "" } else { "s" },
            p.seed
        )
    }
}

/// Peak live bytes of a dhat file: the sum of every program point's bytes
/// at the global peak (`pps[].gb`).
pub fn dhat_peak_bytes(heap: &Value) -> Option<u64> {
    let pps = heap["pps"].as_array()?;
    let mut sum = 0u64;
    let mut any = false;
    for pp in pps {
        if let Some(gb) = pp["gb"].as_u64() {
            sum += gb;
            any = true;
        }
    }
    any.then_some(sum)
}

/// Runs read together: one run, a profile session, or a baseline.
#[derive(Clone, Debug)]
pub struct RunSet {
    /// What the user named (path or baseline name).
    pub label: String,
    /// The runs, in index order.
    pub runs: Vec<LoadedRun>,
}

/// The folder baselines live in: `<out>/baselines`.
pub fn baselines_dir(out: &Path) -> PathBuf {
    out.join("baselines")
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
        .filter(|p| p.join("index.json").is_file() && !p.join("bench.json").is_file())
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

impl RunSet {
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
            } else {
                return Err(RunError::NotARun { path });
            }
        };
        let mut set = RunSet::load(&dir)?;
        set.label = arg.to_string();
        Ok(set)
    }

    /// Reads a run folder or a folder with `index.json`.
    pub fn load(dir: &Path) -> Result<RunSet, RunError> {
        let label = dir.display().to_string();
        if dir.join("bench.json").is_file() {
            return Ok(RunSet {
                label,
                runs: vec![LoadedRun::load(dir)?],
            });
        }
        let index_path = dir.join("index.json");
        if !index_path.is_file() {
            return Err(RunError::NotARun {
                path: dir.to_path_buf(),
            });
        }
        let index: Value = rundir::read_json(&index_path, "profile index")?;
        let mut runs = Vec::new();
        for r in index["runs"].as_array().into_iter().flatten() {
            let Some(id) = r["run_id"].as_str() else {
                continue;
            };
            // Runs sit inside a baseline folder, or beside a session's index.
            let candidates = [
                dir.join(id),
                dir.parent().map(|p| p.join(id)).unwrap_or_default(),
            ];
            let Some(run_dir) = candidates.iter().find(|c| c.join("bench.json").is_file()) else {
                return Err(RunError::MissingRun {
                    index: index_path.clone(),
                    run: id.to_string(),
                });
            };
            runs.push(LoadedRun::load(run_dir)?);
        }
        if runs.is_empty() {
            return Err(RunError::NotARun {
                path: dir.to_path_buf(),
            });
        }
        Ok(RunSet { label, runs })
    }

    /// The run of `workload`.
    pub fn by_workload(&self, workload: &str) -> Option<&LoadedRun> {
        self.runs.iter().find(|r| r.workload == workload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_parse_and_junk_is_skipped() {
        let f = parse_folded("main;a;b 10\nmain;c 5\n\nnot a line\nx;y z\n");
        assert_eq!(
            f,
            vec![("main;a;b".to_string(), 10), ("main;c".to_string(), 5)]
        );
    }

    #[test]
    fn dhat_peak_is_the_sum_at_the_global_peak() {
        let v = serde_json::json!({"pps": [{"gb": 10}, {"gb": 32}, {"tb": 5}]});
        assert_eq!(dhat_peak_bytes(&v), Some(42));
        assert_eq!(dhat_peak_bytes(&serde_json::json!({})), None);
    }
}
