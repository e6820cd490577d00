//! What changed below the metrics of a comparison: CPU frame shares (one
//! row per changed call chain, listed only beyond run-to-run variation),
//! allocation sites and SQL statements. Each side is one or more runs.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::replicates::{change_interval, NoiseModel, Scale};
use super::rundata::LoadedRun;
use super::shares::share_change_significant;
use super::stacks::Folded;

/// A call chain whose share of CPU samples changed: the frame where the
/// change starts (the outermost frame with it) and the frames below it
/// that changed by about as much.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameChange {
    /// The frame where the change starts.
    pub frame: String,
    /// Share of samples with the frame on the stack, base, % (mean over runs).
    pub base_total: f64,
    /// …current, %.
    pub current_total: f64,
    /// Share of samples with the frame on top, base, %.
    pub base_self: f64,
    /// …current, %.
    pub current_self: f64,
    /// Interval of the change of the total share, percentage points.
    #[serde(default)]
    pub ci: Option<(f64, f64)>,
    /// The frames below it whose share changed with it, outermost first.
    #[serde(default)]
    pub chain: Vec<String>,
}

impl FrameChange {
    /// Change of the total share, percentage points.
    pub fn delta(&self) -> f64 {
        self.current_total - self.base_total
    }
}

/// Per frame: (samples on the stack, samples on top); the total; and
/// caller → callee edges with the frame's smallest depth.
struct Counts<'a> {
    incl: HashMap<&'a str, u64>,
    own: HashMap<&'a str, u64>,
    total: u64,
}

fn counts(folded: &Folded) -> Counts<'_> {
    let mut c = Counts {
        incl: HashMap::new(),
        own: HashMap::new(),
        total: folded.values().sum(),
    };
    for (stack, n) in folded {
        let mut seen = HashSet::new();
        let frames: Vec<&str> = stack.split(';').collect();
        for f in &frames {
            if seen.insert(*f) {
                *c.incl.entry(f).or_default() += n;
            }
        }
        if let Some(leaf) = frames.last() {
            *c.own.entry(leaf).or_default() += n;
        }
    }
    c
}

/// The call chains whose share of CPU samples changed beyond run-to-run
/// variation (at most `top`, largest first), and how many frames changed
/// within it. With one run a side, a change must clear both the noise of
/// the two sample counts and the `model`'s run-to-run spread of a share.
pub fn frame_changes(
    base: &[&Folded],
    current: &[&Folded],
    model: &NoiseModel,
    confidence: f64,
    top: usize,
) -> (Vec<FrameChange>, usize) {
    if base.is_empty() || current.is_empty() {
        return (Vec::new(), 0);
    }
    let bc: Vec<Counts> = base.iter().map(|f| counts(f)).collect();
    let cc: Vec<Counts> = current.iter().map(|f| counts(f)).collect();
    let pct = |k: u64, n: u64| k as f64 * 100.0 / n.max(1) as f64;
    let shares = |side: &[Counts], f: &str, own: bool| -> Vec<f64> {
        side.iter()
            .map(|c| {
                let m = if own { &c.own } else { &c.incl };
                pct(m.get(f).copied().unwrap_or(0), c.total)
            })
            .collect()
    };
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let sum = |side: &[Counts], f: &str| -> (u64, u64) {
        side.iter().fold((0, 0), |(k, n), c| {
            (k + c.incl.get(f).copied().unwrap_or(0), n + c.total)
        })
    };
    let names: HashSet<&str> = bc
        .iter()
        .chain(&cc)
        .flat_map(|c| c.incl.keys().copied())
        .collect();
    let single = base.len() == 1 && current.len() == 1;
    let fewest = bc
        .iter()
        .chain(&cc)
        .map(|c| c.total)
        .min()
        .unwrap_or(0)
        .max(1);
    let mut in_noise = 0;
    let mut changed: HashMap<&str, FrameChange> = HashMap::new();
    for f in names {
        let (bt, ct) = (shares(&bc, f, false), shares(&cc, f, false));
        let (bs, cs) = (shares(&bc, f, true), shares(&cc, f, true));
        let c = FrameChange {
            frame: f.to_string(),
            base_total: avg(&bt),
            current_total: avg(&ct),
            base_self: avg(&bs),
            current_self: avg(&cs),
            ci: None,
            chain: Vec::new(),
        };
        if c.delta().abs() < 1e-9 {
            continue;
        }
        // The model's spread of a share p (its spread at 50 %, scaled),
        // plus the sampling noise of the smallest run's sample count:
        // a share of 12 samples moves by far more than the model's points.
        let p = ((c.base_total + c.current_total) / 200.0).clamp(0.0, 1.0);
        let run_model = model.share_sd_pp * (p * (1.0 - p)).sqrt() / 0.5;
        let binomial = 1e4 * p * (1.0 - p) / fewest as f64;
        let model_sd = (run_model * run_model + binomial).sqrt();
        // The model's spread is also the least believed between runs.
        let ci = change_interval(
            &bt,
            &ct,
            Scale::Absolute,
            model_sd,
            model.df,
            confidence,
            model_sd,
        );
        let beyond_runs = ci.is_some_and(|i| i.lo > 0.0 || i.hi < 0.0);
        let (kb, nb) = sum(&bc, f);
        let (kc, nc) = sum(&cc, f);
        let beyond_counts = !single || share_change_significant(kb, nb, kc, nc);
        // Less than one point of the samples is not worth a row.
        if beyond_runs && beyond_counts && c.delta().abs() >= 1.0 {
            changed.insert(
                f,
                FrameChange {
                    ci: ci.map(|i| (i.lo, i.hi)),
                    ..c
                },
            );
        } else {
            in_noise += 1;
        }
    }
    let mut out = chains(changed, base.iter().chain(current).copied());
    out.sort_by(|a, b| {
        b.delta()
            .abs()
            .total_cmp(&a.delta().abs())
            .then_with(|| a.frame.cmp(&b.frame))
    });
    out.truncate(top);
    (out, in_noise)
}

/// Folds changed frames into chains: a frame whose caller changed by about
/// as much (same sign, within a point or a tenth) is part of its caller's
/// row, so one changed call path is one row, named by its outermost frame.
fn chains<'a>(
    mut changed: HashMap<&'a str, FrameChange>,
    profiles: impl Iterator<Item = &'a Folded>,
) -> Vec<FrameChange> {
    let mut callers: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut depth: HashMap<&str, usize> = HashMap::new();
    for folded in profiles {
        for stack in folded.keys() {
            let frames: Vec<&str> = stack.split(';').collect();
            for (i, f) in frames.iter().enumerate() {
                if !changed.contains_key(f) {
                    continue;
                }
                let d = depth.entry(f).or_insert(i);
                *d = (*d).min(i);
                if i > 0 && frames[i - 1] != *f {
                    callers.entry(f).or_default().insert(frames[i - 1]);
                }
            }
        }
    }
    let close = |a: f64, b: f64| a * b > 0.0 && (a - b).abs() <= (0.1 * a.abs()).max(1.0);
    let delta: HashMap<&str, f64> = changed.iter().map(|(k, v)| (*k, v.delta())).collect();
    // The head of a frame's chain: follow callers that changed alike.
    let head = |f: &'a str| -> &'a str {
        let mut cur = f;
        let mut seen = HashSet::new();
        while seen.insert(cur) {
            let next = callers.get(cur).and_then(|cs| {
                let mut cs: Vec<&&str> = cs
                    .iter()
                    .filter(|c| delta.get(**c).is_some_and(|d| close(*d, delta[f])))
                    .collect();
                cs.sort();
                cs.first().map(|c| **c)
            });
            match next {
                Some(n) => cur = n,
                None => break,
            }
        }
        cur
    };
    let mut members: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let names: Vec<&'a str> = changed.keys().copied().collect();
    for f in names {
        let h = head(f);
        if h != f {
            members.entry(h).or_default().push(f);
        }
    }
    for (h, mut m) in members {
        for f in &m {
            changed.remove(f);
        }
        m.sort_by_key(|f| (depth.get(f).copied().unwrap_or(usize::MAX), *f));
        if let Some(row) = changed.get_mut(h) {
            row.chain = m.into_iter().map(str::to_string).collect();
        }
    }
    changed.into_values().collect()
}

/// An allocation site whose bytes changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteChange {
    /// The site: the innermost frame of its stacks that is not the
    /// allocator's own ([`is_allocator_frame`]).
    pub site: String,
    /// Bytes allocated there, base (mean over runs).
    pub base_bytes: u64,
    /// …current.
    pub current_bytes: u64,
}

impl SiteChange {
    /// current − base.
    pub fn delta(&self) -> i64 {
        self.current_bytes as i64 - self.base_bytes as i64
    }
}

/// Whether a frame is the allocator's own or the standard library's way
/// to it (`__rust_alloc`, `alloc::…`, `core::…`, `std::…`, `hashbrown`'s
/// tables, `<T as alloc::…>` impls), profkit's hook, or SQLite's malloc
/// wrappers: not where a program asked for memory.
pub fn is_allocator_frame(name: &str) -> bool {
    let n = name.trim_start_matches('<');
    let library = [
        "alloc::",
        "core::",
        "std::",
        "hashbrown::",
        "__rust",
        "__rdl_",
    ];
    library.iter().any(|p| n.starts_with(p))
        || [" as alloc::", " as core::", " as std::"]
            .iter()
            .any(|p| n.contains(p))
        || [
            "profkit::alloc::",
            "profkit::db::sqlite_alloc::",
            "sqlite3Malloc",
            "mallocWithAlarm",
            "sqlite3Realloc",
            "dbReallocFinish",
            "sqlite3DbMalloc",
            "sqlite3DbRealloc",
            "malloc",
            "realloc",
            "calloc",
        ]
        .iter()
        .any(|p| n.starts_with(p))
}

/// The allocation sites whose bytes (mean over each side's runs) changed
/// most.
pub fn site_changes(base: &[&Folded], current: &[&Folded], top: usize) -> Vec<SiteChange> {
    let by_site = |side: &[&Folded]| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for f in side {
            for (stack, n) in f.iter() {
                let site = stack
                    .rsplit(';')
                    .find(|s| !is_allocator_frame(s))
                    .unwrap_or(stack);
                *m.entry(site.to_string()).or_default() += n;
            }
        }
        let runs = side.len().max(1) as u64;
        m.values_mut().for_each(|v| *v /= runs);
        m
    };
    let (b, c) = (by_site(base), by_site(current));
    let names: HashSet<&String> = b.keys().chain(c.keys()).collect();
    let mut out: Vec<SiteChange> = names
        .into_iter()
        .map(|s| SiteChange {
            site: s.clone(),
            base_bytes: b.get(s).copied().unwrap_or(0),
            current_bytes: c.get(s).copied().unwrap_or(0),
        })
        .filter(|s| s.delta() != 0)
        .collect();
    out.sort_by(|a, b| {
        b.delta()
            .unsigned_abs()
            .cmp(&a.delta().unsigned_abs())
            .then_with(|| a.site.cmp(&b.site))
    });
    out.truncate(top);
    out
}

/// A SQL statement whose count or time per operation changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatementChange {
    /// Normalized statement.
    pub shape: String,
    /// Executions per operation, base.
    pub base_per_op: f64,
    /// …current.
    pub current_per_op: f64,
    /// Time per operation in ns, base.
    pub base_time_per_op: f64,
    /// …current.
    pub current_time_per_op: f64,
}

/// Statements per shape: (executions per op, time per op in ns), mean
/// over the runs.
fn statement_rates(runs: &[&LoadedRun]) -> BTreeMap<String, (f64, f64)> {
    let mut m: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let k = runs.len().max(1) as f64;
    for run in runs {
        let ops = run.sql.as_ref().map_or(0, |s| s.ops).max(1) as f64;
        for s in run.statements() {
            let e = m.entry(s.shape.clone()).or_default();
            e.0 += s.per_op / k;
            e.1 += s.total.0 as f64 / ops / k;
        }
    }
    m
}

/// The SQL statements whose time (then count) per operation changed most.
pub fn statement_changes(
    base: &[&LoadedRun],
    current: &[&LoadedRun],
    top: usize,
) -> Vec<StatementChange> {
    if base.iter().chain(current).any(|r| r.sql.is_none()) {
        return Vec::new();
    }
    let (b, c) = (statement_rates(base), statement_rates(current));
    let names: HashSet<&String> = b.keys().chain(c.keys()).collect();
    let mut out: Vec<StatementChange> = names
        .into_iter()
        .map(|s| {
            let (bp, bt) = b.get(s).copied().unwrap_or_default();
            let (cp, ct) = c.get(s).copied().unwrap_or_default();
            StatementChange {
                shape: s.clone(),
                base_per_op: bp,
                current_per_op: cp,
                base_time_per_op: bt,
                current_time_per_op: ct,
            }
        })
        .filter(|s| {
            (s.current_per_op - s.base_per_op).abs() > 1e-9
                || (s.current_time_per_op - s.base_time_per_op).abs() > 0.5
        })
        .collect();
    let key = |s: &StatementChange| (s.current_time_per_op - s.base_time_per_op).abs();
    out.sort_by(|a, b| {
        key(b).total_cmp(&key(a)).then_with(|| {
            (b.current_per_op - b.base_per_op)
                .abs()
                .total_cmp(&(a.current_per_op - a.base_per_op).abs())
        })
    });
    out.truncate(top);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(lines: &[(&str, u64)]) -> Folded {
        lines.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    }

    fn one(b: &Folded, c: &Folded) -> (Vec<FrameChange>, usize) {
        frame_changes(&[b], &[c], &NoiseModel::default(), 0.95, 10)
    }

    #[test]
    fn grown_frames_lead_the_frame_changes() {
        let b = folded(&[("main;work;grow", 100), ("main;work;same", 900)]);
        let c = folded(&[("main;work;grow", 600), ("main;work;same", 900)]);
        let (ch, _) = one(&b, &c);
        assert_eq!(ch[0].frame, "grow");
        assert!((ch[0].delta() - 30.0).abs() < 1e-9, "10 % → 40 %: {ch:?}");
        let same = ch.iter().find(|f| f.frame == "same").unwrap();
        assert!(same.delta() < 0.0, "its share shrank: {same:?}");
        let (lo, hi) = ch[0].ci.unwrap();
        assert!(lo <= ch[0].delta() && ch[0].delta() <= hi);
    }

    #[test]
    fn only_frame_changes_beyond_the_noise_are_listed() {
        // 42.9 % → 85.7 % of 7 samples a side: within the counts' noise.
        let b = folded(&[("main;step", 3), ("main;other", 4)]);
        let c = folded(&[("main;step", 6), ("main;other", 1)]);
        let (ch, in_noise) = one(&b, &c);
        assert!(ch.is_empty(), "7 samples a side support no change: {ch:?}");
        assert_eq!(in_noise, 2);
        // 6 points of 10,000 samples a side: beyond the counts' noise, not
        // beyond the run-to-run spread of one run a side.
        let b = folded(&[("main;step", 1900), ("main;other", 8100)]);
        let c = folded(&[("main;step", 1300), ("main;other", 8700)]);
        let (ch, _) = one(&b, &c);
        assert!(ch.is_empty(), "{ch:?}");
        // A larger change (19 % → 5 %), steady over three runs a side:
        // listed (three runs' own spread is believed no smaller than the
        // model's, so 6 points stay within it).
        let c = folded(&[("main;step", 500), ("main;other", 9500)]);
        let b2 = folded(&[("main;step", 1880), ("main;other", 8120)]);
        let c2 = folded(&[("main;step", 510), ("main;other", 9490)]);
        let b3 = folded(&[("main;step", 1920), ("main;other", 8080)]);
        let c3 = folded(&[("main;step", 490), ("main;other", 9510)]);
        let (ch, _) = frame_changes(
            &[&b, &b2, &b3],
            &[&c, &c2, &c3],
            &NoiseModel::default(),
            0.95,
            10,
        );
        assert!(ch.iter().any(|f| f.frame == "step"), "{ch:?}");
    }

    #[test]
    fn one_changed_chain_is_one_row() {
        let b = folded(&[
            ("main;op;drop;reset;sqlite3_reset", 300),
            ("main;op;work", 700),
        ]);
        let c = folded(&[
            ("main;op;drop;reset;sqlite3_reset", 100),
            ("main;op;work", 900),
        ]);
        let (ch, _) = one(&b, &c);
        let names: Vec<&str> = ch.iter().map(|f| f.frame.as_str()).collect();
        assert_eq!(names, ["drop", "work"], "{ch:?}");
        assert_eq!(ch[0].chain, ["reset", "sqlite3_reset"]);
    }

    #[test]
    fn sites_skip_the_allocator_and_rank_by_change() {
        let b = folded(&[
            ("main;a;alloc::raw_vec::grow;__rustc::__rust_alloc", 100),
            ("main;b;alloc_y", 1000),
        ]);
        let c = folded(&[
            ("main;a;alloc::raw_vec::grow;__rustc::__rust_alloc", 5000),
            ("main;b;alloc_y", 900),
        ]);
        let ch = site_changes(&[&b], &[&c], 5);
        assert_eq!(ch[0].site, "a");
        assert_eq!(ch[0].delta(), 4900);
        assert_eq!(ch[1].delta(), -100);
    }
}
