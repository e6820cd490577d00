//! Analyses that turn profiles into answers: leak detection by growth.

pub mod leaks;
