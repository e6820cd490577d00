//! Turns profile data into answers: top frames, layer breakdowns, verdicts.
//!
//! - [`cpu`]: hottest frames by self and total samples, and the share of
//!   each layer (profkit/workload, rusqlite, SQLite C, allocator, libc/kernel).

pub mod cpu;
