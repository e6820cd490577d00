//! Async workloads from closures: a setup future that builds some state and
//! an operation that returns a future using it, run on a tokio
//! multi-thread runtime of the workload's own.
//!
//! `--threads` is the runtime's worker count and `--concurrency` the
//! operations in flight at once: the runner waits for each operation on a
//! thread of its own, so an operation's latency runs from its spawn to its
//! end, one per operation. Every future is polled through a meter that
//! times each poll (busy) against the operation's latency (the rest is
//! awaiting, idle) and carries the SQL statements and database waits its
//! polls ran on a runtime worker back to the runner, so the SQL pass and
//! the latency breakdown see them.
//!
//! ```
//! use profkit::workload::{from_async_fn, Workload};
//!
//! let w = from_async_fn(
//!     "sleepy",
//!     |env| async move { Ok(env.rows) },
//!     |rows, _ctx| async move {
//!         tokio::time::sleep(std::time::Duration::from_micros(*rows)).await;
//!         Ok(())
//!     },
//! )
//! .describe("sleep a microsecond per row")
//! .concurrency(32);
//! assert_eq!(w.name(), "sleepy");
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::closures::{not_set_up, Body, Closures};
use super::{PollTally, SetupEnv, WorkerCtx, WorkloadDefaults};
use crate::db::{trace, waits};

type BoxFuture<T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send>>;
type LocalFuture<T> = Pin<Box<dyn Future<Output = anyhow::Result<T>>>>;
type Setup<S> = dyn Fn(SetupEnv) -> LocalFuture<S> + Send + Sync;
type Operation<S> = dyn Fn(Arc<S>, &mut WorkerCtx) -> BoxFuture<()> + Send + Sync;

/// How long dropping a workload waits for its runtime's tasks to end.
const SHUTDOWN: Duration = Duration::from_secs(2);

/// An async workload made of closures; see [`from_async_fn`]. Cloning
/// gives a fresh, not yet set up instance (no runtime, no state).
pub type AsyncFnWorkload<S> = Closures<S, AsyncBody<S>>;

/// The closures and, once set up, the runtime and state of an
/// [`AsyncFnWorkload`].
pub struct AsyncBody<S> {
    setup: Arc<Setup<S>>,
    operation: Arc<Operation<S>>,
    running: Option<Running<S>>,
}

/// A set-up workload: its runtime and state.
struct Running<S> {
    runtime: Option<tokio::runtime::Runtime>,
    state: Option<Arc<S>>,
    concurrency: usize,
    trace_sql: bool,
}

impl<S> Drop for Running<S> {
    fn drop(&mut self) {
        // The state (a connection pool, say) is dropped inside its runtime,
        // then the runtime without waiting for ever on a stuck task.
        if let Some(rt) = self.runtime.take() {
            {
                let _inside = rt.enter();
                self.state = None;
            }
            rt.shutdown_timeout(SHUTDOWN);
        }
    }
}

/// An async workload called `name`: `setup` builds its state `S` from the
/// environment on the workload's runtime (open your pool at
/// `env.db_path`), and `operation` returns the future of one operation
/// against that state (draw what it needs from the worker's context
/// first: the future must own what it uses). Defaults: [`super::defaults::RUNTIME_WORKERS`] runtime workers,
/// [`super::defaults::CONCURRENCY`] operations in flight.
///
/// Setup runs the runtime's `block_on`: do not call a profkit pass from
/// inside another tokio runtime.
pub fn from_async_fn<S, SF, OF>(
    name: &str,
    setup: impl Fn(SetupEnv) -> SF + Send + Sync + 'static,
    operation: impl Fn(Arc<S>, &mut WorkerCtx) -> OF + Send + Sync + 'static,
) -> AsyncFnWorkload<S>
where
    S: Send + Sync + 'static,
    SF: Future<Output = anyhow::Result<S>> + 'static,
    OF: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let defaults = WorkloadDefaults {
        threads: super::defaults::RUNTIME_WORKERS,
        concurrency: super::defaults::CONCURRENCY,
        ..WorkloadDefaults::default()
    };
    let body = AsyncBody {
        setup: Arc::new(move |env| Box::pin(setup(env)) as LocalFuture<S>),
        operation: Arc::new(move |state, ctx| Box::pin(operation(state, ctx)) as BoxFuture<()>),
        running: None,
    };
    Closures::new(name, "async closure workload", defaults, body)
}

impl<S> AsyncFnWorkload<S> {
    /// Operations in flight when the user gives no `--concurrency`
    /// (default [`super::defaults::CONCURRENCY`]).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.defaults.concurrency = concurrency;
        self
    }
}

impl<S> AsyncBody<S> {
    fn running(
        &self,
        name: &str,
    ) -> anyhow::Result<(&tokio::runtime::Runtime, &Arc<S>, &Running<S>)> {
        let r = self.running.as_ref().ok_or_else(|| not_set_up(name))?;
        match (&r.runtime, &r.state) {
            (Some(rt), Some(state)) => Ok((rt, state, r)),
            _ => Err(not_set_up(name)),
        }
    }
}

impl<S: Send + Sync + 'static> Body<S> for AsyncBody<S> {
    fn fresh(&self) -> Self {
        AsyncBody {
            setup: self.setup.clone(),
            operation: self.operation.clone(),
            running: None,
        }
    }

    fn setup(&mut self, name: &str, env: &SetupEnv) -> anyhow::Result<()> {
        anyhow::ensure!(
            tokio::runtime::Handle::try_current().is_err(),
            "workload '{name}' is set up inside a tokio runtime: run profkit from a plain thread (not from #[tokio::main])"
        );
        self.running = None;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(env.threads.max(1))
            .thread_name_fn(|| {
                static NEXT: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("pk-async-{n}")
            })
            .enable_all()
            .build()?;
        let state = runtime.block_on((self.setup)(env.clone()))?;
        self.running = Some(Running {
            runtime: Some(runtime),
            state: Some(Arc::new(state)),
            concurrency: env.concurrency.max(1),
            trace_sql: env.sql_trace,
        });
        Ok(())
    }

    fn operation(&self, name: &str, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        let (rt, state, running) = self.running(name)?;
        let future = (self.operation)(state.clone(), ctx);
        let metered = Metered {
            inner: future,
            trace_sql: running.trace_sql,
            label: "",
            meter: Meter::default(),
        };
        let (result, meter) = match rt.block_on(rt.spawn(metered)) {
            Ok(done) => done,
            Err(e) if e.is_panic() => {
                return Err(anyhow::anyhow!(
                    "operation of '{name}' panicked: {}",
                    panic_message(e.into_panic())
                ))
            }
            Err(e) => return Err(anyhow::anyhow!("operation of '{name}': {e}")),
        };
        meter.credit(ctx);
        result
    }

    fn state(&self) -> Option<&S> {
        self.running.as_ref()?.state.as_deref()
    }

    fn concurrency(&self, default: usize) -> Option<usize> {
        Some(self.running.as_ref().map_or(default, |r| r.concurrency))
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// What one operation's polls did on the runtime's workers.
#[derive(Default)]
struct Meter {
    polls: PollTally,
    sql: trace::ThreadSqlCounts,
    statements: trace::Tallies,
    waits: waits::ThreadWaits,
}

impl Meter {
    /// Hands the operation's figures to the runner's thread.
    fn credit(self, ctx: &mut WorkerCtx) {
        ctx.polls.add(&self.polls);
        trace::credit_thread(self.sql, &self.statements);
        waits::credit_thread(self.waits);
    }
}

/// A future timed poll by poll, taking the SQL figures and database waits
/// each poll left on its worker thread.
struct Metered {
    inner: BoxFuture<()>,
    trace_sql: bool,
    /// The operation label ([`trace::set_operation`]) the future last set.
    label: &'static str,
    meter: Meter,
}

impl Future for Metered {
    type Output = (anyhow::Result<()>, Meter);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let worker_label = trace::operation();
        if this.trace_sql {
            trace::set_operation(this.label);
        }
        let sql_before = trace::thread_counts();
        let waits_before = waits::thread_waits();
        let began = Instant::now();
        let poll = this.inner.as_mut().poll(cx);
        let busy = began.elapsed().as_nanos() as u64;
        let m = &mut this.meter;
        m.polls.polls += 1;
        m.polls.busy += busy;
        m.polls.longest = m.polls.longest.max(busy);
        if busy >= super::defaults::LONG_POLL.as_nanos() as u64 {
            m.polls.long += 1;
        }
        let w = waits::thread_waits().since(&waits_before);
        m.waits.pool_wait += w.pool_wait;
        m.waits.lock_wait += w.lock_wait;
        m.waits.held += w.held;
        if this.trace_sql {
            let after = trace::thread_counts();
            m.sql.statements += after.statements.saturating_sub(sql_before.statements);
            m.sql.nanos += after.nanos.saturating_sub(sql_before.nanos);
            m.sql.nested += after.nested.saturating_sub(sql_before.nested);
            let tallies = trace::take_thread_tallies();
            if !tallies.is_empty() {
                trace::merge_tallies(&mut m.statements, &tallies);
            }
            this.label = trace::operation();
            trace::set_operation(worker_label);
        }
        match poll {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                m.polls.ops = 1;
                Poll::Ready((result, std::mem::take(m)))
            }
        }
    }
}
