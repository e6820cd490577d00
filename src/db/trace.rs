//! Statement-level instrumentation through SQLite's own trace hook
//! (`sqlite3_trace_v2` with `SQLITE_TRACE_STMT | SQLITE_TRACE_PROFILE |
//! SQLITE_TRACE_ROW`).
//!
//! The hook is installed on a connection only when [`DbConfig::sql_trace`]
//! is on, so an uninstrumented connection pays nothing. SQLite calls the
//! hook on the thread that ran the statement, so the figures are kept per
//! thread, without locks; a workload runner reads the calling thread's
//! figures before and after its operations.
//!
//! Timing: SQLite's own `SQLITE_TRACE_PROFILE` figure comes from the VFS
//! clock in whole milliseconds, useless for microsecond statements. The hook
//! therefore stamps a statement when it starts (`SQLITE_TRACE_STMT`, at its
//! first step) and measures to its end (`SQLITE_TRACE_PROFILE`, at reset)
//! with the monotonic clock, falling back to SQLite's figure if the start
//! was not seen.
//!
//! [`DbConfig::sql_trace`]: super::DbConfig::sql_trace

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

use hdrhistogram::Histogram;
use rusqlite::{ffi, Connection};

/// Counters of the statements one thread ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadSqlCounts {
    /// Statements that finished.
    pub statements: u64,
    /// Time they were active, in nanoseconds.
    pub nanos: u64,
    /// Statements SQLite ran inside those (FTS5 shadow tables, …), not
    /// counted in `statements`.
    pub nested: u64,
}

/// Figures of one statement (by its SQL text as prepared).
#[derive(Clone, Debug)]
pub struct StatementTally {
    /// Times the statement ran.
    pub executions: u64,
    /// Total time it was active, in nanoseconds.
    pub nanos: u64,
    /// Rows it returned.
    pub rows: u64,
    /// Each run's time in nanoseconds (2 significant digits).
    pub histogram: Histogram<u64>,
    /// The slowest run's time and its SQL with the bound values filled in
    /// (SQLite may plan a statement anew for the values bound, so the plan
    /// of the slowest run can differ from the generic one).
    pub slowest: Option<(u64, String)>,
    /// Runs that were the first of a freshly prepared statement (SQLite's
    /// `SQLITE_STMTSTATUS_RUN` was 1 when it finished): one per
    /// `prepare` that missed a statement cache.
    pub prepares: u64,
    /// Times SQLite prepared the statement again on its own while it ran
    /// (`SQLITE_STMTSTATUS_REPREPARE`): a schema change, or a bound value
    /// the planner looks at (STAT4 ranges, LIKE patterns, FTS5 MATCH).
    pub reprepares: u64,
}

impl Default for StatementTally {
    fn default() -> Self {
        StatementTally {
            executions: 0,
            nanos: 0,
            rows: 0,
            histogram: Histogram::new_with_bounds(1, 3_600_000_000_000, 2)
                .expect("valid histogram bounds"),
            slowest: None,
            prepares: 0,
            reprepares: 0,
        }
    }
}

impl StatementTally {
    /// Adds another tally of the same statement.
    pub fn merge(&mut self, other: &StatementTally) {
        self.executions += other.executions;
        self.nanos += other.nanos;
        self.rows += other.rows;
        self.prepares += other.prepares;
        self.reprepares += other.reprepares;
        self.histogram
            .add(&other.histogram)
            .expect("histograms of one precision merge");
        if other.slowest.as_ref().map(|s| s.0) > self.slowest.as_ref().map(|s| s.0) {
            self.slowest = other.slowest.clone();
        }
    }
}

/// Statement figures by operation label, then by SQL text.
pub type Tallies = HashMap<&'static str, HashMap<Box<str>, StatementTally>>;

/// A statement that has started and not finished.
struct Active {
    /// Address of the prepared statement.
    key: usize,
    started: Instant,
    rows: u64,
}

#[derive(Default)]
struct ThreadState {
    counts: ThreadSqlCounts,
    /// SQL texts of statements SQLite ran inside another statement (FTS5's
    /// shadow-table queries, trigger bodies): not the caller's statements.
    nested: HashSet<Box<str>>,
    active: Vec<Active>,
    operation: &'static str,
    tallies: Tallies,
}

thread_local! {
    static STATE: RefCell<ThreadState> = RefCell::new(ThreadState::default());
}

/// The trace callback. It is registered through the C API rather than
/// rusqlite's wrapper because the wrapper reads a statement's SQL text on
/// every row, and statements SQLite prepares internally (blob handles, used
/// by FTS5) have none: a null pointer.
unsafe extern "C" fn on_trace(
    event: c_uint,
    _ctx: *mut c_void,
    p: *mut c_void,
    x: *mut c_void,
) -> c_int {
    // Never unwind into SQLite.
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: SQLite passes, per event, the statement in `p` and the
        // documented payload in `x`; see sqlite3_trace_v2.
        unsafe { handle(event, p, x) }
    });
    0
}

unsafe fn handle(event: c_uint, p: *mut c_void, x: *mut c_void) {
    let key = p as usize;
    match event {
        ffi::SQLITE_TRACE_STMT => {
            if x.is_null() {
                return;
            }
            // SQLite reports the start of a statement run inside another as
            // "-- <sql>"; trigger sub-programs start as "-- TRIGGER name"
            // and never finish on their own.
            let text = unsafe { CStr::from_ptr(x as *const c_char) }.to_bytes();
            STATE.with(|s| {
                let mut s = s.borrow_mut();
                match text.strip_prefix(b"-- ") {
                    Some(inner) if !inner.starts_with(b"TRIGGER ") => {
                        let inner = String::from_utf8_lossy(inner);
                        if !s.nested.contains(inner.as_ref()) {
                            s.nested.insert(inner.into());
                        }
                    }
                    Some(_) => {}
                    None => {
                        s.active.retain(|a| a.key != key);
                        s.active.push(Active {
                            key,
                            started: Instant::now(),
                            rows: 0,
                        });
                    }
                }
            });
        }
        ffi::SQLITE_TRACE_ROW => STATE.with(|s| {
            if let Some(a) = s
                .borrow_mut()
                .active
                .iter_mut()
                .rev()
                .find(|a| a.key == key)
            {
                a.rows += 1;
            }
        }),
        ffi::SQLITE_TRACE_PROFILE => {
            let now = Instant::now();
            let sql_ptr = unsafe { ffi::sqlite3_sql(p as *mut ffi::sqlite3_stmt) };
            if sql_ptr.is_null() || x.is_null() {
                return;
            }
            let sqlite_nanos = unsafe { *(x as *const i64) }.max(0) as u64;
            let sql = String::from_utf8_lossy(unsafe { CStr::from_ptr(sql_ptr) }.to_bytes());
            STATE.with(|s| {
                let mut s = s.borrow_mut();
                let (nanos, rows) = match s.active.iter().rposition(|a| a.key == key) {
                    Some(i) => {
                        let a = s.active.swap_remove(i);
                        (now.duration_since(a.started).as_nanos() as u64, a.rows)
                    }
                    None => (sqlite_nanos, 0),
                };
                let s = &mut *s;
                let by_sql = s.tallies.entry(s.operation).or_default();
                let tally = match by_sql.get_mut(sql.as_ref()) {
                    Some(t) => t,
                    // The first run of this text in this phase decides
                    // whether it is the caller's; later runs find their
                    // tally with one lookup.
                    None => {
                        // Virtual-table modules (FTS5) also prepare
                        // statements of their own outside any caller
                        // statement, e.g. when loading their config; they
                        // name tables as 'main'.'x', which application SQL
                        // does not.
                        if s.nested.contains(sql.as_ref()) || sql.contains("'main'.") {
                            s.counts.nested += 1;
                            return;
                        }
                        by_sql.entry(sql.as_ref().into()).or_default()
                    }
                };
                if let Some(listen) = LISTENER.get() {
                    listen(sql.as_ref(), nanos, rows);
                }
                s.counts.statements += 1;
                s.counts.nanos += nanos;
                // SAFETY: `p` is the statement being reported on.
                let (runs, reprepares) = unsafe {
                    let stmt = p as *mut ffi::sqlite3_stmt;
                    (
                        ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_RUN, 0),
                        // Read and reset: each run counts its own.
                        ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 1),
                    )
                };
                tally.prepares += u64::from(runs == 1);
                tally.reprepares += reprepares.max(0) as u64;
                tally.executions += 1;
                tally.nanos += nanos;
                tally.rows += rows;
                tally.histogram.saturating_record(nanos.max(1));
                if tally.slowest.as_ref().is_none_or(|s| nanos > s.0) {
                    // A new maximum is rare once a run is warm; only then
                    // is the expanded SQL built.
                    // SAFETY: `p` is the statement being reported on; the
                    // returned string is SQLite's to free.
                    let expanded = unsafe {
                        let e = ffi::sqlite3_expanded_sql(p as *mut ffi::sqlite3_stmt);
                        if e.is_null() {
                            None
                        } else {
                            let text = CStr::from_ptr(e).to_string_lossy().into_owned();
                            ffi::sqlite3_free(e as *mut c_void);
                            Some(text)
                        }
                    };
                    if let Some(text) = expanded {
                        tally.slowest = Some((nanos, text));
                    }
                }
            });
        }
        _ => {}
    }
}

/// Told of every statement the hook records (see [`set_listener`]).
static LISTENER: std::sync::OnceLock<fn(&str, u64, u64)> = std::sync::OnceLock::new();

/// Also hands every statement the hook records (its SQL text as prepared,
/// nanoseconds, rows) to `listen`, on the thread that ran it: how
/// `profkit::service` attributes rusqlite statements to the request running
/// there. Set once per process; later calls are ignored. `listen` must not
/// run SQL itself.
pub fn set_listener(listen: fn(&str, u64, u64)) {
    let _ = LISTENER.set(listen);
}

/// Database files of the connections the hook was installed on, for the
/// query planner (a workload may trace a connection of its own, to a file
/// profkit did not choose).
static TRACED_FILES: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// The database files of every connection traced so far in this process
/// (in-memory and temporary databases have none).
pub fn traced_files() -> Vec<std::path::PathBuf> {
    TRACED_FILES.lock().map(|v| v.clone()).unwrap_or_default()
}

/// Installs the hook on `conn`: any rusqlite connection, profkit's or your
/// own. Its statements are then counted, timed and planned by `profkit
/// sql` and the SQL pass of `profkit profile`, attributed to the operation
/// of the worker thread that ran them.
pub fn install(conn: &Connection) {
    if let Some(path) = conn.path().filter(|p| !p.is_empty()) {
        if let Ok(mut files) = TRACED_FILES.lock() {
            let path = std::path::PathBuf::from(path);
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }
    let mask =
        (ffi::SQLITE_TRACE_STMT | ffi::SQLITE_TRACE_PROFILE | ffi::SQLITE_TRACE_ROW) as c_uint;
    // SAFETY: the handle is valid for the connection's life; the callback
    // takes no context pointer.
    unsafe {
        ffi::sqlite3_trace_v2(conn.handle(), mask, Some(on_trace), std::ptr::null_mut());
    }
}

/// Labels the statements this thread runs from now on with an operation
/// name (default: none, which reports them under the workload's name).
/// Workloads that mix several kinds of operation call this at the start of
/// each, so SQL figures come out per operation.
pub fn set_operation(label: &'static str) {
    STATE.with(|s| s.borrow_mut().operation = label);
}

/// The calling thread's counters so far.
pub fn thread_counts() -> ThreadSqlCounts {
    STATE.with(|s| s.borrow().counts)
}

/// Takes (and clears) the calling thread's per-statement figures.
pub fn take_thread_tallies() -> Tallies {
    STATE.with(|s| std::mem::take(&mut s.borrow_mut().tallies))
}

/// Adds `from` into `into`.
pub fn merge_tallies(into: &mut Tallies, from: &Tallies) {
    for (op, by_sql) in from {
        let target = into.entry(op).or_default();
        for (sql, tally) in by_sql {
            match target.get_mut(sql) {
                Some(t) => t.merge(tally),
                None => {
                    target.insert(sql.clone(), tally.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_execution_with_its_rows_and_not_nested_statements() {
        let conn = crate::db::sqlite_alloc::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
             CREATE VIRTUAL TABLE f USING fts5(body, content='t', content_rowid='id');
             CREATE TRIGGER ti AFTER INSERT ON t BEGIN INSERT INTO f(rowid, body) VALUES (new.id, new.body); END;",
        )
        .unwrap();
        install(&conn);
        take_thread_tallies();
        let before = thread_counts();
        for i in 0..10 {
            conn.execute(
                "INSERT INTO t (body) VALUES (?1)",
                [format!("word{i} common")],
            )
            .unwrap();
        }
        let n: i64 = conn
            .prepare_cached("SELECT count(*) FROM f WHERE f MATCH 'common'")
            .unwrap()
            .query_row([], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 10);
        let rows: Vec<i64> = conn
            .prepare("SELECT id FROM t ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows.len(), 10);
        let after = thread_counts();
        assert_eq!(
            after.statements - before.statements,
            12,
            "10 inserts + 2 selects"
        );
        assert!(
            after.nested > before.nested,
            "FTS5's own statements are seen but kept apart"
        );
        let tallies = take_thread_tallies();
        let by_sql = &tallies[""];
        assert_eq!(by_sql["INSERT INTO t (body) VALUES (?1)"].executions, 10);
        assert_eq!(by_sql["SELECT id FROM t ORDER BY id"].rows, 10);
        assert_eq!(
            by_sql["SELECT count(*) FROM f WHERE f MATCH 'common'"].rows,
            1
        );
        assert_eq!(by_sql.len(), 3, "{:?}", by_sql.keys().collect::<Vec<_>>());
        let total: u64 = by_sql.values().map(|t| t.histogram.len()).sum();
        assert_eq!(total, 12);
    }

    #[test]
    fn counts_fresh_preparations_apart_from_cached_runs() {
        let conn = crate::db::sqlite_alloc::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        install(&conn);
        take_thread_tallies();
        for i in 0..6 {
            // `execute` prepares the statement anew each time.
            conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("v{i}")])
                .unwrap();
        }
        for i in 0..6 {
            let n: i64 = conn
                .prepare_cached("SELECT count(*) FROM t WHERE id <= ?1")
                .unwrap()
                .query_row([i], |r| r.get(0))
                .unwrap();
            assert_eq!(n, i.min(6));
        }
        let tallies = take_thread_tallies();
        let by_sql = &tallies[""];
        let insert = &by_sql["INSERT INTO t (v) VALUES (?1)"];
        assert_eq!((insert.executions, insert.prepares), (6, 6));
        let select = &by_sql["SELECT count(*) FROM t WHERE id <= ?1"];
        assert_eq!((select.executions, select.prepares), (6, 1));
    }
}
