//! Writers of answers: tables for people, JSON, and (in later stages)
//! flamegraphs, pprof, Markdown and HTML.

pub mod diffgraph;
pub mod html;
pub mod json;
pub mod markdown;
pub mod report;
pub mod table;
