//! A built-in async workload, outside the main job: what the tests of
//! async runs (and anyone trying `--concurrency`) use without a harness of
//! their own. Each operation hashes (busy, in a poll), reads one row
//! through the database's pool (in the same poll: blocking, but short),
//! then sleeps on the runtime's timer (awaiting).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::synthetic::profkit_hot_function;
use super::{from_async_fn, Factory, SetupEnv, WorkerCtx};
use crate::db::{DatabaseManager, Scope};

/// How long an `async-sleep` operation awaits the timer.
pub const SLEEP: Duration = Duration::from_micros(500);

pub(super) fn builtins() -> Vec<(&'static str, Factory)> {
    vec![("async-sleep", || {
        Box::new(
            from_async_fn("async-sleep", setup, operation)
                .describe("async: hash, read one row, then await a 0.5 ms timer (tokio)")
                .rows(1000)
                .ops(2000)
                .with_database(|s: &Rows| Some(&s.0)),
        )
    })]
}

/// The database and its row count.
type Rows = (DatabaseManager, u64);

async fn setup(env: SetupEnv) -> anyhow::Result<Rows> {
    Ok((env.open_shared_db()?, env.rows))
}

fn operation(
    state: Arc<Rows>,
    ctx: &mut WorkerCtx,
) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static {
    let id = ctx.rng.random_range(1..=state.1.max(1) as i64);
    let seed = ctx.op;
    async move {
        std::hint::black_box(profkit_hot_function(seed));
        state.0.get_email(Scope::All, id)?;
        tokio::time::sleep(SLEEP).await;
        Ok(())
    }
}
