#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod alloc;
pub mod analyze;
pub mod cli;
pub mod db;
pub mod measure;
pub mod passes;
pub mod profile;
pub mod render;
#[cfg(feature = "service")]
pub mod serve;
#[cfg(feature = "service")]
pub mod service;
pub mod store;
pub mod units;
pub mod unwind;
pub mod workload;

pub use cli::Harness;
pub use db::{DatabaseManager, DbConfig, Scope};
pub use measure::{BenchResult, RunOptions, RunPlan, Stop, Warmup};
pub use passes::{Session, SessionConfig};
/// The rusqlite profkit is built with: open your connections through it so
/// that [`workload::SetupEnv::trace_sql`] takes them.
pub use rusqlite;
pub use workload::{from_fn, SetupEnv, WorkerCtx, Workload, WorkloadDefaults};

/// The `main` of a binary that profiles its own workloads: installs
/// [`alloc::ProfkitAlloc`] as the global allocator (the heap passes need
/// it) and runs the [`Harness`] it is given, with the full profkit command
/// line. Use it once, at the top level of `main.rs`, an example or a
/// `harness = false` bench:
///
/// ```ignore
/// profkit::main!(profkit::Harness::new().workload("orders", || Box::new(Orders::default())));
/// ```
#[macro_export]
macro_rules! main {
    ($harness:expr) => {
        #[global_allocator]
        static PROFKIT_ALLOC: $crate::alloc::ProfkitAlloc = $crate::alloc::ProfkitAlloc;

        fn main() {
            $crate::Harness::run($harness)
        }
    };
}
