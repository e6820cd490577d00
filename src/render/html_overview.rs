//! The picture an HTML report opens on (see [`super::html`]): per workload,
//! one bar of where an operation's time goes — executing its own code, in
//! SQL (SQLite), waiting by kind (pool, write lock, CPU), awaiting — with
//! the mean latency per operation and the workload's top finding beside
//! it. An inline `<svg>` (no script, no namespace attribute: the HTML
//! parser places it), so it shows before any script runs and before the
//! tables.

use std::fmt::Write as _;

use super::html::escape;
use crate::analyze::rundata::LoadedRun;
use crate::measure::breakdown::{LatencyBreakdown, Part};
use crate::units::Nanos;

/// One bar of the picture: a tag (`""`, `"base"`, `"current"`) and a run.
pub(super) type Bar<'a> = (&'a str, &'a LoadedRun);

/// One workload's row: its name, its bars, and the run whose top finding
/// it shows.
pub(super) struct Row<'a> {
    pub name: String,
    pub bars: Vec<Bar<'a>>,
    pub finding_of: Option<&'a LoadedRun>,
}

/// The parts in drawing order, with the legend's words and colours:
/// working first (own code, SQL), then the waits, then idle.
const PARTS: [(Part, &str, &str); 6] = [
    (Part::Rest, "executing (own code)", "#4e79a7"),
    (Part::InSqlite, "SQL (in SQLite)", "#f28e2b"),
    (Part::PoolWait, "waiting: pool", "#e15759"),
    (Part::LockWait, "waiting: write lock", "#b07aa1"),
    (Part::RunQueue, "waiting: CPU (run queue)", "#9c755f"),
    (Part::Awaiting, "awaiting (idle)", "#bab0ac"),
];

const WIDTH: f64 = 1000.0;
/// The name column's width, and the characters that fit it unsqueezed.
const NAME_W: f64 = 190.0;
const NAME_CHARS: usize = 24;
const BAR_X: f64 = 200.0;
const BAR_W: f64 = 560.0;
const BAR_H: f64 = 16.0;
const FINDING_H: f64 = 16.0;
const ROW_GAP: f64 = 10.0;
const LEGEND_H: f64 = 28.0;
/// Characters of a finding's title shown on its line (the whole title is
/// in its tooltip and in the findings list below).
const FINDING_CHARS: usize = 125;

/// Writes the overview figure: `<figure id="overview">` with the picture.
pub(super) fn overview(h: &mut String, rows: &[Row<'_>]) {
    if rows.is_empty() {
        return;
    }
    let bars: usize = rows.iter().map(|r| r.bars.len().max(1)).sum();
    let height =
        LEGEND_H + bars as f64 * (BAR_H + 4.0) + rows.len() as f64 * (FINDING_H + ROW_GAP) + 4.0;
    let _ = write!(
        h,
        "<figure id=\"overview\"><figcaption>Where each workload's time goes: share of the summed latency of its operations, mean latency per operation, and its top finding.</figcaption>\n\
         <svg class=\"overview\" viewBox=\"0 0 {WIDTH} {height:.0}\" width=\"{WIDTH}\" height=\"{height:.0}\" role=\"img\" aria-label=\"Where each workload's time goes\">\n"
    );
    legend(h);
    let mut y = LEGEND_H;
    for row in rows {
        let first = y;
        for (tag, run) in &row.bars {
            bar(h, y, tag, run);
            y += BAR_H + 4.0;
        }
        if row.bars.is_empty() {
            y += BAR_H + 4.0;
        }
        let mid = (first + y - 4.0) / 2.0 + 4.0;
        // A long name (a comparison's `a → b`) is squeezed to the column.
        let fit = if row.name.chars().count() > NAME_CHARS {
            format!(" textLength=\"{NAME_W}\" lengthAdjust=\"spacingAndGlyphs\"")
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<text class=\"wl\" x=\"0\" y=\"{mid:.1}\" font-weight=\"bold\"{fit}><title>{}</title>{}</text>",
            escape(&row.name),
            escape(&shorten(&row.name, 2 * NAME_CHARS))
        );
        let (text, full) = match row.finding_of.and_then(|r| r.findings.first()) {
            Some(f) => (
                format!("{}: {}", f.severity, f.title),
                format!("{}: {} — {}", f.severity, f.title, f.hint),
            ),
            None => ("no finding".to_string(), "no finding".to_string()),
        };
        let _ = writeln!(
            h,
            "<text class=\"finding\" x=\"{BAR_X}\" y=\"{:.1}\" font-size=\"11\" fill=\"#444\"><title>{}</title>{}</text>",
            y + FINDING_H - 5.0,
            escape(&full),
            escape(&shorten(&text, FINDING_CHARS))
        );
        y += FINDING_H + ROW_GAP;
    }
    h.push_str("</svg></figure>\n");
}

fn legend(h: &mut String) {
    let mut x = 0.0;
    for (_, label, colour) in PARTS {
        let _ = write!(
            h,
            "<rect x=\"{x:.0}\" y=\"4\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{:.0}\" y=\"14\" font-size=\"12\">{}</text>",
            x + 16.0,
            escape(label)
        );
        x += 16.0 + 7.0 * label.len() as f64 + 14.0;
    }
    h.push('\n');
}

fn bar(h: &mut String, y: f64, tag: &str, run: &LoadedRun) {
    if !tag.is_empty() {
        let _ = write!(
            h,
            "<text x=\"{:.0}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            BAR_X - 4.0,
            y + BAR_H - 4.0,
            escape(tag)
        );
    }
    let Some(b) = run
        .bench
        .breakdown
        .as_ref()
        .filter(|b| b.ops > 0 && b.total.0 > 0)
    else {
        let _ = writeln!(
            h,
            "<rect x=\"{BAR_X}\" y=\"{y:.1}\" width=\"{BAR_W}\" height=\"{BAR_H}\" fill=\"#f4f4f4\" stroke=\"#ddd\"/><text x=\"{:.0}\" y=\"{:.1}\" font-size=\"11\" fill=\"#666\">no latency breakdown in this run</text>",
            BAR_X + 6.0,
            y + BAR_H - 4.0
        );
        return;
    };
    let mut x = BAR_X;
    for (part, label, colour) in PARTS {
        let share = b.share(part);
        if !b.has(part) || share <= 0.0 {
            continue;
        }
        let w = share * BAR_W;
        let _ = write!(
            h,
            "<rect class=\"part\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{BAR_H}\" fill=\"{colour}\"><title>{}</title></rect>",
            escape(&format!(
                "{}{} — {label}: {:.1} % ({} per operation)",
                run.workload,
                if tag.is_empty() {
                    String::new()
                } else {
                    format!(" ({tag})")
                },
                100.0 * share,
                b.per_op(part),
            ))
        );
        if w >= 38.0 {
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#fff\" pointer-events=\"none\">{:.0} %</text>",
                x + 3.0,
                y + BAR_H - 4.0,
                100.0 * share
            );
        }
        x += w;
    }
    let _ = writeln!(
        h,
        "<text x=\"{:.0}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
        BAR_X + BAR_W + 8.0,
        y + BAR_H - 3.0,
        escape(&mean_line(b))
    );
}

/// `12.3 µs per op (40 % waiting)`.
fn mean_line(b: &LatencyBreakdown) -> String {
    let mean = Nanos(b.total.0.checked_div(b.ops).unwrap_or(0));
    let waiting = b.waiting_share();
    if waiting >= 0.005 {
        format!("{mean} per op, {:.0} % waiting", 100.0 * waiting)
    } else {
        format!("{mean} per op")
    }
}

/// `s` cut to `n` characters, with an ellipsis when cut.
fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
