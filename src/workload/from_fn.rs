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

use super::closures::{not_set_up, Body, Closures};
use super::{SetupEnv, WorkerCtx, WorkloadDefaults};

type Setup<S> = dyn Fn(&SetupEnv) -> anyhow::Result<S> + Send + Sync;
type Operation<S> = dyn Fn(&S, &mut WorkerCtx) -> anyhow::Result<()> + Send + Sync;

/// A workload made of closures; see [`from_fn`]. Cloning gives a fresh,
/// not yet set up instance (what a registry's constructor needs).
pub type FnWorkload<S> = Closures<S, SyncBody<S>>;

/// The state and closures of a [`FnWorkload`]: operations run on the
/// runner's threads.
pub struct SyncBody<S> {
    setup: Arc<Setup<S>>,
    operation: Arc<Operation<S>>,
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
    let body = SyncBody {
        setup: Arc::new(setup),
        operation: Arc::new(operation),
        state: None,
    };
    Closures::new(name, "closure workload", WorkloadDefaults::default(), body)
}

impl<S: Send + Sync> Body<S> for SyncBody<S> {
    fn fresh(&self) -> Self {
        SyncBody {
            setup: self.setup.clone(),
            operation: self.operation.clone(),
            state: None,
        }
    }

    fn setup(&mut self, _name: &str, env: &SetupEnv) -> anyhow::Result<()> {
        self.state = Some((self.setup)(env)?);
        Ok(())
    }

    fn operation(&self, name: &str, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        let state = self.state.as_ref().ok_or_else(|| not_set_up(name))?;
        (self.operation)(state, ctx)
    }

    fn state(&self) -> Option<&S> {
        self.state.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Metrics, Workload};
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
        assert!(fresh.body.state.is_none() && w.clone().body.state.is_none());
    }
}
