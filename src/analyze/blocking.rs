//! Blocking in async: an async workload whose futures held a runtime
//! worker in long polls (synchronous database calls, heavy computation or
//! `std::thread::sleep` inside an `async fn`) stalls every other operation
//! waiting for that worker. The async runner times each poll
//! ([`crate::measure::breakdown::Polled`]); the CPU profile, when the run
//! has one, names the frames the workers were in.

use super::cpu::CpuReport;
use super::findings::{Finding, FindingKind, Severity};
use crate::measure::BenchResult;
use crate::units::Nanos;
use crate::workload::defaults::LONG_POLL;

/// Long polls are a finding from this many up…
pub const MIN_LONG_POLLS: u64 = 2;
/// …and from this share of all polls up (a single preempted poll on a
/// loaded machine is no finding about the code).
pub const MIN_LONG_SHARE: f64 = 0.02;
/// Frames in at least this share of the CPU samples are named.
pub const FRAME_SHARE: f64 = 30.0;

/// Frames of the runtime, the standard library, profkit or the HTTP
/// stack (tokio, futures, axum, tower, hyper, tracing's instrumented
/// futures): not the blocking call.
fn is_plumbing(f: &str) -> bool {
    const STD: &[&str] = &[
        "std::",
        "<std::",
        "core::",
        "<core::",
        "alloc::",
        "<alloc::",
        "profkit::",
        "<profkit::",
        "pk-",
    ];
    const STACK: &[&str] = &[
        "tokio::",
        "futures_util::",
        "futures_core::",
        "axum::",
        "tower::",
        "hyper::",
        "hyper_util::",
        "tower_http::",
        // `Instrumented<T>::poll`: a span entered around the handler.
        "tracing::",
    ];
    crate::profile::runtime::is_runtime_frame(f)
        || STD.iter().any(|p| f.starts_with(p))
        || STACK.iter().any(|p| f.contains(p))
}

/// Crates of libraries a service calls (database drivers, pools, data
/// formats, HTTP): frames of the user's own crate are the others.
const LIBRARIES: &[&str] = &[
    "rusqlite",
    "r2d2",
    "r2d2_sqlite",
    "libsqlite3_sys",
    "sqlx",
    "sqlx_core",
    "sqlx_sqlite",
    "sqlx_postgres",
    "sqlx_mysql",
    "tokio_postgres",
    "postgres",
    "mysql",
    "mysql_async",
    "diesel",
    "sea_orm",
    "deadpool",
    "deadpool_postgres",
    "bb8",
    "serde",
    "serde_json",
    "hashbrown",
    "parking_lot",
    "lock_api",
    "bytes",
    "http",
    "http_body",
    "http_body_util",
    "tower_service",
    "tower_layer",
    "tower_http",
    "hyper",
    "hyper_util",
    "tracing",
    "tracing_core",
    "tracing_subscriber",
    "futures",
    "futures_util",
    "futures_core",
    "futures_executor",
    "tokio",
    "tower",
    "axum",
    "axum_core",
    "profkit",
    "std",
    "core",
    "alloc",
];

/// A frame of the user's own crate: Rust code (a path), not plumbing and
/// not a library of [`LIBRARIES`].
fn is_users(f: &str) -> bool {
    !is_plumbing(f)
        && super::cpu::first_crate(f).is_some_and(|c| !c.is_empty() && !LIBRARIES.contains(&c))
}

/// The frame a blocking finding names: the innermost frame of the user's
/// own crate among those in most CPU samples (e.g. `shop::run_report`
/// rather than the `rusqlite` call under it, or the handler's async
/// block above it), else the innermost non-runtime frame. Frames holding
/// the same share are a caller and its callee in an unknown order: an
/// async fn's body (`{{closure}}`) is taken for the caller, then the
/// name decides, so the pick does not vary from run to run.
pub fn named_frame(cpu: &CpuReport) -> Option<String> {
    let mut frames: Vec<_> = cpu
        .top_total
        .iter()
        .filter(|f| f.percent >= FRAME_SHARE && !is_plumbing(&f.function))
        .collect();
    // Outermost first: falling share, closures before plain functions.
    frames.sort_by(|a, b| {
        b.percent
            .total_cmp(&a.percent)
            .then_with(|| {
                let c = |f: &str| !f.contains("{{closure}}");
                c(&a.function).cmp(&c(&b.function))
            })
            .then_with(|| a.function.cmp(&b.function))
    });
    // A named function of the user's beats an async body (`{{closure}}`):
    // when unwinding loses the async frames of some samples, the body's
    // share falls below its callee's and the order alone would name it (a
    // fresh-clone CI run named `root_span::{{closure}}` over
    // `run_forecast`).
    let users = |closure: bool| {
        frames
            .iter()
            .rev()
            .find(|f| is_users(&f.function) && (closure || !f.function.contains("{{closure}}")))
    };
    users(false)
        .or_else(|| users(true))
        .or(frames.last())
        .map(|f| f.function.clone())
}

/// The frames most of a workload's CPU samples were in, outermost first
/// (by falling share), the runtime's and the standard library's left out.
pub fn blocking_frames(cpu: &CpuReport) -> Vec<String> {
    let mut frames: Vec<_> = cpu
        .top_total
        .iter()
        .filter(|f| f.percent >= FRAME_SHARE && !is_plumbing(&f.function))
        .collect();
    frames.sort_by(|a, b| b.percent.total_cmp(&a.percent));
    frames
        .into_iter()
        .take(4)
        .map(|f| f.function.clone())
        .collect()
}

/// The blocking finding of an async run, if its long polls count.
pub fn finding(bench: &BenchResult, cpu: Option<&CpuReport>) -> Option<Finding> {
    let b = bench.breakdown.as_ref()?;
    let p = b.polled.as_ref()?;
    let share = p.long_polls as f64 / p.polls.max(1) as f64;
    if p.long_polls < MIN_LONG_POLLS || share < MIN_LONG_SHARE {
        return None;
    }
    let mut frames = cpu.map(blocking_frames).unwrap_or_default();
    let named = cpu.and_then(named_frame);
    if let Some(n) = named.as_ref().filter(|n| !frames.contains(n)) {
        frames.push(n.clone());
    }
    let place = match named {
        Some(f) => format!(" in `{f}`"),
        None => String::new(),
    };
    let busy_share = p.busy.0 as f64 / b.total.0.max(1) as f64;
    let mut evidence = vec![
        format!(
            "{} of {} polls lasted {} or longer; the longest {}",
            p.long_polls,
            p.polls,
            Nanos::from(LONG_POLL),
            p.longest
        ),
        format!(
            "{} operations in flight on {} runtime workers: {:.0} % of latency polled (busy), {:.0} % awaiting",
            p.in_flight,
            bench.plan.threads,
            100.0 * busy_share,
            100.0 * b.share(crate::measure::breakdown::Part::Awaiting)
        ),
    ];
    if !frames.is_empty() {
        evidence.push(format!(
            "frames in most CPU samples: {}",
            frames.join(" > ")
        ));
    }
    Some(Finding {
        kind: FindingKind::Blocking,
        severity: if share >= 0.5 { Severity::Critical } else { Severity::Warning },
        score: busy_share.max(share),
        workload: bench.workload.clone(),
        title: format!(
            "{}: one poll held a runtime worker for {}{place}; move the blocking call to spawn_blocking",
            bench.workload, p.longest
        ),
        evidence,
        hint: "a synchronous call inside an async fn (a rusqlite query, heavy computation, std::thread::sleep) holds a runtime worker and stalls every task queued on it: run it in tokio::task::spawn_blocking, or use an async client".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::waits::ThreadWaits;
    use crate::measure::breakdown::LatencyBreakdown;
    use crate::measure::fixture::BenchFixture;
    use crate::workload::PollTally;

    fn bench(polls: u64, long: u64) -> BenchResult {
        let mut b = BenchFixture {
            workload: "reports".into(),
            threads: 2,
            ops: 100,
            elapsed: 1,
            throughput: 1.0,
            ..BenchFixture::default()
        }
        .build();
        let tally = PollTally {
            ops: 100,
            polls,
            busy: 600_000_000,
            longest: 48_000_000,
            long,
        };
        b.breakdown = Some(LatencyBreakdown::with_polls(
            100,
            1_000_000_000,
            ThreadWaits::default(),
            None,
            Some(tally),
        ));
        b
    }

    fn cpu() -> CpuReport {
        let frame = |function: &str, percent: f64| super::super::cpu::FrameShare {
            function: function.into(),
            samples: 1,
            percent,
            cpu_time: Nanos(1),
        };
        let mut r: CpuReport = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "workload": "reports", "frequency": 99, "samples": 100,
            "effective_rate": 99.0, "capture": 1.0, "cpu_time": 1, "wall_time": 1,
            "sample_period": 1, "top_self": [], "top_total": [], "layers": [],
            "threads": [], "warnings": []
        }))
        .unwrap();
        r.top_total = vec![
            frame("tokio::runtime::task::raw::poll", 99.0),
            frame(
                "<tracing::instrument::Instrumented<T> as core::future::future::Future>::poll",
                98.0,
            ),
            frame(
                "<tower_http::trace::service::Trace<S> as tower_service::Service>::call",
                98.0,
            ),
            frame("shop::report::{{closure}}", 97.0),
            frame("shop::run_report", 95.0),
            frame("rusqlite::Connection::query_row", 94.0),
            frame("shop::elsewhere", 3.0),
        ];
        r
    }

    #[test]
    fn long_polls_name_the_workload_the_longest_poll_and_its_frames() {
        let f = finding(&bench(200, 50), Some(&cpu())).unwrap();
        assert_eq!(f.kind, FindingKind::Blocking);
        assert_eq!(
            f.title,
            "reports: one poll held a runtime worker for 48.00 ms in `shop::run_report`; move the blocking call to spawn_blocking"
        );
        let frames = f.evidence.last().unwrap();
        assert!(frames.contains("shop::run_report"), "{frames}");
        assert!(
            !frames.contains("tokio::")
                && !frames.contains("tracing::")
                && !frames.contains("tower_http::")
                && !frames.contains("elsewhere"),
            "{frames}"
        );
        // Without a CPU profile: still a finding, no frames.
        let f = finding(&bench(200, 50), None).unwrap();
        assert!(f.title.contains("48.00 ms; move"), "{}", f.title);
        // One long poll, or long polls under 2 % of them: no finding.
        assert!(finding(&bench(200, 1), None).is_none());
        assert!(finding(&bench(1000, 10), None).is_none());
    }

    #[test]
    fn the_named_frame_is_the_users_innermost_whatever_the_order_of_ties() {
        let frame = |function: &str, percent: f64| super::super::cpu::FrameShare {
            function: function.into(),
            samples: 1,
            percent,
            cpu_time: Nanos(1),
        };
        let chain = [
            frame("tokio::runtime::task::raw::poll", 99.0),
            frame("async_service::forecast::{{closure}}", 97.0),
            frame("async_service::run_forecast", 97.0),
            frame("std::thread::sleep", 97.0),
            frame("rusqlite::Connection::execute", 97.0),
            frame("nanosleep", 97.0),
        ];
        for order in [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 0, 4, 1, 5, 3]] {
            let mut r = cpu();
            r.top_total = order.iter().map(|&i| chain[i].clone()).collect();
            assert_eq!(
                named_frame(&r).as_deref(),
                Some("async_service::run_forecast"),
                "{order:?}"
            );
            let f = finding(&bench(200, 50), Some(&r)).unwrap();
            assert!(
                f.title.contains("in `async_service::run_forecast`"),
                "{}",
                f.title
            );
        }
        // Unwinding lost the async frames of some samples: the body's share
        // fell below its callee's; the named function is still the one named.
        let mut r = cpu();
        r.top_total = vec![
            chain[0].clone(),
            frame("async_service::root_span::{{closure}}", 60.0),
            chain[2].clone(),
            chain[5].clone(),
        ];
        assert_eq!(
            named_frame(&r).as_deref(),
            Some("async_service::run_forecast")
        );
        // No frame of the user's crate: the innermost one that is not the runtime.
        let mut r = cpu();
        r.top_total = vec![chain[0].clone(), chain[4].clone()];
        assert_eq!(
            named_frame(&r).as_deref(),
            Some("rusqlite::Connection::execute")
        );
    }
}
