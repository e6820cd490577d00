//! Bottleneck verdicts: a short ranked list of findings, each with its
//! evidence and a fix hint, drawn from the SQL (and, when present, CPU and
//! heap) data of a run. Stored as `findings.json` and shown first in reports.

use serde::{Deserialize, Serialize};

use super::cpu::CpuReport;
pub use super::cpu_findings::from_cpu;
use super::leaks::LeakReport;
pub use super::shares::share_interval;
use super::sql::SqlReport;

/// Version of `findings.json`.
pub const FINDINGS_SCHEMA_VERSION: u32 = 1;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Costs a noticeable share of the time or memory.
    Warning,
    /// Dominates the operation.
    Critical,
}

impl std::fmt::Display for Severity {
    /// `info`, `warning`, `critical`: as in `findings.json`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// What kind of problem a finding names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A statement reads a whole table.
    FullScan,
    /// One query, then one query per row.
    NPlusOne,
    /// Many single-row lookups per operation, with no parent query.
    RepeatedLookups,
    /// A sort or grouping through a temp B-tree.
    TempBtree,
    /// A hot function or layer in the CPU profile.
    CpuHotspot,
    /// Live heap grows with the operation count.
    Leak,
    /// Most of the latency is waiting (write lock, pool, CPU).
    Waiting,
    /// An async operation's polls held a runtime worker (blocking in async).
    Blocking,
    /// Data the run asked for and did not get (e.g. a service endpoint
    /// that answered 404 to `profkit attach`).
    Missing,
    /// A known cause of CPU time in the database code (read-lock churn,
    /// memory statistics, statement preparation, fsync, page reads).
    CpuCause,
}

/// One verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Kind.
    pub kind: FindingKind,
    /// Severity.
    pub severity: Severity,
    /// Share of the operation's time (or memory) at stake, 0–1; ranks
    /// findings of one severity.
    pub score: f64,
    /// Workload.
    pub workload: String,
    /// One line: what is wrong.
    pub title: String,
    /// The figures behind it.
    pub evidence: Vec<String>,
    /// What to do about it.
    pub hint: String,
}

/// What `findings.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// [`FINDINGS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Workload.
    pub workload: String,
    /// Most important first.
    pub findings: Vec<Finding>,
    /// What `profkit advise` would try per finding, or what it measured
    /// ([`super::advice_plan`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<super::advice_plan::AdviceLine>,
}

impl Findings {
    /// Ranked findings of a workload.
    pub fn new(workload: &str, mut findings: Vec<Finding>) -> Findings {
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.score.total_cmp(&a.score))
                .then(a.title.cmp(&b.title))
        });
        Findings {
            schema_version: FINDINGS_SCHEMA_VERSION,
            workload: workload.to_string(),
            findings,
            advice: Vec::new(),
        }
    }

    /// The top finding, if any.
    pub fn top(&self) -> Option<&Finding> {
        self.findings.first()
    }
}

pub(crate) fn severity_for(share: f64) -> Severity {
    if share >= 0.5 {
        Severity::Critical
    } else if share >= 0.1 {
        Severity::Warning
    } else {
        Severity::Info
    }
}

/// Shortens a statement for a one-line title.
pub fn short_sql(shape: &str) -> String {
    const MAX: usize = 90;
    // Keep the head and the WHERE/ORDER part: they say what the statement does.
    let shape = match (
        shape.find(" FROM "),
        shape.find(" WHERE ").or(shape.find(" ORDER BY ")),
    ) {
        (Some(from), Some(tail)) if shape.starts_with("SELECT") && from > 20 => {
            format!("SELECT … {}", &shape[from + 1..tail].trim()) + &shape[tail..]
        }
        _ => shape.to_string(),
    };
    if shape.chars().count() > MAX {
        shape.chars().take(MAX - 1).collect::<String>() + "…"
    } else {
        shape
    }
}

fn scan_hint(shape: &str) -> String {
    let upper = shape.to_ascii_uppercase();
    if upper.contains("RANDOM()") {
        "pick random ids and look them up by primary key instead of sorting the whole table".into()
    } else if upper.contains(" LIKE ") {
        "a LIKE '%…%' pattern cannot use a B-tree index: search through the FTS5 index (MATCH) instead".into()
    } else {
        "add an index on the columns this statement filters or sorts by".into()
    }
}

/// Findings from a run's SQL report.
pub fn from_sql(report: &SqlReport) -> Vec<Finding> {
    let mut out = Vec::new();
    for op in &report.operations {
        for s in &op.statements {
            if !s.full_scans.is_empty() {
                let mut evidence = vec![
                    format!("plan: {}", super::sql::plan_text(&s.plan)),
                    format!(
                        "{} runs, mean {}, p95 {}, {:.0} % of operation latency",
                        s.executions,
                        s.mean,
                        s.p95,
                        100.0 * s.share_of_latency
                    ),
                ];
                if !s.temp_btrees.is_empty() {
                    evidence.push(format!(
                        "and a temp B-tree for {}",
                        s.temp_btrees.join(", ")
                    ));
                }
                out.push(Finding {
                    kind: FindingKind::FullScan,
                    severity: severity_for(s.share_of_latency),
                    score: s.share_of_latency,
                    workload: report.workload.clone(),
                    title: format!(
                        "`{}` runs SCAN {} (no usable index): {:.0} % of {} time",
                        short_sql(&s.shape),
                        s.full_scans.join(", "),
                        100.0 * s.share_of_latency,
                        op.operation
                    ),
                    evidence,
                    hint: scan_hint(&s.shape),
                });
            } else if !s.temp_btrees.is_empty() && s.share_of_latency >= 0.05 {
                let mut evidence = vec![format!(
                    "mean {}, p95 {}, {:.0} % of operation latency, {:.1} rows per run",
                    s.mean,
                    s.p95,
                    100.0 * s.share_of_latency,
                    s.rows_per_exec
                )];
                if let Some(slow) = &s.slowest {
                    evidence.push(format!(
                        "slowest run ({}): {} — planned as {}",
                        slow.time,
                        slow.sql,
                        super::sql::plan_text(&slow.plan)
                    ));
                }
                // Sorting a GROUP BY's output sorts groups, not rows: cheap.
                // Otherwise a sort matters when its slow runs are slow (with
                // STAT4, SQLite may re-plan a statement into a sort only for
                // some values: see the slowest run's plan).
                let sorts_groups =
                    s.shape.contains("GROUP BY") && s.temp_btrees.iter().all(|t| t == "ORDER BY");
                let matters = !sorts_groups && s.p95.0 >= 1_000_000;
                out.push(Finding {
                    kind: FindingKind::TempBtree,
                    severity: if matters {
                        severity_for(s.share_of_latency).min(Severity::Warning)
                    } else {
                        Severity::Info
                    },
                    score: s.share_of_latency,
                    workload: report.workload.clone(),
                    title: format!(
                        "`{}` sorts through a temp B-tree for {}: {:.0} % of {} time",
                        short_sql(&s.shape),
                        s.temp_btrees.join(", "),
                        100.0 * s.share_of_latency,
                        op.operation
                    ),
                    evidence,
                    hint: "an index whose columns match the WHERE equality columns then the ORDER BY / GROUP BY columns lets SQLite read rows in order".into(),
                });
            }
        }
    }
    // Only reads: a bulk insert runs its INSERT once per row by design.
    for n in report.n_plus_one.iter().filter(|n| {
        n.shape
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("SELECT")
    }) {
        let op_total = report
            .operations
            .iter()
            .find(|o| o.operation == n.operation)
            .map(|o| o.statements_per_op)
            .unwrap_or(n.per_op);
        match &n.parent {
            Some(parent) => out.push(Finding {
                kind: FindingKind::NPlusOne,
                severity: if n.share_of_latency >= 0.1 { Severity::Critical } else { Severity::Warning },
                // N+1 costs round trips, not only statement time: rank it by
                // the share of statements it adds.
                score: (n.per_op / op_total.max(1.0)).max(n.share_of_latency),
                workload: report.workload.clone(),
                title: format!(
                    "n-plus-one: {:.0} statements per operation, {:.0} of shape `{}`",
                    op_total,
                    n.per_op,
                    short_sql(&n.shape)
                ),
                evidence: vec![
                    format!("driven by `{}`", short_sql(parent)),
                    format!("{:.0} % of operation latency in the repeated statement", 100.0 * n.share_of_latency),
                ],
                hint: "batch them: one query with IN (…) or a JOIN, or prefetch the rows with the first query".into(),
            }),
            None => out.push(Finding {
                kind: FindingKind::RepeatedLookups,
                severity: Severity::Info,
                score: n.share_of_latency,
                workload: report.workload.clone(),
                title: format!("{:.0} lookups per operation of shape `{}`", n.per_op, short_sql(&n.shape)),
                evidence: vec![format!("{:.0} % of operation latency", 100.0 * n.share_of_latency)],
                hint: "fine for indexed point lookups; batch with IN (…) if the keys are known up front".into(),
            }),
        }
    }
    out
}

/// Findings from a leak check: one per growing allocation site.
pub fn from_leaks(report: &LeakReport) -> Vec<Finding> {
    report
        .leaks
        .iter()
        .map(|site| Finding {
            kind: FindingKind::Leak,
            severity: Severity::Critical,
            // A leak fails a long-running process sooner or later, whatever
            // its share today: rank it at the top.
            score: 1.0,
            workload: report.workload.clone(),
            title: format!(
                "{}: live heap grows {:.0} B/op at {}",
                report.workload, site.slope_bytes_per_op, site.site
            ),
            evidence: vec![
                format!("stack: {}", site.stack.join(" ← ")),
                format!(
                    "bytes live at the end after {:?} operations: {:?} (R² {:.3})",
                    report.ops, site.live_end, site.r2
                ),
            ],
            hint:
                "bound what this site keeps (an LRU or TTL), or release it when the operation ends"
                    .into(),
        })
        .collect()
}

/// A frame or layer that holds at least this share of CPU samples is a hotspot.
pub const CPU_HOTSPOT_SHARE: f64 = 0.3;

/// Below this many samples a CPU profile gives no finding: a share from
/// 100 samples is uncertain by up to ±10 points (95 %), from 5 by ±44.
pub const CPU_FINDING_MIN_SAMPLES: u64 = 100;

/// The findings a report may show of a run whose CPU profile holds
/// `cpu_samples` samples: CPU findings below [`CPU_FINDING_MIN_SAMPLES`]
/// are withheld (a `findings.json` written before the floor, or by hand,
/// may hold them); with how many were.
pub fn supported(findings: Vec<Finding>, cpu_samples: Option<u64>) -> (Vec<Finding>, usize) {
    let few = cpu_samples.is_some_and(|n| n < CPU_FINDING_MIN_SAMPLES);
    let before = findings.len();
    let kept: Vec<Finding> = findings
        .into_iter()
        .filter(|f| !(few && matches!(f.kind, FindingKind::CpuHotspot | FindingKind::CpuCause)))
        .collect();
    let withheld = before - kept.len();
    (kept, withheld)
}

/// Ranked findings from every pass's analysis a run has (whichever are
/// there): SQL, CPU (told apart from SQL time when both are there), leaks.
pub fn rank(
    workload: &str,
    sql: Option<&SqlReport>,
    cpu: Option<&CpuReport>,
    leaks: Option<&LeakReport>,
) -> Findings {
    let mut all = Vec::new();
    if let Some(sql) = sql {
        all.extend(from_sql(sql));
    }
    if let Some(cpu) = cpu {
        let extra = from_cpu(cpu, sql, &mut all);
        all.extend(extra);
        all.extend(super::causes::findings(cpu, sql));
    }
    if let Some(leaks) = leaks {
        all.extend(from_leaks(leaks));
    }
    Findings::new(workload, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_cpu_samples_give_no_finding() {
        use crate::analyze::cpu::analyze;
        use crate::profile::cpu_fixture::{profile as of, stack};
        let profile = |n: u64| {
            of(vec![
                stack("main;hot", n * 3 / 5),
                stack("main;cold", n - n * 3 / 5),
            ])
        };
        assert!(from_cpu(&analyze(&profile(5), "w", 5), None, &mut []).is_empty());
        let few = analyze(&profile(5), "w", 5);
        assert!(
            few.warnings.iter().any(|w| w.contains("no CPU finding")),
            "{:?}",
            few.warnings
        );
        let found = from_cpu(&analyze(&profile(1000), "w", 5), None, &mut []);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].title.starts_with("hot holds 60 %"),
            "{}",
            found[0].title
        );
        assert!(
            found[0].evidence[0].contains("60 % (95 % interval 57–63 %) of 1000 samples"),
            "{:?}",
            found[0].evidence
        );
    }

    #[test]
    fn the_runtime_parking_its_threads_is_no_hotspot() {
        use crate::analyze::cpu::analyze;
        use crate::profile::cpu::{CpuProfile, Frame, Stack};
        use crate::units::Nanos;
        let stack = |frames: &[&str], samples: u64| Stack {
            thread: "pk-worker-1".into(),
            frames: frames
                .iter()
                .map(|f| Frame {
                    function: (*f).into(),
                    file: None,
                    line: None,
                    module: None,
                    inlined: false,
                })
                .collect(),
            samples,
        };
        let parked = [
            "tokio::runtime::park::Inner::park",
            "<std::sys::sync::condvar::futex::Condvar>::wait",
            "std::sys::pal::unix::futex::futex_wait",
            "syscall",
        ];
        let profile = |own: u64| CpuProfile {
            frequency: 997,
            sampler: Default::default(),
            sampler_note: None,
            samples: 1000,
            cpu_time: Nanos(1_000_000_000),
            wall_time: Nanos(1_000_000_000),
            started_unix_nanos: 0,
            stacks: vec![
                stack(&parked, 400),
                stack(&["shop::handler", "syscall"], own),
                stack(&["shop::handler", "shop::render"], (600 - own) / 3),
                stack(&["shop::handler", "shop::encode"], (600 - own) / 3),
                stack(
                    &["shop::handler", "shop::send"],
                    600 - own - 2 * ((600 - own) / 3),
                ),
            ],
        };
        // 40 % parked + 20 % of the handler's own system calls: no hotspot.
        let r = analyze(&profile(200), "w", 5);
        assert_eq!(r.runtime_wait.get("syscall"), Some(&400));
        assert!(from_cpu(&r, None, &mut []).is_empty());
        // 35 % of its own: a hotspot of 35 %, not 75 %.
        let found = from_cpu(&analyze(&profile(350), "w", 5), None, &mut []);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].title.starts_with("syscall holds 35 %"),
            "{found:?}"
        );
    }

    #[test]
    fn ranking_puts_severity_first_then_score() {
        let f = |severity, score: f64, title: &str| Finding {
            kind: FindingKind::FullScan,
            severity,
            score,
            workload: "w".into(),
            title: title.into(),
            evidence: vec![],
            hint: String::new(),
        };
        let all = Findings::new(
            "w",
            vec![
                f(Severity::Info, 0.9, "a"),
                f(Severity::Critical, 0.6, "b"),
                f(Severity::Critical, 0.8, "c"),
            ],
        );
        let titles: Vec<_> = all.findings.iter().map(|x| x.title.as_str()).collect();
        assert_eq!(titles, ["c", "b", "a"]);
    }

    #[test]
    fn short_sql_keeps_the_where_clause() {
        let s = short_sql("SELECT id, tenant_id, mailbox_id, sender, recipients, subject FROM emails WHERE id = ? AND tenant_id = ?");
        assert_eq!(s, "SELECT … FROM emails WHERE id = ? AND tenant_id = ?");
    }
}
