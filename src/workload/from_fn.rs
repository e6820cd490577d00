//! Workloads from closures: a setup that builds some state and an operation
//! that uses it, for when implementing [`Workload`] is more than the job
//! needs.
//!
//! ```
//! use profkit::workload::{from_fn, Workload};
//!
//! let w = from_fn(
//!     "sum-squares",
//!     |env| Ok((0..1_000 + env.rows).collect::<Vec<u64>>()),
//!     |v, _ctx| {
//!         std::hint::black_box(v.iter().map(|x| x * x).sum::<u64>());
//!         Ok(())
//!     },
//! )
//! .describe("sum the squares of a vector")
//! .ops(10_000);
//! assert_eq!(w.name(), "sum-squares");
//! ```

use std::sync::Arc;

use super::{Metrics, SetupEnv, WorkerCtx, Workload, WorkloadDefaults};
use crate::db::DatabaseManager;

type Setup<S> = dyn Fn(&SetupEnv) -> anyhow::Result<S> + Send + Sync;
type Operation<S> = dyn Fn(&S, &mut WorkerCtx) -> anyhow::Result<()> + Send + Sync;
type Finish<S> = dyn Fn(&S) -> anyhow::Result<Metrics> + Send + Sync;
type Database<S> = dyn Fn(&S) -> Option<&DatabaseManager> + Send + Sync;

/// A workload made of closures; see [`from_fn`]. Cloning gives a fresh,
/// not yet set up instance (what a registry's constructor needs).
pub struct FnWorkload<S> {
    name: String,
    description: String,
    defaults: WorkloadDefaults,
    setup: Arc<Setup<S>>,
    operation: Arc<Operation<S>>,
    finish: Option<Arc<Finish<S>>>,
    database: Option<Arc<Database<S>>>,
    state: Option<S>,
}

/// A workload called `name` whose `setup` builds its state `S` from the
/// environment (open your database at `env.db_path` and call
/// [`SetupEnv::trace_sql`] on its connections) and whose `operation` runs
/// one operation against that state, from any number of threads.
pub fn from_fn<S: Send + Sync + 'static>(
    name: &str,
    setup: impl Fn(&SetupEnv) -> anyhow::Result<S> + Send + Sync + 'static,
    operation: impl Fn(&S, &mut WorkerCtx) -> anyhow::Result<()> + Send + Sync + 'static,
) -> FnWorkload<S> {
    FnWorkload {
        name: name.to_string(),
        description: format!("{name} (closure workload)"),
        defaults: WorkloadDefaults::default(),
        setup: Arc::new(setup),
        operation: Arc::new(operation),
        finish: None,
        database: None,
        state: None,
    }
}

impl<S> Clone for FnWorkload<S> {
    fn clone(&self) -> Self {
        FnWorkload {
            name: self.name.clone(),
            description: self.description.clone(),
            defaults: self.defaults,
            setup: self.setup.clone(),
            operation: self.operation.clone(),
            finish: self.finish.clone(),
            database: self.database.clone(),
            state: None,
        }
    }
}

impl<S> FnWorkload<S> {
    /// The line `profkit list` shows.
    pub fn describe(mut self, text: &str) -> Self {
        self.description = text.to_string();
        self
    }

    /// Data volume when the user gives no `--rows` (default 100,000).
    pub fn rows(mut self, rows: u64) -> Self {
        self.defaults.rows = rows;
        self
    }

    /// Measured operations when the user gives no `--ops` (default 1,000).
    pub fn ops(mut self, ops: u64) -> Self {
        self.defaults.ops = ops;
        self
    }

    /// Worker threads when the user gives no `--threads` (default 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.defaults.threads = threads;
        self
    }

    /// Called after the last operation: check invariants, report figures.
    pub fn on_finish(
        mut self,
        finish: impl Fn(&S) -> anyhow::Result<Metrics> + Send + Sync + 'static,
    ) -> Self {
        self.finish = Some(Arc::new(finish));
        self
    }

    /// The profkit [`DatabaseManager`] in the state, if it holds one (its
    /// pool figures then appear in the run).
    pub fn with_database(
        mut self,
        database: impl Fn(&S) -> Option<&DatabaseManager> + Send + Sync + 'static,
    ) -> Self {
        self.database = Some(Arc::new(database));
        self
    }
}

impl<S: Send + Sync> Workload for FnWorkload<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn defaults(&self) -> WorkloadDefaults {
        self.defaults
    }

    fn setup(&mut self, env: &SetupEnv) -> anyhow::Result<()> {
        self.state = Some((self.setup)(env)?);
        Ok(())
    }

    fn operation(&self, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        let state = self
            .state
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("workload '{}' was not set up", self.name))?;
        (self.operation)(state, ctx)
    }

    fn database(&self) -> Option<&DatabaseManager> {
        let f = self.database.as_ref()?;
        f(self.state.as_ref()?)
    }

    fn finish(&self) -> anyhow::Result<Metrics> {
        match (&self.finish, &self.state) {
            (Some(f), Some(s)) => f(s),
            _ => Ok(Metrics::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn env() -> SetupEnv {
        SetupEnv {
            rows: 10,
            seed: 1,
            threads: 1,
            concurrency: 1,
            db_path: std::env::temp_dir().join("profkit-from-fn-unused.db"),
            template_dir: None,
            sql_trace: false,
        }
    }

    #[test]
    fn setup_builds_the_state_operations_use_and_a_clone_starts_fresh() {
        let calls = Arc::new(AtomicU64::new(0));
        let seen = calls.clone();
        let mut w = from_fn(
            "count",
            |env| Ok(env.rows * 2),
            move |n, _ctx| {
                seen.fetch_add(*n, Ordering::Relaxed);
                Ok(())
            },
        )
        .ops(7)
        .on_finish(|n| Ok(Metrics::from([("state".to_string(), *n as f64)])));
        assert_eq!(w.defaults().ops, 7);
        let fresh = w.clone();
        let mut ctx = WorkerCtx::new(0, 1);
        assert!(w.operation(&mut ctx).is_err(), "no operation before setup");
        w.setup(&env()).unwrap();
        w.operation(&mut ctx).unwrap();
        w.operation(&mut ctx).unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 40);
        assert_eq!(Workload::finish(&w).unwrap()["state"], 20.0);
        assert!(fresh.state.is_none() && w.clone().state.is_none());
    }
}
