//! Turns profile data into answers: top frames and layer breakdowns, SQL
//! statement analysis, leak detection by growth, bottleneck verdicts.

pub mod cpu;
pub mod findings;
pub mod leaks;
pub mod sql;
