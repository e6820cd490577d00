//! Profilers that wrap a measured run. Each yields plain data (stacks with
//! weights, statement tallies), never files; [`crate::render`] writes them out.

pub mod cpu;
pub mod heap;
pub mod sql;
