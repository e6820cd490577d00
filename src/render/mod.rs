//! Writers of answers: tables for people, JSON, and (in later stages)
//! flamegraphs, pprof, Markdown and HTML.

pub mod heap_svg;
pub mod table;
