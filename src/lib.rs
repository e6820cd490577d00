#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod analyze;
pub mod db;
pub mod measure;
pub mod render;
pub mod rundir;
pub mod session;
pub mod units;
pub mod workload;

pub use db::{DatabaseManager, DbConfig, Scope};
pub use measure::{BenchResult, RunOptions, RunPlan, Stop, Warmup};
pub use session::{Session, SessionConfig};
pub use workload::{SetupEnv, WorkerCtx, Workload, WorkloadDefaults};
