//! Findings from a CPU profile: SQLite's C code dominating it, or a hot
//! function of the program's own code (the runtime idling is not one).

use super::cpu::{CpuReport, FrameShare, Layer};
use super::findings::{
    severity_for, short_sql, Finding, FindingKind, Severity, CPU_FINDING_MIN_SAMPLES,
    CPU_HOTSPOT_SHARE,
};
use super::shares::share_interval;
use super::sql::SqlReport;
use crate::units::Nanos;

/// "35 % (95 % interval 27–44 %) of 120 samples".
fn share_with_interval(k: u64, n: u64) -> String {
    let (lo, hi) = share_interval(k, n);
    format!(
        "{:.0} % (95 % interval {:.0}–{:.0} %) of {n} samples",
        100.0 * k as f64 / n.max(1) as f64,
        100.0 * lo,
        100.0 * hi
    )
}

/// Findings from a CPU profile, tied to the SQL report when there is one:
/// SQLite's C code dominating the profile is charged to the statement that
/// dominates database time ("62 % of CPU in sqlite3VdbeExec ← `SELECT …`").
/// Existing SQL findings about that statement get the CPU evidence instead
/// of a second finding.
pub fn from_cpu(
    cpu: &CpuReport,
    sql: Option<&SqlReport>,
    existing: &mut [Finding],
) -> Vec<Finding> {
    let mut out = Vec::new();
    // Too few samples to tell a hotspot from chance: no verdict (cpu.json
    // says why).
    if cpu.samples < CPU_FINDING_MIN_SAMPLES {
        return out;
    }
    let share = |layer: Layer| {
        cpu.layers
            .iter()
            .find(|l| l.layer == layer)
            .map_or(0.0, |l| l.percent / 100.0)
    };
    let sqlite = share(Layer::Sqlite);
    let top_sqlite = cpu
        .top_self
        .iter()
        .find(|f| f.function.starts_with("sqlite3") || f.function.starts_with("fts5"));
    if sqlite >= 0.5 {
        let top_stmt = sql.and_then(|r| {
            r.operations
                .iter()
                .flat_map(|o| o.statements.iter())
                .max_by(|a, b| a.total.cmp(&b.total))
        });
        let frame = top_sqlite
            .map(|f| format!(" (hottest: {} {:.0} %)", f.function, f.percent))
            .unwrap_or_default();
        let line = format!(
            "{:.0} % of CPU samples in SQLite's C code{frame}",
            100.0 * sqlite
        );
        let attached = top_stmt.and_then(|stmt| {
            existing
                .iter_mut()
                .find(|f| f.title.contains(&short_sql(&stmt.shape)))
                .map(|f| f.evidence.insert(0, line.clone()))
        });
        if attached.is_none() {
            out.push(Finding {
                kind: FindingKind::CpuHotspot,
                severity: Severity::Info,
                score: sqlite,
                workload: cpu.workload.clone(),
                title: match top_stmt {
                    Some(s) => format!("{line} ← `{}`", short_sql(&s.shape)),
                    None => line.clone(),
                },
                evidence: vec![format!(
                    "SQLite's share: {} at {:.0} Hz",
                    share_with_interval((sqlite * cpu.samples as f64).round() as u64, cpu.samples),
                    cpu.effective_rate
                )],
                hint:
                    "time goes to the database: see the SQL report for the statement and its plan"
                        .into(),
            });
        }
    }
    // A hot function of the program's own code. An async runtime parking
    // or waking its threads is the runtime idling, not a hotspot: those
    // samples do not count towards a frame's share.
    let own_samples = |f: &FrameShare| {
        let waits = cpu.runtime_wait.get(&f.function).copied().unwrap_or(0);
        f.samples.saturating_sub(waits)
    };
    let own = |f: &FrameShare| own_samples(f) as f64 / cpu.samples.max(1) as f64;
    if let Some(f) = cpu.top_self.iter().find(|f| {
        own(f) >= CPU_HOTSPOT_SHARE
            && !f.function.starts_with("sqlite3")
            && !f.function.starts_with("fts5")
    }) {
        let p = own(f);
        out.push(Finding {
            kind: FindingKind::CpuHotspot,
            severity: severity_for(p).min(Severity::Warning),
            score: p,
            workload: cpu.workload.clone(),
            title: format!(
                "{} holds {:.0} % of CPU samples (self time)",
                f.function,
                100.0 * p
            ),
            evidence: vec![format!(
                "{} of CPU: {} at {:.0} Hz",
                Nanos(cpu.sample_period.0 * own_samples(f)),
                share_with_interval(own_samples(f), cpu.samples),
                cpu.effective_rate
            )],
            hint: hotspot_hint(&f.function),
        });
    }
    out
}

/// What to do about a hot function, by what it is.
fn hotspot_hint(function: &str) -> String {
    if function.contains("fcntl") {
        "file locking: SQLite takes and drops its read lock with fcntl() around every autocommit \
         statement; group related reads into one transaction (BEGIN … COMMIT) or fetch more per statement"
            .into()
    } else if function.contains("pread") || function.contains("read64") {
        "file reads: raise the page cache (cache_size) or map the file (mmap_size) so pages are not copied in by read calls".into()
    } else if function.contains("malloc")
        || function.contains("free")
        || function.contains("memcpy")
        || function.contains("memmove")
    {
        "allocation and copying: see the heap profile for the sites, reuse buffers or borrow instead of cloning".into()
    } else {
        "make this function cheaper or call it less often; the flamegraph shows who calls it".into()
    }
}
