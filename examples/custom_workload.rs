//! Measuring your own code with profkit: implement [`Workload`] and hand it
//! to a [`Session`]. Everything profkit does for the built-ins (latency
//! histogram, CPU time, memory, run folders) then works for yours.
//!
//! `cargo run --release --example custom_workload`

use profkit::workload::{SetupEnv, WorkerCtx, Workload, WorkloadDefaults};
use profkit::{RunOptions, Session, SessionConfig};
use rand::Rng;

/// Your code under test: here, sorting a vector of random numbers.
struct SortNumbers {
    len: usize,
}

impl Workload for SortNumbers {
    fn name(&self) -> &str {
        "sort-numbers"
    }

    fn description(&self) -> &str {
        "sort a vector of random u64s"
    }

    fn defaults(&self) -> WorkloadDefaults {
        WorkloadDefaults {
            rows: 0,
            ops: 20_000,
            threads: 2,
        }
    }

    fn setup(&mut self, env: &SetupEnv) -> anyhow::Result<()> {
        // A database-backed workload would call `env.open_populated_db()` here.
        self.len = 1_000 + env.rows as usize;
        Ok(())
    }

    fn operation(&self, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        let mut v: Vec<u64> = (0..self.len).map(|_| ctx.rng.random()).collect();
        v.sort_unstable();
        anyhow::ensure!(v.windows(2).all(|w| w[0] <= w[1]), "not sorted");
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let mut session = Session::new(SessionConfig::default())?;
    let outcome = session.run(Box::new(SortNumbers { len: 0 }), &RunOptions::default())?;
    println!("{}", profkit::render::table::bench_table(&outcome.bench));
    println!("wrote {}", outcome.dir.path.display());
    Ok(())
}
