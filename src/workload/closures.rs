//! What [`super::from_fn`] and [`super::from_async_fn`] share: a workload
//! made of closures (name, description, defaults, an optional finish and
//! database accessor, their builder methods and most of [`Workload`]),
//! around a [`Body`] that holds the state and runs operations, sync
//! ([`super::SyncBody`]) or on a runtime of its own
//! ([`super::AsyncBody`]).

use std::sync::Arc;

use super::{Metrics, SetupEnv, WorkerCtx, Workload, WorkloadDefaults};
use crate::db::DatabaseManager;

type Finish<S> = dyn Fn(&S) -> anyhow::Result<Metrics> + Send + Sync;
type Database<S> = dyn Fn(&S) -> Option<&DatabaseManager> + Send + Sync;

/// How a closure workload holds its state `S` and runs one operation.
/// Implemented by profkit's sync and async bodies only.
pub trait Body<S>: Send + Sync {
    /// The same closures, not set up (what a clone of the workload gets).
    fn fresh(&self) -> Self
    where
        Self: Sized;
    /// Builds the state from the environment.
    fn setup(&mut self, name: &str, env: &SetupEnv) -> anyhow::Result<()>;
    /// One operation; an error naming `name` when not set up.
    fn operation(&self, name: &str, ctx: &mut WorkerCtx) -> anyhow::Result<()>;
    /// The state, once set up.
    fn state(&self) -> Option<&S>;
    /// Operations in flight ([`Workload::concurrency`]), given the default.
    fn concurrency(&self, _default: usize) -> Option<usize> {
        None
    }
}

/// A workload made of closures around a [`Body`]; see
/// [`super::FnWorkload`] and [`super::AsyncFnWorkload`]. Cloning gives a
/// fresh, not yet set up instance (what a registry's constructor needs).
pub struct Closures<S, B> {
    name: String,
    description: String,
    pub(super) defaults: WorkloadDefaults,
    finish: Option<Arc<Finish<S>>>,
    database: Option<Arc<Database<S>>>,
    pub(super) body: B,
}

impl<S, B> Closures<S, B> {
    /// A workload called `name`, described as `{name} ({kind})`.
    pub(super) fn new(name: &str, kind: &str, defaults: WorkloadDefaults, body: B) -> Self {
        Closures {
            name: name.to_string(),
            description: format!("{name} ({kind})"),
            defaults,
            finish: None,
            database: None,
            body,
        }
    }

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

    /// Threads when the user gives no `--threads`: worker threads of a
    /// sync workload (default 1), runtime workers of an async one (default
    /// [`super::defaults::RUNTIME_WORKERS`]).
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

impl<S, B: Body<S>> Clone for Closures<S, B> {
    fn clone(&self) -> Self {
        Closures {
            name: self.name.clone(),
            description: self.description.clone(),
            defaults: self.defaults,
            finish: self.finish.clone(),
            database: self.database.clone(),
            body: self.body.fresh(),
        }
    }
}

impl<S: Send + Sync, B: Body<S>> Workload for Closures<S, B> {
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
        self.body.setup(&self.name, env)
    }

    fn operation(&self, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        self.body.operation(&self.name, ctx)
    }

    fn concurrency(&self) -> Option<usize> {
        self.body.concurrency(self.defaults.concurrency)
    }

    fn database(&self) -> Option<&DatabaseManager> {
        let f = self.database.as_ref()?;
        f(self.body.state()?)
    }

    fn finish(&self) -> anyhow::Result<Metrics> {
        match (&self.finish, self.body.state()) {
            (Some(f), Some(s)) => f(s),
            _ => Ok(Metrics::new()),
        }
    }
}

/// The error of an operation before setup.
pub(super) fn not_set_up(name: &str) -> anyhow::Error {
    anyhow::anyhow!("workload '{name}' was not set up")
}
