//! What a report shows, shared by the Markdown, HTML and JSON writers: the
//! runs of one run folder or session (with an optional budget check), or a
//! comparison of two.

use crate::analyze::budget::{CheckReport, Metric};
use crate::analyze::compare::{Comparison, MetricChange, Verdict, WorkloadComparison};
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

/// A change as `+12.3 %`, or what stands in for it.
pub fn format_change(c: &MetricChange) -> String {
    match (c.verdict, c.change) {
        (Verdict::NotMeasured, _) => "–".to_string(),
        (_, Some(x)) => format!("{:+.1} %", x * 100.0),
        (_, None) => match (c.base, c.current) {
            (Some(b), Some(v)) => format!("{} → {}", c.metric.format(b), c.metric.format(v)),
            _ => "–".to_string(),
        },
    }
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
        Some((lo, hi)) => format!("[{:+.1} %, {:+.1} %]", lo * 100.0, hi * 100.0),
        None => String::new(),
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
        "{} → {} (noise threshold {:.0} %, {:.0} % CI)",
        c.base,
        c.current,
        c.noise * 100.0,
        c.confidence * 100.0
    );
    for w in &c.workloads {
        let name = if w.base_workload == w.workload {
            w.workload.clone()
        } else {
            format!("{} → {}", w.base_workload, w.workload)
        };
        let worst = match w.worst() {
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            _ => "no change",
        };
        let _ = writeln!(s, "\n{name}: {worst}");
        for m in w
            .metrics
            .iter()
            .filter(|m| m.verdict != Verdict::NotMeasured)
        {
            let _ = writeln!(
                s,
                "  {:<12} {:>14} → {:<14} {:>9} {:<22} {}",
                m.metric.name(),
                format_opt(m.metric, m.base),
                format_opt(m.metric, m.current),
                format_change(m),
                format_ci(m),
                verdict_word(m)
            );
        }
        for f in w.cpu_frames.iter().take(5) {
            let _ = writeln!(
                s,
                "  cpu frame    {:+.1} pp  {} ({:.1} % → {:.1} %)",
                f.delta(),
                f.frame,
                f.base_total,
                f.current_total
            );
        }
        if let Some(note) = cpu_noise_note(w) {
            let _ = writeln!(s, "  cpu frames   {note}");
        }
        for h in w.heap_sites.iter().take(5) {
            let _ = writeln!(s, "  heap site    {:+} B  {}", h.delta(), h.site);
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
