//! Markdown reports that fit a pull-request comment: a summary table with
//! verdicts, findings first, top changes, details in `<details>` blocks,
//! no images. Every name from a profile (function, SQL text, workload) goes
//! through [`escape`], so it renders as text on GitHub and elsewhere.

use std::fmt::Write as _;

use super::report::{
    format_change, format_ci, format_opt, verdict_word, workload_label, ReportInput,
    SUMMARY_METRICS,
};
use crate::analyze::budget::{Metric, Status};
use crate::analyze::compare::{Verdict, WorkloadComparison};
use crate::analyze::findings::Severity;
use crate::analyze::rundata::LoadedRun;
use crate::analyze::scaling::SweepResult;
use crate::measure::BenchResult;

/// Escapes text for Markdown (inline HTML included): `<`, `>`, `&`, `"`
/// become entities, Markdown punctuation is backslash-escaped, line breaks
/// become spaces.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '!' | '~' | '{' | '}' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The Markdown report writer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Markdown;

impl super::report::Exporter for Markdown {
    fn render(&self, input: &ReportInput<'_>) -> String {
        render(input)
    }
}

/// Renders a report as Markdown.
pub fn render(input: &ReportInput<'_>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## {}\n", escape(&input.title()));
    match input {
        ReportInput::Runs { set, check, .. } => {
            md.push_str("| workload | ops/s | p50 | p95 | p99 | errors | budget |\n");
            md.push_str("|---|---:|---:|---:|---:|---:|---|\n");
            for r in &set.runs {
                let budget = check
                    .map(|c| {
                        let mine: Vec<_> = c.lines.iter().filter(|l| l.run_id == r.id).collect();
                        let worst = mine
                            .iter()
                            .map(|l| l.status)
                            .max()
                            .unwrap_or(Status::NotMeasured);
                        match worst {
                            Status::Fail => "❌ critical".to_string(),
                            Status::Warn => "⚠️ target missed".to_string(),
                            Status::Ok => "✅ met".to_string(),
                            Status::NotMeasured => "–".to_string(),
                        }
                    })
                    .unwrap_or_else(|| "–".into());
                let b = &r.bench;
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {} | {} | {} | {} | {budget} |",
                    escape(&r.workload),
                    b.throughput.0,
                    b.latency.p50,
                    b.latency.p95,
                    b.latency.p99,
                    b.errors
                );
            }
            md.push('\n');
            provenance(&mut md, &set.runs);
            findings(&mut md, &set.runs);
            advice(&mut md, &set.runs);
            if let Some(c) = check {
                let bad: Vec<_> = c
                    .lines
                    .iter()
                    .filter(|l| matches!(l.status, Status::Warn | Status::Fail))
                    .collect();
                if !bad.is_empty() {
                    md.push_str("### Budget\n\n");
                    for l in bad {
                        let _ = writeln!(md, "- {}", escape(&l.to_string()));
                    }
                    md.push('\n');
                }
                md.push_str("<details><summary>Every budget line</summary>\n\n");
                for l in &c.lines {
                    let _ = writeln!(md, "- {}", escape(&l.to_string()));
                }
                md.push_str("\n</details>\n\n");
            }
            for r in &set.runs {
                run_details(&mut md, r);
            }
        }
        ReportInput::Compare {
            comparison: c,
            current,
            base,
        } => {
            let _ = writeln!(
                md,
                "Noise threshold {:.0} %, {:.0} % intervals from the spread between runs (one run a side: {}).\n",
                c.noise * 100.0,
                c.confidence * 100.0,
                escape(&c.noise_model)
            );
            if c.same_runs {
                md.push_str("**Both sides are the same run(s): nothing to compare.**\n\n");
            }
            md.push_str("| workload | verdict |");
            for m in SUMMARY_METRICS {
                let _ = write!(md, " {m} |");
            }
            md.push_str("\n|---|---|");
            md.push_str(&"---:|".repeat(SUMMARY_METRICS.len()));
            md.push('\n');
            for w in &c.workloads {
                let word = match w.worst() {
                    Verdict::Regressed => "❌ regressed",
                    Verdict::Improved => "✅ improved",
                    _ => "no change",
                };
                // The verdict names the rows that decided it, so it
                // follows from what is shown.
                let why = super::report::deciding_note(w);
                let verdict = if why.is_empty() {
                    word.to_string()
                } else {
                    format!("{word}: {}", escape(&why))
                };
                let _ = write!(md, "| {} | {verdict} |", escape(&workload_label(w)));
                for m in SUMMARY_METRICS {
                    let cell = w
                        .metrics
                        .iter()
                        .find(|x| x.metric == m)
                        .map(|x| match x.verdict {
                            Verdict::NotMeasured => "–".to_string(),
                            Verdict::NoChange => format!("{} ≈", format_change(x)),
                            _ => format!("{} {}", format_change(x), verdict_word(x)),
                        })
                        .unwrap_or_default();
                    let _ = write!(md, " {cell} |");
                }
                md.push('\n');
            }
            md.push('\n');
            for (what, list) in [("base", &c.only_in_base), ("current", &c.only_in_current)] {
                if !list.is_empty() {
                    let names: Vec<_> = list.iter().map(|n| escape(n)).collect();
                    let _ = writeln!(md, "Only in {what}: {}.\n", names.join(", "));
                }
            }
            let _ = writeln!(md, "**Base:**");
            provenance(&mut md, &base.runs);
            let _ = writeln!(md, "**Current:**");
            provenance(&mut md, &current.runs);
            findings(&mut md, &current.runs);
            md.push_str("### Top changes\n\n");
            for w in &c.workloads {
                top_changes(&mut md, w, 3);
            }
            for w in &c.workloads {
                compare_details(&mut md, w);
            }
        }
    }
    md
}

/// One workload's row of a profile session's index.
#[derive(Clone, Debug)]
pub struct IndexRow<'a> {
    /// Its run folder's name.
    pub run_id: &'a str,
    /// Its bench pass.
    pub bench: &'a BenchResult,
    /// Its top finding, one line.
    pub top_finding: &'a str,
    /// Its flamegraphs: (kind, link).
    pub flamegraphs: Vec<(String, String)>,
}

/// A profile session's `index.md`: one row per workload with links to its
/// files, the top finding of each, and the closing thread sweep.
pub fn session_index(
    session_id: &str,
    rows: &[IndexRow<'_>],
    sweeps: &[(String, SweepResult)],
) -> String {
    let mut md = format!(
        "# profkit profile {}\n\n| workload | ops/s | p50 | p95 | p99 | errors | flamegraphs |\n|---|---:|---:|---:|---:|---:|---|\n",
        escape(session_id)
    );
    for r in rows {
        let b = r.bench;
        let graphs: Vec<String> = r
            .flamegraphs
            .iter()
            .map(|(kind, link)| format!("[{kind}]({link})"))
            .collect();
        let _ = writeln!(
            md,
            "| [{}](../{}/bench.json) | {:.0} | {} | {} | {} | {} | {} |",
            escape(&b.workload),
            r.run_id,
            b.throughput.0,
            b.latency.p50,
            b.latency.p95,
            b.latency.p99,
            b.errors,
            graphs.join(" ")
        );
    }
    md.push_str("\n## Top finding per workload\n\n");
    for r in rows {
        let _ = writeln!(
            md,
            "- **{}**: {}",
            escape(&r.bench.workload),
            escape(r.top_finding)
        );
    }
    if let Some((_, first)) = sweeps.first() {
        md.push_str(
            "\n## Thread sweep\n\n| workload | threads | ops/s | p99 | efficiency |\n|---|---:|---:|---:|---:|\n",
        );
        for (id, r) in sweeps {
            for l in &r.levels {
                let _ = writeln!(
                    md,
                    "| [{}](../{id}/sweep.json) | {} | {:.0} | {} | {:.0} % |",
                    escape(&r.workload),
                    l.threads,
                    l.bench.throughput.0,
                    l.bench.latency.p99,
                    100.0 * l.efficiency.unwrap_or(0.0)
                );
            }
        }
        let _ = writeln!(
            md,
            "\n{} cores available; efficiency = throughput(T) ÷ (T × throughput(1)).",
            first.cores
        );
        for (_, r) in sweeps {
            if let Some(c) = &r.scaling_cause {
                let _ = writeln!(
                    md,
                    "\n**Why {} scales poorly**: {}",
                    escape(&r.workload),
                    escape(&c.summary)
                );
            }
        }
    }
    md
}

fn provenance(md: &mut String, runs: &[LoadedRun]) {
    let mut seen = std::collections::BTreeSet::new();
    for r in runs {
        let line = format!(
            "- machine: {}; git: {}",
            r.machine().unwrap_or_else(|| "unknown".into()),
            r.git_revision().unwrap_or_else(|| "unknown".into())
        );
        if seen.insert(line.clone()) {
            let _ = writeln!(md, "{}", escape_line(&line));
        }
    }
    md.push('\n');
}

/// Escapes a line we composed that starts with a list marker.
fn escape_line(line: &str) -> String {
    match line.strip_prefix("- ") {
        Some(rest) => format!("- {}", escape(rest)),
        None => escape(line),
    }
}

fn findings(md: &mut String, runs: &[LoadedRun]) {
    let all: Vec<_> = runs
        .iter()
        .flat_map(|r| r.findings.iter().map(move |f| (r, f)))
        .filter(|(_, f)| f.severity != Severity::Info)
        .collect();
    md.push_str("### Findings\n\n");
    let withheld: usize = runs.iter().map(|r| r.withheld_cpu_findings).sum();
    if withheld > 0 {
        let _ = writeln!(
            md,
            "{withheld} CPU finding(s) withheld: fewer than {} CPU samples.\n",
            crate::analyze::findings::CPU_FINDING_MIN_SAMPLES
        );
    }
    if all.is_empty() {
        md.push_str("No warnings or critical findings.\n\n");
        return;
    }
    for (r, f) in all {
        let _ = writeln!(
            md,
            "- **{}** {}: {} — {}",
            escape(&f.severity.to_string()),
            escape(&r.workload),
            escape(&f.title),
            escape(&f.hint)
        );
    }
    md.push('\n');
}

/// The advice section: per run, what `profkit advise` would try or measured.
fn advice(md: &mut String, runs: &[LoadedRun]) {
    let lines: Vec<_> = runs
        .iter()
        .flat_map(|r| r.advice.iter().map(move |a| (r, a)))
        .collect();
    if lines.is_empty() {
        return;
    }
    md.push_str("### Advice\n\n");
    for (r, a) in lines {
        let how = if a.measured { "measured" } else { "proposed" };
        let _ = writeln!(
            md,
            "- {} ({how}) {}: {}",
            escape(&r.workload),
            escape(&a.finding),
            escape(&a.action)
        );
    }
    md.push('\n');
}

fn run_details(md: &mut String, r: &LoadedRun) {
    let _ = writeln!(
        md,
        "<details><summary>{} — details</summary>\n",
        escape(&r.workload)
    );
    let _ = writeln!(md, "Run {}; {}.\n", escape(&r.id), escape(&r.parameters()));
    md.push_str("| metric | value |\n|---|---:|\n");
    for m in Metric::ALL {
        if let Some(v) = m.value(r) {
            let _ = writeln!(md, "| {m} | {} |", escape(&m.format(v)));
        }
    }
    if let Some(b) = r.bench.breakdown.as_ref().filter(|b| b.ops > 0) {
        let _ = writeln!(md, "\nLatency: {}.", escape(&b.summary()));
    }
    md.push('\n');
    for f in &r.findings {
        let _ = writeln!(
            md,
            "- **{}**: {}",
            escape(&f.severity.to_string()),
            escape(&f.title)
        );
        for e in &f.evidence {
            let _ = writeln!(md, "  - {}", escape(e));
        }
    }
    let mut st = r.statements();
    st.sort_by_key(|s| std::cmp::Reverse(s.total));
    if !st.is_empty() {
        md.push_str("\n| SQL statement | per op | mean |\n|---|---:|---:|\n");
        for s in st.iter().take(5) {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {} |",
                escape(&s.shape),
                s.per_op,
                s.mean
            );
        }
    }
    if let Some(l) = &r.leaks {
        let _ = writeln!(md, "\nLeak check: {}", escape(&l.verdict));
    }
    md.push_str("\n</details>\n\n");
}

fn top_changes(md: &mut String, w: &WorkloadComparison, n: usize) {
    let mut items = Vec::new();
    for f in w.cpu_frames.iter().take(n) {
        items.push(format!(
            "CPU {}: {:.1} % → {:.1} % of samples",
            escape(&f.frame),
            f.base_total,
            f.current_total
        ));
    }
    for s in w.heap_sites.iter().take(n) {
        items.push(format!(
            "heap {}: {} → {}",
            escape(&s.site),
            crate::units::Bytes(s.base_bytes),
            crate::units::Bytes(s.current_bytes)
        ));
    }
    for s in w.sql_statements.iter().take(n) {
        items.push(format!(
            "SQL {}: {:.2} → {:.2} per op, {} → {} per op",
            escape(&s.shape),
            s.base_per_op,
            s.current_per_op,
            crate::units::Nanos(s.base_time_per_op.round() as u64),
            crate::units::Nanos(s.current_time_per_op.round() as u64)
        ));
    }
    if items.is_empty() {
        return;
    }
    let _ = writeln!(md, "**{}**\n", escape(&workload_label(w)));
    for i in items {
        let _ = writeln!(md, "- {i}");
    }
    md.push('\n');
}

fn compare_details(md: &mut String, w: &WorkloadComparison) {
    let _ = writeln!(
        md,
        "<details><summary>{} — every metric</summary>\n",
        escape(&workload_label(w))
    );
    let _ = writeln!(
        md,
        "Base run {} (git {}), current run {} (git {}).\n",
        escape(&w.base_run),
        escape(w.base_git.as_deref().unwrap_or("unknown")),
        escape(&w.current_run),
        escape(w.current_git.as_deref().unwrap_or("unknown"))
    );
    md.push_str(
        "| metric | base | current | change | CI | verdict |\n|---|---:|---:|---:|---|---|\n",
    );
    for m in &w.metrics {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            m.metric,
            escape(&format_opt(m.metric, m.base)),
            escape(&format_opt(m.metric, m.current)),
            escape(&format_change(m)),
            escape(&format_ci(m)),
            verdict_word(m)
        );
    }
    if !w.cpu_frames.is_empty() {
        md.push_str("\n| CPU call chain | base total | current total | change (pp) | base self | current self |\n|---|---:|---:|---:|---:|---:|\n");
        for f in &w.cpu_frames {
            let _ = writeln!(
                md,
                "| {}{} | {:.1} % | {:.1} % | {:+.1} {} | {:.1} % | {:.1} % |",
                escape(&f.frame),
                escape(&super::report::chain_note(f)),
                f.base_total,
                f.current_total,
                f.delta(),
                super::report::format_pp_ci(f.ci),
                f.base_self,
                f.current_self
            );
        }
    }
    if let Some(note) = super::report::cpu_noise_note(w) {
        let _ = writeln!(md, "\n{}.", escape(&note));
    }
    if !w.heap_sites.is_empty() {
        md.push_str("\n| allocation site | base | current |\n|---|---:|---:|\n");
        for s in &w.heap_sites {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                escape(&s.site),
                crate::units::Bytes(s.base_bytes),
                crate::units::Bytes(s.current_bytes)
            );
        }
    }
    if !w.sql_statements.is_empty() {
        md.push_str("\n| SQL statement | base per op | current per op | base time/op | current time/op |\n|---|---:|---:|---:|---:|\n");
        for s in &w.sql_statements {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {} | {} |",
                escape(&s.shape),
                s.base_per_op,
                s.current_per_op,
                crate::units::Nanos(s.base_time_per_op.round() as u64),
                crate::units::Nanos(s.current_time_per_op.round() as u64)
            );
        }
    }
    for p in &w.flamegraphs {
        let _ = writeln!(
            md,
            "\nDifferential flamegraph: {}",
            escape(&p.display().to_string())
        );
    }
    md.push_str("\n</details>\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_render_as_text() {
        let e = escape("<script>alert(1)</script>");
        assert_eq!(e, "&lt;script&gt;alert\\(1\\)&lt;/script&gt;");
        let e = escape("\"><img src=x onerror=alert(1)>");
        assert!(
            !e.contains('<') && !e.contains('>') && !e.contains('"'),
            "{e}"
        );
        assert_eq!(escape("a|b\nc"), "a\\|b c");
    }
}
