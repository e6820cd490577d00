//! Capture: profilers that wrap a measured run and return plain data —
//! CPU stacks with sample counts ([`cpu`]), dhat heap profiles ([`heap`],
//! read through the [`dhat`] file model), and SQL query plans ([`sql`]).
//! Nothing here analyses, renders or decides where files go; the statement
//! tallies themselves come from the database's trace hook
//! ([`crate::db::trace`]).

pub mod cpu;
#[cfg(test)]
pub mod cpu_fixture;
mod cpu_pprof;
pub mod cpu_stacks;
pub mod dhat;
pub mod heap;
pub mod itimer_stack;
pub mod perf;
pub mod perf_stack;
pub mod plt;
pub mod runtime;
pub mod sampled;
pub mod sql;
pub mod symbols;
