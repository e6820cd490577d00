//! Allocation flamegraphs: folded stacks weighted by bytes → SVG (inferno).

use std::path::Path;

use crate::rundir::{self, OutputError};

/// Renders folded lines (`a;b;c 123`, weights in bytes) to an SVG
/// flamegraph at `path`, atomically. Frame names are escaped by inferno.
/// An empty profile gets a placeholder SVG saying so, not an error.
pub fn write_heap_flamegraph(
    path: &Path,
    title: &str,
    count_name: &str,
    lines: &[String],
) -> Result<(), OutputError> {
    let options = super::flamegraph::SvgOptions {
        title: title.to_string(),
        count_name: count_name.to_string(),
        memory: true,
        ..Default::default()
    };
    let result = super::flamegraph::render_folded(&lines.join("\n"), &options);
    let svg = match result {
        Ok(svg) if !lines.is_empty() => svg,
        _ => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\">\
             <text x=\"10\" y=\"25\">{}: no allocations recorded</text></svg>\n",
            escape(title)
        )
        .into_bytes(),
    };
    rundir::write_atomic(path, &svg)
}
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
