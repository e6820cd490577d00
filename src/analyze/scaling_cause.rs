//! Why a thread sweep scales poorly: where the second thread's time goes,
//! from the CPU profiles at one and at two threads compared frame by frame
//! (self shares, each change judged by [`share_change_significant`]), and
//! from the CPU time per operation: time that shows in no frame is spent
//! off the CPU (waiting for a lock or for a core).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::shares::{share_change_interval, share_change_significant};
use crate::profile::cpu::{CpuProfile, Frame};
use crate::units::Nanos;

/// A sweep whose efficiency at two threads is below this gets explained.
pub const POOR_EFFICIENCY: f64 = 0.6;

/// A self share must grow by at least this much (and beyond the noise of
/// the sample counts) to be named.
pub const MIN_GROWTH: f64 = 0.03;

/// Frames named at most.
const MAX_FRAMES: usize = 3;

/// One frame whose self share grew from the smaller to the larger level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameGrowth {
    /// The frame (leaf function).
    pub function: String,
    /// The program's own function it runs under, when one is named.
    pub caller: Option<String>,
    /// Its samples at the smaller level, and that profile's samples.
    pub one: (u64, u64),
    /// Its samples at the larger level, and that profile's samples.
    pub two: (u64, u64),
    /// 95 % interval of the change of share, in fractions.
    pub change_interval: (f64, f64),
}

impl FrameGrowth {
    fn share(k: (u64, u64)) -> f64 {
        k.0 as f64 / k.1.max(1) as f64
    }
    /// Share at the larger level minus at the smaller.
    pub fn growth(&self) -> f64 {
        Self::share(self.two) - Self::share(self.one)
    }
}

/// Where the time of the added threads goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalingCause {
    /// The two thread counts compared.
    pub threads: (usize, usize),
    /// Efficiency at the larger count.
    pub efficiency: f64,
    /// CPU time per operation at each count, when measured.
    pub cpu_per_op: Option<(Nanos, Nanos)>,
    /// Frames whose self share grew significantly, most growth first.
    pub grown: Vec<FrameGrowth>,
    /// The answer in one line.
    pub summary: String,
}

fn is_library(f: &str) -> bool {
    let f = f.trim_start_matches('<');
    f.starts_with("sqlite3")
        || f.starts_with("rusqlite::")
        || f.starts_with("std::")
        || f.starts_with("core::")
        || f.starts_with("alloc::")
        || f.starts_with("r2d2")
        || f.starts_with("parking_lot")
        || f.starts_with("lock_api")
        || f.starts_with("pthread")
        || f.starts_with("__")
        || f.starts_with("unix")
        || f.contains("{{closure}}")
        || !f.contains("::")
}

/// The program's function nearest the leaf, below which a stack is the
/// libraries' (SQLite, rusqlite, std, libc).
fn caller(frames: &[Frame]) -> Option<&str> {
    frames[..frames.len().saturating_sub(1)]
        .iter()
        .rev()
        .map(|f| f.function.as_str())
        .find(|f| !is_library(f))
}

/// Self samples per leaf function, and per leaf its most frequent caller.
fn leaves(p: &CpuProfile) -> BTreeMap<&str, (u64, BTreeMap<&str, u64>)> {
    let mut out: BTreeMap<&str, (u64, BTreeMap<&str, u64>)> = BTreeMap::new();
    for s in &p.stacks {
        let Some(leaf) = s.frames.last() else {
            continue;
        };
        let e = out.entry(leaf.function.as_str()).or_default();
        e.0 += s.samples;
        if let Some(c) = caller(&s.frames) {
            *e.1.entry(c).or_default() += s.samples;
        }
    }
    out
}

/// Compares the profiles at `threads.0` (`one`) and `threads.1` (`two`) of
/// a sweep whose efficiency at `threads.1` is `efficiency`.
pub fn explain(
    threads: (usize, usize),
    efficiency: f64,
    one: &CpuProfile,
    two: &CpuProfile,
    cpu_per_op: Option<(Nanos, Nanos)>,
) -> ScalingCause {
    let (n1, n2) = (one.samples, two.samples);
    let a = leaves(one);
    let b = leaves(two);
    let mut grown: Vec<FrameGrowth> = b
        .iter()
        .filter_map(|(f, (k2, callers))| {
            let k1 = a.get(f).map_or(0, |e| e.0);
            let g = FrameGrowth {
                function: f.to_string(),
                caller: callers
                    .iter()
                    .max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0)))
                    .map(|(c, _)| c.to_string()),
                one: (k1, n1),
                two: (*k2, n2),
                change_interval: share_change_interval(k1, n1, *k2, n2),
            };
            (g.growth() >= MIN_GROWTH && share_change_significant(k1, n1, *k2, n2)).then_some(g)
        })
        .collect();
    grown.sort_by(|x, y| y.growth().total_cmp(&x.growth()));
    grown.truncate(MAX_FRAMES);
    let summary = summary(threads, efficiency, &grown, cpu_per_op);
    ScalingCause {
        threads,
        efficiency,
        cpu_per_op,
        grown,
        summary,
    }
}

fn summary(
    (t1, t2): (usize, usize),
    efficiency: f64,
    grown: &[FrameGrowth],
    cpu_per_op: Option<(Nanos, Nanos)>,
) -> String {
    let head = format!("efficiency {:.0} % at {t2} threads: ", 100.0 * efficiency);
    let cpu = cpu_per_op
        .filter(|(a, _)| a.0 > 0)
        .map(|(a, b)| b.0 as f64 / a.0 as f64);
    let cpu_line = match cpu {
        Some(r) if r >= 1.2 => format!(
            "; CPU per operation {r:.1}× that at {t1} (the added threads burn CPU in these frames)"
        ),
        Some(r) => format!(
            "; CPU per operation {r:.1}× that at {t1}: most of the lost time is off the CPU (waiting for a lock, I/O or a core), where no CPU sample sees it"
        ),
        None => String::new(),
    };
    if grown.is_empty() {
        return format!(
            "{head}no frame's share grew beyond the noise between {t1} and {t2} threads{cpu_line}"
        );
    }
    let frames: Vec<String> = grown
        .iter()
        .map(|g| {
            format!(
                "{}{}: {:.0} % of samples at {t2} threads vs {:.0} % at {t1} (change +{:.0} to +{:.0} points, 95 %)",
                g.function,
                g.caller.as_ref().map(|c| format!(" (under {c})")).unwrap_or_default(),
                100.0 * FrameGrowth::share(g.two),
                100.0 * FrameGrowth::share(g.one),
                100.0 * g.change_interval.0,
                100.0 * g.change_interval.1
            )
        })
        .collect();
    format!(
        "{head}the added thread's time goes to {}{cpu_line}",
        frames.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::cpu_fixture as fixture;

    fn profile(stacks: &[(&str, u64)]) -> CpuProfile {
        fixture::profile(stacks.iter().map(|(n, s)| fixture::stack(n, *s)).collect())
    }

    const FUTEX: &str =
        "main;app::db::insert_one;app::db::WriteLock::acquire;std::sync::Mutex::lock;syscall";
    const WORK: &str =
        "main;app::db::insert_one;rusqlite::Statement::execute;sqlite3_step;sqlite3VdbeExec";

    #[test]
    fn the_frame_that_grows_at_two_threads_is_named_with_its_caller() {
        let one = profile(&[(FUTEX, 20), (WORK, 980)]);
        let two = profile(&[(FUTEX, 380), (WORK, 620)]);
        let c = explain(
            (1, 2),
            0.44,
            &one,
            &two,
            Some((Nanos(10_000), Nanos(16_000))),
        );
        assert_eq!(c.grown.len(), 1, "{c:?}");
        let g = &c.grown[0];
        assert_eq!(g.function, "syscall");
        assert_eq!(g.caller.as_deref(), Some("app::db::WriteLock::acquire"));
        assert!(
            g.change_interval.0 > 0.3 && g.change_interval.1 < 0.4,
            "{g:?}"
        );
        assert!(
            c.summary.starts_with("efficiency 44 % at 2 threads: the added thread's time goes to syscall (under app::db::WriteLock::acquire): 38 % of samples at 2 threads vs 2 % at 1"),
            "{}",
            c.summary
        );
        assert!(
            c.summary.contains("CPU per operation 1.6× that at 1"),
            "{}",
            c.summary
        );
    }

    #[test]
    fn a_change_within_the_noise_names_nothing() {
        // 3 of 60 vs 6 of 60 samples: grows 5 points, not beyond chance.
        let one = profile(&[(FUTEX, 3), (WORK, 57)]);
        let two = profile(&[(FUTEX, 6), (WORK, 54)]);
        let c = explain(
            (1, 2),
            0.5,
            &one,
            &two,
            Some((Nanos(10_000), Nanos(10_500))),
        );
        assert!(c.grown.is_empty(), "{c:?}");
        assert!(
            c.summary.contains("no frame's share grew beyond the noise"),
            "{}",
            c.summary
        );
        assert!(c.summary.contains("off the CPU"), "{}", c.summary);
        // The same change from many samples is named.
        let one = profile(&[(FUTEX, 300), (WORK, 5700)]);
        let two = profile(&[(FUTEX, 600), (WORK, 5400)]);
        assert_eq!(explain((1, 2), 0.5, &one, &two, None).grown.len(), 1);
    }
}
