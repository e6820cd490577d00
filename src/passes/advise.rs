//! `profkit advise`: tries each mechanical fix on a scratch copy of the
//! database and measures it against the original, alternating runs, so
//! the advice comes with its measured gain and interval. The user's file
//! is read once (a snapshot through a read-only connection, `VACUUM
//! INTO`) and never written; every trial runs on copies of that snapshot.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::OpenFlags;

use super::session::{Session, SessionConfig};
use crate::analyze::advice::{self, Advice, Candidate, Change, Trial, TrialKind};
use crate::measure::{RunOptions, Stop, Warmup};
use crate::store::{self, RunDir};
use crate::units::Nanos;
use crate::workload::Make;

/// How the trials are bounded.
#[derive(Clone, Debug)]
pub struct AdviseOptions {
    /// Pairs of runs (original, trial) per trial.
    pub pairs: usize,
    /// Wall-clock budget of all trials.
    pub budget: Duration,
}

impl Default for AdviseOptions {
    fn default() -> Self {
        AdviseOptions {
            pairs: advice::defaults::PAIRS,
            budget: Duration::from_secs(advice::defaults::BUDGET_SECS),
        }
    }
}

/// Measured time of one run when the user sets none: short, since each
/// trial runs 2 × pairs of them.
const RUN_TIME: Duration = Duration::from_millis(300);

/// Bad input of `advise`: one line each.
#[derive(Debug, thiserror::Error)]
pub enum AdviseError {
    /// `--db` names no file.
    #[error("database '{}' does not exist: give --db an existing SQLite file, or no --db to advise on a fresh copy of the workload's data", .0.display())]
    NoDatabase(PathBuf),
    /// The workload opens no database profkit can copy.
    #[error("workload '{0}' has no database to try fixes on")]
    NoDatabaseWorkload(String),
    /// The snapshot could not be read.
    #[error("cannot read database '{}' for a scratch copy: {why}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why (locked, not SQLite, …).
        why: String,
    },
}

/// What `advise` found, and where it wrote `advice.json`.
pub struct AdviseOutcome {
    /// The run folder.
    pub dir: RunDir,
    /// The advice.
    pub advice: Advice,
}

fn session_on(base: &SessionConfig, db: &Path) -> anyhow::Result<Session> {
    Session::new(SessionConfig {
        db_path: Some(db.to_path_buf()),
        progress: false,
        sql_trace: false,
        ..base.clone()
    })
}

/// Copies `from` (a scratch file with no WAL of its own) to `to`.
fn copy_db(from: &Path, to: &Path) -> anyhow::Result<()> {
    for suffix in ["-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(with_suffix(to, suffix));
    }
    std::fs::copy(from, to)
        .map_err(|e| anyhow::anyhow!("copying '{}' to '{}': {e}", from.display(), to.display()))?;
    Ok(())
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// A consistent snapshot of the user's database in `to`, read through a
/// read-only connection: the user's file is never written. The `-wal` and
/// `-shm` files SQLite makes beside a WAL database to read it are removed
/// again when they were not there before and the WAL is empty.
fn snapshot(user: &Path, to: &Path) -> Result<(), AdviseError> {
    let side = [with_suffix(user, "-wal"), with_suffix(user, "-shm")];
    let existed: Vec<bool> = side.iter().map(|p| p.exists()).collect();
    let result = snapshot_read(user, to);
    let wal_empty = std::fs::metadata(&side[0]).map_or(true, |m| m.len() == 0);
    if wal_empty && !existed[0] && !existed[1] {
        for p in &side {
            let _ = std::fs::remove_file(p);
        }
    }
    result
}

fn snapshot_read(user: &Path, to: &Path) -> Result<(), AdviseError> {
    let unreadable = |why: String| AdviseError::Unreadable {
        path: user.to_path_buf(),
        why,
    };
    let conn = crate::db::sqlite_alloc::open_with_flags(
        user,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| unreadable(e.to_string()))?;
    conn.busy_timeout(Duration::from_secs(2))
        .map_err(|e| unreadable(e.to_string()))?;
    conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])
        .map_err(|e| {
            let busy = matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            );
            unreadable(if busy {
                "it is locked by another process (try again when its writer is done)".into()
            } else {
                e.to_string()
            })
        })?;
    Ok(())
}

/// Whether a connection already has the setting `PRAGMA name = value`
/// sets (`synchronous` by its number).
fn already_set(conn: &rusqlite::Connection, sql: &str) -> bool {
    let Some((name, value)) = sql
        .trim()
        .strip_prefix("PRAGMA ")
        .and_then(|s| s.split_once('='))
    else {
        return false;
    };
    let (name, value) = (name.trim(), value.trim());
    let want = match value.to_ascii_uppercase().as_str() {
        "OFF" => 0,
        "NORMAL" => 1,
        "FULL" => 2,
        "EXTRA" => 3,
        v => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
        .is_ok_and(|have| have == want)
}

/// Whether an index of `table` already starts with `cols`.
fn index_exists(db: &Path, table: &str, cols: &[String]) -> bool {
    let Ok(conn) = crate::db::sqlite_alloc::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return false;
    };
    let names: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_list(?1)")
        .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
        .unwrap_or_default();
    names.iter().any(|name| {
        let have: Vec<String> = conn
            .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
            .and_then(|mut s| s.query_map([name], |r| r.get(0))?.collect())
            .unwrap_or_default();
        have.len() >= cols.len() && have[..cols.len()] == *cols
    })
}

/// One measured run of the workload on `db`; its mean latency in nanoseconds.
fn measure_on(
    base: &SessionConfig,
    make: Make<'_>,
    options: &RunOptions,
    db: &Path,
    pragmas: &[String],
) -> anyhow::Result<f64> {
    let mut session = session_on(base, db)?;
    crate::db::trial::set(pragmas);
    let result = (|| {
        let prepared = session.prepare(make(), options, false)?;
        let bench = session.measure(&prepared);
        session.discard(prepared);
        Ok::<_, anyhow::Error>(bench?.latency.mean.0 as f64)
    })();
    crate::db::trial::clear();
    result
}

/// Runs one trial: `pairs` alternating runs of the original copy and the
/// trial copy. An error is the trial's, in one line.
fn trial(
    base: &SessionConfig,
    make: Make<'_>,
    options: &RunOptions,
    original: &Path,
    scratch: &Path,
    candidate: &Candidate,
    pairs: usize,
) -> Result<Change, String> {
    let line = |e: anyhow::Error| format!("{e:#}").replace('\n', " ");
    let orig = scratch.join("trial-original.db");
    let copy = scratch.join("trial.db");
    copy_db(original, &orig).map_err(line)?;
    copy_db(original, &copy).map_err(line)?;
    let pragmas = match candidate.kind {
        TrialKind::Index => {
            let conn = crate::db::sqlite_alloc::open(&copy).map_err(|e| e.to_string())?;
            conn.execute_batch(&candidate.sql)
                .map_err(|e| format!("{}: {e}", candidate.sql))?;
            conn.execute_batch("ANALYZE")
                .map_err(|e| format!("ANALYZE: {e}"))?;
            Vec::new()
        }
        TrialKind::Pragma => vec![candidate.sql.clone()],
    };
    if candidate.kind == TrialKind::Index {
        // Both sides with fresh statistics, so only the index differs.
        let conn = crate::db::sqlite_alloc::open(&orig).map_err(|e| e.to_string())?;
        conn.execute_batch("ANALYZE")
            .map_err(|e| format!("ANALYZE: {e}"))?;
    }
    let mut runs = Vec::with_capacity(pairs);
    for i in 0..pairs {
        // Alternate which side goes first.
        let mut o = 0.0;
        let mut t = 0.0;
        for side in 0..2 {
            let trial_side = (side == 0) == (i % 2 == 1);
            if trial_side {
                t = measure_on(base, make, options, &copy, &pragmas).map_err(line)?;
            } else {
                o = measure_on(base, make, options, &orig, &[]).map_err(line)?;
            }
        }
        runs.push((o, t));
    }
    advice::paired_change("mean", &runs)
        .ok_or_else(|| "fewer than two pairs of runs measured a latency".to_string())
}

/// `profkit advise`: candidates from a traced run on a snapshot, then each
/// trial in turn within the budget; writes `advice.json` into a new run
/// folder.
pub fn run(
    base: &SessionConfig,
    make: Make<'_>,
    options: &RunOptions,
    opts: &AdviseOptions,
) -> anyhow::Result<AdviseOutcome> {
    let started = SystemTime::now();
    let name = make().name().to_string();
    let work = Session::new(SessionConfig {
        progress: false,
        ..base.clone()
    })?;
    let scratch = work.temp_dir().join("advise");
    std::fs::create_dir_all(&scratch)?;
    let original = scratch.join("original.db");
    match &base.db_path {
        Some(user) => {
            if !user.is_file() {
                return Err(AdviseError::NoDatabase(user.clone()).into());
            }
            snapshot(user, &original)?;
        }
        None => {
            // The workload's own data, populated into the scratch folder.
            let mut s = session_on(base, &original)?;
            let prepared = s.prepare(make(), options, false)?;
            let has_db = prepared.workload.database().is_some();
            s.discard(prepared);
            if !has_db {
                return Err(AdviseError::NoDatabaseWorkload(name).into());
            }
        }
    }
    let mut options = options.clone();
    if options.stop.is_none() {
        options.stop = Some(Stop::Duration(Nanos::from(RUN_TIME)));
    }
    if options.warmup.is_none() {
        options.warmup = Some(Warmup::Duration(Nanos::from(RUN_TIME / 5)));
    }
    // The statements and their plans, from a traced run on a copy.
    let traced = scratch.join("traced.db");
    copy_db(&original, &traced)?;
    let mut in_effect = Vec::new();
    let pragmas = advice::pragma_candidates();
    let report = {
        let mut s = Session::new(SessionConfig {
            db_path: Some(traced.clone()),
            progress: false,
            ..base.clone()
        })?;
        let prepared = s.prepare(make(), &options, true)?;
        if let Some(db) = prepared.workload.database() {
            if let Ok(conn) = db.conn() {
                in_effect = pragmas
                    .iter()
                    .filter(|c| already_set(&conn, &c.sql))
                    .map(|c| c.name.clone())
                    .collect();
            }
        }
        let run = super::sql::measure_traced(&prepared, &s);
        s.discard(prepared);
        run?.report
    };
    let mut candidates = advice::index_candidates(&report, &|t, c| index_exists(&traced, t, c));
    let mut notes = Vec::new();
    if candidates.is_empty() {
        notes.push("no index candidate: every costly statement's columns are indexed, or none filters or sorts by a column".to_string());
    }
    if !in_effect.is_empty() {
        notes.push(format!(
            "not tried, already in effect on the workload's connections: {}",
            in_effect.join(", ")
        ));
    }
    candidates.extend(pragmas.into_iter().filter(|c| !in_effect.contains(&c.name)));
    let clock = Instant::now();
    let mut trials = Vec::new();
    notes.insert(0, format!(
        "each trial: {} pairs of runs (original, trial, alternating which goes first), mean latency per run; trials start within a {} s budget",
        opts.pairs,
        opts.budget.as_secs()
    ));
    for candidate in candidates {
        if clock.elapsed() >= opts.budget {
            notes.push(format!(
                "skipped for time: {} (raise --budget)",
                candidate.name
            ));
            continue;
        }
        let result = trial(
            base, make, &options, &original, &scratch, &candidate, opts.pairs,
        );
        let (change, error) = match result {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
        let keep = change.as_ref().is_some_and(Change::helps);
        trials.push(Trial {
            candidate,
            change,
            error,
            keep,
        });
    }
    let advice = Advice {
        schema_version: advice::ADVICE_SCHEMA_VERSION,
        workload: name.clone(),
        trials,
        notes,
    };
    let dir = work.run_dir(&name, started)?;
    store::write_json(&dir.file(store::files::ADVICE), &advice)?;
    Ok(AdviseOutcome { dir, advice })
}
