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
    let frames = cpu.map(blocking_frames).unwrap_or_default();
    let place = match frames.last() {
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
            "reports: one poll held a runtime worker for 48.00 ms in `rusqlite::Connection::query_row`; move the blocking call to spawn_blocking"
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
}
