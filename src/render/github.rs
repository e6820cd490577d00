//! A comparison as a pull-request comment (`--format github`): the verdict
//! first, a table of the significant changes only (with their intervals),
//! changed findings, then a collapsed details block with the call chains,
//! allocation sites and SQL statements that changed and relative links to
//! the differential flamegraphs. Changes within noise are counted, not
//! listed. At most [`LIMIT`] characters (GitHub's comment limit): past it,
//! whole rows and blocks are left out with a note, never half a table.

use std::fmt::Write as _;

use crate::analyze::compare::{Comparison, Verdict};
use crate::analyze::rundata::RunSet;

use super::markdown::escape;
use super::report::{chain_note, format_change, format_ci, format_opt, format_pp_ci};

/// GitHub's limit on a comment's body, in characters.
pub const LIMIT: usize = 65_536;

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The verdict line: "2 significant regressions, 1 improvement, 13
/// unchanged".
pub fn verdict_line(c: &Comparison) -> String {
    if c.same_runs {
        return "**profkit: both sides are the same run(s); nothing was compared.**".into();
    }
    let (r, i, u) = c.counts();
    let icon = if r > 0 { "❌" } else { "✅" };
    format!(
        "{icon} **profkit: {}, {}, {} unchanged**",
        plural(r, "significant regression", "significant regressions"),
        plural(i, "improvement", "improvements"),
        u
    )
}

/// The comment, at most `limit` characters.
pub fn github_comment(c: &Comparison, base: &RunSet, current: &RunSet, limit: usize) -> String {
    let mut head = verdict_line(c);
    head.push_str("\n\n");
    let within: usize = c
        .workloads
        .iter()
        .flat_map(|w| &w.metrics)
        .filter(|m| m.verdict == Verdict::NoChange && m.change.is_some_and(|x| x != 0.0))
        .count();
    let _ = writeln!(
        head,
        "{} → {}; noise threshold {:.0} %, {:.0} % intervals from the spread between runs. {} within noise (counted, not listed).\n",
        escape(&c.base),
        escape(&c.current),
        c.noise * 100.0,
        c.confidence * 100.0,
        plural(within, "metric change", "metric changes")
    );
    let mut rows = Vec::new();
    for w in &c.workloads {
        for m in w.deciding() {
            rows.push(format!(
                "| {} | {} | {} | {} | {} {} | {} |\n",
                escape(&w.workload),
                m.metric.name(),
                escape(&format_opt(m.metric, m.base)),
                escape(&format_opt(m.metric, m.current)),
                escape(&format_change(m)),
                escape(&format_ci(m)),
                if m.verdict == Verdict::Regressed {
                    "❌ worse"
                } else {
                    "✅ better"
                }
            ));
        }
    }
    let table_head = "| workload | metric | base | current | change [interval] | |\n|---|---|---:|---:|---:|---|\n";
    // Findings in the current side that the base did not have, and gone.
    let titles = |s: &RunSet| -> Vec<String> {
        s.runs
            .iter()
            .flat_map(|r| r.findings.iter())
            .map(|f| format!("{}: {}", f.workload, f.title))
            .collect()
    };
    let (bt, ct) = (titles(base), titles(current));
    let mut findings = String::new();
    for (what, from, other) in [("new", &ct, &bt), ("gone", &bt, &ct)] {
        for t in from.iter().filter(|t| !other.contains(t)) {
            let _ = writeln!(findings, "- {what}: {}", escape(t));
        }
    }
    let mut details = Vec::new();
    for w in &c.workloads {
        let mut d = String::new();
        for f in &w.cpu_frames {
            let _ = writeln!(
                d,
                "- CPU {}{}: {:.1} % → {:.1} % of samples ({:+.1} pp {})",
                escape(&f.frame),
                escape(&chain_note(f)),
                f.base_total,
                f.current_total,
                f.delta(),
                format_pp_ci(f.ci)
            );
        }
        for s in &w.heap_sites {
            let _ = writeln!(
                d,
                "- heap {}: {} → {}",
                escape(&s.site),
                crate::units::Bytes(s.base_bytes),
                crate::units::Bytes(s.current_bytes)
            );
        }
        for s in &w.sql_statements {
            let _ = writeln!(
                d,
                "- SQL `{}`: {:.2} → {:.2} per op",
                s.shape.replace('`', "'"),
                s.base_per_op,
                s.current_per_op
            );
        }
        for p in &w.flamegraphs {
            let link = p.display().to_string();
            let _ = writeln!(
                d,
                "- [differential flamegraph]({})",
                link.replace(' ', "%20").replace(')', "%29")
            );
        }
        if !d.is_empty() {
            details.push(format!("**{}**\n\n{d}\n", escape(&w.workload)));
        }
    }
    assemble(&head, table_head, &rows, &findings, &details, limit)
}

/// Puts the parts together within `limit` characters, leaving out whole
/// rows and blocks from the end, with a note saying how many.
fn assemble(
    head: &str,
    table_head: &str,
    rows: &[String],
    findings: &str,
    details: &[String],
    limit: usize,
) -> String {
    const NOTE_ROOM: usize = 200;
    let len = |s: &str| s.chars().count();
    let mut out = head.to_string();
    let budget = limit.saturating_sub(NOTE_ROOM);
    let mut cut_rows = 0;
    if !rows.is_empty() {
        out.push_str(table_head);
        for (i, r) in rows.iter().enumerate() {
            if len(&out) + len(r) > budget {
                cut_rows = rows.len() - i;
                break;
            }
            out.push_str(r);
        }
        out.push('\n');
    } else {
        out.push_str("No significant change.\n\n");
    }
    let mut cut_blocks = 0;
    if cut_rows == 0 && !findings.is_empty() {
        let block = format!("**Findings that changed**\n\n{findings}\n");
        if len(&out) + len(&block) <= budget {
            out.push_str(&block);
        } else {
            cut_blocks += 1;
        }
    }
    if cut_rows == 0 && !details.is_empty() {
        let open = "<details><summary>Details: what changed below the metrics</summary>\n\n";
        let close = "</details>\n";
        if len(&out) + len(open) + len(close) <= budget {
            out.push_str(open);
            for (i, d) in details.iter().enumerate() {
                if len(&out) + len(d) + len(close) > budget {
                    cut_blocks += details.len() - i;
                    break;
                }
                out.push_str(d);
            }
            out.push_str(close);
        } else {
            cut_blocks += details.len();
        }
    }
    let cut: Vec<String> = [
        (cut_rows, "table row", "table rows"),
        (cut_blocks, "block", "blocks"),
    ]
    .into_iter()
    .filter(|(n, _, _)| *n > 0)
    .map(|(n, one, many)| plural(n, one, many))
    .collect();
    if !cut.is_empty() {
        let _ = write!(
            out,
            "\n_Cut to GitHub's {LIMIT}-character limit: {} left out; the full comparison is in compare.json._\n",
            cut.join(" and ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_is_between_rows_with_a_note() {
        let rows: Vec<String> = (0..1000)
            .map(|i| {
                format!("| w{i} | p95 | 1 ms | 2 ms | +100.0 % [+90.0 %, +110.0 %] | ❌ worse |\n")
            })
            .collect();
        let out = assemble("head\n\n", "| a |\n|---|\n", &rows, "", &[], 5000);
        assert!(out.chars().count() <= 5000, "{}", out.len());
        assert!(out.contains("table rows left out"), "{out}");
        // Every table line is whole.
        for l in out.lines().filter(|l| l.starts_with('|')) {
            assert!(l.ends_with('|'), "{l}");
        }
        let whole = assemble("head\n\n", "| a |\n|---|\n", &rows[..3], "", &[], 5000);
        assert!(!whole.contains("left out"));
    }
}
