//! Locust's results as profkit reads them: `_stats.csv` rows, the
//! `locust.json` summary, the `bench.json` made from it, and the table
//! printed after a run.

use std::io::Read as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::measure::{BenchResult, CpuUsage, LatencySummary, MemoryUsage, RunPlan};
use crate::units::{Nanos, OpsPerSec};

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

/// What `locust.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocustSummary {
    /// Version of this layout.
    pub schema_version: u32,
    /// Locust version that ran.
    pub locust_version: String,
    /// Worker processes.
    pub workers: usize,
    /// Simulated users.
    pub users: u64,
    /// Users started per second.
    pub spawn_rate: f64,
    /// Asked length of the run.
    pub duration: Nanos,
    /// Per endpoint, busiest first.
    pub endpoints: Vec<EndpointStats>,
    /// All endpoints together.
    pub aggregated: EndpointStats,
    /// Requests the server counted (Locust's and any others).
    pub server_requests: u64,
    /// What went wrong or was left out (a worker that died, no CPU profile…).
    pub notes: Vec<String>,
    /// Process ids of the Locust master and workers (all stopped when the
    /// run returns).
    pub pids: Vec<u32>,
}

/// Locust's aggregate as a `bench.json`, so `report`, `compare` and
/// `check` read the run. Latencies are Locust's (milliseconds, from its
/// own rounded histogram); there is no histogram to resample.
pub(super) fn bench(s: &LocustSummary, plan: RunPlan) -> BenchResult {
    let a = &s.aggregated;
    let ms = |v: f64| Nanos((v * 1e6).max(0.0) as u64);
    let secs = if a.rps > 0.0 {
        a.requests as f64 / a.rps
    } else {
        s.duration.as_secs_f64()
    };
    BenchResult {
        schema_version: crate::measure::SCHEMA_VERSION,
        workload: "locust".into(),
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
        interrupted: false,
    }
}

/// Reads Locust's `_stats.csv`: the endpoints and the aggregate row.
pub fn read_stats(path: &Path) -> anyhow::Result<(Vec<EndpointStats>, EndpointStats)> {
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("Locust wrote no stats ('{}': {e})", path.display()))?
        .read_to_string(&mut text)?;
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

/// The per-endpoint table printed after a run.
pub fn table(s: &LocustSummary) -> String {
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
