//! What the handlers share: the database, the request count, the SQL
//! window and the one-at-a-time flags of the debug endpoints.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::db::trace::{self, Tallies};
use crate::db::DatabaseManager;

/// Statements and operation latencies gathered while a
/// `/debug/profkit/sql` window is open.
pub(super) struct SqlWindow {
    pub(super) tallies: Tallies,
    pub(super) latency: Histogram<u64>,
    pub(super) started: Instant,
}

pub(super) struct AppState {
    pub(super) db: DatabaseManager,
    requests: AtomicU64,
    window: Mutex<Option<SqlWindow>>,
    /// A SQL window is open.
    pub(super) sql_busy: AtomicBool,
}

/// Clears a busy flag when dropped (also when the request is cancelled).
pub(super) struct Busy<'a>(&'a AtomicBool);

impl Busy<'_> {
    /// Takes the flag, or `None` when it is taken.
    pub(super) fn take(flag: &AtomicBool) -> Option<Busy<'_>> {
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Busy(flag))
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl AppState {
    pub(super) fn new(db: DatabaseManager) -> anyhow::Result<AppState> {
        Ok(AppState {
            db,
            requests: AtomicU64::new(0),
            window: Mutex::new(None),
            sql_busy: AtomicBool::new(false),
        })
    }

    pub(super) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Runs one database operation on this (blocking) thread with its
    /// statements labelled `label`, counts them, and hands them to an open
    /// SQL window.
    pub(super) fn traced<T>(
        &self,
        label: &'static str,
        f: impl FnOnce(&DatabaseManager) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        trace::set_operation(label);
        let before = trace::thread_counts();
        let started = Instant::now();
        let result = f(&self.db);
        let elapsed = started.elapsed();
        let after = trace::thread_counts();
        // Taken on every call, so a thread's tallies never grow.
        let tallies = trace::take_thread_tallies();
        metrics::counter!("profkit_sql_statements_total", "operation" => label)
            .increment(after.statements.saturating_sub(before.statements));
        // Seconds are fractional: a gauge that only grows.
        metrics::gauge!("profkit_sql_seconds", "operation" => label).increment(
            Duration::from_nanos(after.nanos.saturating_sub(before.nanos)).as_secs_f64(),
        );
        if let Some(w) = self.window.lock().as_mut() {
            trace::merge_tallies(&mut w.tallies, &tallies);
            w.latency
                .saturating_record((elapsed.as_nanos() as u64).max(1));
        }
        result
    }

    /// Opens the SQL window.
    pub(super) fn open_window(&self) {
        *self.window.lock() = Some(SqlWindow {
            tallies: Tallies::new(),
            latency: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("valid histogram bounds"),
            started: Instant::now(),
        });
    }

    /// Closes the SQL window and returns what it gathered.
    pub(super) fn close_window(&self) -> Option<SqlWindow> {
        self.window.lock().take()
    }

    /// Closes the database cleanly: folds the write-ahead log back into
    /// the database file.
    pub(super) fn close(&self) {
        if let Ok(conn) = self.db.conn() {
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        }
    }
}

/// Shared state as the handlers take it.
pub(super) type Shared = Arc<AppState>;
