//! Known causes of CPU time in SQLite-backed code, recognised from the
//! shape of the stacks (not from one hot frame): the share of samples each
//! cause accounts for, and the caller in the program's own code that pays
//! for it. Findings turn the causes past [`CAUSE_SHARE`] into a fix in the
//! user's terms ([`super::findings`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::cpu::CpuReport;
use super::findings::{share_interval, short_sql, Finding, FindingKind, Severity};
use super::sql::{SqlReport, StatementStats};
use crate::profile::cpu::{CpuProfile, Frame};

/// A cause is named when its stacks hold at least this share of the samples.
pub const CAUSE_SHARE: f64 = 0.10;

/// A known cause of CPU time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// SQLite taking and dropping its (WAL) read lock around every
    /// autocommit statement: `sqlite3PagerSharedLock`, `unixShmLock`,
    /// `fcntl`.
    ReadLockChurn,
    /// SQLite's memory statistics (`SQLITE_CONFIG_MEMSTATUS`, on by
    /// default): the global memory mutex and the size lookups and counters
    /// under `sqlite3Malloc` / `sqlite3_free`.
    MemoryStatistics,
    /// Statements prepared afresh (`sqlite3_prepare*`, the parser's `yy*`
    /// frames) outside a re-preparation.
    Preparation,
    /// SQLite preparing a statement again while it runs
    /// (`sqlite3Reprepare` under `sqlite3_step`).
    Repreparation,
    /// `fsync` / `fdatasync` at commit.
    Fsync,
    /// Pages copied in by `pread` under the pager.
    PageReads,
}

impl Cause {
    /// Every cause, in report order.
    pub const ALL: [Cause; 6] = [
        Cause::ReadLockChurn,
        Cause::MemoryStatistics,
        Cause::Preparation,
        Cause::Repreparation,
        Cause::Fsync,
        Cause::PageReads,
    ];
}

/// One cause with its share of the samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CauseShare {
    /// The cause.
    pub cause: Cause,
    /// Samples whose stack shows it.
    pub samples: u64,
    /// Share of all samples, in percent.
    pub percent: f64,
    /// The program's own function (nearest frame above rusqlite and SQLite)
    /// that pays most of it, when one is named.
    pub caller: Option<String>,
}

const MEMORY_ENTRIES: &[&str] = &[
    "sqlite3Malloc",
    "sqlite3_malloc",
    "sqlite3_malloc64",
    "sqlite3_free",
    "sqlite3Realloc",
    "sqlite3_realloc",
    "sqlite3_realloc64",
];

/// Work SQLite does under its allocation entry points only because memory
/// statistics are on: the mutex, the counters, the size lookups.
fn is_memstatus_work(f: &str) -> bool {
    f.to_ascii_lowercase().contains("mutex")
        || f.starts_with("lll_")
        || f.starts_with("sqlite3Status")
        || f == "sqlite3MallocSize"
        || f == "sqlite3MemSize"
        || f.ends_with("x_size")
        || f.ends_with("xSize")
}

fn is_prepare(f: &str) -> bool {
    f.starts_with("sqlite3_prepare")
        || f.starts_with("sqlite3Prepare")
        || f == "sqlite3LockAndPrepare"
        || f == "sqlite3RunParser"
        || f.starts_with("yy_")
}

pub(super) fn is_read_lock(f: &str) -> bool {
    matches!(
        f,
        "sqlite3PagerSharedLock"
            | "unixShmLock"
            | "walTryBeginRead"
            | "sqlite3WalEndReadTransaction"
            | "pager_unlock"
            | "pagerUnlockAndRollback"
            | "pagerUnlockIfUnused"
    )
}

fn is_fsync(f: &str) -> bool {
    f.contains("fsync") || f.contains("fdatasync") || f == "unixSync"
}

fn is_page_read(f: &str) -> bool {
    f.contains("pread") || f == "unixRead"
}

/// The causes one stack shows (each at most once).
fn causes_of(frames: &[Frame]) -> Vec<Cause> {
    let names: Vec<&str> = frames.iter().map(|f| f.function.as_str()).collect();
    let mut out = Vec::new();
    if names.iter().any(|f| is_read_lock(f)) {
        out.push(Cause::ReadLockChurn);
    }
    if let Some(i) = names.iter().position(|f| MEMORY_ENTRIES.contains(f)) {
        if names[i + 1..].iter().any(|f| is_memstatus_work(f)) {
            out.push(Cause::MemoryStatistics);
        }
    }
    if names.contains(&"sqlite3Reprepare") {
        out.push(Cause::Repreparation);
    } else if names.iter().any(|f| is_prepare(f)) {
        out.push(Cause::Preparation);
    }
    if names.iter().any(|f| is_fsync(f)) {
        out.push(Cause::Fsync);
    }
    if names.iter().any(|f| is_page_read(f)) {
        out.push(Cause::PageReads);
    }
    out
}

/// Whether a frame belongs to the database stack rather than the program:
/// rusqlite, r2d2, SQLite's C code, the C library.
fn is_database_frame(f: &str) -> bool {
    f.starts_with("sqlite3")
        || f.starts_with("rusqlite::")
        || f.starts_with("<rusqlite::")
        || f.starts_with("r2d2")
        || f.starts_with("<r2d2")
        || f.starts_with("core::")
        || f.starts_with("<core::")
        || f.starts_with("alloc::")
        || f.starts_with("<alloc::")
        || f.starts_with("std::")
        || f.contains("{{closure}}")
}

/// The program's frame nearest to the database code in a stack: the last
/// frame, root first, before the first database frame.
fn caller_of(frames: &[Frame]) -> Option<&str> {
    let first_db = frames.iter().position(|f| {
        f.function.starts_with("rusqlite::")
            || f.function.starts_with("<rusqlite::")
            || f.function.starts_with("sqlite3")
    })?;
    frames[..first_db]
        .iter()
        .rev()
        .map(|f| f.function.as_str())
        .find(|f| !is_database_frame(f))
}

/// The share of samples each known cause accounts for, causes with no
/// sample left out.
pub fn analyze(profile: &CpuProfile) -> Vec<CauseShare> {
    let total = profile.samples.max(1) as f64;
    let mut samples: BTreeMap<Cause, u64> = BTreeMap::new();
    let mut callers: BTreeMap<Cause, BTreeMap<&str, u64>> = BTreeMap::new();
    for s in &profile.stacks {
        for cause in causes_of(&s.frames) {
            *samples.entry(cause).or_default() += s.samples;
            if let Some(c) = caller_of(&s.frames) {
                *callers.entry(cause).or_default().entry(c).or_default() += s.samples;
            }
        }
    }
    Cause::ALL
        .iter()
        .filter_map(|cause| {
            let n = *samples.get(cause)?;
            let caller = callers.get(cause).and_then(|m| {
                m.iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(f, _)| f.to_string())
            });
            Some(CauseShare {
                cause: *cause,
                samples: n,
                percent: 100.0 * n as f64 / total,
                caller,
            })
        })
        .collect()
}

/// The statement of the SQL report that `count` picks most often (prepared
/// afresh, re-prepared), when it is at least half of that statement's runs.
fn statement_by(
    sql: Option<&SqlReport>,
    count: impl Fn(&StatementStats) -> u64,
) -> Option<&StatementStats> {
    sql?.operations
        .iter()
        .flat_map(|o| o.statements.iter())
        .filter(|s| count(s) > 0 && 2 * count(s) >= s.executions)
        .max_by(|a, b| count(a).cmp(&count(b)).then(a.total.cmp(&b.total)))
}

/// What a cause is, in one phrase, and what to do about it.
fn describe(cause: Cause) -> (&'static str, &'static str) {
    match cause {
        Cause::ReadLockChurn => (
            "SQLite takes and drops its read lock (WAL shared-memory lock, fcntl) around every autocommit statement",
            "group the reads of one request in one transaction (rusqlite: `let tx = conn.transaction()?; … tx.commit()?`, or BEGIN … COMMIT), or hold a read transaction across a request: the lock is then taken once, not per statement",
        ),
        Cause::MemoryStatistics => (
            "SQLite's memory statistics (SQLITE_CONFIG_MEMSTATUS, on by default): its global memory mutex and size bookkeeping under sqlite3Malloc/sqlite3_free",
            "turn the statistics off before the first connection opens: `unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0) }` (or build SQLite with -DSQLITE_DEFAULT_MEMSTATUS=0); sqlite3_memory_used() then reads 0",
        ),
        Cause::Preparation => (
            "statements are prepared afresh (sqlite3_prepare, the SQL parser's yy* frames)",
            "prepare a statement run repeatedly once: rusqlite's `prepare_cached` instead of `prepare`/`execute`/`query_row`, and raise `set_prepared_statement_cache_capacity` (default 16) when more distinct statements are in use",
        ),
        Cause::Repreparation => (
            "SQLite prepares a statement again at each run (sqlite3Reprepare under sqlite3_step): its plan depends on a bound value (STAT4, a LIKE pattern, an FTS5 MATCH), so every new value re-plans it",
            "a statement cache cannot help here: turn on the query planner stability guarantee for the connection (rusqlite: `conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)`), so SQLite plans it once",
        ),
        Cause::Fsync => (
            "fsync at every commit",
            "batch several writes per transaction, or under WAL set `PRAGMA synchronous = NORMAL` (durable at checkpoints, never corrupt)",
        ),
        Cause::PageReads => (
            "database pages copied in by read calls (pread under the pager)",
            "keep more pages in SQLite's cache (`PRAGMA cache_size = -N` KiB) or map the file (`PRAGMA mmap_size = N`) so pages are not copied in by read calls",
        ),
    }
}

/// Findings from the causes of a CPU report that pass [`CAUSE_SHARE`]:
/// each with its share and interval, the threshold, the caller that pays
/// it, the statement when the SQL report names it, and the fix.
pub fn findings(cpu: &CpuReport, sql: Option<&SqlReport>) -> Vec<Finding> {
    if cpu.samples < super::findings::CPU_FINDING_MIN_SAMPLES {
        return Vec::new();
    }
    let mut out = Vec::new();
    for c in cpu
        .causes
        .iter()
        .filter(|c| c.percent / 100.0 >= CAUSE_SHARE)
    {
        let (what, hint) = describe(c.cause);
        let share = c.percent / 100.0;
        let (lo, hi) = share_interval(c.samples, cpu.samples);
        let statement = match c.cause {
            Cause::Preparation => statement_by(sql, |s| s.prepares),
            Cause::Repreparation => statement_by(sql, |s| s.reprepares),
            _ => None,
        };
        let mut evidence = vec![
            format!(
                "{:.0} % (95 % interval {:.0}–{:.0} %) of {} CPU samples show it; a cause is named past {:.0} %",
                c.percent,
                100.0 * lo,
                100.0 * hi,
                cpu.samples,
                100.0 * CAUSE_SHARE
            ),
        ];
        if let Some(caller) = &c.caller {
            evidence.push(format!("paid mostly by {caller}"));
        }
        if let Some(s) = statement {
            evidence.push(format!(
                "`{}`: {} runs, {} prepared afresh, {} re-prepared by SQLite",
                short_sql(&s.shape),
                s.executions,
                s.prepares,
                s.reprepares
            ));
        }
        let subject = match (statement, &c.caller) {
            (Some(s), _) => format!(" ← `{}`", short_sql(&s.shape)),
            (None, Some(caller)) => format!(" (in {caller})"),
            (None, None) => String::new(),
        };
        out.push(Finding {
            kind: FindingKind::CpuCause,
            severity: if share >= 0.5 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            score: share,
            workload: cpu.workload.clone(),
            title: format!("{:.0} % of CPU: {what}{subject}", c.percent),
            evidence,
            hint: hint.to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::cpu_fixture::{profile, stack};

    #[test]
    fn causes_are_read_from_the_shape_of_the_stack() {
        let p = profile(vec![
            stack("main;app::get_user;rusqlite::Statement::query_row;sqlite3_step;sqlite3VdbeExec;sqlite3PagerSharedLock;walTryBeginRead;unixShmLock;__fcntl64_nocancel_adjusted", 30),
            // A mutex under sqlite3Malloc is memory statistics; a bare
            // malloc under it is not.
            stack("main;app::search;sqlite3_step;sqlite3Malloc;sqlite3_mutex_enter;lll_mutex_lock_optimized", 10),
            stack("main;app::search;sqlite3_step;sqlite3Malloc;malloc", 10),
            stack("main;app::insert;rusqlite::Connection::prepare;sqlite3_prepare_v2;sqlite3LockAndPrepare;sqlite3RunParser;yy_reduce", 20),
            stack("main;app::search;sqlite3_step;sqlite3Reprepare;sqlite3LockAndPrepare;yy_reduce", 5),
            stack("main;app::other;app::hot", 25),
        ]);
        let causes = analyze(&p);
        let get = |c| causes.iter().find(|s| s.cause == c);
        let lock = get(Cause::ReadLockChurn).unwrap();
        assert_eq!((lock.samples, lock.percent), (30, 30.0));
        assert_eq!(lock.caller.as_deref(), Some("app::get_user"));
        assert_eq!(get(Cause::MemoryStatistics).unwrap().samples, 10);
        let prep = get(Cause::Preparation).unwrap();
        assert_eq!(prep.samples, 20);
        assert_eq!(prep.caller.as_deref(), Some("app::insert"));
        assert_eq!(get(Cause::Repreparation).unwrap().samples, 5);
        assert!(get(Cause::Fsync).is_none());
        assert!(get(Cause::PageReads).is_none());
    }
}
