//! SVG flamegraphs with inferno, from folded stacks or from pprof files.
//!
//! Only the title, subtitle and count name are set from our strings; inferno
//! escapes those. Profile strings never go into `name_type`/`font_type`,
//! which inferno writes into the SVG unescaped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::render::{folded, pprof};

/// Errors reading a profile file to render.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("cannot read '{}': {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A bad line in a folded file.
    #[error("'{}' line {line}: {why}", path.display())]
    Folded {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A damaged pprof file.
    #[error("'{}'{}: not a valid pprof profile: {why}", path.display(), offset.map(|o| format!(" at byte offset {o}")).unwrap_or_default())]
    Pprof {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damage in the (decompressed) protobuf, when known.
        offset: Option<usize>,
        /// What is wrong.
        why: String,
    },
    /// No samples at all.
    #[error("'{}' holds no samples: nothing to draw (profile a longer run: raise --ops/--duration)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// inferno failed.
    #[error("cannot render '{}': {why}", path.display())]
    Render {
        /// The file.
        path: PathBuf,
        /// inferno's message.
        why: String,
    },
}

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

/// The folded stacks of a profile file: a pprof file (`.pb`, `.pb.gz`, or
/// gzip/binary content) or folded text. Every line or field is checked.
pub fn read_stacks(path: &Path) -> Result<BTreeMap<String, u64>, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.to_string_lossy();
    if bytes.trim_ascii_start().starts_with(b"{") {
        // A dhat heap profile (heap.json): bytes allocated per stack.
        let lines =
            crate::profile::heap::heap_json_to_folded(path, crate::profile::heap::Weight::Bytes)
                .map_err(|e| InputError::Render {
                    path: path.to_path_buf(),
                    why: e.to_string(),
                })?;
        return folded::parse_folded(&lines.join("\n"), path);
    }
    let is_pprof = name.ends_with(".pb")
        || name.ends_with(".pb.gz")
        || bytes.starts_with(&[0x1f, 0x8b])
        || std::str::from_utf8(&bytes).is_err();
    if is_pprof {
        let profile = pprof::decode(&bytes, path)?;
        let kind = profile
            .sample_type
            .iter()
            .any(|t| {
                profile
                    .string_table
                    .get(t.r#type as usize)
                    .map(String::as_str)
                    == Some("samples")
            })
            .then_some("samples");
        pprof::to_folded_counts(&profile, kind, path)
    } else {
        // Not UTF-8 was handled above.
        let text = String::from_utf8_lossy(&bytes);
        folded::parse_folded(&text, path)
    }
}

/// Renders a profile file into SVG; the default title is the file name,
/// the subtitle the number of samples.
pub fn render_file(path: &Path, options: &SvgOptions) -> Result<Vec<u8>, InputError> {
    let stacks = read_stacks(path)?;
    let total: u64 = stacks.values().sum();
    let text = folded::lines_to_text(&stacks);
    let mut options = options.clone();
    if options.title.is_empty() {
        options.title = format!(
            "{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
    }
    if options.subtitle.is_none() {
        options.subtitle = Some(format!("{total} samples"));
    }
    render_lines(text.lines(), &options, path)
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
