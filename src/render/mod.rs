//! Writers of answers: tables for people, JSON, and (in later stages)
//! flamegraphs, pprof, Markdown and HTML.

pub mod cpu_table;
pub mod flamegraph;
pub mod folded;
pub mod heap_svg;
pub mod pprof;
pub mod table;

pub mod plot;
pub mod scale;
