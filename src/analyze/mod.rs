//! Turns measured data into answers: SQL statement analysis, leak detection
//! by growth, bottleneck verdicts.

pub mod findings;
pub mod leaks;
pub mod sql;
