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
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.count_name = count_name.to_string();
    options.colors =
        inferno::flamegraph::color::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
    let mut svg = Vec::new();
    let result = if lines.is_empty() {
        Err(std::io::Error::other("no stacks"))
    } else {
        inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
    };
    if result.is_err() {
        svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\">\
             <text x=\"10\" y=\"25\">{}: no allocations recorded</text></svg>\n",
            escape(title)
        )
        .into_bytes();
    }
    rundir::write_atomic(path, &svg)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
