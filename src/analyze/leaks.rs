//! Leak detection by growth, and soak runs.
//!
//! **Growth**: the workload runs at N, 2N and 4N measured operations (same
//! seed, same warm-up, a fresh database each time) under the heap profiler.
//! Every allocation site's bytes still live at the end are fitted against
//! the operation count by least squares: a site that keeps growing is a
//! leak, reported with its slope (bytes per operation), fit quality (R²)
//! and stack.
//!
//! Growth that stops is not a leak. The warm-up (profiled, so that cache
//! entries replaced later are tracked from birth) fills bounded caches
//! before the measured operations; a site must still grow in the last
//! segment (2N → 4N) at least half as fast per operation as in the first,
//! by at least [`defaults::MIN_GROWTH`]. SQLite's page cache grows with
//! written pages up to `PRAGMA cache_size` per connection; sites under
//! `pcache1` are reported as a bounded cache while their total stays within
//! that limit.
//!
//! **Soak**: a longer run without the heap profiler, sampling the resident
//! set size, reporting growth in MB and MB per 10k operations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alloc::{self, short_stack};
use super::fit::slope_and_r2;
use crate::profile::dhat::{frame_location, frame_without_address, DhatFile};
use crate::units::{Bytes, Nanos};

/// Version of `leaks.json`.
pub const SCHEMA_VERSION: u32 = 1;

/// Thresholds, defined once.
pub mod defaults {
    /// Measured operations at the first point are the workload's default
    /// operation count divided by this.
    pub const OPS_DIVISOR: u64 = 10;
    /// Warm-up operations, as a multiple of N.
    pub const WARMUP_FACTOR: u64 = 4;
    /// A leak grows by at least this much over the last segment (2N → 4N).
    pub const MIN_GROWTH: u64 = 16 * 1024;
    /// …by at least this many bytes per operation…
    pub const MIN_SLOPE: f64 = 1.0;
    /// …still at this fraction of its first-segment rate (1 for linear growth)…
    pub const MIN_SUSTAIN: f64 = 0.5;
    /// …with a least-squares fit at least this good.
    pub const MIN_R2: f64 = 0.8;
    /// Operation count multiples.
    pub const POINTS: [u64; 3] = [1, 2, 4];
    /// Measured operations of a whole check, in units of N (N + 2N + 4N).
    pub const MEASURED_PER_N: u64 = POINTS[0] + POINTS[1] + POINTS[2];
    /// Operations of a whole check with its warm-ups, in units of N: a
    /// warm-up of [`WARMUP_FACTOR`] × N before each point (19 N).
    pub const OPS_PER_N: u64 = MEASURED_PER_N + POINTS.len() as u64 * WARMUP_FACTOR;
    /// RSS samples in a soak run.
    pub const SOAK_SAMPLES: u32 = 20;
    /// Soak budget: growth above this (MB) fails the soak verdict.
    pub const SOAK_BUDGET_MB: f64 = 50.0;
}

/// How to look for growth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeakOptions {
    /// N: measured operations at the first point (then 2N, 4N).
    pub ops: u64,
    /// Warm-up operations before each point (profiled).
    pub warmup: u64,
}

impl LeakOptions {
    /// N from a workload's default operations ÷ [`defaults::OPS_DIVISOR`],
    /// warm-up [`defaults::WARMUP_FACTOR`] × N.
    pub fn for_ops(ops: u64) -> LeakOptions {
        LeakOptions {
            ops: ops.max(1),
            warmup: ops.max(1) * defaults::WARMUP_FACTOR,
        }
    }
}

/// One allocation site's growth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteGrowth {
    /// The first frame that is not allocator or std plumbing.
    pub site: String,
    /// A short readable stack.
    pub stack: Vec<String>,
    /// Bytes live at the end of each point.
    pub live_end: Vec<u64>,
    /// Least-squares slope, bytes per operation.
    pub slope_bytes_per_op: f64,
    /// Fit quality.
    pub r2: f64,
    /// Growth from the first point to the last.
    pub growth: Bytes,
    /// For growth that is not a leak: the bound that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounded_by: Option<String>,
}

/// What `leaks.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeakReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Workload name.
    pub workload: String,
    /// Warm-up operations before each point.
    pub warmup_ops: u64,
    /// Measured operations of each point.
    pub ops: Vec<u64>,
    /// Bytes live at the end of each point, all sites.
    pub total_live_end: Vec<u64>,
    /// Slope of the total, bytes per operation.
    pub total_slope_bytes_per_op: f64,
    /// Its fit quality.
    pub total_r2: f64,
    /// Sites that keep growing: leaks, steepest first.
    pub leaks: Vec<SiteGrowth>,
    /// Sum of the leaks' slopes, bytes per operation.
    pub leaked_bytes_per_op: f64,
    /// Growth explained by bounded caches (SQLite's page cache within its limit).
    pub bounded: Vec<SiteGrowth>,
    /// One line: "leak: 96 B/op at …" or "no growth found".
    pub verdict: String,
    /// The soak run, when one was asked for.
    pub soak: Option<SoakReport>,
}

impl LeakReport {
    /// A report with no growth check (a soak run, or a check skipped).
    pub fn skipped(workload: &str) -> LeakReport {
        LeakReport {
            schema_version: SCHEMA_VERSION,
            workload: workload.to_string(),
            warmup_ops: 0,
            ops: Vec::new(),
            total_live_end: Vec::new(),
            total_slope_bytes_per_op: 0.0,
            total_r2: 0.0,
            leaks: Vec::new(),
            leaked_bytes_per_op: 0.0,
            bounded: Vec::new(),
            verdict: String::new(),
            soak: None,
        }
    }
}

/// Whether live bytes `ys` at operation counts `xs` grow like a leak.
pub fn is_leak(xs: &[f64], ys: &[f64]) -> bool {
    let k = xs.len().min(ys.len());
    if k < 3 {
        return false;
    }
    let (slope, r2) = slope_and_r2(xs, ys);
    let last = (ys[k - 1] - ys[k - 2]) / (xs[k - 1] - xs[k - 2]);
    let first = (ys[1] - ys[0]) / (xs[1] - xs[0]);
    slope >= defaults::MIN_SLOPE
        && r2 >= defaults::MIN_R2
        && ys[k - 1] - ys[k - 2] >= defaults::MIN_GROWTH as f64
        && last >= defaults::MIN_SUSTAIN * first.max(0.0)
}

/// A site's short stack, live bytes per point, and bound (if any).
type SiteSeries = (Vec<String>, Vec<u64>, Option<&'static str>);

/// One point of a growth check: the heap profile after `ops` operations.
pub struct GrowthPoint {
    /// Measured operations.
    pub ops: u64,
    /// The heap profile at the end of the run.
    pub file: DhatFile,
    /// SQLite's page-cache limit summed over the pool's connections
    /// (0 when the workload has no database).
    pub cache_limit: u64,
}

const PAGE_CACHE: &str = "SQLite page cache, up to PRAGMA cache_size per connection";
const CONNECTIONS: &str = "per-connection state (pooled connections opened on demand, their FTS5 tables), up to the pool size";

/// The bound that holds a site's growth, when its stack shows one: SQLite's
/// page cache (`pcache1…`), or state each pooled connection allocates once:
/// opening it (`openDatabase`, schema loading, r2d2_sqlite's `connect`), a
/// virtual table it connects to on first use (`sqlite3VtabCallConnect`),
/// FTS5's pending-terms hash it keeps from its first write
/// (`sqlite3Fts5HashNew`). A pool of several connections that each get to
/// their first write over a run grows there, and stops at the pool size.
fn bound_of(file: &DhatFile, fs: &[usize]) -> Option<&'static str> {
    let mut bound = None;
    for &f in fs {
        let name = file.function(f);
        if name.starts_with("pcache1") {
            return Some(PAGE_CACHE);
        }
        let location = frame_location(&file.ftbl[f]);
        if matches!(
            name,
            "openDatabase"
                | "sqlite3InitOne"
                | "sqlite3AnalysisLoad"
                | "sqlite3VtabCallConnect"
                | "sqlite3Fts5HashNew"
        ) || (name.starts_with("connect") && location.contains("r2d2_sqlite"))
        {
            bound = Some(CONNECTIONS);
        }
    }
    bound
}

/// A site: its stack, leaf first, up to an async runtime's scheduler
/// (which reaches the same future by different paths from poll to poll:
/// one site would otherwise split into several, none growing enough).
fn site_key(file: &DhatFile, fs: &[usize]) -> String {
    fs.iter()
        .map(|&f| frame_without_address(&file.ftbl[f]))
        .take_while(|f| !f.contains("tokio::runtime::"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Merges growing sites whose short stacks are the same.
pub fn merge_shown(sites: Vec<SiteGrowth>) -> Vec<SiteGrowth> {
    let mut merged: Vec<SiteGrowth> = Vec::new();
    for s in sites {
        match merged.iter_mut().find(|m| m.stack == s.stack) {
            Some(m) => {
                m.slope_bytes_per_op += s.slope_bytes_per_op;
                m.growth = Bytes(m.growth.0 + s.growth.0);
                for (a, b) in m.live_end.iter_mut().zip(&s.live_end) {
                    *a += b;
                }
                m.r2 = m.r2.min(s.r2);
            }
            None => merged.push(s),
        }
    }
    merged
}

/// The leak report of a growth check: every site's live bytes at the end,
/// fitted against the operation counts of the points.
pub fn growth(name: &str, warmup: u64, points: &[GrowthPoint]) -> LeakReport {
    let xs: Vec<f64> = points.iter().map(|p| p.ops as f64).collect();
    // Site → (short stack, live bytes per point).
    let mut sites: BTreeMap<String, SiteSeries> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        for pp in &p.file.pps {
            let key = site_key(&p.file, &pp.fs);
            let entry = sites.entry(key).or_insert_with(|| {
                let pcache = bound_of(&p.file, &pp.fs);
                (
                    short_stack(&p.file, pp, alloc::defaults::SHORT_STACK),
                    vec![0; points.len()],
                    pcache,
                )
            });
            entry.1[i] += pp.eb.unwrap_or(0);
        }
    }
    let mut leaks = Vec::new();
    let mut pcache = Vec::new();
    let mut connections = Vec::new();
    for (stack, live, bound) in sites.into_values() {
        let ys: Vec<f64> = live.iter().map(|&b| b as f64).collect();
        if !is_leak(&xs, &ys) {
            continue;
        }
        let (slope, r2) = slope_and_r2(&xs, &ys);
        let growth = SiteGrowth {
            site: stack.first().cloned().unwrap_or_else(|| "[unknown]".into()),
            stack,
            growth: Bytes(live.last().copied().unwrap_or(0).saturating_sub(live[0])),
            live_end: live,
            slope_bytes_per_op: slope,
            r2,
            bounded_by: bound.map(String::from),
        };
        match bound {
            Some(PAGE_CACHE) => pcache.push(growth),
            Some(_) => connections.push(growth),
            None => leaks.push(growth),
        }
    }
    // The page cache is bounded while its total stays within the limit.
    let limit = points.last().map(|p| p.cache_limit).unwrap_or(0);
    let pcache_total: u64 = pcache.iter().filter_map(|s| s.live_end.last()).sum();
    let mut bounded = connections;
    if limit > 0 && pcache_total <= limit {
        bounded.extend(pcache);
    } else {
        leaks.extend(pcache);
    }
    // Growing sites that read the same as shown are one finding (a
    // `format!` and the `Vec::push` that keeps its result are one line of
    // the user's code): only sites that grow each on their own are merged.
    let mut leaks = merge_shown(leaks);
    // Steepest first, discounted by fit quality (a clean line beats a step).
    leaks.sort_by(|a, b| (b.slope_bytes_per_op * b.r2).total_cmp(&(a.slope_bytes_per_op * a.r2)));
    let totals: Vec<u64> = points
        .iter()
        .map(|p| p.file.pps.iter().map(|pp| pp.eb.unwrap_or(0)).sum())
        .collect();
    let (total_slope, total_r2) =
        slope_and_r2(&xs, &totals.iter().map(|&b| b as f64).collect::<Vec<_>>());
    let leaked: f64 = leaks.iter().map(|s| s.slope_bytes_per_op).sum();
    let verdict = match leaks.first() {
        None => "no growth found".to_string(),
        Some(top) => {
            let mut v = format!(
                "leak: {:.0} B/op at {} ({})",
                top.slope_bytes_per_op,
                top.site,
                top.stack
                    .iter()
                    .skip(1)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ← ")
            );
            if leaks.len() > 1 {
                v.push_str(&format!(
                    "; {} more growing site{}, {:.0} B/op in all",
                    leaks.len() - 1,
                    if leaks.len() == 2 { "" } else { "s" },
                    leaked
                ));
            }
            v
        }
    };
    LeakReport {
        schema_version: SCHEMA_VERSION,
        workload: name.to_string(),
        warmup_ops: warmup,
        ops: points.iter().map(|p| p.ops).collect(),
        total_live_end: totals,
        total_slope_bytes_per_op: total_slope,
        total_r2,
        leaks,
        leaked_bytes_per_op: leaked,
        bounded,
        verdict,
        soak: None,
    }
}

/// The report of a soak run from its RSS samples: (operations so far,
/// seconds so far, resident bytes), the first taken before any operation.
pub fn soak_report(elapsed: Nanos, samples: Vec<(u64, f64, u64)>) -> SoakReport {
    let rss_start = Bytes(samples.first().map_or(0, |s| s.2));
    let rss_end = Bytes(samples.last().map_or(rss_start.0, |s| s.2));
    let ops = samples.last().map_or(0, |s| s.0);
    let xs: Vec<f64> = samples.iter().map(|s| s.0 as f64).collect();
    let ys: Vec<f64> = samples.iter().map(|s| s.2 as f64 / 1e6).collect();
    let (slope, r2) = slope_and_r2(&xs, &ys);
    let growth_mb = (rss_end.0 as f64 - rss_start.0 as f64) / 1e6;
    let mb_per_10k_ops = slope * 10_000.0;
    let verdict = format!(
        "RSS {} by {:.1} MB over {} ops ({:.2} MB per 10k ops, R² {:.2}): {} the {:.0} MB budget",
        if growth_mb >= 0.0 { "grew" } else { "shrank" },
        growth_mb.abs(),
        ops,
        mb_per_10k_ops,
        r2,
        if growth_mb < defaults::SOAK_BUDGET_MB {
            "within"
        } else {
            "over"
        },
        defaults::SOAK_BUDGET_MB
    );
    SoakReport {
        elapsed,
        ops,
        samples,
        rss_start,
        rss_end,
        growth_mb,
        mb_per_10k_ops,
        r2,
        verdict,
        growing_sites: Vec::new(),
        sample_interval: None,
    }
}

/// The growing sites of a sampled soak run: `ops[i]` operations done at
/// point `i`, `live[pp][i]` the estimated bytes live then from `file.pps[pp]`.
/// A site grows when, fitted against operations, it gains at least
/// [`defaults::MIN_GROWTH`] bytes with R² ≥ [`defaults::MIN_R2`], and its
/// second half still grows at ≥ [`defaults::MIN_SUSTAIN`] of its overall
/// rate (a bounded cache filling early does not). Steepest first.
pub fn soak_sites(file: &DhatFile, ops: &[u64], live: &[Vec<f64>]) -> Vec<SiteGrowth> {
    let xs: Vec<f64> = ops.iter().map(|&o| o as f64).collect();
    let half = xs.len() / 2;
    let mut out = Vec::new();
    for (pp, ys) in file.pps.iter().zip(live) {
        if ys.len() != xs.len() || xs.len() < 4 {
            continue;
        }
        let (slope, r2) = slope_and_r2(&xs, ys);
        let growth = slope * (xs[xs.len() - 1] - xs[0]);
        let (late, _) = slope_and_r2(&xs[half..], &ys[half..]);
        if growth < defaults::MIN_GROWTH as f64
            || slope < defaults::MIN_SLOPE
            || r2 < defaults::MIN_R2
            || late < defaults::MIN_SUSTAIN * slope
        {
            continue;
        }
        let stack = short_stack(file, pp, alloc::defaults::SHORT_STACK);
        out.push(SiteGrowth {
            site: stack.first().cloned().unwrap_or_else(|| "[unknown]".into()),
            stack,
            live_end: ys.iter().map(|&y| y.max(0.0).round() as u64).collect(),
            slope_bytes_per_op: slope,
            r2,
            growth: Bytes(growth.max(0.0).round() as u64),
            bounded_by: None,
        });
    }
    out.sort_by(|a, b| b.slope_bytes_per_op.total_cmp(&a.slope_bytes_per_op));
    out
}

/// A soak run: resident memory over a longer run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoakReport {
    /// How long it ran.
    pub elapsed: Nanos,
    /// Operations performed.
    pub ops: u64,
    /// Samples: (operations so far, seconds so far, resident bytes).
    pub samples: Vec<(u64, f64, u64)>,
    /// RSS before the first operation (after setup).
    pub rss_start: Bytes,
    /// RSS at the end.
    pub rss_end: Bytes,
    /// RSS growth over the run, MB (10⁶ bytes).
    pub growth_mb: f64,
    /// Fitted growth per 10,000 operations, MB.
    pub mb_per_10k_ops: f64,
    /// Fit quality.
    pub r2: f64,
    /// One line, against the 50 MB budget.
    pub verdict: String,
    /// Sites whose sampled live bytes grow over the run (sampled soak).
    #[serde(default)]
    pub growing_sites: Vec<SiteGrowth>,
    /// Mean bytes between samples, when the soak sampled the heap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_interval: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soak_sites_name_steady_growth_not_a_filling_cache() {
        let f = crate::profile::dhat::tests::sample();
        let ops: Vec<u64> = (0..10).map(|i| i * 1000).collect();
        // pps[0] grows 96 B/op throughout; pps[1] fills in the first half.
        let leak: Vec<f64> = ops.iter().map(|&o| 5000.0 + 96.0 * o as f64).collect();
        let fill: Vec<f64> = ops
            .iter()
            .map(|&o| (o as f64 * 200.0).min(400_000.0))
            .collect();
        let sites = soak_sites(&f, &ops, &[leak, fill]);
        assert_eq!(sites.len(), 1, "{sites:?}");
        assert!((sites[0].slope_bytes_per_op - 96.0).abs() < 1e-6);
        assert!(sites[0].site.contains("preview"), "{}", sites[0].site);
    }

    #[test]
    fn per_connection_sqlite_state_is_bounded_by_the_pool() {
        let mut f = crate::profile::dhat::tests::sample();
        f.ftbl.extend(
            [
                "0x5: sqlite3Fts5HashNew (sqlite3/sqlite3.c:243727:1)",
                "0x6: sqlite3Fts5IndexBeginWrite (sqlite3/sqlite3.c:250951:1)",
                "0x7: pcache1Alloc (sqlite3/sqlite3.c:1:1)",
            ]
            .map(String::from),
        );
        // Seen on mixed under load: each pooled connection's first FTS5
        // write allocates its hash, so live bytes grow until all have.
        assert_eq!(bound_of(&f, &[5, 6, 3]), Some(CONNECTIONS));
        assert_eq!(bound_of(&f, &[7, 6, 3]), Some(PAGE_CACHE));
        assert_eq!(bound_of(&f, &[6, 3]), None);
        assert_eq!(bound_of(&f, &[2, 3]), None);
    }

    #[test]
    fn a_check_is_7_n_measured_and_19_n_in_all() {
        assert_eq!(defaults::MEASURED_PER_N, 7);
        assert_eq!(defaults::OPS_PER_N, 19);
    }

    #[test]
    fn linear_growth_is_a_leak_and_saturation_is_not() {
        let xs = [1000.0, 2000.0, 4000.0];
        let leak: Vec<f64> = xs.iter().map(|x| 5000.0 + 96.0 * x).collect();
        assert!(is_leak(&xs, &leak));
        let (s, r2) = slope_and_r2(&xs, &leak);
        assert!((s - 96.0).abs() < 1e-9 && r2 > 0.999);
        // Fills up to a bound between the second and third point.
        assert!(!is_leak(&xs, &[100_000.0, 180_000.0, 190_000.0]));
        // Flat.
        assert!(!is_leak(&xs, &[50_000.0, 50_000.0, 50_000.0]));
        // Tiny growth.
        assert!(!is_leak(&xs, &[100.0, 200.0, 400.0]));
    }
}
