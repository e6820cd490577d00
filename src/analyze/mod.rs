//! Turns measured data into answers: top frames and layer breakdowns, SQL
//! statement analysis, leak detection by growth, scaling efficiency and
//! growth fits, breaking points, bottleneck verdicts.

pub mod budget;
pub mod compare;
pub mod cpu;
pub mod findings;
pub mod leaks;
pub mod rundata;
pub mod scaling;
pub mod sql;
pub mod stress;
