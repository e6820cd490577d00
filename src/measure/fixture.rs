//! A [`BenchResult`] for unit tests across the crate (test builds only):
//! built from the JSON contract, as a run folder's `bench.json` is read,
//! with the few figures a test sets and every other figure zero.

use super::BenchResult;

/// The figures a test sets; [`BenchFixture::build`] makes the result.
/// Defaults: workload `w`, 1 thread, 1,000 operations in 1 s (1,000/s), no
/// errors, every latency 1 ns, no CPU time.
#[derive(Clone, Debug)]
pub struct BenchFixture {
    /// Workload name.
    pub workload: String,
    /// Threads of the plan.
    pub threads: usize,
    /// Measured operations (also the plan's stop).
    pub ops: u64,
    /// Operations that failed; the error rate is `errors ÷ ops`.
    pub errors: u64,
    /// Wall time of the measured phase, ns.
    pub elapsed: u64,
    /// Operations per second.
    pub throughput: f64,
    /// Mean, median, every percentile and the maximum latency, ns (the
    /// minimum stays 1 ns).
    pub latency: u64,
    /// User CPU time, ns.
    pub cpu_user: u64,
}

impl Default for BenchFixture {
    fn default() -> Self {
        BenchFixture {
            workload: "w".into(),
            threads: 1,
            ops: 1000,
            errors: 0,
            elapsed: 1_000_000_000,
            throughput: 1000.0,
            latency: 1,
            cpu_user: 0,
        }
    }
}

impl BenchFixture {
    /// The result, read from JSON as `bench.json` is.
    pub fn build(&self) -> BenchResult {
        let (ops, l) = (self.ops, self.latency);
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "workload": self.workload,
            "plan": {"rows": 1, "threads": self.threads, "stop": {"ops": ops}, "warmup": "auto", "seed": 1},
            "ops": ops, "errors": self.errors,
            "error_rate": self.errors as f64 / ops.max(1) as f64, "first_error": null,
            "elapsed": self.elapsed, "throughput": self.throughput,
            "latency": {"mean": l, "stdev": 0, "min": 1, "p50": l, "p90": l, "p95": l,
                        "p99": l, "p999": l, "max": l, "histogram": []},
            "cpu": {"user": self.cpu_user, "system": 0, "cores_busy": 0.0, "percent_of_machine": 0.0},
            "memory": {"peak_rss": 0, "rss_end": 0, "rss_growth": 0},
            "pool": null, "sql": null, "metrics": {}
        }))
        .expect("the fixture matches bench.json's schema")
    }
}
