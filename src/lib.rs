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
pub mod store;
pub mod units;
pub mod workload;

pub use db::{DatabaseManager, DbConfig, Scope};
pub use measure::{BenchResult, RunOptions, RunPlan, Stop, Warmup};
pub use passes::{Session, SessionConfig};
pub use workload::{SetupEnv, WorkerCtx, Workload, WorkloadDefaults};
