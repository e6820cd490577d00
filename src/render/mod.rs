//! Bytes out, nothing written: folded stacks, pprof, flamegraphs and
//! differential flamegraphs, text tables, plots, and Markdown/HTML/JSON
//! reports (one [`report::Exporter`] per format). Input readers (folded,
//! pprof, dhat) sit together in [`input`]. Writing files is
//! [`crate::store`]'s job; deciding what to write is [`crate::passes`]'.

pub mod advice;
pub mod budget;
pub mod cpu_table;
pub mod diffgraph;
pub mod export;
pub mod flamegraph;
pub mod folded;
pub mod github;
pub mod heap_input;
pub mod html;
mod html_embed;
mod html_overview;
pub mod input;
pub mod json;
pub mod markdown;
pub mod plot;
pub mod pprof;
pub mod report;
pub mod scale;
pub mod table;
