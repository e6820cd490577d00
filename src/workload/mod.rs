//! Workloads: what profkit runs, measures and profiles.
//!
//! A [`Workload`] sets itself up at a data volume and seed, then performs
//! one operation per call, from one or many threads. Implement the trait for
//! your own code and every profkit feature (measured runs, CPU, heap and SQL
//! profiles, sweeps, reports) works on it; see `examples/custom_workload.rs`.

#[cfg(feature = "service")]
mod async_synthetic;
mod cache;
mod closures;
mod db_ops;
mod fixtures;
#[cfg(feature = "service")]
mod from_async_fn;
mod from_fn;
mod polls;
mod synthetic;
mod tenant;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::db::{DatabaseManager, DbConfig};

pub use self::closures::{Body, Closures};
pub use self::db_ops::DbWorkload;
#[cfg(feature = "service")]
pub use self::from_async_fn::{from_async_fn, AsyncBody, AsyncFnWorkload};
pub use self::from_fn::{from_fn, FnWorkload, SyncBody};
pub use self::polls::{defaults, PollTally};

/// Figures a workload reports about itself after a run (rows written, cache
/// size, …), by name.
pub type Metrics = BTreeMap<String, f64>;

/// Sizes a workload runs at unless told otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadDefaults {
    /// Data volume (emails in the store).
    pub rows: u64,
    /// Measured operations: about a second of work on this class of machine.
    pub ops: u64,
    /// Worker threads (an async workload's runtime workers).
    pub threads: usize,
    /// Operations in flight at once, for an async workload (a sync one
    /// has one per thread and ignores it).
    pub concurrency: usize,
}

impl Default for WorkloadDefaults {
    fn default() -> Self {
        WorkloadDefaults {
            rows: 100_000,
            ops: 1000,
            threads: 1,
            concurrency: 1,
        }
    }
}

/// What a workload is set up with.
#[derive(Clone, Debug)]
pub struct SetupEnv {
    /// Data volume.
    pub rows: u64,
    /// Seed of the data generator and of the workers' random streams.
    pub seed: u64,
    /// Worker threads that will call [`Workload::operation`] (an async
    /// workload's runtime workers).
    pub threads: usize,
    /// Operations an async workload keeps in flight (`--concurrency`);
    /// a sync workload has one per thread and ignores it.
    pub concurrency: usize,
    /// The database file to use.
    pub db_path: PathBuf,
    /// Where populated databases are kept for reuse (a copy of a populated
    /// template is much faster than populating again); `None` populates in place.
    pub template_dir: Option<PathBuf>,
    /// Install SQLite's statement trace hook on the database's connections.
    pub sql_trace: bool,
}

impl SetupEnv {
    /// The configuration of the database this environment names.
    pub fn db_config(&self) -> DbConfig {
        let mut config = DbConfig::new(&self.db_path);
        config.pool_size = (self.threads as u32 + 2).max(crate::db::defaults::POOL_SIZE);
        config.sql_trace = self.sql_trace;
        config
    }

    /// Attaches profkit's statement tracing to a connection your workload
    /// opened, when this run traces SQL (`profkit sql`, the SQL pass of
    /// `profkit profile`); otherwise leaves it untouched, so measured runs
    /// stay uninstrumented. Call it right after opening the connection.
    pub fn trace_sql(&self, conn: &rusqlite::Connection) {
        if self.sql_trace {
            crate::db::trace::install(conn);
        }
    }

    /// [`SetupEnv::trace_sql`] for a pool's connections, as the pool's
    /// connection initialiser: `SqliteConnectionManager::file(path)
    /// .with_init(env.connection_init())` with r2d2_sqlite.
    pub fn connection_init(
        &self,
    ) -> impl Fn(&mut rusqlite::Connection) -> rusqlite::Result<()> + Send + Sync + 'static {
        let trace = self.sql_trace;
        move |conn| {
            if trace {
                crate::db::trace::install(conn);
            }
            Ok(())
        }
    }

    /// Opens the database and makes sure it holds the dataset of
    /// `rows`/`seed`, copying a populated template when one is at hand.
    pub fn open_populated_db(&self) -> anyhow::Result<DatabaseManager> {
        if let Some(dir) = &self.template_dir {
            if !self.db_path.exists() {
                let template = template_path(dir, self.rows, self.seed);
                if !template.exists() {
                    build_template(&template, self.rows, self.seed)?;
                }
                std::fs::copy(&template, &self.db_path).with_context(|| {
                    format!(
                        "copying '{}' to '{}'",
                        template.display(),
                        self.db_path.display()
                    )
                })?;
            }
        }
        let db = DatabaseManager::open(self.db_config())?;
        db.populate(self.rows, self.seed)?;
        Ok(db)
    }
}

impl SetupEnv {
    /// Opens the populated dataset of `rows`/`seed` for a workload that
    /// only reads: one file shared by every such workload of the session
    /// (the template itself, under [`SetupEnv::template_dir`]), opened
    /// [`read_only`](DbConfig::read_only) so that none can write to what
    /// the others read. Writers use [`SetupEnv::open_populated_db`], which
    /// gives each its own copy. Without a template folder (a database the
    /// user named), the database is used in place as before.
    pub fn open_shared_db(&self) -> anyhow::Result<DatabaseManager> {
        let Some(dir) = &self.template_dir else {
            return self.open_populated_db();
        };
        let template = template_path(dir, self.rows, self.seed);
        if !template.exists() {
            build_template(&template, self.rows, self.seed)?;
        }
        let mut config = self.db_config();
        config.path = template;
        config.read_only = true;
        let db = DatabaseManager::open(config)?;
        anyhow::ensure!(
            db.populated()? == Some((self.rows, self.seed)),
            "the shared database '{}' does not hold the dataset of {} rows, seed {}",
            db.path().display(),
            self.rows,
            self.seed
        );
        Ok(db)
    }
}

/// The populated template of `rows`/`seed` in `dir`.
fn template_path(dir: &Path, rows: u64, seed: u64) -> PathBuf {
    dir.join(format!("emails-{rows}-{seed}.db"))
}

/// Populates a template database and checkpoints it into one file.
fn build_template(path: &Path, rows: u64, seed: u64) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    {
        let db = DatabaseManager::open(DbConfig::new(&partial))?;
        db.populate(rows, seed)?;
    }
    // With the pool closed, fold the WAL into the main file so that a copy
    // of that one file is the whole database.
    crate::db::sqlite_alloc::open(&partial)?.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    for suffix in ["-wal", "-shm"] {
        let mut p = partial.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    std::fs::rename(&partial, path)
        .with_context(|| format!("saving template '{}'", path.display()))?;
    Ok(())
}

/// A worker thread's context, passed to every operation it performs.
#[derive(Debug)]
pub struct WorkerCtx {
    /// Worker index, 0-based.
    pub thread: usize,
    /// Operations this worker has performed so far (warm-up included).
    pub op: u64,
    /// A random stream of this worker's own, seeded from the run's seed.
    pub rng: ChaCha8Rng,
    /// How an async workload's operations were polled, summed over this
    /// worker's operations (zero for a sync workload).
    pub polls: PollTally,
}

impl WorkerCtx {
    /// The context of worker `thread` in a run seeded with `seed`.
    pub fn new(thread: usize, seed: u64) -> WorkerCtx {
        WorkerCtx {
            thread,
            op: 0,
            rng: ChaCha8Rng::seed_from_u64(
                seed ^ (thread as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
            polls: PollTally::default(),
        }
    }
}

/// Something profkit can run, measure and profile.
pub trait Workload: Send + Sync {
    /// Short, kebab-case name (`point-read`).
    fn name(&self) -> &str;

    /// One line saying what an operation does.
    fn description(&self) -> &str;

    /// Sizes to run at when the user gives none.
    fn defaults(&self) -> WorkloadDefaults {
        WorkloadDefaults::default()
    }

    /// Prepares the data. Called once, before any operation.
    fn setup(&mut self, env: &SetupEnv) -> anyhow::Result<()>;

    /// Performs one operation. Called from many threads at once.
    fn operation(&self, ctx: &mut WorkerCtx) -> anyhow::Result<()>;

    /// Operations kept in flight at once, for a workload whose operations
    /// run on a runtime of its own ([`from_async_fn`]): the runner then
    /// calls [`Workload::operation`] from this many threads, each waiting
    /// for one operation, whatever `--threads` (the runtime's workers) is.
    /// `None` (a sync workload): one operation per thread.
    fn concurrency(&self) -> Option<usize> {
        None
    }

    /// The database under test, when there is one: profkit reads its pool
    /// and SQL statistics.
    fn database(&self) -> Option<&DatabaseManager> {
        None
    }

    /// Called once after the last operation: checks invariants (an `Err`
    /// fails the run, e.g. "lost 3 rows") and reports the workload's own figures.
    fn finish(&self) -> anyhow::Result<Metrics> {
        Ok(Metrics::new())
    }
}

/// The built-in async workloads (none without the `service` feature).
fn async_builtins() -> Vec<(&'static str, Factory)> {
    #[cfg(feature = "service")]
    return async_synthetic::builtins();
    #[cfg(not(feature = "service"))]
    Vec::new()
}

/// How the built-in lists name their constructors.
pub(crate) type Factory = fn() -> Box<dyn Workload>;

/// Makes a fresh instance of a workload: what every pass that runs a
/// workload more than once (sweeps, stress, leak checks) takes.
pub type Make<'a> = &'a dyn Fn() -> Box<dyn Workload>;

/// A registered constructor.
pub type Ctor = Arc<dyn Fn() -> Box<dyn Workload> + Send + Sync>;

/// The name in `names` closest to a mistyped `name`, if one is close
/// enough to be what was meant (Jaro–Winkler similarity ≥ 0.8, the
/// threshold clap uses for its own "a similar argument exists" tips).
pub fn closest<'a>(name: &str, names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    names
        .into_iter()
        .map(|n| (strsim::jaro_winkler(name, n), n))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n.to_string())
}

/// Errors of finding or registering a workload.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// No workload has this name.
    #[error("unknown workload '{name}'{}; valid names: {valid}", suggestion.as_ref().map(|s| format!(": did you mean '{s}'?")).unwrap_or_default())]
    Unknown {
        /// The name asked for.
        name: String,
        /// The registered name closest to it, when one is close.
        suggestion: Option<String>,
        /// The valid names, comma separated.
        valid: String,
    },
    /// Two workloads registered under one name.
    #[error("two workloads are registered as '{0}': give each a name of its own")]
    Duplicate(String),
    /// A workload whose `name()` differs from the name it is registered under.
    #[error("workload registered as '{registered}' calls itself '{named}': register it under its own name")]
    Misnamed {
        /// The registered name.
        registered: String,
        /// What `Workload::name` returns.
        named: String,
    },
}

/// One registered workload.
#[derive(Clone)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Makes an instance.
    pub ctor: Ctor,
    /// Whether the main job (`profkit profile` with no names) runs it.
    pub profiled: bool,
}

/// The workloads a binary knows, by name, in the order `list` shows them.
#[derive(Clone, Default)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.name))
            .finish()
    }
}

impl Registry {
    /// No workloads.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// profkit's built-in workloads; the synthetic test workloads are not
    /// part of the main job.
    pub fn builtins() -> Registry {
        let mut all: Vec<(&'static str, Factory)> = db_ops::builtins();
        all.push(("leaky-cache", || Box::new(cache::CacheWorkload::leaky())));
        all.push((
            "bounded-cache",
            || Box::new(cache::CacheWorkload::bounded()),
        ));
        all.push(("tenant-isolation", || {
            Box::new(tenant::TenantIsolation::default())
        }));
        let mut r = Registry::new();
        for (name, make) in all {
            r.push(name, Arc::new(make), true);
        }
        for (name, make) in synthetic::builtins()
            .into_iter()
            .chain(fixtures::builtins())
            .chain(async_builtins())
        {
            r.push(name, Arc::new(make), false);
        }
        r
    }

    fn push(&mut self, name: &str, ctor: Ctor, profiled: bool) {
        self.entries.push(Entry {
            name: name.to_string(),
            ctor,
            profiled,
        });
    }

    /// Registers a workload under `name` (which its `name()` must return);
    /// the main job runs it.
    pub fn register(
        &mut self,
        name: &str,
        ctor: impl Fn() -> Box<dyn Workload> + Send + Sync + 'static,
    ) -> Result<&mut Registry, WorkloadError> {
        if self.entries.iter().any(|e| e.name == name) {
            return Err(WorkloadError::Duplicate(name.to_string()));
        }
        self.push(name, Arc::new(ctor), true);
        Ok(self)
    }

    /// Every entry, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Every registered name, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    /// The names the main job runs.
    pub fn profiled_names(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.profiled)
            .map(|e| e.name.clone())
            .collect()
    }

    /// The constructor of `name`; an unknown name lists the registered ones.
    pub fn ctor(&self, name: &str) -> Result<Ctor, WorkloadError> {
        match self.entries.iter().find(|e| e.name == name) {
            Some(e) => Ok(e.ctor.clone()),
            None => Err(WorkloadError::Unknown {
                name: name.to_string(),
                suggestion: closest(name, self.entries.iter().map(|e| e.name.as_str())),
                valid: self
                    .entries
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// A fresh instance of `name`, checked to call itself by that name.
    pub fn get(&self, name: &str) -> Result<Box<dyn Workload>, WorkloadError> {
        let w = (self.ctor(name)?)();
        if w.name() != name {
            return Err(WorkloadError::Misnamed {
                registered: name.to_string(),
                named: w.name().to_string(),
            });
        }
        Ok(w)
    }
}

/// The built-in workload called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn Workload>, WorkloadError> {
    Registry::builtins().get(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_one_database_and_never_see_a_writers_rows() {
        let dir = tempfile::tempdir().unwrap();
        let env = |name: &str| SetupEnv {
            rows: 300,
            seed: 7,
            threads: 1,
            concurrency: 1,
            db_path: dir.path().join(format!("run-{name}.db")),
            template_dir: Some(dir.path().to_path_buf()),
            sql_trace: false,
        };
        let a = env("a").open_shared_db().unwrap();
        let b = env("b").open_shared_db().unwrap();
        assert_eq!(a.path(), b.path(), "one shared file");
        assert!(!env("a").db_path.exists(), "no copy for a reader");
        // A reader cannot write what the others read.
        let denied = a.conn().unwrap().execute("DELETE FROM emails", []);
        assert!(denied.is_err(), "a shared reader wrote");
        // A writer works on a copy of its own.
        let w = env("w").open_populated_db().unwrap();
        assert_ne!(w.path(), a.path());
        w.conn().unwrap().execute("DELETE FROM emails", []).unwrap();
        assert_eq!(w.count_emails().unwrap(), 0);
        assert_eq!(a.count_emails().unwrap(), 300);
        assert_eq!(
            env("c").open_shared_db().unwrap().count_emails().unwrap(),
            300
        );
    }

    #[test]
    fn names_are_unique_and_match() {
        let all = Registry::builtins();
        let mut seen = std::collections::HashSet::new();
        for e in all.entries() {
            assert!(seen.insert(e.name.clone()), "duplicate {}", e.name);
            let w = all.get(&e.name).unwrap();
            assert!(!w.description().is_empty());
        }
        for required in [
            "populate",
            "point-read",
            "random-emails",
            "random-emails-naive",
            "search-indexed",
            "search-like",
            "fts-search",
            "aggregate",
            "concurrent-write",
            "mixed",
            "n-plus-one",
            "n-plus-one-batched",
            "leaky-cache",
            "bounded-cache",
            "tenant-isolation",
        ] {
            assert!(seen.contains(required), "missing {required}");
        }
        assert!(!all.profiled_names().contains(&"noop".to_string()));
    }

    #[test]
    fn a_name_registered_twice_is_refused() {
        let mut r = Registry::new();
        r.register("noop", || by_name("noop").unwrap()).unwrap();
        let e = r.register("noop", || by_name("noop").unwrap()).unwrap_err();
        assert!(e.to_string().contains("'noop'"), "{e}");
        r.register("other", || by_name("noop").unwrap()).unwrap();
        let e = r.get("other").err().unwrap().to_string();
        assert!(e.contains("calls itself 'noop'"), "{e}");
    }

    #[test]
    fn your_own_connections_and_pools_are_traced_only_when_the_run_traces_sql() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = SetupEnv {
            rows: 0,
            seed: 1,
            threads: 1,
            concurrency: 1,
            db_path: dir.path().join("own.db"),
            template_dir: None,
            sql_trace: false,
        };
        let statements = |env: &SetupEnv| {
            let before = crate::db::trace::thread_counts().statements;
            let conn = crate::db::sqlite_alloc::open(&env.db_path).unwrap();
            env.trace_sql(&conn);
            conn.execute_batch("CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1)")
                .unwrap();
            let manager = r2d2_sqlite::SqliteConnectionManager::file(&env.db_path)
                .with_init(env.connection_init());
            let pool = r2d2::Pool::builder().max_size(1).build(manager).unwrap();
            let n: i64 = pool
                .get()
                .unwrap()
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert!(n >= 1);
            crate::db::trace::thread_counts().statements - before
        };
        assert_eq!(statements(&env), 0, "traced without sql_trace");
        env.sql_trace = true;
        // Two statements of the batch and the pool's query.
        assert_eq!(statements(&env), 3);
        assert!(crate::db::trace::traced_files().contains(&env.db_path));
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let err = by_name("zzz").err().unwrap().to_string();
        assert!(err.contains("unknown workload 'zzz'"));
        assert!(!err.contains("did you mean"), "{err}");
        assert!(err.contains("point-read"));
    }

    #[test]
    fn a_mistyped_name_suggests_the_closest_one() {
        let err = by_name("n-plus-on").err().unwrap().to_string();
        assert!(err.contains("did you mean 'n-plus-one'?"), "{err}");
        let err = by_name("pointread").err().unwrap().to_string();
        assert!(err.contains("did you mean 'point-read'?"), "{err}");
    }
}
