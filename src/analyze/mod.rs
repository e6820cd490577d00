//! Turns measured data into answers: SQL statement analysis, bottleneck
//! verdicts.

pub mod budget;
pub mod compare;
pub mod findings;
pub mod rundata;
pub mod sql;
