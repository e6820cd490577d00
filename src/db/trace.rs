//! Statement-level instrumentation through SQLite's own trace hook
//! (`sqlite3_trace_v2` with `SQLITE_TRACE_PROFILE`).
//!
//! The hook is installed on a connection only when [`DbConfig::sql_trace`]
//! is on, so an uninstrumented connection pays nothing. SQLite calls the
//! hook on the thread that ran the statement, so the figures are kept per
//! thread, without locks; a workload runner reads the calling thread's
//! counters before and after each operation.
//!
//! [`DbConfig::sql_trace`]: super::DbConfig::sql_trace

use std::cell::RefCell;
use std::collections::HashMap;

use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::Connection;

/// Counters of the statements one thread ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadSqlCounts {
    /// Statements that finished.
    pub statements: u64,
    /// Time SQLite reported for them, in nanoseconds.
    pub nanos: u64,
    /// Statements SQLite ran inside those (FTS5 shadow tables, …), not
    /// counted in `statements`.
    pub nested: u64,
}

/// Per-statement figures, keyed by the statement's SQL text as prepared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatementTally {
    /// Times the statement ran.
    pub executions: u64,
    /// Total time SQLite reported for it, in nanoseconds.
    pub nanos: u64,
    /// Each run's time, for percentiles.
    pub samples: Vec<u64>,
}

#[derive(Default)]
struct ThreadState {
    counts: ThreadSqlCounts,
    /// SQL texts of statements SQLite ran inside another statement (FTS5's
    /// shadow-table queries, for instance): not the caller's statements.
    nested: std::collections::HashSet<Box<str>>,
    by_statement: HashMap<Box<str>, StatementTally>,
}

thread_local! {
    static STATE: RefCell<ThreadState> = RefCell::new(ThreadState::default());
}

fn on_event(event: TraceEvent<'_>) {
    match event {
        // SQLite reports the start of a statement run inside another as
        // "-- <sql>"; trigger sub-programs start as "-- TRIGGER name" and
        // never finish on their own.
        TraceEvent::Stmt(_, sql) => {
            if let Some(inner) = sql.strip_prefix("-- ") {
                if !inner.starts_with("TRIGGER ") {
                    STATE.with(|s| {
                        let mut s = s.borrow_mut();
                        if !s.nested.contains(inner) {
                            s.nested.insert(inner.into());
                        }
                    });
                }
            }
        }
        TraceEvent::Profile(stmt, elapsed) => {
            let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            let sql = stmt.sql();
            STATE.with(|s| {
                let mut s = s.borrow_mut();
                if s.nested.contains(sql.as_ref()) {
                    s.counts.nested += 1;
                    return;
                }
                s.counts.statements += 1;
                s.counts.nanos += nanos;
                let tally = match s.by_statement.get_mut(sql.as_ref()) {
                    Some(t) => t,
                    None => s.by_statement.entry(sql.as_ref().into()).or_default(),
                };
                tally.executions += 1;
                tally.nanos += nanos;
                tally.samples.push(nanos);
            });
        }
        _ => {}
    }
}

/// Installs the hook on `conn`.
pub fn install(conn: &Connection) {
    conn.trace_v2(
        TraceEventCodes::SQLITE_TRACE_STMT | TraceEventCodes::SQLITE_TRACE_PROFILE,
        Some(on_event),
    );
}

/// The calling thread's counters so far.
pub fn thread_counts() -> ThreadSqlCounts {
    STATE.with(|s| s.borrow().counts)
}

/// Takes (and clears) the calling thread's per-statement figures.
pub fn take_thread_statements() -> HashMap<Box<str>, StatementTally> {
    STATE.with(|s| std::mem::take(&mut s.borrow_mut().by_statement))
}
