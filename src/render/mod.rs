//! Writers of answers: tables for people, JSON, and (in later stages)
//! flamegraphs, pprof, Markdown and HTML.

pub mod cpu_table;
pub mod diffgraph;
pub mod flamegraph;
pub mod folded;
pub mod heap_svg;
pub mod html;
pub mod json;
pub mod markdown;
pub mod pprof;
pub mod report;
pub mod table;

pub mod plot;
pub mod scale;
