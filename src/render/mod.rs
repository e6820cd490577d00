//! Writers of answers: tables for people, JSON, and (in later stages)
//! flamegraphs, pprof, Markdown and HTML.

pub mod table;

pub mod plot;
pub mod scale;
