//! SVG flamegraphs with inferno, from folded stacks: CPU, SQL and heap.
//!
//! Only the title, subtitle and count name are set from our strings; inferno
//! escapes those. Profile strings never go into `name_type`/`font_type`,
//! which inferno writes into the SVG unescaped.

use std::path::Path;

use super::folded;
pub use super::input::InputError;
use crate::analyze::stacks::{self, Folded};

/// How to draw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SvgOptions {
    /// Title (workload and parameters).
    pub title: String,
    /// Subtitle (samples, rate, duration).
    pub subtitle: Option<String>,
    /// Icicle graph: root at the top.
    pub inverted: bool,
    /// What counts measure ("samples").
    pub count_name: String,
    /// Colour frames as memory (greens) rather than CPU (warm colours).
    pub memory: bool,
}

/// Renders folded text (already valid, e.g. our own `cpu.folded`) into SVG.
pub fn render_folded(text: &str, options: &SvgOptions) -> Result<Vec<u8>, InputError> {
    render_lines(text.lines(), options, Path::new("<folded>"))
}

fn render_lines<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    options: &SvgOptions,
    path: &Path,
) -> Result<Vec<u8>, InputError> {
    let mut opt = inferno::flamegraph::Options::default();
    opt.title = options.title.clone();
    opt.subtitle = options.subtitle.clone();
    if !options.count_name.is_empty() {
        opt.count_name = options.count_name.clone();
    }
    opt.deterministic = true;
    opt.hash = true;
    if options.memory {
        opt.colors = inferno::flamegraph::color::Palette::Basic(
            inferno::flamegraph::color::BasicPalette::Mem,
        );
    }
    if options.inverted {
        opt.direction = inferno::flamegraph::Direction::Inverted;
    }
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut opt, lines, &mut svg).map_err(|e| InputError::Render {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    Ok(svg)
}

/// Renders stacks read from a file (see [`super::input::read_stacks`]);
/// the default title is the file's name, the subtitle the total weight in
/// the options' unit (`count_name`).
pub fn render_stacks(
    stacks: &Folded,
    path: &Path,
    options: &SvgOptions,
) -> Result<Vec<u8>, InputError> {
    let total = stacks::total(stacks).ok_or_else(|| InputError::Render {
        path: path.to_path_buf(),
        why: "the total weight overflows 64 bits".into(),
    })?;
    let text = folded::to_text(stacks);
    let mut options = options.clone();
    if options.title.is_empty() {
        options.title = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    if options.subtitle.is_none() {
        options.subtitle = Some(format!("{total} {}", options.count_name));
    }
    render_lines(text.lines(), &options, path)
}

/// An allocation flamegraph (weights in bytes, memory colours). An empty
/// profile gets a placeholder SVG saying so, not an error.
pub fn heap_svg(title: &str, stacks: &Folded) -> Vec<u8> {
    let options = SvgOptions {
        title: title.to_string(),
        count_name: "bytes".to_string(),
        memory: true,
        ..Default::default()
    };
    match render_folded(&folded::to_text(stacks), &options) {
        Ok(svg) if !stacks.is_empty() => svg,
        _ => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\">\
             <text x=\"10\" y=\"25\">{}: no allocations recorded</text></svg>\n",
            super::html::escape(title)
        )
        .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_icicles_differ() {
        let text = "t;<script>alert(1)</script>;b 5\nt;c 2\n";
        let opts = SvgOptions {
            title: "w & <x>".into(),
            subtitle: Some("7 samples".into()),
            ..Default::default()
        };
        let svg = String::from_utf8(render_folded(text, &opts).unwrap()).unwrap();
        assert!(!svg.contains("<script>alert"));
        assert!(svg.contains("w &amp; &lt;x&gt;"));
        let icicle = render_folded(
            text,
            &SvgOptions {
                inverted: true,
                ..opts
            },
        )
        .unwrap();
        assert_ne!(svg.as_bytes(), &icicle[..]);
    }
}
