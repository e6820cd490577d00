//! What a report shows, shared by the Markdown, HTML and JSON writers: the
//! runs of one run folder or session (with an optional budget check), or a
//! comparison of two.

use crate::analyze::budget::{CheckReport, Metric};
use crate::analyze::compare::{
    Basis, Comparison, MetricChange, Scale, Verdict, WorkloadComparison,
};
use crate::analyze::rundata::{LoadedRun, RunSet};

/// A report format: one writer per file, each returning the whole report
/// as text (hyperfine's exporters are the model).
pub trait Exporter {
    /// The report of `input`.
    fn render(&self, input: &ReportInput<'_>) -> String;
}

/// The report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Markdown, for a PR comment.
    Markdown,
    /// One self-contained HTML page.
    Html,
    /// JSON, for tools.
    Json,
}

impl Format {
    /// The writer of this format.
    pub fn exporter(self) -> &'static dyn Exporter {
        match self {
            Format::Markdown => &super::markdown::Markdown,
            Format::Html => &super::html::Html,
            Format::Json => &super::json::Json,
        }
    }
}

/// The input of a report.
#[derive(Clone, Copy, Debug)]
pub enum ReportInput<'a> {
    /// One run or session.
    Runs {
        /// The runs.
        set: &'a RunSet,
        /// A budget check of them, when a budget was given.
        check: Option<&'a CheckReport>,
        /// HTML: every flamegraph of every run (CPU, heap, SQL), not only
        /// the first of them per workload.
        all_flamegraphs: bool,
    },
    /// Base against current.
    Compare {
        /// Base runs.
        base: &'a RunSet,
        /// Current runs.
        current: &'a RunSet,
        /// The comparison.
        comparison: &'a Comparison,
    },
}

impl ReportInput<'_> {
    /// The report's title.
    pub fn title(&self) -> String {
        match self {
            ReportInput::Runs { set, .. } => format!("profkit report: {}", set.label),
            ReportInput::Compare { comparison: c, .. } => {
                format!("profkit comparison: {} → {}", c.base, c.current)
            }
        }
    }

    /// Runs whose findings and details the report shows (the current side).
    pub fn runs(&self) -> &[LoadedRun] {
        match self {
            ReportInput::Runs { set, .. } => &set.runs,
            ReportInput::Compare { current, .. } => &current.runs,
        }
    }
}

/// Metrics in the summary table of a comparison.
pub const SUMMARY_METRICS: [Metric; 6] = [
    Metric::Mean,
    Metric::P95,
    Metric::P99,
    Metric::Throughput,
    Metric::PeakHeap,
    Metric::SqlPerOp,
];

/// A change as `+12.3 %` (a ratio) or `+3.0 B/op` (a difference, in the
/// metric's unit), or a dash.
pub fn format_change(c: &MetricChange) -> String {
    match (c.verdict, c.change) {
        (Verdict::NotMeasured, _) | (_, None) => "–".to_string(),
        (_, Some(x)) => format_delta(c, x),
    }
}

/// One end of a change on its scale.
fn format_delta(c: &MetricChange, x: f64) -> String {
    match c.scale {
        Scale::Relative => format!("{:+.1} %", x * 100.0),
        Scale::Absolute => {
            let sign = if x < 0.0 { "-" } else { "+" };
            format!("{sign}{}", c.metric.format(x.abs()))
        }
    }
}

/// Where an interval's spread came from, in a few words.
pub fn basis_note(c: &MetricChange) -> &'static str {
    match c.basis {
        Some(Basis::Paired) => "paired runs",
        Some(Basis::Runs) => "between runs",
        Some(Basis::NoiseModel) => "noise model",
        None => "",
    }
}

/// What decided a workload's verdict: `cpu/op +12.0 % [+6.1 %, +18.2 %]`,
/// the deciding metrics with their intervals.
pub fn deciding_note(w: &WorkloadComparison) -> String {
    w.deciding()
        .map(|m| format!("{} {} {}", m.metric.name(), format_change(m), format_ci(m)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// "3 frame changes within noise at these sample counts (base 7, current
/// 7 CPU samples)": what a comparison's CPU frame list leaves out.
pub fn cpu_noise_note(w: &WorkloadComparison) -> Option<String> {
    let n = w.cpu_frames_in_noise;
    (n > 0).then(|| {
        format!(
            "{n} frame change{} within noise at these sample counts (base {}, current {} CPU samples)",
            if n == 1 { "" } else { "s" },
            w.cpu_samples.0,
            w.cpu_samples.1
        )
    })
}

/// A confidence interval as `[+1.0 %, +3.2 %]`.
pub fn format_ci(c: &MetricChange) -> String {
    match c.ci {
        Some((lo, hi)) if c.verdict != Verdict::NotMeasured => {
            format!("[{}, {}]", format_delta(c, lo), format_delta(c, hi))
        }
        _ => String::new(),
    }
}

/// A frame change's interval in points: `[+2.1, +9.8]`.
pub fn format_pp_ci(ci: Option<(f64, f64)>) -> String {
    ci.map(|(lo, hi)| format!("[{lo:+.1}, {hi:+.1}]"))
        .unwrap_or_default()
}

/// The frames a chain row stands for: ` → reset → sqlite3_reset`.
pub fn chain_note(f: &crate::analyze::compare::FrameChange) -> String {
    match f.chain.len() {
        0 => String::new(),
        1..=3 => format!(" → {}", f.chain.join(" → ")),
        n => format!(" → {} → … ({n} frames below)", f.chain[..2].join(" → ")),
    }
}

/// A compared workload's name, or `base → current` when the two sides ran
/// different workloads (a slow/fast twin pair); not escaped.
pub fn workload_label(w: &WorkloadComparison) -> String {
    if w.base_workload == w.workload {
        w.workload.clone()
    } else {
        format!("{} → {}", w.base_workload, w.workload)
    }
}

/// A value or a dash.
pub fn format_opt(metric: Metric, v: Option<f64>) -> String {
    v.map(|v| metric.format(v)).unwrap_or_else(|| "–".into())
}

/// The verdict word of a change.
pub fn verdict_word(c: &MetricChange) -> &'static str {
    c.verdict.label(c.metric)
}

/// A comparison as plain text for the terminal: per workload, one line per
/// measured metric and the top changes.
pub fn comparison_text(c: &Comparison) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} → {} (noise threshold {:.0} %, {:.0} % intervals from the spread between runs)",
        c.base,
        c.current,
        c.noise * 100.0,
        c.confidence * 100.0
    );
    if !c.noise_model.is_empty() {
        let _ = writeln!(s, "noise model: {}", c.noise_model);
    }
    if c.same_runs {
        let _ = writeln!(
            s,
            "both sides are the same run(s): nothing to compare, no verdict, no differential flamegraph"
        );
    }
    let (r, i, u) = c.counts();
    let _ = writeln!(s, "{r} regressed, {i} improved, {u} unchanged");
    for w in &c.workloads {
        let name = workload_label(w);
        let worst = match w.worst() {
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            _ => "no change",
        };
        let runs = format!(
            "{} vs {} run(s)",
            w.base_runs.len().max(1),
            w.current_runs.len().max(1)
        );
        let why = deciding_note(w);
        if why.is_empty() {
            let _ = writeln!(s, "\n{name}: {worst} ({runs})");
        } else {
            let _ = writeln!(s, "\n{name}: {worst} ({runs}): {why}");
        }
        for m in w
            .metrics
            .iter()
            .filter(|m| m.verdict != Verdict::NotMeasured)
        {
            let _ = writeln!(
                s,
                "  {:<12} {:>14} → {:<14} {:>9} {:<26} {:<12} {}",
                m.metric.name(),
                format_opt(m.metric, m.base),
                format_opt(m.metric, m.current),
                format_change(m),
                format_ci(m),
                verdict_word(m),
                basis_note(m)
            );
        }
        for f in w.cpu_frames.iter().take(5) {
            let _ = writeln!(
                s,
                "  cpu chain    {:+.1} pp {}  {} ({:.1} % → {:.1} %){}",
                f.delta(),
                format_pp_ci(f.ci),
                f.frame,
                f.base_total,
                f.current_total,
                chain_note(f)
            );
        }
        if let Some(note) = cpu_noise_note(w) {
            let _ = writeln!(s, "  cpu frames   {note}");
        }
        for h in w.heap_sites.iter().take(5) {
            let sign = if h.delta() < 0 { "-" } else { "+" };
            let _ = writeln!(
                s,
                "  heap site    {sign}{}  {} ({} → {})",
                crate::units::Bytes(h.delta().unsigned_abs()),
                h.site,
                crate::units::Bytes(h.base_bytes),
                crate::units::Bytes(h.current_bytes)
            );
        }
        for q in w.sql_statements.iter().take(3) {
            let _ = writeln!(
                s,
                "  sql          {:.2} → {:.2}/op, {} → {}/op  {}",
                q.base_per_op,
                q.current_per_op,
                crate::units::Nanos(q.base_time_per_op.round() as u64),
                crate::units::Nanos(q.current_time_per_op.round() as u64),
                crate::analyze::findings::short_sql(&q.shape)
            );
        }
        for p in &w.flamegraphs {
            let _ = writeln!(s, "  flamegraph   {}", p.display());
        }
    }
    for (what, list) in [("base", &c.only_in_base), ("current", &c.only_in_current)] {
        if !list.is_empty() {
            let _ = writeln!(s, "\nonly in {what}: {}", list.join(", "));
        }
    }
    s
}
