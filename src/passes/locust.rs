//! The one Locust driver, for `profkit load --locust` and `profkit attach`:
//! a headless master and N worker processes on loopback running a
//! locustfile against a host, stopped (master first, so it keeps its
//! workers' last figures) on Ctrl-C or when they overrun, and Locust's
//! `_stats.csv` read back.
//!
//! profkit does not generate the load: Locust does, and a team scales it
//! past one machine by starting more `locust --worker --master-host …`
//! processes on other hosts against the same master.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::measure::{BenchResult, CpuUsage, LatencySummary, MemoryUsage, RunPlan};
use crate::units::{Nanos, OpsPerSec};

pub use super::locust_load::{Figures, Load};

/// Defaults of a Locust run, defined once (`load --locust` and `attach`).
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
    /// Longest wait for Locust to start its users (Python start-up of a
    /// master and its workers takes seconds, more on a loaded machine).
    pub const STARTUP_MAX: std::time::Duration = std::time::Duration::from_secs(180);
    /// Time allowed past the run for the master to stop its workers.
    pub const SHUTDOWN_MAX: std::time::Duration = std::time::Duration::from_secs(60);
    /// The master's log, in the run folder.
    pub const MASTER_LOG: &str = "locust-master.log";
    /// Locust's per-endpoint stats, in the run folder.
    pub const STATS_CSV: &str = "locust_stats.csv";
}

/// One Locust run: what to start.
#[derive(Clone, Debug)]
pub struct Spec<'a> {
    /// The Locust program.
    pub program: &'a str,
    /// The locustfile, relative to the run folder.
    pub locustfile: &'a str,
    /// The URL loaded (`--host`).
    pub host: &'a str,
    /// How hard and how long.
    pub load: Load,
    /// Extra environment for every process (e.g. `PROFKIT_MIX`).
    pub env: Vec<(String, String)>,
}

/// How a Locust run ended.
#[derive(Clone, Debug, Default)]
pub struct Driven {
    /// Stopped by Ctrl-C: the figures are partial.
    pub interrupted: bool,
    /// What went wrong (a worker that died, the master's exit status…).
    pub notes: Vec<String>,
    /// Process ids of the master and workers, all stopped and reaped.
    pub pids: Vec<u32>,
    /// Per endpoint, busiest first.
    pub endpoints: Vec<EndpointStats>,
    /// All endpoints together.
    pub aggregated: EndpointStats,
}

/// One row of Locust's `_stats.csv`: an endpoint, or the aggregate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// HTTP method (empty for the aggregate).
    pub method: String,
    /// The request name (the route, with placeholders).
    pub name: String,
    /// Requests made.
    pub requests: u64,
    /// Requests that failed (errors and non-2xx answers).
    pub failures: u64,
    /// Requests per second over the run.
    pub rps: f64,
    /// Mean latency in milliseconds.
    pub mean_ms: f64,
    /// Median latency in milliseconds (Locust rounds it).
    pub p50_ms: f64,
    /// 90th percentile in milliseconds.
    pub p90_ms: f64,
    /// 95th percentile in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile in milliseconds.
    pub p99_ms: f64,
    /// Slowest, in milliseconds.
    pub max_ms: f64,
}

/// Workers, users, spawn rate and duration in range: the message names the flag.
pub fn check_counts(
    workers: usize,
    users: u64,
    spawn_rate: f64,
    duration: Duration,
    max_duration: Duration,
) -> Result<(), String> {
    if workers == 0 || workers > defaults::MAX_WORKERS {
        return Err(format!(
            "--workers {workers} is out of range: use 1 to {}",
            defaults::MAX_WORKERS
        ));
    }
    if users == 0 {
        return Err("--users must be at least 1".into());
    }
    if !(spawn_rate > 0.0 && spawn_rate.is_finite()) {
        return Err("--spawn-rate must be above 0".into());
    }
    if duration < Duration::from_secs(1) || duration > max_duration {
        return Err(format!(
            "--duration must be 1s to {}s",
            max_duration.as_secs()
        ));
    }
    Ok(())
}

/// `locust --version`'s version, or `None` when the program does not run.
pub fn version(program: &str) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    // "locust 2.37.14 from /…/site-packages/locust (Python 3.11.7)"
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.split_whitespace()
            .nth(1)
            .unwrap_or("unknown")
            .to_string(),
    )
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
    /// Stops the first child (Locust's master) and gives it `grace` to
    /// collect its workers' last figures and write its stats, then stops
    /// the rest.
    fn stop_master_first(&mut self, grace: Duration) {
        if let Some((_, master)) = self.0.first_mut() {
            if matches!(master.try_wait(), Ok(None)) {
                // SAFETY: kill(2) on a child's pid we have not reaped.
                unsafe { libc::kill(master.id() as i32, libc::SIGTERM) };
                let deadline = Instant::now() + grace;
                while matches!(master.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        self.stop_all();
    }

    /// Stops every child still running and reaps them all.
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

/// Starts `program args` in `dir`, its output to `dir/log`, in its own
/// process group (the terminal's Ctrl-C reaches profkit, which stops the
/// children in order).
fn spawn(
    program: &str,
    args: &[String],
    dir: &Path,
    log: &str,
    env: &[(String, String)],
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join(log))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .envs(env.iter().map(|(k, v)| (k, v)));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    Ok(cmd.spawn()?)
}

fn strings<'a>(s: &'a [&'a str]) -> impl Iterator<Item = String> + 'a {
    s.iter().map(|s| s.to_string())
}

/// Whether the master has started its users: it logs this once every
/// expected worker has connected and reported ready.
pub fn users_started(master_log: &str) -> bool {
    master_log.contains("Sending spawn jobs") || master_log.contains("Run time limit set to")
}

/// Runs the master and the workers in `dir` and waits for the master to end
/// the run. `tick(users_started)` is called every 100 ms from this thread
/// (a caller starts its profiles when the users start). Returns with every
/// process stopped and reaped and Locust's stats read.
pub fn drive(spec: &Spec, dir: &Path, mut tick: impl FnMut(bool)) -> anyhow::Result<Driven> {
    let port = free_port()?;
    let secs = spec.load.duration.as_secs().max(1);
    let master_args: Vec<String> = strings(&[
        "-f",
        spec.locustfile,
        "--headless",
        "--master",
        "--master-bind-host",
        "127.0.0.1",
    ])
    .chain([
        "--master-bind-port".into(),
        port.to_string(),
        "--expect-workers".into(),
        spec.load.workers.to_string(),
        // No fixed wait of Locust's own (0: wait for every worker): a fixed
        // 30 s made the master give up on a loaded machine, where Python
        // start-up alone can take that long. The loop below watches the
        // workers instead, and bounds the start-up by STARTUP_MAX.
        "--expect-workers-max-wait".into(),
        "0".into(),
        "-u".into(),
        spec.load.users.to_string(),
        "-r".into(),
        spec.load.spawn_rate.to_string(),
        "-t".into(),
        format!("{secs}s"),
        "--stop-timeout".into(),
        "2".into(),
        "--host".into(),
        spec.host.to_string(),
        "--csv".into(),
        "locust".into(),
        "--csv-full-history".into(),
        "--only-summary".into(),
        "--exit-code-on-error".into(),
        "0".into(),
    ])
    .collect();
    let worker_args: Vec<String> = strings(&[
        "-f",
        spec.locustfile,
        "--worker",
        "--master-host",
        "127.0.0.1",
    ])
    .chain(["--master-port".into(), port.to_string()])
    .collect();
    let mut out = Driven::default();
    let mut children = Children(Vec::new());
    children.0.push((
        "master".into(),
        spawn(
            spec.program,
            &master_args,
            dir,
            defaults::MASTER_LOG,
            &spec.env,
        )?,
    ));
    for i in 0..spec.load.workers {
        let log = format!("locust-worker-{i}.log");
        let child = spawn(spec.program, &worker_args, dir, &log, &spec.env)?;
        children.0.push((format!("worker {i}"), child));
    }
    let mut started: Option<Instant> = None;
    let clock = Instant::now();
    let mut dead_workers = vec![false; spec.load.workers];
    let master_status = loop {
        if crate::measure::interrupted() {
            out.interrupted = true;
            out.notes
                .push("interrupted: Locust was stopped early; its partial stats are kept".into());
            children.stop_master_first(Duration::from_secs(8));
            break None;
        }
        let overdue = match started {
            None => clock.elapsed() > defaults::STARTUP_MAX,
            Some(t) => t.elapsed() > spec.load.duration + defaults::SHUTDOWN_MAX,
        };
        if overdue {
            out.notes.push(match started {
                None => format!(
                    "Locust did not start its users within {} s (see {}) and was stopped",
                    defaults::STARTUP_MAX.as_secs(),
                    defaults::MASTER_LOG
                ),
                Some(_) => "Locust did not finish in time and was stopped".into(),
            });
            children.stop_master_first(Duration::from_secs(8));
            break None;
        }
        if started.is_none()
            && std::fs::read_to_string(dir.join(defaults::MASTER_LOG))
                .is_ok_and(|log| users_started(&log))
        {
            started = Some(Instant::now());
        }
        tick(started.is_some());
        // Workers quit when the master ends the run; one that ends before
        // the run could have, or with a failure, died mid-run.
        let early = started.is_none_or(|t| t.elapsed() < spec.load.duration);
        for (i, dead) in dead_workers.iter_mut().enumerate() {
            let (name, child) = &mut children.0[i + 1];
            if !*dead {
                if let Ok(Some(status)) = child.try_wait() {
                    *dead = true;
                    if early || !status.success() {
                        out.notes.push(format!(
                            "{name} exited mid-run ({status}); the stats are partial"
                        ));
                    }
                }
            }
        }
        if let Ok(Some(status)) = children.0[0].1.try_wait() {
            break Some(status);
        }
        // A worker gone before the users start never reports ready, and the
        // master would wait for it for ever.
        if started.is_none() {
            if let Some(i) = dead_workers.iter().position(|d| *d) {
                out.notes.push(format!(
                    "Locust worker {i} exited before the users started (see locust-worker-{i}.log)"
                ));
                children.stop_master_first(Duration::from_secs(8));
                break None;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Some(s) = master_status.filter(|s| !s.success()) {
        out.notes.push(format!(
            "the Locust master exited with {s}; see {}",
            defaults::MASTER_LOG
        ));
    }
    children.stop_all();
    out.pids = children.0.iter().map(|(_, c)| c.id()).collect();
    drop(children);
    match read_stats(&dir.join(defaults::STATS_CSV)) {
        Ok((endpoints, aggregated)) => (out.endpoints, out.aggregated) = (endpoints, aggregated),
        Err(e) => out.notes.push(format!("{e:#}")),
    }
    Ok(out)
}

/// Reads Locust's `_stats.csv`: the endpoints (busiest first) and the
/// aggregate row.
pub fn read_stats(path: &Path) -> anyhow::Result<(Vec<EndpointStats>, EndpointStats)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("Locust wrote no stats ('{}': {e})", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim_matches('"') == name)
            .ok_or_else(|| anyhow::anyhow!("'{}' has no column '{name}'", path.display()))
    };
    let cols = [
        col("Type")?,
        col("Name")?,
        col("Request Count")?,
        col("Failure Count")?,
        col("Requests/s")?,
        col("Average Response Time")?,
        col("50%")?,
        col("90%")?,
        col("95%")?,
        col("99%")?,
        col("Max Response Time")?,
    ];
    let mut endpoints = Vec::new();
    let mut aggregated = None;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        // Names are routes without commas; Locust quotes none of these fields.
        let f: Vec<&str> = line.split(',').map(|s| s.trim_matches('"')).collect();
        let num = |i: usize| {
            f.get(cols[i])
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let row = EndpointStats {
            method: f.get(cols[0]).unwrap_or(&"").to_string(),
            name: f.get(cols[1]).unwrap_or(&"").to_string(),
            requests: num(2) as u64,
            failures: num(3) as u64,
            rps: num(4),
            mean_ms: num(5),
            p50_ms: num(6),
            p90_ms: num(7),
            p95_ms: num(8),
            p99_ms: num(9),
            max_ms: num(10),
        };
        if row.name == "Aggregated" {
            aggregated = Some(row);
        } else {
            endpoints.push(row);
        }
    }
    endpoints.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.name.cmp(&b.name)));
    let aggregated =
        aggregated.ok_or_else(|| anyhow::anyhow!("'{}' has no Aggregated row", path.display()))?;
    Ok((endpoints, aggregated))
}

/// Locust's aggregate as a `bench.json`, so `report`, `compare` and
/// `check` read the run. Latencies are Locust's (milliseconds, from its
/// own rounded histogram); there is no histogram to resample.
pub fn bench(
    workload: &str,
    a: &EndpointStats,
    duration: Duration,
    plan: RunPlan,
    interrupted: bool,
) -> BenchResult {
    let ms = |v: f64| Nanos((v * 1e6).max(0.0) as u64);
    let secs = if a.rps > 0.0 {
        a.requests as f64 / a.rps
    } else {
        duration.as_secs_f64()
    };
    BenchResult {
        schema_version: crate::measure::SCHEMA_VERSION,
        workload: workload.into(),
        plan,
        ops: a.requests,
        errors: a.failures,
        error_rate: a.failures as f64 / a.requests.max(1) as f64,
        first_error: None,
        elapsed: Nanos((secs * 1e9) as u64),
        throughput: OpsPerSec(a.rps),
        latency: LatencySummary {
            mean: ms(a.mean_ms),
            p50: ms(a.p50_ms),
            p90: ms(a.p90_ms),
            p95: ms(a.p95_ms),
            p99: ms(a.p99_ms),
            p999: ms(a.max_ms),
            max: ms(a.max_ms),
            ..LatencySummary::default()
        },
        cpu: CpuUsage::default(),
        memory: MemoryUsage::default(),
        pool: None,
        sql: None,
        metrics: Default::default(),
        breakdown: None,
        instrumented: false,
        interrupted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn counts_out_of_range_name_their_flag() {
        let max = Duration::from_secs(3600);
        let one = Duration::from_secs(1);
        for (w, u, r, d, flag) in [
            (0, 1, 1.0, one, "--workers"),
            (1, 0, 1.0, one, "--users"),
            (1, 1, 0.0, one, "--spawn-rate"),
            (1, 1, f64::NAN, one, "--spawn-rate"),
            (1, 1, 1.0, Duration::from_millis(10), "--duration"),
        ] {
            assert!(check_counts(w, u, r, d, max).unwrap_err().contains(flag));
        }
        assert!(check_counts(2, 10, 5.0, one, max).is_ok());
    }
}
