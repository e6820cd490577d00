//! Profilers that wrap a measured run: heap (dhat).

pub mod heap;
