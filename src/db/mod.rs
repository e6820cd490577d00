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

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Rejects a path that names a folder, or whose folder does not exist.
fn check_path(path: &Path) -> Result<()> {
    let bad = |why| {
        Err(DbError::BadPath {
            path: path.into(),
            why,
        })
    };
    if path.is_dir() {
        return bad("is a folder; pass a file path (created if missing)");
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return bad("is in a folder that does not exist; create it first");
    }
    Ok(())
}

/// Rejects a file that exists, is not empty and is not a SQLite database,
/// before SQLite touches it.
fn check_header(path: &Path) -> Result<()> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(DbError::Open {
                path: path.into(),
                source: Box::new(e),
            })
        }
    };
    let mut header = [0u8; 16];
    let n = file.read(&mut header).map_err(|e| DbError::Open {
        path: path.into(),
        source: Box::new(e),
    })?;
    if n == 0 || header == *b"SQLite format 3\0" {
        Ok(())
    } else {
        Err(DbError::NotSqlite { path: path.into() })
    }
}

fn configure(conn: &Connection, config: &DbConfig) -> rusqlite::Result<()> {
    conn.busy_timeout(config.busy_timeout)?;
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{};
         PRAGMA mmap_size = {};
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;
         PRAGMA temp_store = MEMORY;",
        config.cache_kib, config.mmap_bytes
    ))?;
    if config.read_only {
        conn.execute_batch("PRAGMA query_only = ON")?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    if config.sql_trace {
        trace::install(conn);
    }
    Ok(())
}

impl DatabaseManager {
    /// Opens (creating if needed) the database described by `config`.
    ///
    /// Refuses a file that is not SQLite, a SQLite database profkit did not
    /// create, and a database another process holds locked; none of them
    /// is modified.
    pub fn open(config: DbConfig) -> Result<DatabaseManager> {
        sqlite_alloc::install();
        let path = config.path.clone();
        check_path(&path)?;
        check_header(&path)?;
        // Before anything else is read or changed: another profkit process
        // may be populating or measuring this very file.
        let lock_existed = lock::lock_path(&path).exists();
        let lock = lock::acquire(&path, config.read_only)?;
        let open_err = |e: rusqlite::Error| -> DbError {
            if is_busy(&e) {
                DbError::Locked { path: path.clone() }
            } else if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
                DbError::NotSqlite { path: path.clone() }
            } else {
                DbError::Open {
                    path: path.clone(),
                    source: Box::new(e),
                }
            }
        };
        {
            let conn = sqlite_alloc::open(&path).map_err(open_err)?;
            conn.busy_timeout(defaults::OPEN_LOCK_WAIT)
                .map_err(open_err)?;
            let tables: Vec<String> = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(open_err)?;
            if !tables.is_empty() && !tables.iter().any(|t| t == "profkit_meta") {
                // Leave nothing of ours beside a database we refuse.
                if !lock_existed {
                    let _ = std::fs::remove_file(lock::lock_path(&path));
                }
                return Err(DbError::Foreign {
                    path,
                    tables: tables.join(", "),
                });
            }
            // A write lock held elsewhere shows here, before anything changes.
            conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
                .map_err(open_err)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(open_err)?;
            conn.execute_batch(schema::TABLES).map_err(open_err)?;
        }

        let init_config = config.clone();
        let manager = SqliteConnectionManager::file(&config.path)
            .with_init(move |c| configure(c, &init_config));
        let counters = Arc::new(PoolCounters::default());
        let pool = r2d2::Pool::builder()
            .event_handler(Box::new(pool::CounterHandler(counters.clone())))
            .max_size(config.pool_size)
            .min_idle(Some(1))
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(30))
            .build(manager)?;
        let db = DatabaseManager {
            config,
            pool,
            counters,
            max_id: AtomicI64::new(0),
            shape: std::sync::RwLock::new(Shape::for_rows(0)),
            write_lock: parking_lot::Mutex::new(()),
            _lock: lock,
        };
        db.refresh_max_id()?;
        if let Some((rows, _)) = db.populated()? {
            *db.shape.write().unwrap_or_else(|e| e.into_inner()) = Shape::for_rows(rows);
        }
        Ok(db)
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// The shape of the populated dataset (tenants, users, senders).
    pub fn shape(&self) -> Shape {
        *self.shape.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The largest email id.
    pub fn max_id(&self) -> i64 {
        self.max_id.load(Ordering::Relaxed)
    }

    /// Connection-pool statistics since the database was opened.
    pub fn pool_stats(&self) -> PoolStats {
        self.counters.snapshot(self.config.pool_size)
    }

    /// Opens every connection of the pool (checks them all out at once and
    /// returns them). A run then opens none mid-run: r2d2 replaces the last
    /// idle connection in the background as soon as it is checked out, at
    /// a moment that differs from run to run, and that connection's memory
    /// and statements would land in some runs' profiles and not in others'.
    /// With the pool at its size, r2d2 has nothing left to add.
    pub fn warm_pool(&self) -> Result<()> {
        let all = (0..self.config.pool_size)
            .map(|_| self.conn())
            .collect::<Result<Vec<_>>>()?;
        drop(all);
        Ok(())
    }

    /// A connection from the pool (the pool's event handler times the wait).
    pub fn conn(&self) -> Result<PooledConnection<SqliteConnectionManager>> {
        Ok(self.pool.get()?)
    }

    fn refresh_max_id(&self) -> Result<()> {
        let max: Option<i64> = self
            .conn()?
            .query_row("SELECT max(id) FROM emails", [], |r| r.get(0))?;
        self.max_id.store(max.unwrap_or(0), Ordering::Relaxed);
        Ok(())
    }

    /// Runs `f` in an immediate write transaction, retrying on
    /// `SQLITE_BUSY` (after SQLite's own busy timeout) with backoff, so
    /// concurrent writers lose nothing.
    pub fn write<T>(&self, mut f: impl FnMut(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let queued = Instant::now();
        let writer = self.write_lock.lock();
        waits::add_lock_wait(queued.elapsed());
        let result = self.write_locked(&mut conn, &mut f);
        // Hand the lock to the longest waiter rather than back to a thread
        // that happens to be running: bounded waits, not a lottery.
        parking_lot::MutexGuard::unlock_fair(writer);
        result
    }

    fn write_locked<T>(
        &self,
        conn: &mut Connection,
        f: &mut impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut attempt = 1;
        loop {
            // BEGIN IMMEDIATE takes SQLite's write lock (through its busy
            // handler when another process holds it): lock wait too.
            let begin = Instant::now();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate);
            waits::add_lock_wait(begin.elapsed());
            let result = tx.and_then(|tx| {
                let v = f(&tx)?;
                tx.commit()?;
                Ok(v)
            });
            match result {
                Ok(v) => return Ok(v),
                Err(e) if is_busy(&e) && attempt < defaults::WRITE_ATTEMPTS => {
                    let backoff = Instant::now();
                    std::thread::sleep(Duration::from_millis(1 << attempt.min(6)));
                    waits::add_lock_wait(backoff.elapsed());
                    attempt += 1;
                }
                Err(e) if is_busy(&e) => {
                    return Err(DbError::Busy {
                        attempts: attempt,
                        source: e,
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The (rows, seed) this database was populated with, if any.
    pub fn populated(&self) -> Result<Option<(u64, u64)>> {
        let conn = self.conn()?;
        let get = |key: &str| -> rusqlite::Result<Option<String>> {
            conn.query_row(
                "SELECT value FROM profkit_meta WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
        };
        let (Some(version), Some(rows), Some(seed)) =
            (get("schema_version")?, get("rows")?, get("seed")?)
        else {
            return Ok(None);
        };
        if version.parse::<i64>().ok() != Some(schema::SCHEMA_VERSION) {
            return Ok(None);
        }
        Ok(rows.parse().ok().zip(seed.parse().ok()))
    }

    /// Fills the store with `rows` deterministic emails generated from
    /// `seed`. A database that already holds exactly this dataset is reused
    /// as it is; one holding another profkit dataset is rebuilt.
    pub fn populate(&self, rows: u64, seed: u64) -> Result<PopulateStats> {
        if self.populated()? == Some((rows, seed)) && self.count_emails()? == rows {
            return Ok(PopulateStats {
                rows,
                reused: true,
                elapsed: Default::default(),
            });
        }
        let start = Instant::now();
        let shape = Shape::for_rows(rows);
        {
            let conn = self.conn()?;
            conn.execute_batch(schema::DROP_ALL)?;
            conn.execute_batch(schema::TABLES)?;
            conn.execute_batch("PRAGMA synchronous = OFF")?;
        }
        self.write(|tx| {
            let mut tenant = tx.prepare_cached("INSERT INTO tenants (id, name) VALUES (?1, ?2)")?;
            let mut user = tx.prepare_cached(
                "INSERT INTO users (id, tenant_id, address, display_name) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut mailbox =
                tx.prepare_cached("INSERT INTO mailboxes (id, user_id, name) VALUES (?1, ?2, ?3)")?;
            for t in 1..=shape.tenants as i64 {
                tenant.execute(params![t, format!("tenant{t}")])?;
                for n in 0..shape.users_per_tenant {
                    let id = shape.user_id(t, n);
                    let address = shape.user_address(t, n);
                    user.execute(params![id, t, address, format!("User {n} of tenant {t}")])?;
                    mailbox.execute(params![2 * (id - 1) + 1, id, "INBOX"])?;
                    mailbox.execute(params![2 * (id - 1) + 2, id, "Archive"])?;
                }
            }
            Ok(())
        })?;
        let mut generator = Generator::new(shape, seed);
        // Small enough that Ctrl-C stops populating within a fraction of a
        // second; the dataset's meta rows are written last, so a stopped
        // (or killed) populate is found incomplete and redone next time.
        const BATCH: u64 = 2_000;
        let stopped = || -> Result<()> {
            match stop_requested() {
                true => Err(DbError::Interrupted {
                    path: self.config.path.clone(),
                }),
                false => Ok(()),
            }
        };
        let mut next = 1u64;
        while next <= rows {
            stopped()?;
            let end = (next + BATCH).min(rows + 1);
            self.write(|tx| {
                let mut stmt = tx.prepare_cached(INSERT_EMAIL)?;
                for id in next..end {
                    let e = generator.email(id as i64);
                    insert_with(&mut stmt, &e)?;
                }
                Ok(())
            })?;
            next = end;
        }
        stopped()?;
        {
            let conn = self.conn()?;
            conn.execute_batch("INSERT INTO emails_fts(emails_fts) VALUES ('rebuild')")?;
            conn.execute_batch(schema::INDEXES)?;
            conn.execute_batch("ANALYZE")?;
            conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        }
        self.write(|tx| {
            let mut meta = tx.prepare_cached(
                "INSERT OR REPLACE INTO profkit_meta (key, value) VALUES (?1, ?2)",
            )?;
            meta.execute(params![
                "schema_version",
                schema::SCHEMA_VERSION.to_string()
            ])?;
            meta.execute(params!["rows", rows.to_string()])?;
            meta.execute(params!["seed", seed.to_string()])?;
            Ok(())
        })?;
        *self.shape.write().unwrap_or_else(|e| e.into_inner()) = shape;
        self.refresh_max_id()?;
        Ok(PopulateStats {
            rows,
            reused: false,
            elapsed: start.elapsed().into(),
        })
    }

    /// Number of emails stored.
    pub fn count_emails(&self) -> Result<u64> {
        let n: i64 = self
            .conn()?
            .query_row("SELECT count(*) FROM emails", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Inserts one email; returns its id.
    pub fn insert_email(&self, email: &NewEmail) -> Result<i64> {
        let id = self.write(|tx| {
            insert_with(&mut tx.prepare_cached(INSERT_EMAIL)?, email)?;
            Ok(tx.last_insert_rowid())
        })?;
        self.max_id.fetch_max(id, Ordering::Relaxed);
        Ok(id)
    }

    /// Inserts many emails in one transaction.
    pub fn insert_emails(&self, emails: &[NewEmail]) -> Result<()> {
        let last = self.write(|tx| {
            let mut stmt = tx.prepare_cached(INSERT_EMAIL)?;
            for e in emails {
                insert_with(&mut stmt, e)?;
            }
            Ok(tx.last_insert_rowid())
        })?;
        self.max_id.fetch_max(last, Ordering::Relaxed);
        Ok(())
    }

    /// The email with `id`, if it exists within `scope`.
    pub fn get_email(&self, scope: Scope, id: i64) -> Result<Option<Email>> {
        let conn = self.conn()?;
        let email = match scope {
            Scope::All => conn
                .prepare_cached(concat!("SELECT ", cols!(), " FROM emails WHERE id = ?1"))?
                .query_row([id], Email::from_row),
            Scope::Tenant(t) => conn
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM emails WHERE id = ?1 AND tenant_id = ?2"
                ))?
                .query_row([id, t], Email::from_row),
        };
        Ok(email.optional()?)
    }

    /// `k` emails picked at random, by `k` random row-id lookups (about
    /// 0.4 ms for k = 100 at 100k rows). Ids of deleted rows are skipped
    /// and redrawn.
    pub fn query_random_emails(&self, rng: &mut impl Rng, k: usize) -> Result<Vec<Email>> {
        let max = self.max_id();
        let mut out = Vec::with_capacity(k);
        if max == 0 {
            return Ok(out);
        }
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare_cached(concat!("SELECT ", cols!(), " FROM emails WHERE id = ?1"))?;
        let mut attempts = 0;
        while out.len() < k && attempts < 4 * k + 16 {
            attempts += 1;
            let id = rng.random_range(1..=max);
            if let Some(e) = stmt.query_row([id], Email::from_row).optional()? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The naive form of [`query_random_emails`](Self::query_random_emails):
    /// `ORDER BY RANDOM() LIMIT k`, which reads and sorts every row (about
    /// 16 ms at 100k rows). Kept as a slow twin.
    pub fn query_random_emails_naive(&self, k: usize) -> Result<Vec<Email>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT ",
            cols!(),
            " FROM emails ORDER BY RANDOM() LIMIT ?1"
        ))?;
        let rows = stmt.query_map([k as i64], Email::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest `limit` emails from `sender` (uses an index).
    pub fn search_by_sender(&self, scope: Scope, sender: &str, limit: usize) -> Result<Vec<Email>> {
        let conn = self.conn()?;
        let rows = match scope {
            Scope::All => conn
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM emails WHERE sender = ?1 ORDER BY received_at DESC LIMIT ?2"
                ))?
                .query_map(params![sender, limit as i64], Email::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>(),
            Scope::Tenant(t) => conn
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM emails WHERE tenant_id = ?3 AND sender = ?1 ORDER BY received_at DESC LIMIT ?2"
                ))?
                .query_map(params![sender, limit as i64, t], Email::from_row)?
                .collect(),
        };
        Ok(rows?)
    }

    /// Ids of emails whose subject or body contains the word `term`, by the
    /// FTS5 index.
    pub fn search_fts(&self, scope: Scope, term: &str, limit: usize) -> Result<Vec<i64>> {
        // Quote the term so FTS5 query syntax in user input is taken literally.
        let query = format!("\"{}\"", term.replace('"', "\"\""));
        let conn = self.conn()?;
        let ids = match scope {
            Scope::All => conn
                .prepare_cached(
                    "SELECT rowid FROM emails_fts WHERE emails_fts MATCH ?1 ORDER BY rowid LIMIT ?2",
                )?
                .query_map(params![query, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>(),
            Scope::Tenant(t) => conn
                .prepare_cached(
                    "SELECT e.id FROM emails_fts f JOIN emails e ON e.id = f.rowid \
                     WHERE emails_fts MATCH ?1 AND e.tenant_id = ?3 ORDER BY e.id LIMIT ?2",
                )?
                .query_map(params![query, limit as i64, t], |r| r.get(0))?
                .collect(),
        };
        Ok(ids?)
    }

    /// The same search as [`search_fts`](Self::search_fts) done naively:
    /// `LIKE '%term%'` on subject and body, a full scan of the table.
    pub fn search_like(&self, scope: Scope, term: &str, limit: usize) -> Result<Vec<i64>> {
        let pattern = format!(
            "%{}%",
            term.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let conn = self.conn()?;
        let ids = match scope {
            Scope::All => conn
                .prepare_cached(
                    "SELECT id FROM emails WHERE subject LIKE ?1 ESCAPE '\\' OR body LIKE ?1 ESCAPE '\\' \
                     ORDER BY id LIMIT ?2",
                )?
                .query_map(params![pattern, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>(),
            Scope::Tenant(t) => conn
                .prepare_cached(
                    "SELECT id FROM emails WHERE tenant_id = ?3 AND (subject LIKE ?1 ESCAPE '\\' \
                     OR body LIKE ?1 ESCAPE '\\') ORDER BY id LIMIT ?2",
                )?
                .query_map(params![pattern, limit as i64, t], |r| r.get(0))?
                .collect(),
        };
        Ok(ids?)
    }

    /// Page `page` (0-based) of the newest emails, `page_size` per page.
    pub fn list_page(&self, scope: Scope, page: u64, page_size: u64) -> Result<Vec<Email>> {
        let conn = self.conn()?;
        let offset = (page * page_size) as i64;
        let rows = match scope {
            Scope::All => conn
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM emails ORDER BY received_at DESC LIMIT ?1 OFFSET ?2"
                ))?
                .query_map(params![page_size as i64, offset], Email::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>(),
            Scope::Tenant(t) => conn
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM emails WHERE tenant_id = ?3 ORDER BY received_at DESC LIMIT ?1 OFFSET ?2"
                ))?
                .query_map(params![page_size as i64, offset, t], Email::from_row)?
                .collect(),
        };
        Ok(rows?)
    }

    /// The `top` senders by number of emails, with their byte totals
    /// (a GROUP BY over the scope).
    pub fn sender_report(&self, scope: Scope, top: usize) -> Result<Vec<SenderStats>> {
        let conn = self.conn()?;
        let map = |r: &Row<'_>| {
            Ok(SenderStats {
                sender: r.get(0)?,
                emails: r.get(1)?,
                bytes: r.get(2)?,
            })
        };
        let rows = match scope {
            Scope::All => conn
                .prepare_cached(
                    "SELECT sender, count(*), sum(size) FROM emails GROUP BY sender \
                     ORDER BY 2 DESC, 1 LIMIT ?1",
                )?
                .query_map([top as i64], map)?
                .collect::<rusqlite::Result<Vec<_>>>(),
            Scope::Tenant(t) => conn
                .prepare_cached(
                    "SELECT sender, count(*), sum(size) FROM emails WHERE tenant_id = ?2 \
                     GROUP BY sender ORDER BY 2 DESC, 1 LIMIT ?1",
                )?
                .query_map([top as i64, t], map)?
                .collect(),
        };
        Ok(rows?)
    }

    /// Sets the flags of an email; false when no such email is in scope.
    pub fn update_flags(&self, scope: Scope, id: i64, flags: i64) -> Result<bool> {
        let n = self.write(|tx| match scope {
            Scope::All => tx
                .prepare_cached("UPDATE emails SET flags = ?2 WHERE id = ?1")?
                .execute([id, flags]),
            Scope::Tenant(t) => tx
                .prepare_cached("UPDATE emails SET flags = ?2 WHERE id = ?1 AND tenant_id = ?3")?
                .execute([id, flags, t]),
        })?;
        Ok(n > 0)
    }

    /// Deletes an email; false when no such email is in scope.
    pub fn delete_email(&self, scope: Scope, id: i64) -> Result<bool> {
        let n = self.write(|tx| match scope {
            Scope::All => tx
                .prepare_cached("DELETE FROM emails WHERE id = ?1")?
                .execute([id]),
            Scope::Tenant(t) => tx
                .prepare_cached("DELETE FROM emails WHERE id = ?1 AND tenant_id = ?2")?
                .execute([id, t]),
        })?;
        Ok(n > 0)
    }

    /// The newest `n` emails of a tenant, loaded the N+1 way: one query for
    /// the ids, then one query per email.
    pub fn recent_emails_n_plus_one(&self, tenant: i64, n: usize) -> Result<Vec<Email>> {
        let ids = self.recent_ids(tenant, n)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.get_email(Scope::Tenant(tenant), id)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The same as [`recent_emails_n_plus_one`](Self::recent_emails_n_plus_one),
    /// batched: the ids, then one `IN (…)` query for all of them.
    pub fn recent_emails_batched(&self, tenant: i64, n: usize) -> Result<Vec<Email>> {
        let ids = self.recent_ids(tenant, n)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = vec!["?"; ids.len()].join(", ");
        let sql = format!(
            "SELECT {} FROM emails WHERE tenant_id = ? AND id IN ({placeholders}) ORDER BY received_at DESC",
            cols!()
        );
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let params = std::iter::once(tenant).chain(ids.iter().copied());
        let rows = stmt.query_map(rusqlite::params_from_iter(params), Email::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn recent_ids(&self, tenant: i64, n: usize) -> Result<Vec<i64>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM emails WHERE tenant_id = ?1 ORDER BY received_at DESC LIMIT ?2",
        )?;
        let ids = stmt.query_map([tenant, n as i64], |r| r.get(0))?;
        Ok(ids.collect::<rusqlite::Result<_>>()?)
    }
}

fn insert_with(stmt: &mut rusqlite::CachedStatement<'_>, e: &NewEmail) -> rusqlite::Result<usize> {
    let size = (e.subject.len() + e.body.len()) as i64;
    stmt.execute(params![
        e.tenant_id,
        e.mailbox_id,
        e.sender,
        e.recipients,
        e.subject,
        e.body,
        e.sent_at,
        e.received_at,
        size,
        e.flags,
        e.labels
    ])
}

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
