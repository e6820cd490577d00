//! Opening a database: the checks that refuse what is not ours, the
//! connection settings, the pool, and write transactions.

use super::*;

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
    // The advisor's trial PRAGMAs, last, so they win.
    super::trial::apply(conn)?;
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

    pub(super) fn refresh_max_id(&self) -> Result<()> {
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
}
