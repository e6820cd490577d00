//! `profkit load --locust`: a server on a free loopback port (`profkit
//! serve`'s, started by the caller: passes do not depend on serve), driven
//! by Locust in distributed mode ([`super::locust`]) running the task mix
//! of `scripts/locustfile.py`. Locust's CSV stats become `locust.json` (per
//! endpoint) and a `bench.json` that `report`, `compare` and `check` read
//! like any run's; the server's CPU profile (`cpu.pb.gz`) and SQL report
//! (`sql.json`) over the steady part of the run go beside them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::locust::{self, Figures, Load, Spec};
use crate::analyze::rundata::Pass;
use crate::analyze::sql::SqlReport;
use crate::measure::{RunPlan, Stop, Warmup};
use crate::profile::cpu::{self, CpuOptions};
use crate::profile::sampled;
use crate::render::pprof::{heap_to_pprof_gz, to_pprof_gz};
use crate::store::{self, files, RunDir};

/// The task mix Locust runs (also in the repository as `scripts/locustfile.py`).
pub const LOCUSTFILE: &str = include_str!("../../scripts/locustfile.py");

/// Task names the locustfile knows, for checking a `--mix` file.
pub const TASKS: &[&str] = &[
    "read_email",
    "insert",
    "random_emails",
    "search_sender",
    "search_fts",
    "search_like",
    "aggregate",
    "recent_batched",
    "recent_n_plus_one",
];

/// Defaults of `load --locust`, defined once (the counts are the driver's).
pub mod defaults {
    pub use super::locust::defaults::{DURATION, LOCUST_VERSION, SPAWN_RATE, USERS, WORKERS};
    /// Longest run.
    pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(3600);
    /// Emails in the server's database.
    pub const ROWS: u64 = 10_000;
}

/// Bad input to a Locust run: exit 2.
#[derive(Debug, thiserror::Error)]
pub enum LocustError {
    /// No `locust` program.
    #[error("locust is not installed (no '{program}' on PATH): install it with `pip install locust=={version}`", version = defaults::LOCUST_VERSION)]
    Missing {
        /// The program looked for.
        program: String,
    },
    /// A bad `--mix` file.
    #[error("--mix '{path}': {reason}")]
    BadMix {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Out-of-range option.
    #[error("{0}")]
    BadOption(String),
}

/// How to run Locust.
#[derive(Clone, Debug)]
pub struct LocustOptions {
    /// Workers, users, spawn rate and length (defaults in [`Load`]).
    pub load: Load,
    /// Emails in the server's database (default [`defaults::ROWS`]).
    pub rows: u64,
    /// JSON file of task weights (default: the locustfile's).
    pub mix: Option<PathBuf>,
    /// Folder of run folders (default [`store::defaults::OUT_DIR`]).
    pub out_dir: PathBuf,
    /// The Locust program (default `locust`, or `$PROFKIT_LOCUST`).
    pub program: String,
}

impl Default for LocustOptions {
    fn default() -> Self {
        LocustOptions {
            load: Load::default(),
            rows: defaults::ROWS,
            mix: None,
            out_dir: PathBuf::from(store::defaults::OUT_DIR),
            program: std::env::var("PROFKIT_LOCUST").unwrap_or_else(|_| "locust".to_string()),
        }
    }
}

/// What the run needs of the server it loads (`profkit serve`'s state).
pub trait LoadedServer: Send + Sync {
    /// Requests served so far.
    fn requests(&self) -> u64;
    /// Starts gathering the SQL report's statements.
    fn open_sql_window(&self);
    /// The SQL report since [`LoadedServer::open_sql_window`].
    fn close_sql_window(&self) -> Option<SqlReport>;
}

/// A started server: where it listens, its state, and how to stop it (it
/// returns the requests it served).
pub struct Started {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its state, dropped before `stop` is called.
    pub server: Arc<dyn LoadedServer>,
    /// Stops it and waits for it.
    pub stop: Box<dyn FnOnce() -> anyhow::Result<u64>>,
    /// The seed its data was generated with.
    pub seed: u64,
}

/// What `locust.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocustSummary {
    /// Version of this layout.
    pub schema_version: u32,
    /// What Locust was asked and measured.
    #[serde(flatten)]
    pub figures: Figures,
    /// Requests the server counted (Locust's and any others).
    pub server_requests: u64,
    /// What went wrong or was left out (a worker that died, no CPU profile…).
    pub notes: Vec<String>,
    /// Process ids of the Locust master and workers (all stopped when the
    /// run returns).
    pub pids: Vec<u32>,
}

/// A finished Locust run.
#[derive(Debug)]
pub struct LocustRun {
    /// Its run folder.
    pub dir: PathBuf,
    /// What it measured.
    pub summary: LocustSummary,
}

fn check(options: &LocustOptions) -> anyhow::Result<Option<String>> {
    options
        .load
        .check(defaults::MAX_DURATION)
        .map_err(LocustError::BadOption)?;
    let Some(path) = &options.mix else {
        return Ok(None);
    };
    let bad = |reason: String| LocustError::BadMix {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mix: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a JSON object of weights: {e}")))?;
    for (task, weight) in &mix {
        if !TASKS.contains(&task.as_str()) {
            return Err(bad(format!(
                "unknown task '{task}'; tasks are {}",
                TASKS.join(", ")
            ))
            .into());
        }
        if weight.as_u64().is_none_or(|w| w > 1000) {
            return Err(bad(format!(
                "the weight of '{task}' must be a whole number 0 to 1000"
            ))
            .into());
        }
    }
    Ok(Some(serde_json::to_string(&mix)?))
}

/// Checks the options, starts the server (`start(rows)`), drives it with
/// Locust, and writes the run folder.
pub fn run(
    options: &LocustOptions,
    start: impl FnOnce(u64) -> anyhow::Result<Started>,
) -> anyhow::Result<LocustRun> {
    let mix = check(options)?;
    let version = locust::version(&options.program).ok_or_else(|| LocustError::Missing {
        program: options.program.clone(),
    })?;
    let started = SystemTime::now();
    let Started {
        url,
        server,
        stop,
        seed,
    } = start(options.rows)?;
    let dir = RunDir::create(&options.out_dir, "locust", started)?;
    store::write_atomic(&dir.file("locustfile.py"), LOCUSTFILE.as_bytes())?;
    // The steady part: from when the users are all spawned (counted from
    // the server's first request, as Locust takes seconds to start) plus a
    // second, until a second before the end.
    let ramp = Duration::try_from_secs_f64(options.load.users as f64 / options.load.spawn_rate)
        .unwrap_or(defaults::MAX_DURATION)
        + Duration::from_secs(1);
    let steady = options
        .load
        .duration
        .saturating_sub(ramp + Duration::from_secs(1));
    let mut load_started: Option<Instant> = None;
    let mut profiler = None;
    let spec = Spec {
        program: &options.program,
        locustfile: "locustfile.py",
        host: &url,
        load: options.load,
        env: mix
            .map(|m| ("PROFKIT_MIX".to_string(), m))
            .into_iter()
            .collect(),
    };
    let driven = locust::drive(&spec, &dir.path, |_| {
        if load_started.is_none() && server.requests() > 0 {
            load_started = Some(Instant::now());
        }
        let ramped = load_started.is_some_and(|t| t.elapsed() >= ramp);
        if profiler.is_none() && ramped && steady >= Duration::from_secs(1) {
            let server = server.clone();
            profiler = Some(std::thread::spawn(move || {
                // The SQL report over the same window as the CPU profile.
                server.open_sql_window();
                let cpu = cpu::profile(&CpuOptions::default(), || {
                    // Bounded by `steady`; Ctrl-C ends it early.
                    let end = Instant::now() + steady;
                    while Instant::now() < end && !crate::measure::interrupted() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                });
                (cpu, server.close_sql_window())
            }));
        }
    })?;
    let mut notes = driven.notes;
    let profiled = profiler.map(|p| p.join());
    if let Some(Ok((_, Some(report)))) = &profiled {
        store::write_json(&dir.file(files::SQL_JSON), report)?;
    }
    match profiled.map(|r| r.map(|(cpu, _)| cpu)) {
        Some(Ok(Ok(((), profile)))) => {
            store::write_atomic(&dir.file(files::CPU_PPROF), &to_pprof_gz(&profile)?)?;
        }
        Some(Ok(Err(e))) => notes.push(format!("no CPU profile: {e}")),
        Some(Err(_)) => notes.push("no CPU profile: the profiler thread panicked".into()),
        None => notes.push("no CPU profile: the run was too short for a steady part".into()),
    }
    // The server's heap over the whole run, sampled (when the process
    // samples: `profkit load` does unless --no-heap-profile).
    if let Some(heap) = sampled::snapshot() {
        let file = sampled::to_dhat(&heap);
        store::write_atomic(
            &dir.file(files::HEAP_PB),
            &heap_to_pprof_gz(&file, heap.interval)?,
        )?;
    }
    // The server's state goes with the server: it closes the database.
    drop(server);
    let server_requests = stop()?;
    let summary = LocustSummary {
        schema_version: 1,
        figures: Figures::new(version, &spec, driven.endpoints, driven.aggregated),
        server_requests,
        pids: driven.pids,
        notes,
    };
    store::write_json(&dir.file("locust.json"), &summary)?;
    let plan = RunPlan {
        rows: options.rows,
        threads: options.load.users as usize,
        stop: Stop::Duration(options.load.duration.into()),
        warmup: Warmup::Ops(0),
        seed,
    };
    let bench = locust::bench(
        "locust",
        &summary.figures.aggregated,
        options.load.duration,
        plan,
        driven.interrupted,
    );
    store::write_json(&dir.file(files::BENCH), &bench)?;
    let manifest = store::manifest(
        &dir,
        "locust",
        "profkit serve driven by Locust in distributed mode (scripts/locustfile.py)",
        plan,
        // cpu.pb.gz is there for pprof tools; the Cpu pass's other files are not.
        &[Pass::Bench],
        started,
    );
    store::write_json(&dir.file(files::MANIFEST), &manifest)?;
    Ok(LocustRun {
        dir: dir.path.clone(),
        summary,
    })
}

/// The per-endpoint table printed after a run.
pub fn table(s: &LocustSummary) -> String {
    let s = &s.figures;
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header([
        "endpoint", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms",
    ]);
    for e in s.endpoints.iter().chain(std::iter::once(&s.aggregated)) {
        t.add_row([
            format!("{} {}", e.method, e.name).trim().to_string(),
            e.requests.to_string(),
            e.failures.to_string(),
            format!("{:.1}", e.rps),
            format!("{:.0}", e.p50_ms),
            format!("{:.0}", e.p95_ms),
            format!("{:.0}", e.p99_ms),
        ]);
    }
    format!(
        "Locust {} · {} workers · {} users · {}\n{t}\n",
        s.locust_version, s.workers, s.users, s.duration
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_mix(text: &str) -> (tempfile::TempDir, LocustOptions) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mix.json");
        std::fs::write(&path, text).unwrap();
        let options = LocustOptions {
            mix: Some(path),
            ..LocustOptions::default()
        };
        (dir, options)
    }

    #[test]
    fn a_mix_names_known_tasks_with_whole_weights() {
        let (_d, ok) = with_mix(r#"{"read_email": 10, "insert": 0}"#);
        assert_eq!(
            check(&ok).unwrap().as_deref(),
            Some(r#"{"insert":0,"read_email":10}"#)
        );
        for (text, needle) in [
            (r#"{"read_mail": 1}"#, "unknown task 'read_mail'"),
            (r#"{"insert": -1}"#, "whole number"),
            (r#"{"insert": 2.5}"#, "whole number"),
            ("[1, 2]", "not a JSON object"),
        ] {
            let (_d, bad) = with_mix(text);
            let e = check(&bad).unwrap_err();
            assert!(e.is::<LocustError>(), "{e}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn out_of_range_options_are_refused() {
        for o in [
            LocustOptions {
                load: Load {
                    workers: 0,
                    ..Load::default()
                },
                ..LocustOptions::default()
            },
            LocustOptions {
                load: Load {
                    users: 0,
                    ..Load::default()
                },
                ..LocustOptions::default()
            },
            LocustOptions {
                load: Load {
                    spawn_rate: 0.0,
                    ..Load::default()
                },
                ..LocustOptions::default()
            },
            LocustOptions {
                load: Load {
                    duration: Duration::from_millis(10),
                    ..Load::default()
                },
                ..LocustOptions::default()
            },
        ] {
            assert!(check(&o).unwrap_err().is::<LocustError>());
        }
    }
}
