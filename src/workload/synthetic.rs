//! Synthetic workloads with no database, for testing and calibrating
//! profkit itself: a no-op (harness overhead), a hot pure-Rust function
//! (CPU attribution) and an allocation churn (allocator cost).

use std::hint::black_box;

use super::{Factory, SetupEnv, WorkerCtx, Workload, WorkloadDefaults};

/// Names of the synthetic workloads (left out of `profkit profile`).
pub const NAMES: &[&str] = &["noop", "hot-loop", "alloc-churn"];

pub(super) fn builtins() -> Vec<(&'static str, Factory)> {
    vec![
        ("noop", || Box::new(Synthetic::Noop)),
        ("hot-loop", || Box::new(Synthetic::HotLoop)),
        ("alloc-churn", || Box::new(Synthetic::AllocChurn)),
    ]
}

enum Synthetic {
    Noop,
    HotLoop,
    AllocChurn,
}

/// A deliberately hot pure-Rust function: a few thousand rounds of integer
/// hashing. Never inlined, so it shows as its own frame.
#[inline(never)]
pub fn profkit_hot_function(seed: u64) -> u64 {
    let mut x = seed;
    for i in 0..20_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(i);
    }
    x
}

/// Allocates and frees a spread of small and medium blocks.
#[inline(never)]
fn churn(seed: u64) -> usize {
    let mut total = 0;
    for i in 0..64u64 {
        let len = 16 + ((seed.wrapping_mul(31).wrapping_add(i * 97)) % 2048) as usize;
        let v: Vec<u8> = vec![i as u8; len];
        total += black_box(v).len();
        let s = format!("item-{seed}-{i}");
        total += black_box(s).len();
    }
    total
}

impl Workload for Synthetic {
    fn name(&self) -> &str {
        match self {
            Synthetic::Noop => "noop",
            Synthetic::HotLoop => "hot-loop",
            Synthetic::AllocChurn => "alloc-churn",
        }
    }

    fn description(&self) -> &str {
        match self {
            Synthetic::Noop => "does nothing (measures profkit's own overhead per operation)",
            Synthetic::HotLoop => "a hot pure-Rust function (profkit_hot_function), no database",
            Synthetic::AllocChurn => "allocates and frees 128 small blocks, no database",
        }
    }

    fn defaults(&self) -> WorkloadDefaults {
        let ops = match self {
            Synthetic::Noop => 1_000_000,
            Synthetic::HotLoop => 50_000,
            Synthetic::AllocChurn => 100_000,
        };
        WorkloadDefaults {
            rows: 0,
            ops,
            threads: 1,
        }
    }

    fn setup(&mut self, _env: &SetupEnv) -> anyhow::Result<()> {
        Ok(())
    }

    fn operation(&self, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        match self {
            Synthetic::Noop => {}
            Synthetic::HotLoop => {
                black_box(profkit_hot_function(black_box(ctx.op)));
            }
            Synthetic::AllocChurn => {
                black_box(churn(ctx.op));
            }
        }
        Ok(())
    }
}
