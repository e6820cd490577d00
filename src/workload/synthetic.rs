//! Synthetic workloads with no database, for testing and calibrating
//! profkit itself: a no-op (harness overhead), a hot pure-Rust function
//! (CPU attribution) and an allocation churn (allocator cost), plus hidden
//! ones for testing load runs: a workload that stalls now and then
//! (coordinated omission), one with a fixed capacity (stress breaking
//! point) and one whose cost grows linearly with `rows` (complexity fits).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Factory, SetupEnv, WorkerCtx, Workload, WorkloadDefaults};

/// Every this many operations (over all threads), `stall` sleeps.
pub const STALL_EVERY: u64 = 200;
/// How long `stall` sleeps.
pub const STALL_PAUSE: Duration = Duration::from_millis(50);
/// Service time of the single FIFO server behind `capacity`: it completes
/// at most 1 ÷ this many operations per second, however many threads ask.
pub const CAPACITY_SERVICE: Duration = Duration::from_millis(1);

pub(super) fn builtins() -> Vec<(&'static str, Factory)> {
    vec![
        ("noop", || Box::new(Synthetic::Noop)),
        ("hot-loop", || Box::new(Synthetic::HotLoop)),
        ("alloc-churn", || Box::new(Synthetic::AllocChurn)),
        ("stall", || {
            Box::new(Synthetic::Stall {
                count: AtomicU64::new(0),
            })
        }),
        ("capacity", || {
            Box::new(Synthetic::Capacity {
                base: Instant::now(),
                next_free: AtomicU64::new(0),
            })
        }),
        ("linear-scan", || {
            Box::new(Synthetic::LinearScan { rows: 0 })
        }),
    ]
}

enum Synthetic {
    Noop,
    HotLoop,
    AllocChurn,
    /// Does nothing, except that every [`STALL_EVERY`]th operation sleeps
    /// [`STALL_PAUSE`].
    Stall {
        count: AtomicU64,
    },
    /// A single FIFO server with a fixed service time: `next_free` is when
    /// (nanoseconds after `base`) the server is next idle.
    Capacity {
        base: Instant,
        next_free: AtomicU64,
    },
    /// Hashes `rows` integers: cost grows linearly with the data volume.
    LinearScan {
        rows: u64,
    },
}

/// Takes the next slot of the FIFO server and returns when it ends.
fn reserve(next_free: &AtomicU64, now: u64, service: u64) -> u64 {
    let mut current = next_free.load(Ordering::Relaxed);
    loop {
        let end = current.max(now) + service;
        match next_free.compare_exchange_weak(current, end, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return end,
            Err(seen) => current = seen,
        }
    }
}

/// Work proportional to `n`.
#[inline(never)]
fn scan(n: u64, seed: u64) -> u64 {
    let mut x = seed | 1;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(i);
    }
    x
}

/// A deliberately hot pure-Rust function: a few thousand rounds of integer
/// hashing. Never inlined, so it shows as its own frame; and it calls
/// nothing, not even a range iterator, so it is the hottest self frame by
/// construction in every build (a debug build does not inline
/// `Range::next`, which then out-weighs the loop body it drives).
#[inline(never)]
pub fn profkit_hot_function(seed: u64) -> u64 {
    let mut x = seed;
    let mut i = 0u64;
    while i < 20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(i);
        i += 1;
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
            Synthetic::Stall { .. } => "stall",
            Synthetic::Capacity { .. } => "capacity",
            Synthetic::LinearScan { .. } => "linear-scan",
        }
    }

    fn description(&self) -> &str {
        match self {
            Synthetic::Noop => "does nothing (measures profkit's own overhead per operation)",
            Synthetic::HotLoop => "a hot pure-Rust function (profkit_hot_function), no database",
            Synthetic::AllocChurn => "allocates and frees 128 small blocks, no database",
            Synthetic::Stall { .. } => {
                "does nothing, but every 200th operation stalls 50 ms (coordinated-omission test)"
            }
            Synthetic::Capacity { .. } => {
                "a single FIFO server with 1 ms service time: at most 1,000 ops/s (stress test)"
            }
            Synthetic::LinearScan { .. } => {
                "hashes `rows` integers per operation: cost linear in rows (complexity-fit test)"
            }
        }
    }

    fn defaults(&self) -> WorkloadDefaults {
        let (rows, ops) = match self {
            Synthetic::Noop => (0, 1_000_000),
            Synthetic::HotLoop => (0, 50_000),
            Synthetic::AllocChurn => (0, 100_000),
            Synthetic::Stall { .. } => (0, 10_000),
            Synthetic::Capacity { .. } => (0, 1000),
            Synthetic::LinearScan { .. } => (10_000, 10_000),
        };
        WorkloadDefaults {
            rows,
            ops,
            threads: 1,
            ..WorkloadDefaults::default()
        }
    }

    fn setup(&mut self, env: &SetupEnv) -> anyhow::Result<()> {
        if let Synthetic::LinearScan { rows } = self {
            *rows = env.rows;
        }
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
            Synthetic::Stall { count } => {
                if count.fetch_add(1, Ordering::Relaxed) % STALL_EVERY == STALL_EVERY - 1 {
                    std::thread::sleep(STALL_PAUSE);
                }
            }
            Synthetic::Capacity { base, next_free } => {
                let service = CAPACITY_SERVICE.as_nanos() as u64;
                let now = base.elapsed().as_nanos() as u64;
                let end = reserve(next_free, now, service);
                let wait = end.saturating_sub(base.elapsed().as_nanos() as u64);
                if wait > 0 {
                    std::thread::sleep(Duration::from_nanos(wait));
                }
            }
            Synthetic::LinearScan { rows } => {
                black_box(scan(*rows, black_box(ctx.op)));
            }
        }
        Ok(())
    }
}
