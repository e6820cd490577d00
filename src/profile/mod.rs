//! Profilers that wrap a measured run. Each yields plain data (stacks with
//! weights), never files; [`crate::render`] writes them out.
//!
//! - [`cpu`]: pprof-rs sampling of every thread of the process.

pub mod cpu;
