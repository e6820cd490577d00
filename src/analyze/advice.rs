//! Advice that proves itself: candidate fixes drawn from a run's SQL
//! report (indexes, by the rule SQLite's `.expert` uses: the WHERE
//! equality columns first, then one range or ORDER BY column) and fixed
//! PRAGMA trials, and the measured change of each trial from paired runs
//! (original, trial, original, trial, …) with its 95 % interval. Running
//! the trials is [`crate::passes`]' business; this is the arithmetic.

use serde::{Deserialize, Serialize};

use super::sql::SqlReport;

/// Version of `advice.json`.
pub const ADVICE_SCHEMA_VERSION: u32 = 1;

/// Defaults of the advisor, defined once.
pub mod defaults {
    /// Pairs of runs (original, trial) per trial.
    pub const PAIRS: usize = 5;
    /// Most index candidates tried.
    pub const MAX_INDEXES: usize = 4;
    /// Statements below this share of operation latency get no candidate.
    pub const MIN_SHARE: f64 = 0.02;
    /// Wall-clock budget of all trials, in seconds: trials that would
    /// start past it are skipped and the report says so.
    pub const BUDGET_SECS: u64 = 60;
}

/// What a trial changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrialKind {
    /// `CREATE INDEX` on the scratch copy.
    Index,
    /// A PRAGMA on every connection the workload opens.
    Pragma,
}

/// A fix to try.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Index or PRAGMA.
    pub kind: TrialKind,
    /// Short name (`index emails(sender, received_at)`, `synchronous = NORMAL`).
    pub name: String,
    /// The SQL to paste: applied once to the copy (index) or on every
    /// connection (PRAGMA).
    pub sql: String,
    /// Why it was proposed (the statement or the setting's reason).
    pub reason: String,
}

/// The columns of an index for one single-table statement shape, by
/// `.expert`'s rule; `None` when the shape is not one this rule reads
/// (joins, OR, subqueries) or gives nothing to index.
pub fn index_columns(shape: &str) -> Option<(String, Vec<String>)> {
    let upper = shape.to_ascii_uppercase();
    if !upper.starts_with("SELECT ")
        || upper.contains(" JOIN ")
        || upper.contains(" OR ")
        || upper.matches("SELECT").count() > 1
    {
        return None;
    }
    let from = upper.find(" FROM ")? + 6;
    let table: String = shape[from..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let after_table = shape[from + table.len()..].trim_start();
    if table.is_empty() || after_table.starts_with(',') {
        return None;
    }
    let end_of = |kw: &str| upper.find(kw);
    let where_at = end_of(" WHERE ");
    let order_at = end_of(" ORDER BY ");
    let group_at = end_of(" GROUP BY ");
    let limit_at = end_of(" LIMIT ");
    let ident = |s: &str| -> Option<String> {
        let s = s.trim();
        let s = s.rsplit('.').next()?.trim();
        (!s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then(|| s.to_string())
    };
    let mut eq = Vec::new();
    let mut range = None;
    if let Some(w) = where_at {
        let stop = [order_at, group_at, limit_at]
            .into_iter()
            .flatten()
            .filter(|&i| i > w)
            .min()
            .unwrap_or(shape.len());
        let clause = &shape[w + 7..stop];
        for term in clause.split(" AND ") {
            let t = term.trim();
            let up = t.to_ascii_uppercase();
            if let Some((l, r)) = t.split_once(" = ") {
                if r.trim() == "?" {
                    if let Some(c) = ident(l) {
                        eq.push(c);
                    }
                }
            } else if let Some(i) = up.find(" IN (") {
                if let Some(c) = ident(&t[..i]) {
                    eq.push(c);
                }
            } else if let Some(op) = [" >= ", " <= ", " > ", " < ", " BETWEEN "]
                .iter()
                .find(|op| up.contains(*op))
            {
                let i = up.find(op).unwrap_or(0);
                if range.is_none() {
                    range = ident(&t[..i]);
                }
            }
        }
    }
    let order = order_at.and_then(|o| {
        let stop = [limit_at].into_iter().flatten().find(|&i| i > o);
        let list = &shape[o + 10..stop.unwrap_or(shape.len())];
        let first = list.split(',').next()?.trim();
        let col = first
            .trim_end_matches(" DESC")
            .trim_end_matches(" ASC")
            .trim_end_matches(" desc")
            .trim_end_matches(" asc");
        ident(col)
    });
    let mut cols = eq;
    cols.dedup();
    if let Some(c) = range.or(order) {
        if !cols.contains(&c) {
            cols.push(c);
        }
    }
    // The rowid needs no index.
    if cols.is_empty() || cols[0] == "id" || cols[0] == "rowid" {
        return None;
    }
    Some((table, cols))
}

/// Index candidates from a SQL report: one per distinct (table, columns)
/// of the statements past [`defaults::MIN_SHARE`] of latency, most costly
/// first, skipping those `exists` says an index already starts with.
pub fn index_candidates(
    report: &SqlReport,
    exists: &dyn Fn(&str, &[String]) -> bool,
) -> Vec<Candidate> {
    let mut stmts: Vec<_> = report
        .operations
        .iter()
        .flat_map(|o| o.statements.iter())
        .filter(|s| s.share_of_latency >= defaults::MIN_SHARE)
        .collect();
    stmts.sort_by_key(|s| std::cmp::Reverse(s.total));
    let mut out: Vec<Candidate> = Vec::new();
    for s in stmts {
        let Some((table, cols)) = index_columns(&s.shape) else {
            continue;
        };
        if exists(&table, &cols) {
            continue;
        }
        let name = format!("{table}({})", cols.join(", "));
        if out.iter().any(|c| c.name.ends_with(&name)) {
            continue;
        }
        out.push(Candidate {
            kind: TrialKind::Index,
            sql: format!(
                "CREATE INDEX IF NOT EXISTS advice_{table}_{} ON {name}",
                cols.join("_")
            ),
            name: format!("index {name}"),
            reason: format!(
                "`{}` ({:.0} % of latency; plan: {})",
                super::findings::short_sql(&s.shape),
                100.0 * s.share_of_latency,
                super::sql::plan_text(&s.plan)
            ),
        });
        if out.len() >= defaults::MAX_INDEXES {
            break;
        }
    }
    out
}

/// The PRAGMA trials, each on its own.
pub fn pragma_candidates() -> Vec<Candidate> {
    let p = |name: &str, sql: &str, reason: &str| Candidate {
        kind: TrialKind::Pragma,
        name: name.to_string(),
        sql: sql.to_string(),
        reason: reason.to_string(),
    };
    vec![
        p(
            "synchronous = NORMAL",
            "PRAGMA synchronous = NORMAL",
            "under WAL, no fsync per commit (durable at checkpoints, never corrupt)",
        ),
        p(
            "cache_size = 64 MiB",
            "PRAGMA cache_size = -65536",
            "more pages kept in SQLite's own cache",
        ),
        p(
            "mmap_size = 256 MiB",
            "PRAGMA mmap_size = 268435456",
            "pages read through a memory map, not copied in by read calls",
        ),
    ]
}

/// The measured change of one trial against the original.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The figure compared (`p95`, `mean`).
    pub metric: String,
    /// Its median over the original's runs, in nanoseconds.
    pub original: f64,
    /// Its median over the trial's runs, in nanoseconds.
    pub trial: f64,
    /// Geometric mean of the paired ratios trial ÷ original, minus 1.
    pub change: f64,
    /// Lower end of the change's 95 % interval.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Pairs of runs.
    pub pairs: usize,
    /// Each pair's (original, trial) figures, in the order run.
    #[serde(default)]
    pub runs: Vec<(f64, f64)>,
}

impl Change {
    /// Whether the trial is faster beyond the noise: the whole interval
    /// lies below 0.
    pub fn helps(&self) -> bool {
        self.high < 0.0
    }
}

/// Two-sided 97.5 % quantile of Student's t with `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        1..=10 => TABLE[df - 1],
        _ => 1.96 + 2.5 / df as f64,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The change from paired runs `(original, trial)` of one figure: the
/// mean of the log ratios with a Student t interval over the pairs (the
/// run is the unit of replication). `None` without two valid pairs.
pub fn paired_change(metric: &str, pairs: &[(f64, f64)]) -> Option<Change> {
    let valid: Vec<(f64, f64)> = pairs
        .iter()
        .copied()
        .filter(|(o, t)| *o > 0.0 && *t > 0.0 && o.is_finite() && t.is_finite())
        .collect();
    let n = valid.len();
    if n < 2 {
        return None;
    }
    let logs: Vec<f64> = valid.iter().map(|(o, t)| (t / o).ln()).collect();
    let mean = logs.iter().sum::<f64>() / n as f64;
    let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    let originals: Vec<f64> = valid.iter().map(|p| p.0).collect();
    let trials: Vec<f64> = valid.iter().map(|p| p.1).collect();
    Some(Change {
        metric: metric.to_string(),
        original: median(&originals),
        trial: median(&trials),
        change: mean.exp() - 1.0,
        low: (mean - half).exp() - 1.0,
        high: (mean + half).exp() - 1.0,
        pairs: n,
        runs: valid,
    })
}

/// What became of one trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The fix tried.
    pub candidate: Candidate,
    /// The measured change, when the trial ran.
    pub change: Option<Change>,
    /// Why it did not run or failed, in one line.
    pub error: Option<String>,
    /// Whether the advice is to apply it: measured faster beyond the noise.
    pub keep: bool,
}

/// What `advice.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    /// [`ADVICE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Workload.
    pub workload: String,
    /// Every trial, in the order run.
    pub trials: Vec<Trial>,
    /// How the trials were bounded (pairs, operations per run, budget) and
    /// what was skipped for time.
    pub notes: Vec<String>,
}

impl Advice {
    /// The trials worth applying, most gain first.
    pub fn kept(&self) -> Vec<&Trial> {
        let mut k: Vec<&Trial> = self.trials.iter().filter(|t| t.keep).collect();
        k.sort_by(|a, b| {
            let c = |t: &Trial| t.change.as_ref().map_or(0.0, |c| c.change);
            c(a).total_cmp(&c(b))
        });
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_columns_follow_the_expert_rule() {
        let cols = |s: &str| index_columns(s).map(|(t, c)| format!("{t}({})", c.join(", ")));
        assert_eq!(
            cols("SELECT id, subject FROM emails WHERE tenant_id = ? AND sender = ? ORDER BY received_at DESC LIMIT ?").as_deref(),
            Some("emails(tenant_id, sender, received_at)")
        );
        assert_eq!(
            cols("SELECT id FROM emails WHERE sender = ? AND received_at > ? ORDER BY id")
                .as_deref(),
            Some("emails(sender, received_at)")
        );
        assert_eq!(
            cols("SELECT id FROM emails ORDER BY received_at DESC LIMIT ?").as_deref(),
            Some("emails(received_at)")
        );
        assert_eq!(cols("SELECT * FROM emails WHERE id = ?"), None);
        assert_eq!(
            cols("SELECT e.id FROM emails e JOIN users u ON u.id = e.user_id WHERE u.id = ?"),
            None
        );
        assert_eq!(cols("SELECT id FROM emails WHERE a = ? OR b = ?"), None);
    }

    #[test]
    fn a_paired_change_carries_its_interval() {
        // Trial ~50 % faster in every pair: helps, interval below 0.
        let pairs = [(100.0, 50.0), (110.0, 56.0), (95.0, 49.0), (105.0, 52.0)];
        let c = paired_change("p95", &pairs).unwrap();
        assert!((c.change + 0.5).abs() < 0.03, "{c:?}");
        assert!(
            c.low < c.change && c.change < c.high && c.high < 0.0,
            "{c:?}"
        );
        assert!(c.helps());
        // Noise around no change: the interval spans 0.
        let pairs = [(100.0, 104.0), (100.0, 97.0), (100.0, 101.0), (100.0, 98.0)];
        let c = paired_change("p95", &pairs).unwrap();
        assert!(c.low < 0.0 && c.high > 0.0 && !c.helps(), "{c:?}");
        assert!(paired_change("p95", &[(1.0, 1.0)]).is_none());
    }
}
