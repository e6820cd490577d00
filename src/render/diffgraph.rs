//! Flamegraph SVGs for reports, through inferno: plain ones from folded
//! stacks, and differential ones (inferno's `differential` module) from a
//! base and a current profile. inferno escapes every frame name it writes.
//!
//! A differential flamegraph has the current profile's shape, coloured by
//! the change of each frame (red: grew, blue: shrank), with the base
//! normalised to the current total. Its negated twin has the base's shape
//! with the colours negated (red still means grew), so paths that vanished
//! are visible too.

use super::folded::to_text as lines;
use crate::analyze::stacks::Folded;

/// Errors rendering a flamegraph.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The profile has no samples.
    #[error("'{0}' has no samples to draw")]
    Empty(String),
    /// inferno failed.
    #[error("rendering '{title}': {source}")]
    Inferno {
        /// The graph.
        title: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Width of flamegraphs embedded in reports: a fixed width (scaled by the
/// page through the viewBox) instead of inferno's fluid drawing, which
/// measures its container before it is laid out in an iframe.
pub const EMBED_WIDTH: usize = 1200;

fn options<'a>(
    title: &str,
    count_name: &str,
    width: Option<usize>,
) -> inferno::flamegraph::Options<'a> {
    let mut o = inferno::flamegraph::Options::default();
    o.image_width = width;
    o.title = title.to_string();
    o.count_name = count_name.to_string();
    o.hash = true;
    o.deterministic = true;
    o
}

fn draw(o: &mut inferno::flamegraph::Options<'_>, text: &str) -> Result<String, RenderError> {
    let mut out = Vec::new();
    inferno::flamegraph::from_lines(o, text.lines(), &mut out).map_err(|source| {
        RenderError::Inferno {
            title: o.title.clone(),
            source,
        }
    })?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// inferno's minimum frame width, in pixels: narrower frames are not drawn.
pub const MIN_WIDTH_PX: f64 = 0.1;

/// `folded` without the frames too narrow to draw at `width` pixels
/// (narrower than inferno's [`MIN_WIDTH_PX`]): each stack is cut after its
/// last frame that is wide enough, and its weight stays with that frame.
/// Every drawn frame keeps its width, so the picture is the same; the SVG
/// is smaller and quicker to draw.
pub fn prune_narrow(folded: &Folded, width: usize) -> Folded {
    let total: u64 = folded.values().fold(0u64, |a, n| a.saturating_add(*n));
    let min = total as f64 * MIN_WIDTH_PX / width.max(1) as f64;
    // Weight of every prefix (a frame and its callers).
    let mut prefixes: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for (stack, n) in folded {
        for (i, _) in stack.match_indices(';').chain([(stack.len(), "")]) {
            let w = prefixes.entry(&stack[..i]).or_default();
            *w = w.saturating_add(*n);
        }
    }
    let mut kept = Folded::new();
    for (stack, n) in folded {
        let mut cut = stack.find(';').unwrap_or(stack.len());
        for (i, _) in stack.match_indices(';').skip(1).chain([(stack.len(), "")]) {
            if (prefixes[&stack[..i]] as f64) < min {
                break;
            }
            cut = i;
        }
        let w = kept.entry(stack[..cut].to_string()).or_default();
        *w = w.saturating_add(*n);
    }
    kept
}

/// A plain flamegraph of a folded profile (fluid width when `width` is None).
pub fn plain(
    folded: &Folded,
    title: &str,
    count_name: &str,
    width: Option<usize>,
) -> Result<String, RenderError> {
    if folded.iter().all(|(_, n)| *n == 0) {
        return Err(RenderError::Empty(title.to_string()));
    }
    draw(&mut options(title, count_name, width), &lines(folded))
}

/// A differential flamegraph of `current` against `base`; `negated` gives
/// the twin drawn in the base's shape.
pub fn differential(
    base: &Folded,
    current: &Folded,
    negated: bool,
    title: &str,
    width: Option<usize>,
) -> Result<String, RenderError> {
    let total = |f: &Folded| f.values().sum::<u64>();
    if total(base) == 0 || total(current) == 0 {
        return Err(RenderError::Empty(title.to_string()));
    }
    let (first, second) = if negated {
        (current, base)
    } else {
        (base, current)
    };
    let mut diff = Vec::new();
    let opt = inferno::differential::Options {
        normalize: true,
        strip_hex: false,
    };
    inferno::differential::from_readers(
        opt,
        lines(first).as_bytes(),
        lines(second).as_bytes(),
        &mut diff,
    )
    .map_err(|source| RenderError::Inferno {
        title: title.to_string(),
        source,
    })?;
    let mut o = options(title, "samples", width);
    o.negate_differentials = negated;
    let shape = if negated {
        "base shape; red = grew, blue = shrank (shows vanished paths)"
    } else {
        "current shape; red = grew, blue = shrank (normalised to the same total)"
    };
    o.subtitle = Some(format!(
        "{shape}; base {} samples, current {} samples",
        total(base),
        total(current)
    ));
    draw(&mut o, &String::from_utf8_lossy(&diff))
}

/// The differential flamegraph pair of a comparison: (file suffix, SVG)
/// for `diff` (current shape) and `diff-neg` (base shape).
pub fn differential_pair(
    base: &Folded,
    current: &Folded,
    title: &str,
) -> Result<Vec<(&'static str, String)>, RenderError> {
    [(false, "diff"), (true, "diff-neg")]
        .into_iter()
        .map(|(negated, suffix)| Ok((suffix, differential(base, current, negated, title, None)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_frames_are_cut_and_their_weight_stays_with_the_caller() {
        let f = folded(&[("t;a;b", 5000), ("t;a;c", 1), ("t;a;c;d", 1), ("t;e", 3)]);
        // At 1200 px a frame needs 0.1 / 1200 of 5005 samples: 0.42.
        assert_eq!(prune_narrow(&f, 1200), f);
        // At 10 px it needs 50: c, d and e go; their weight stays with a and t.
        let p = prune_narrow(&f, 10);
        assert_eq!(p, folded(&[("t;a;b", 5000), ("t;a", 2), ("t", 3)]));
        assert_eq!(p.values().sum::<u64>(), f.values().sum::<u64>());
    }

    fn folded(lines: &[(&str, u64)]) -> Folded {
        lines.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    }

    /// The fill colour of the frame titled `name` (first match).
    pub(crate) fn fill_of(svg: &str, name: &str) -> Option<(u8, u8, u8)> {
        let at = svg.find(&format!("<title>{name} ("))?;
        let rest = &svg[at..];
        let f = rest.find("fill=\"rgb(")? + "fill=\"rgb(".len();
        let end = rest[f..].find(')')? + f;
        let parts: Vec<u8> = rest[f..end]
            .split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect();
        (parts.len() == 3).then(|| (parts[0], parts[1], parts[2]))
    }

    #[test]
    fn grown_frames_are_red_and_shrunk_frames_blue() {
        let base = folded(&[("main;grow", 10), ("main;shrink", 90)]);
        let cur = folded(&[("main;grow", 90), ("main;shrink", 10)]);
        let svg = differential(&base, &cur, false, "diff", None).unwrap();
        let (r, g, b) = fill_of(&svg, "grow").unwrap();
        assert!(r == 255 && g < 200 && b < 200, "grow is red: {r},{g},{b}");
        let (r, g, b) = fill_of(&svg, "shrink").unwrap();
        assert!(
            b == 255 && r < 200 && g < 200,
            "shrink is blue: {r},{g},{b}"
        );
        // The negated twin keeps red for growth, in the base's shape.
        let neg = differential(&base, &cur, true, "diff", None).unwrap();
        let (r, _, _) = fill_of(&neg, "grow").unwrap();
        assert_eq!(r, 255);
    }

    #[test]
    fn both_twins_name_the_sample_count_of_each_side() {
        let base = folded(&[("main;a", 3), ("main;b", 4)]);
        let cur = folded(&[("main;a", 600), ("main;b", 400)]);
        for negated in [false, true] {
            let svg = differential(&base, &cur, negated, "d", None).unwrap();
            assert!(
                svg.contains("base 7 samples, current 1000 samples"),
                "negated {negated}: no sample counts in the subtitle"
            );
        }
    }

    #[test]
    fn vanished_paths_show_only_in_the_negated_twin() {
        let base = folded(&[("main;gone", 50), ("main;kept", 50)]);
        let cur = folded(&[("main;kept", 100)]);
        let svg = differential(&base, &cur, false, "d", None).unwrap();
        assert!(fill_of(&svg, "gone").is_none());
        let neg = differential(&base, &cur, true, "d", None).unwrap();
        let (r, g, b) = fill_of(&neg, "gone").unwrap();
        assert!(b == 255 && r < 250, "gone shrank: {r},{g},{b}");
    }

    #[test]
    fn hostile_frame_names_are_escaped() {
        let evil = "<script>alert(1)</script>";
        let evil2 = "\"><img src=x onerror=alert(1)>";
        let f = folded(&[(&format!("main;{evil}"), 5), (&format!("main;{evil2}"), 5)]);
        for svg in [
            plain(&f, "t", "samples", None).unwrap(),
            differential(&f, &f, false, "t", None).unwrap(),
        ] {
            assert!(!svg.contains(evil), "raw script in SVG");
            assert!(!svg.contains("<img"), "raw img in SVG");
            assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        }
    }
}
