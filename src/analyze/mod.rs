//! Pure functions from data to answers: top frames and layer breakdowns,
//! SQL statement analysis, allocation summaries, leak and growth fits,
//! scaling efficiency, breaking points, comparisons, budgets, findings.
//! Nothing here reads or writes files or runs a workload; [`crate::passes`]
//! feeds it data and [`crate::store`] keeps what it returns.

pub mod advice;
pub mod advice_plan;
pub mod alloc;
pub mod blocking;
pub mod budget;
pub mod budget_check;
pub mod calibrate;
pub mod causes;
pub mod changes;
pub mod compare;
pub mod cpu;
pub mod cpu_findings;
pub mod findings;
pub mod fit;
pub mod leaks;
pub mod leaks_series;
pub mod noise;
pub mod observed;
pub mod pairing;
pub mod pg_plan;
pub mod predict;
pub mod replicates;
pub mod rundata;
pub mod scaling;
pub mod scaling_cause;
pub mod shares;
pub mod sql;
pub mod stacks;
pub mod stress;
pub mod waits;
