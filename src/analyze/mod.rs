//! Turns measured data into answers: SQL statement analysis, bottleneck
//! verdicts.

pub mod findings;
pub mod sql;
pub mod budget;
pub mod compare;
pub mod rundata;
