//! The waiting-time finding: when most of an operation's latency is spent
//! waiting — for a pool connection, for the write lock, for a CPU — it
//! names the wait, its cause and the fix. The CPU profile cannot show this
//! (waiting burns no CPU); the latency breakdown of the bench pass can.

use super::findings::{Finding, FindingKind, Severity};
use crate::measure::breakdown::Part;
use crate::measure::BenchResult;

/// Waiting is reported from this share of the summed latency up.
pub const DOMINANT: f64 = 0.5;

/// The finding of a run whose latency is mostly waiting, if it is. A CPU
/// wait counts only when the run had more threads than `cores` (its own
/// oversubscription; other processes' load is no finding about the code).
pub fn finding(bench: &BenchResult, cores: usize) -> Option<Finding> {
    let b = bench.breakdown.as_ref()?;
    let threads = bench.plan.threads;
    let oversubscribed = threads > cores;
    let counted = |p: &Part| p.is_waiting() && (*p != Part::RunQueue || oversubscribed);
    let waiting: f64 = Part::ALL
        .iter()
        .filter(|p| counted(p))
        .map(|p| b.share(*p))
        .sum();
    if b.ops == 0 || waiting < DOMINANT {
        return None;
    }
    let (part, share) = Part::ALL
        .into_iter()
        .filter(counted)
        .map(|p| (p, b.share(p)))
        .fold(
            (Part::LockWait, -1.0),
            |best, x| if x.1 > best.1 { x } else { best },
        );
    let pct = 100.0 * share;
    let s = if threads == 1 { "" } else { "s" };
    let (title, hint) = match part {
        Part::LockWait => (
            format!("{pct:.0} % of latency waiting for the write lock: one SQLite writer serialises {threads} thread{s}; batch inserts per transaction or use one writer thread"),
            "SQLite allows one writer at a time: batch inserts per transaction (one commit for many rows) or send writes to one writer thread; more writer threads only lengthen the queue".to_string(),
        ),
        Part::PoolWait => {
            let size = bench.pool.map_or(0, |p| p.size);
            (
                format!("{pct:.0} % of latency waiting for a pool connection: {threads} threads share {size} connections; raise the pool size or lower --threads"),
                format!("the pool holds {size} connections for {threads} threads: raise the pool size to the thread count, or hold connections for less time"),
            )
        }
        _ => (
            format!("{pct:.0} % of latency waiting for a CPU: {threads} threads on {cores} cores; run with --threads {cores}"),
            format!("more runnable threads than cores queue for a CPU: use --threads {cores} (or fewer) to measure the code rather than the scheduler"),
        ),
    };
    Some(Finding {
        kind: FindingKind::Waiting,
        severity: if share >= DOMINANT { Severity::Critical } else { Severity::Warning },
        score: share,
        workload: bench.workload.clone(),
        title,
        evidence: vec![
            format!("latency: {}", b.summary()),
            format!(
                "per operation: {} waiting for the write lock, {} for a pool connection, {} for a CPU, {} in SQLite",
                b.per_op(Part::LockWait),
                b.per_op(Part::PoolWait),
                b.per_op(Part::RunQueue),
                b.per_op(Part::InSqlite)
            ),
        ],
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::waits::ThreadWaits;
    use crate::measure::breakdown::LatencyBreakdown;
    use crate::measure::fixture::BenchFixture;

    fn bench(threads: usize, waits: ThreadWaits, run_queue: u64) -> BenchResult {
        let mut b = BenchFixture {
            threads,
            ops: 100,
            elapsed: 1,
            throughput: 1.0,
            ..BenchFixture::default()
        }
        .build();
        b.breakdown = Some(LatencyBreakdown::new(
            100,
            1_000_000,
            waits,
            Some(run_queue),
        ));
        b
    }

    #[test]
    fn the_dominant_wait_is_named_with_its_fix() {
        let lock = ThreadWaits {
            pool_wait: 0,
            lock_wait: 830_000,
            held: 900_000,
        };
        let f = finding(&bench(10, lock, 0), 2).unwrap();
        assert_eq!(f.title, "83 % of latency waiting for the write lock: one SQLite writer serialises 10 threads; batch inserts per transaction or use one writer thread");
        // A CPU wait of the run's own making gets the --threads hint …
        let cpu = finding(&bench(8, ThreadWaits::default(), 700_000), 2).unwrap();
        assert!(
            cpu.title
                .contains("8 threads on 2 cores; run with --threads 2"),
            "{}",
            cpu.title
        );
        // … another process's load does not (one thread, two cores).
        assert!(finding(&bench(1, ThreadWaits::default(), 700_000), 2).is_none());
        // Working, not waiting: no finding.
        let busy = ThreadWaits {
            pool_wait: 1000,
            lock_wait: 0,
            held: 900_000,
        };
        assert!(finding(&bench(1, busy, 0), 2).is_none());
    }
}
