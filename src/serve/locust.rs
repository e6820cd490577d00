//! `profkit load --locust`: `profkit serve` on a free loopback port, driven
//! by Locust in distributed mode — one headless master and N worker
//! processes — running the task mix of `scripts/locustfile.py`. Locust's
//! CSV stats become `locust.json` (per endpoint) and a `bench.json` that
//! `report`, `compare` and `check` read like any run's; the server's CPU
//! profile (`cpu.pb.gz`) and SQL report (`sql.json`) over the steady part
//! of the run go beside them.
//!
//! profkit does not generate the load: Locust does, and a team scales it
//! past one machine by starting more `locust --worker --master-host …`
//! processes on other hosts against the same master.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::locust_stats::bench;
pub use super::locust_stats::{read_stats, table, EndpointStats, LocustSummary};
use super::{ServeOptions, Server};
use crate::analyze::rundata::Pass;
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

/// Defaults of a Locust run, defined once.
pub mod defaults {
    /// Worker processes.
    pub const WORKERS: usize = 2;
    /// Simulated users.
    pub const USERS: u64 = 10;
    /// Users started per second.
    pub const SPAWN_RATE: f64 = 5.0;
    /// Length of the run.
    pub const DURATION: &str = "10s";
    /// The pinned Locust release `.ci/run` installs.
    pub const LOCUST_VERSION: &str = "2.37.14";
    /// Most workers a run may start on this host.
    pub const MAX_WORKERS: usize = 64;
    /// Longest run.
    pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(3600);
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
    /// Worker processes (default [`defaults::WORKERS`]).
    pub workers: usize,
    /// Simulated users (default [`defaults::USERS`]).
    pub users: u64,
    /// Users started per second (default [`defaults::SPAWN_RATE`]).
    pub spawn_rate: f64,
    /// Length of the run (default [`defaults::DURATION`]).
    pub duration: Duration,
    /// Emails in the server's database (default [`super::defaults::ROWS`]).
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
            workers: defaults::WORKERS,
            users: defaults::USERS,
            spawn_rate: defaults::SPAWN_RATE,
            duration: Duration::from_secs(10),
            rows: super::defaults::ROWS,
            mix: None,
            out_dir: PathBuf::from(store::defaults::OUT_DIR),
            program: std::env::var("PROFKIT_LOCUST").unwrap_or_else(|_| "locust".to_string()),
        }
    }
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
    if options.workers == 0 || options.workers > defaults::MAX_WORKERS {
        return Err(LocustError::BadOption(format!(
            "--workers {} is out of range: use 1 to {}",
            options.workers,
            defaults::MAX_WORKERS
        ))
        .into());
    }
    if options.users == 0 {
        return Err(LocustError::BadOption("--users must be at least 1".into()).into());
    }
    if !(options.spawn_rate > 0.0 && options.spawn_rate.is_finite()) {
        return Err(LocustError::BadOption("--spawn-rate must be above 0".into()).into());
    }
    if options.duration < Duration::from_secs(1) || options.duration > defaults::MAX_DURATION {
        return Err(LocustError::BadOption("--duration must be 1s to 1h".into()).into());
    }
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

fn locust_version(program: &str) -> anyhow::Result<String> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|_| LocustError::Missing {
            program: program.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "locust 2.37.14 from /…/site-packages/locust (Python 3.11.7)"
    Ok(text
        .split_whitespace()
        .nth(1)
        .unwrap_or("unknown")
        .to_string())
}

/// A free loopback port, for the master's worker channel.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Child processes that are stopped (SIGTERM, then SIGKILL) when dropped,
/// so no Locust process outlives the run, whatever happens.
struct Children(Vec<(String, Child)>);

impl Children {
    fn stop_all(&mut self) {
        for (_, c) in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                // SAFETY: kill(2) on a child's pid we have not reaped.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, c) in &mut self.0 {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn spawn(
    program: &str,
    args: &[String],
    dir: &Path,
    log: &str,
    mix: Option<&str>,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join(log))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(m) = mix {
        cmd.env("PROFKIT_MIX", m);
    }
    // Its own process group: the terminal's Ctrl-C reaches profkit, which
    // stops the children in order.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    Ok(cmd.spawn()?)
}

/// Runs the server, the master and the workers, and writes the run folder.
pub fn run(options: &LocustOptions) -> anyhow::Result<LocustRun> {
    let mix = check(options)?;
    let version = locust_version(&options.program)?;
    let started = SystemTime::now();
    let server = Server::bind(&ServeOptions {
        addr: "127.0.0.1:0".parse()?,
        rows: options.rows,
        ..ServeOptions::default()
    })?;
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let state = server.state.clone();
    let serving = std::thread::Builder::new()
        .name("profkit-serve".into())
        .spawn(move || server.run())?;
    let dir = RunDir::create(&options.out_dir, "locust", started)?;
    store::write_atomic(&dir.file("locustfile.py"), LOCUSTFILE.as_bytes())?;
    let port = free_port()?;
    let secs = options.duration.as_secs().max(1);
    let master_args: Vec<String> = [
        "-f",
        "locustfile.py",
        "--headless",
        "--master",
        "--master-bind-host",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--master-bind-port".into(),
        port.to_string(),
        "--expect-workers".into(),
        options.workers.to_string(),
        "--expect-workers-max-wait".into(),
        "30".into(),
        "-u".into(),
        options.users.to_string(),
        "-r".into(),
        options.spawn_rate.to_string(),
        "-t".into(),
        format!("{secs}s"),
        "--stop-timeout".into(),
        "2".into(),
        "--host".into(),
        format!("http://{addr}"),
        "--csv".into(),
        "locust".into(),
        "--csv-full-history".into(),
        "--only-summary".into(),
        "--exit-code-on-error".into(),
        "0".into(),
    ])
    .collect();
    let worker_args: Vec<String> = vec![
        "-f".into(),
        "locustfile.py".into(),
        "--worker".into(),
        "--master-host".into(),
        "127.0.0.1".into(),
        "--master-port".into(),
        port.to_string(),
    ];
    let mut notes = Vec::new();
    let mut children = Children(Vec::new());
    children.0.push((
        "master".into(),
        spawn(
            &options.program,
            &master_args,
            &dir.path,
            "locust-master.log",
            mix.as_deref(),
        )?,
    ));
    for i in 0..options.workers {
        let child = spawn(
            &options.program,
            &worker_args,
            &dir.path,
            &format!("locust-worker-{i}.log"),
            mix.as_deref(),
        )?;
        children.0.push((format!("worker {i}"), child));
    }
    // The steady part: from when the users are all spawned (counted from
    // the server's first request, as Locust takes seconds to start) plus a
    // second, until a second before the end.
    let ramp = Duration::try_from_secs_f64(options.users as f64 / options.spawn_rate)
        .unwrap_or(defaults::MAX_DURATION)
        + Duration::from_secs(1);
    let steady = options
        .duration
        .saturating_sub(ramp + Duration::from_secs(1));
    let mut load_started: Option<Instant> = None;
    let mut profiler = None;
    let deadline = Instant::now() + options.duration + Duration::from_secs(60);
    let clock = Instant::now();
    let mut dead_workers = vec![false; options.workers];
    let master_status = loop {
        if crate::measure::interrupted() {
            notes.push("interrupted: Locust was stopped early; its partial stats are kept".into());
            children.stop_all();
            break None;
        }
        if Instant::now() > deadline {
            notes.push("Locust did not finish in time and was stopped".into());
            children.stop_all();
            break None;
        }
        if load_started.is_none() && state.requests() > 0 {
            load_started = Some(Instant::now());
        }
        let ramped = load_started.is_some_and(|t| t.elapsed() >= ramp);
        if profiler.is_none() && ramped && steady >= Duration::from_secs(1) {
            let state = state.clone();
            profiler = Some(std::thread::spawn(move || {
                // The SQL report over the same window as the CPU profile.
                state.open_window();
                let cpu = cpu::profile(&CpuOptions::default(), || {
                    // Bounded by `steady`; Ctrl-C ends it early.
                    let end = Instant::now() + steady;
                    while Instant::now() < end && !crate::measure::interrupted() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                });
                let sql = state
                    .close_window()
                    .map(|w| super::debug::window_report(&state, w));
                (cpu, sql)
            }));
        }
        // Workers quit when the master ends the test; one that ends earlier
        // (before the asked duration has passed since they were started),
        // or with a failure, died mid-run.
        let early = clock.elapsed() < options.duration;
        for (i, dead) in dead_workers.iter_mut().enumerate() {
            let (name, child) = &mut children.0[i + 1];
            if !*dead {
                if let Ok(Some(status)) = child.try_wait() {
                    *dead = true;
                    if early || !status.success() {
                        notes.push(format!(
                            "{name} exited mid-run ({status}); the stats are partial"
                        ));
                    }
                }
            }
        }
        if let Ok(Some(status)) = children.0[0].1.try_wait() {
            break Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Some(s) = master_status.filter(|s| !s.success()) {
        notes.push(format!(
            "the Locust master exited with {s}; see locust-master.log"
        ));
    }
    children.stop_all();
    let pids: Vec<u32> = children.0.iter().map(|(_, c)| c.id()).collect();
    drop(children);
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
    drop(state);
    stop.shutdown();
    let served = serving
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
    let (endpoints, aggregated) = match read_stats(&dir.file("locust_stats.csv")) {
        Ok(stats) => stats,
        Err(e) => {
            notes.push(format!("{e:#}"));
            (Vec::new(), EndpointStats::default())
        }
    };
    let summary = LocustSummary {
        schema_version: 1,
        locust_version: version,
        workers: options.workers,
        users: options.users,
        spawn_rate: options.spawn_rate,
        duration: options.duration.into(),
        endpoints,
        aggregated,
        server_requests: served.requests,
        pids,
        notes,
    };
    store::write_json(&dir.file("locust.json"), &summary)?;
    let plan = RunPlan {
        rows: options.rows,
        threads: options.users as usize,
        stop: Stop::Duration(options.duration.into()),
        warmup: Warmup::Ops(0),
        seed: super::defaults::SEED,
    };
    store::write_json(&dir.file(files::BENCH), &bench(&summary, plan))?;
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
                workers: 0,
                ..LocustOptions::default()
            },
            LocustOptions {
                users: 0,
                ..LocustOptions::default()
            },
            LocustOptions {
                spawn_rate: 0.0,
                ..LocustOptions::default()
            },
            LocustOptions {
                duration: Duration::from_millis(10),
                ..LocustOptions::default()
            },
        ] {
            assert!(check(&o).unwrap_err().is::<LocustError>());
        }
    }

    #[test]
    fn locust_stats_csv_becomes_endpoints_and_an_aggregate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locust_stats.csv");
        std::fs::write(
            &path,
            "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n\
             POST,/api/tenants/[t]/emails,10,1,7,8.5,1,30.2,20,2.0,0.2,7,8,9,10,12,20,25,30,30,30,30\n\
             GET,/api/tenants/[t]/emails/[id],40,0,5,6.0,1,20.0,900,8.0,0.0,5,6,6,7,9,11,15,18,20,20,20\n\
             ,Aggregated,50,1,5,6.5,1,30.2,700,10.0,0.2,5,6,7,8,10,12,20,25,30,30,30\n",
        )
        .unwrap();
        let (endpoints, all) = read_stats(&path).unwrap();
        assert_eq!(endpoints.len(), 2);
        assert_eq!(
            endpoints[0].name, "/api/tenants/[t]/emails/[id]",
            "busiest first"
        );
        assert_eq!((endpoints[1].requests, endpoints[1].failures), (10, 1));
        assert_eq!(endpoints[1].p99_ms, 30.0);
        assert_eq!(
            (all.requests, all.rps, all.p90_ms, all.p95_ms),
            (50, 10.0, 10.0, 12.0)
        );
        std::fs::write(&path, "Type,Name\n").unwrap();
        assert!(read_stats(&path).is_err());
    }
}
