//! Connection-acquire statistics for the r2d2 pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::Nanos;

/// Live counters, updated on every acquire.
#[derive(Debug, Default)]
pub struct PoolCounters {
    acquires: AtomicU64,
    wait_nanos: AtomicU64,
    max_wait_nanos: AtomicU64,
    timeouts: AtomicU64,
}

/// The pool's event handler, sharing the counters with the manager. r2d2
/// already times every checkout, so counting costs no extra clock reads.
#[derive(Debug)]
pub(crate) struct CounterHandler(pub(crate) std::sync::Arc<PoolCounters>);

impl r2d2::HandleEvent for CounterHandler {
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        self.0.record(event.duration());
        super::waits::add_pool_wait(event.duration());
    }

    fn handle_checkin(&self, event: r2d2::event::CheckinEvent) {
        super::waits::add_held(event.duration());
    }

    fn handle_timeout(&self, _event: r2d2::event::TimeoutEvent) {
        self.0.record_timeout();
    }
}

impl PoolCounters {
    pub(crate) fn record(&self, waited: Duration) {
        let n = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.acquires.fetch_add(1, Ordering::Relaxed);
        self.wait_nanos.fetch_add(n, Ordering::Relaxed);
        self.max_wait_nanos.fetch_max(n, Ordering::Relaxed);
    }

    pub(crate) fn record_timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self, size: u32) -> PoolStats {
        let acquires = self.acquires.load(Ordering::Relaxed);
        let wait = self.wait_nanos.load(Ordering::Relaxed);
        PoolStats {
            size,
            acquires,
            mean_wait: Nanos(wait.checked_div(acquires).unwrap_or(0)),
            max_wait: Nanos(self.max_wait_nanos.load(Ordering::Relaxed)),
            total_wait: Nanos(wait),
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }
}

/// Pool statistics over a span of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Connections the pool holds at most.
    pub size: u32,
    /// Connections handed out.
    pub acquires: u64,
    /// Mean time a caller waited for a connection.
    pub mean_wait: Nanos,
    /// Longest wait.
    pub max_wait: Nanos,
    /// Sum of all waits: contention shows here first.
    pub total_wait: Nanos,
    /// Acquires that gave up.
    pub timeouts: u64,
}

impl PoolStats {
    /// The difference `self - earlier`, for the span between two snapshots
    /// (the maximum is the later snapshot's).
    pub fn since(&self, earlier: &PoolStats) -> PoolStats {
        let acquires = self.acquires.saturating_sub(earlier.acquires);
        let wait = self.total_wait.0.saturating_sub(earlier.total_wait.0);
        PoolStats {
            size: self.size,
            acquires,
            mean_wait: Nanos(wait.checked_div(acquires).unwrap_or(0)),
            max_wait: self.max_wait,
            total_wait: Nanos(wait),
            timeouts: self.timeouts.saturating_sub(earlier.timeouts),
        }
    }
}
