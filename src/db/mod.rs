//! The system under test: [`DatabaseManager`], a multi-tenant email store
//! on SQLite (rusqlite, SQLite bundled), with a connection pool, a
//! deterministic data generator and statement-level instrumentation.
//!
//! It knows nothing of profiling: profkit measures it from the outside.

pub mod data;
pub mod lock;
pub mod pool;
pub mod schema;
pub mod sqlite_alloc;
pub mod trace;
pub mod trial;
pub mod waits;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rand::Rng;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};
use serde::{Deserialize, Serialize};

use self::data::{Generator, Shape};
use self::pool::{PoolCounters, PoolStats};

/// Defaults of [`DbConfig`], defined once.
pub mod defaults {
    use std::time::Duration;

    /// Page cache per connection: 64 MiB. SQLite's default (2 MiB) holds a
    /// few percent of a 100k-row store, and a run then spends about half its
    /// time in `pread`.
    pub const CACHE_KIB: u32 = 64 * 1024;
    /// Memory-mapped I/O per connection: 256 MiB, so pages outside the
    /// cache are read through the page mapping instead of `pread` calls.
    pub const MMAP_BYTES: u64 = 256 * 1024 * 1024;
    /// Connections in the pool.
    pub const POOL_SIZE: u32 = 8;
    /// How long SQLite waits on a lock before returning `SQLITE_BUSY`.
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
    /// Attempts of a write transaction that keeps meeting `SQLITE_BUSY`.
    pub const WRITE_ATTEMPTS: u32 = 8;
    /// How long opening waits for another process's write lock to clear
    /// before calling the database locked.
    pub const OPEN_LOCK_WAIT: Duration = Duration::from_millis(1500);
}

/// Errors of the database layer; each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file exists but is not a SQLite database.
    #[error("'{}' is not a SQLite database (no 'SQLite format 3' header); pass a new path or a profkit database to --db", path.display())]
    NotSqlite {
        /// The file.
        path: PathBuf,
    },
    /// Another process holds a lock on the database.
    #[error("'{}' is locked by another process; close that process or pass another --db", path.display())]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// Another profkit process is using the database.
    #[error("database '{}' is in use by profkit {}; wait for it to finish or pass another --db", path.display(), pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "(pid unknown)".into()))]
    InUse {
        /// The file.
        path: PathBuf,
        /// The other process, when its lock file names it.
        pid: Option<u32>,
    },
    /// A path that cannot be a database file.
    #[error("--db '{}' {why}", path.display())]
    BadPath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Populating was interrupted (Ctrl-C); the dataset is left incomplete
    /// and is rebuilt next time.
    #[error("populating '{}' was interrupted; it holds no complete dataset and will be repopulated next time", path.display())]
    Interrupted {
        /// The file.
        path: PathBuf,
    },
    /// A SQLite database that profkit did not create.
    #[error("'{}' is a SQLite database but not a profkit one (tables: {tables}); profkit leaves it untouched: pass a new path to --db", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// The tables it holds.
        tables: String,
    },
    /// The file could not be opened or read.
    #[error("cannot open '{}': {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No connection could be had from the pool.
    #[error("no database connection: {0}")]
    Pool(#[from] r2d2::Error),
    /// A write kept meeting `SQLITE_BUSY`.
    #[error("the database stayed busy through {attempts} attempts: {source}")]
    Busy {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        source: rusqlite::Error,
    },
    /// Any other SQLite error.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks long database work ([`DatabaseManager::populate`]) to stop at its
/// next batch (Ctrl-C), leaving no dataset recorded, as a `kill -9` would.
pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// Whether [`request_stop`] was called.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Result of the database layer.
pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// How to open a [`DatabaseManager`].
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// The database file; created if missing.
    pub path: PathBuf,
    /// Page cache per connection in KiB (default [`defaults::CACHE_KIB`]).
    pub cache_kib: u32,
    /// mmap size per connection in bytes (default [`defaults::MMAP_BYTES`]).
    pub mmap_bytes: u64,
    /// Connections in the pool (default [`defaults::POOL_SIZE`]).
    pub pool_size: u32,
    /// SQLite busy timeout (default [`defaults::BUSY_TIMEOUT`]).
    pub busy_timeout: Duration,
    /// Install the statement trace hook on every connection (default off:
    /// an uninstrumented connection pays nothing).
    pub sql_trace: bool,
    /// Opened by readers only (default off): a shared lock, so workloads
    /// that only read can share one populated file across passes and
    /// processes, and `PRAGMA query_only` on every connection, so a write
    /// fails instead of reaching the other readers. SQLite's own locking is
    /// unchanged (the file is opened read-write), so reads cost the same.
    pub read_only: bool,
}

impl DbConfig {
    /// The default configuration for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> DbConfig {
        DbConfig {
            path: path.into(),
            cache_kib: defaults::CACHE_KIB,
            mmap_bytes: defaults::MMAP_BYTES,
            pool_size: defaults::POOL_SIZE,
            busy_timeout: defaults::BUSY_TIMEOUT,
            sql_trace: false,
            read_only: false,
        }
    }
}

/// Which tenant's data an operation may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only this tenant's rows: the query carries `tenant_id = ?`.
    Tenant(i64),
    /// Every tenant's rows (an admin view); used to measure what scoping costs.
    All,
}

/// A stored email.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// Row id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Mailbox it is filed in.
    pub mailbox_id: i64,
    /// From address.
    pub sender: String,
    /// To addresses, comma separated.
    pub recipients: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Seconds since the epoch.
    pub sent_at: i64,
    /// Seconds since the epoch.
    pub received_at: i64,
    /// Size in bytes (subject + body).
    pub size: i64,
    /// Bit flags (1 = seen, 2 = flagged).
    pub flags: i64,
    /// Comma separated labels.
    pub labels: String,
}

impl Email {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Email> {
        Ok(Email {
            id: row.get(0)?,
            tenant_id: row.get(1)?,
            mailbox_id: row.get(2)?,
            sender: row.get(3)?,
            recipients: row.get(4)?,
            subject: row.get(5)?,
            body: row.get(6)?,
            sent_at: row.get(7)?,
            received_at: row.get(8)?,
            size: row.get(9)?,
            flags: row.get(10)?,
            labels: row.get(11)?,
        })
    }
}

/// An email to insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEmail {
    /// Owning tenant.
    pub tenant_id: i64,
    /// Mailbox to file it in.
    pub mailbox_id: i64,
    /// From address.
    pub sender: String,
    /// To addresses.
    pub recipients: String,
    /// Subject line.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Seconds since the epoch.
    pub sent_at: i64,
    /// Seconds since the epoch.
    pub received_at: i64,
    /// Bit flags.
    pub flags: i64,
    /// Labels.
    pub labels: String,
}

/// One row of the per-sender report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderStats {
    /// Sender address.
    pub sender: String,
    /// Emails sent.
    pub emails: i64,
    /// Bytes sent.
    pub bytes: i64,
}

/// What [`DatabaseManager::populate`] did.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PopulateStats {
    /// Emails in the database.
    pub rows: u64,
    /// True when the database already held this dataset and was reused.
    pub reused: bool,
    /// Time spent loading (zero when reused).
    pub elapsed: crate::units::Nanos,
}

macro_rules! cols {
    () => {
        "id, tenant_id, mailbox_id, sender, recipients, subject, body, sent_at, received_at, size, flags, labels"
    };
}

const INSERT_EMAIL: &str = "INSERT INTO emails (tenant_id, mailbox_id, sender, recipients, subject, body, \
     sent_at, received_at, size, flags, labels) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// The multi-tenant email store.
///
/// Cheap to share across threads (`&self` everywhere); each call takes a
/// connection from the pool for its duration.
pub struct DatabaseManager {
    config: DbConfig,
    pool: r2d2::Pool<SqliteConnectionManager>,
    counters: Arc<PoolCounters>,
    max_id: AtomicI64,
    shape: std::sync::RwLock<Shape>,
    /// Serialises this process's write transactions, first come first
    /// served. SQLite allows one writer at a time anyway; queueing here
    /// instead of in SQLite's busy handler (which sleeps 1, 2, 5, … 100 ms
    /// between retries) keeps waits short and fair. Other processes are
    /// still handled by the busy timeout and the retries in [`write`](Self::write).
    write_lock: parking_lot::Mutex<()>,
    /// This process's claim on the file against other profkit processes.
    _lock: Arc<lock::DbLock>,
}

mod open;
mod populate;
mod queries;

#[cfg(test)]
mod tests {
    use super::*;

    fn small_db(rows: u64) -> (tempfile::TempDir, DatabaseManager) {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseManager::open(DbConfig::new(dir.path().join("t.db"))).unwrap();
        db.populate(rows, 42).unwrap();
        (dir, db)
    }

    #[test]
    fn populate_is_deterministic_and_reused() {
        let (_dir, db) = small_db(500);
        assert_eq!(db.count_emails().unwrap(), 500);
        let first = db.get_email(Scope::All, 17).unwrap().unwrap();
        let again = db.populate(500, 42).unwrap();
        assert!(again.reused);
        assert_eq!(db.get_email(Scope::All, 17).unwrap().unwrap(), first);
        let rebuilt = db.populate(300, 43).unwrap();
        assert!(!rebuilt.reused);
        assert_eq!(db.count_emails().unwrap(), 300);
    }

    #[test]
    fn scoping_hides_other_tenants() {
        let (_dir, db) = small_db(300);
        let e = db.get_email(Scope::All, 5).unwrap().unwrap();
        assert_eq!(e.tenant_id, db.shape().tenant_of(5));
        assert!(db
            .get_email(Scope::Tenant(e.tenant_id), 5)
            .unwrap()
            .is_some());
        let other = if e.tenant_id == 1 { 2 } else { 1 };
        assert!(db.get_email(Scope::Tenant(other), 5).unwrap().is_none());
        assert!(!db.update_flags(Scope::Tenant(other), 5, 3).unwrap());
        assert!(db.update_flags(Scope::Tenant(e.tenant_id), 5, 3).unwrap());
    }

    #[test]
    fn fts_and_like_find_the_same_emails() {
        let (_dir, db) = small_db(2000);
        let term = data::rare_code(7);
        let like = db.search_like(Scope::All, &term, 1000).unwrap();
        let fts = db.search_fts(Scope::All, &term, 1000).unwrap();
        assert_eq!(like, fts);
        let any = db.search_like(Scope::All, "meeting", 5).unwrap();
        assert_eq!(any.len(), 5);
    }

    #[test]
    fn random_forms_return_k_rows() {
        let (_dir, db) = small_db(400);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        assert_eq!(db.query_random_emails(&mut rng, 50).unwrap().len(), 50);
        assert_eq!(db.query_random_emails_naive(50).unwrap().len(), 50);
    }

    #[test]
    fn n_plus_one_and_batched_agree() {
        let (_dir, db) = small_db(600);
        let a = db.recent_emails_n_plus_one(1, 20).unwrap();
        let b = db.recent_emails_batched(1, 20).unwrap();
        assert_eq!(a.len(), 20);
        assert_eq!(a, b);
        // Every tenant, as many rows as the workload asks (100) and more
        // than a tenant has: the same rows in the same order, newest first.
        for tenant in 1..=db.shape().tenants as i64 {
            for n in [1, 100, 10_000] {
                let a = db.recent_emails_n_plus_one(tenant, n).unwrap();
                let b = db.recent_emails_batched(tenant, n).unwrap();
                assert!(!a.is_empty());
                assert_eq!(a, b, "tenant {tenant}, n {n}");
                assert!(a.windows(2).all(|w| w[0].received_at >= w[1].received_at));
            }
        }
        assert!(db.recent_emails_batched(10_000, 100).unwrap().is_empty());
    }

    #[test]
    fn delete_and_insert_round_trip() {
        let (_dir, db) = small_db(100);
        let before = db.count_emails().unwrap();
        let mut g = Generator::new(db.shape(), 9);
        let id = db.insert_email(&g.email(1000)).unwrap();
        assert!(id > 100);
        assert!(db.delete_email(Scope::All, 3).unwrap());
        assert_eq!(db.count_emails().unwrap(), before);
        let report = db.sender_report(Scope::All, 3).unwrap();
        assert_eq!(report.len(), 3);
        assert!(report[0].emails >= report[1].emails);
    }

    #[test]
    fn refuses_files_that_are_not_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "hello, this is not a database at all").unwrap();
        let err = DatabaseManager::open(DbConfig::new(&path)).err().unwrap();
        assert!(matches!(err, DbError::NotSqlite { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "hello, this is not a database at all"
        );
    }

    #[test]
    fn refuses_foreign_databases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        sqlite_alloc::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
            .unwrap();
        let err = DatabaseManager::open(DbConfig::new(&path)).err().unwrap();
        assert!(err.to_string().contains("customers"), "{err}");
    }
}
