//! Profilers that wrap a measured run: each yields plain data that the
//! analysis and rendering stages turn into answers.

pub mod heap;
pub mod sql;
