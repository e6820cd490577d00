//! Where the latency of a run's operations went, measured the way the pool
//! wait is — clock stamps around the waits, no sampling: waiting for a
//! pool connection, waiting for the write lock, executing in SQLite,
//! waiting for a CPU, and the rest (the workload's own code and profkit's
//! loop).
//!
//! The database stamps its waits per thread ([`crate::db::waits`]); each
//! worker reads its run-queue delay from `/proc/self/task/<tid>/schedstat`
//! at the start and end of the phase. A run-queue delay is not stamped per
//! wait, so it is taken out of the stamped parts in proportion to their
//! size: the parts then add up to the summed latency.
//!
//! An async workload's operations are futures polled on a runtime worker:
//! the time inside `poll` is the operation's busy time, where the stamps
//! above are taken; the rest of its latency it spent awaiting (idle: on
//! I/O, a timer, another thread such as sqlx's, or a free worker).

use serde::{Deserialize, Serialize};

use crate::db::waits::ThreadWaits;
use crate::units::Nanos;
use crate::workload::PollTally;

/// Summed over every measured operation of a run (all threads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyBreakdown {
    /// Operations measured.
    pub ops: u64,
    /// Summed latency of the operations.
    pub total: Nanos,
    /// Waiting for a connection from the pool.
    pub pool_wait: Nanos,
    /// Waiting for the write lock: this process's write queue, `BEGIN
    /// IMMEDIATE` (SQLite's busy handler) and retries after `SQLITE_BUSY`.
    pub lock_wait: Nanos,
    /// Holding a connection, not waiting for the lock: executing in SQLite
    /// (and reading its rows).
    pub in_sqlite: Nanos,
    /// Runnable but waiting for a CPU (more threads than cores, or other
    /// processes), when the kernel reports it.
    pub run_queue: Nanos,
    /// Everything else: the workload's own code and the harness.
    pub rest: Nanos,
    /// Whether the run-queue delay could be read.
    pub run_queue_measured: bool,
    /// An async workload's time awaiting: its futures not being polled
    /// (zero for a sync workload).
    #[serde(default)]
    pub awaiting: Nanos,
    /// How an async workload's futures were polled (absent for a sync one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polled: Option<Polled>,
}

/// How an async workload's futures were polled, summed over the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Polled {
    /// Time inside `poll` (busy on a runtime worker).
    pub busy: Nanos,
    /// Polls.
    pub polls: u64,
    /// The longest single poll: a long one held a runtime worker that
    /// other operations were waiting for (blocking in async).
    pub longest: Nanos,
    /// Operations kept in flight (`--concurrency`).
    #[serde(default)]
    pub in_flight: usize,
    /// Polls of [`crate::workload::defaults::LONG_POLL`] or longer.
    #[serde(default)]
    pub long_polls: u64,
}

/// A part of the latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// [`LatencyBreakdown::pool_wait`].
    PoolWait,
    /// [`LatencyBreakdown::lock_wait`].
    LockWait,
    /// [`LatencyBreakdown::in_sqlite`].
    InSqlite,
    /// [`LatencyBreakdown::run_queue`].
    RunQueue,
    /// [`LatencyBreakdown::rest`].
    Rest,
    /// [`LatencyBreakdown::awaiting`].
    Awaiting,
}

impl Part {
    /// Every part, in table order.
    pub const ALL: [Part; 6] = [
        Part::PoolWait,
        Part::LockWait,
        Part::InSqlite,
        Part::RunQueue,
        Part::Rest,
        Part::Awaiting,
    ];

    /// Whether the part is waiting (not working) for something profkit
    /// can name. Awaiting is idle but not such a wait: what a future
    /// awaits (I/O, a timer, another thread) is its own business.
    pub fn is_waiting(self) -> bool {
        matches!(self, Part::PoolWait | Part::LockWait | Part::RunQueue)
    }

    /// How a table names it.
    pub fn label(self) -> &'static str {
        match self {
            Part::PoolWait => "pool wait",
            Part::LockWait => "write-lock wait",
            Part::InSqlite => "in sqlite",
            Part::RunQueue => "cpu wait (run queue)",
            Part::Rest => "rest",
            Part::Awaiting => "awaiting (idle)",
        }
    }
}

impl LatencyBreakdown {
    /// The breakdown of `ops` operations of summed latency `total`, from
    /// the database's stamps and the threads' run-queue delay.
    pub fn new(ops: u64, total: u64, waits: ThreadWaits, run_queue: Option<u64>) -> Self {
        Self::with_polls(ops, total, waits, run_queue, None)
    }

    /// [`LatencyBreakdown::new`] for an async workload when `polls` is
    /// given: the stamps were taken inside its polls, so they are parts of
    /// the busy time; the run-queue delay (the runner's threads waking to
    /// see an operation end) comes out of the time not polled, and the
    /// rest of that is [`LatencyBreakdown::awaiting`].
    pub fn with_polls(
        ops: u64,
        total: u64,
        waits: ThreadWaits,
        run_queue: Option<u64>,
        polls: Option<PollTally>,
    ) -> Self {
        let Some(p) = polls else {
            return Self::sync(ops, total, waits, run_queue);
        };
        let busy = p.busy.min(total);
        let pool = waits.pool_wait.min(busy);
        let lock = waits.lock_wait.min(busy - pool);
        let sqlite = waits
            .held
            .saturating_sub(waits.lock_wait)
            .min(busy - pool - lock);
        let runq = run_queue.unwrap_or(0).min(total - busy);
        LatencyBreakdown {
            ops,
            total: Nanos(total),
            pool_wait: Nanos(pool),
            lock_wait: Nanos(lock),
            in_sqlite: Nanos(sqlite),
            run_queue: Nanos(runq),
            rest: Nanos(busy - pool - lock - sqlite),
            run_queue_measured: run_queue.is_some(),
            awaiting: Nanos(total - busy - runq),
            polled: Some(Polled {
                busy: Nanos(busy),
                polls: p.polls,
                longest: Nanos(p.longest),
                in_flight: 0,
                long_polls: p.long,
            }),
        }
    }

    fn sync(ops: u64, total: u64, waits: ThreadWaits, run_queue: Option<u64>) -> Self {
        let pool = waits.pool_wait.min(total);
        let lock = waits.lock_wait.min(total - pool);
        let sqlite = waits
            .held
            .saturating_sub(waits.lock_wait)
            .min(total - pool - lock);
        let runq = run_queue.unwrap_or(0).min(total);
        // Take the run-queue delay out of every stamped part in proportion.
        let keep = if total > 0 {
            1.0 - runq as f64 / total as f64
        } else {
            1.0
        };
        let scaled = |v: u64| Nanos((v as f64 * keep).round() as u64);
        let (pool, lock, sqlite) = (scaled(pool), scaled(lock), scaled(sqlite));
        let rest = Nanos(total.saturating_sub(pool.0 + lock.0 + sqlite.0 + runq));
        LatencyBreakdown {
            ops,
            total: Nanos(total),
            pool_wait: pool,
            lock_wait: lock,
            in_sqlite: sqlite,
            run_queue: Nanos(runq),
            rest,
            run_queue_measured: run_queue.is_some(),
            awaiting: Nanos(0),
            polled: None,
        }
    }

    /// The summed time of a part.
    pub fn part(&self, part: Part) -> Nanos {
        match part {
            Part::PoolWait => self.pool_wait,
            Part::LockWait => self.lock_wait,
            Part::InSqlite => self.in_sqlite,
            Part::RunQueue => self.run_queue,
            Part::Rest => self.rest,
            Part::Awaiting => self.awaiting,
        }
    }

    /// A part's share of the summed latency, 0–1.
    pub fn share(&self, part: Part) -> f64 {
        if self.total.0 == 0 {
            0.0
        } else {
            self.part(part).0 as f64 / self.total.0 as f64
        }
    }

    /// A part's mean per operation.
    pub fn per_op(&self, part: Part) -> Nanos {
        Nanos(self.part(part).0.checked_div(self.ops).unwrap_or(0))
    }

    /// Share of the latency spent waiting (pool, lock, CPU).
    pub fn waiting_share(&self) -> f64 {
        Part::ALL
            .iter()
            .filter(|p| p.is_waiting())
            .map(|p| self.share(*p))
            .sum()
    }

    /// The largest waiting part, with its share.
    pub fn main_wait(&self) -> (Part, f64) {
        Part::ALL
            .into_iter()
            .filter(|p| p.is_waiting())
            .map(|p| (p, self.share(p)))
            .fold(
                (Part::LockWait, -1.0),
                |best, x| if x.1 > best.1 { x } else { best },
            )
    }

    /// Whether the part has a figure in this run: awaiting only in an
    /// async workload's.
    pub fn has(&self, part: Part) -> bool {
        part != Part::Awaiting || self.polled.is_some()
    }

    /// One line: `pool wait 0 %, write-lock wait 83 %, …` (an async
    /// workload's ends with `awaiting (idle) 40 %`).
    pub fn summary(&self) -> String {
        Part::ALL
            .iter()
            .filter(|p| self.has(**p))
            .map(|p| format!("{} {:.0} %", p.label(), 100.0 * self.share(*p)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_add_up_and_run_queue_comes_out_in_proportion() {
        let waits = ThreadWaits {
            pool_wait: 100,
            lock_wait: 600,
            held: 800,
        };
        let b = LatencyBreakdown::new(10, 1000, waits, Some(0));
        assert_eq!(
            (b.pool_wait.0, b.lock_wait.0, b.in_sqlite.0, b.rest.0),
            (100, 600, 200, 100)
        );
        assert_eq!(b.main_wait(), (Part::LockWait, 0.6));
        assert!((b.waiting_share() - 0.7).abs() < 1e-9);
        let b = LatencyBreakdown::new(10, 1000, waits, Some(500));
        let sum: u64 = Part::ALL.iter().map(|p| b.part(*p).0).sum();
        assert_eq!(sum, 1000, "{b:?}");
        assert_eq!((b.lock_wait.0, b.run_queue.0), (300, 500));
        assert_eq!(b.per_op(Part::RunQueue), Nanos(50));
        // Stamps beyond the total (clock granularity) are clamped.
        let b = LatencyBreakdown::new(1, 10, waits, None);
        assert!(b.share(Part::PoolWait) <= 1.0 && !b.run_queue_measured);
    }
}
