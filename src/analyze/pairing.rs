//! Which runs of two sets a comparison pairs, and the pairs it refuses:
//! two runs of different workloads are no before/after comparison unless
//! asked for (`--force`) or declared twins.

use super::rundata::{LoadedRun, RunSet};

/// A comparison whose sides should not be compared.
#[derive(Debug, thiserror::Error)]
#[error("'{base}' ran workload '{base_workload}' but '{current}' ran '{current_workload}': runs of different workloads are no before/after comparison; pass --force to compare them anyway")]
pub struct DifferentWorkloads {
    /// The base side.
    pub base: String,
    /// Its workload.
    pub base_workload: String,
    /// The current side.
    pub current: String,
    /// Its workload.
    pub current_workload: String,
}

/// Whether one run's workload declares itself the other's twin (its
/// description says "twin of <the other>", as the built-in twins' do).
fn twins(a: &LoadedRun, b: &LoadedRun) -> bool {
    let declares = |x: &LoadedRun, y: &LoadedRun| {
        let Some(m) = &x.manifest else { return false };
        let needle = format!("twin of {}", y.workload);
        m.description.match_indices(&needle).any(|(i, _)| {
            let next = m.description[i + needle.len()..].chars().next();
            !next.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
    };
    declares(a, b) || declares(b, a)
}

/// Refuses two single runs of different workloads unless `force` or they
/// are declared twins: only single runs are paired across workloads (see
/// [`pair`]).
pub fn check_workloads(
    base: &RunSet,
    current: &RunSet,
    force: bool,
) -> Result<(), DifferentWorkloads> {
    match pair_groups(base, current).as_slice() {
        [(b, c)] if b[0].workload != c[0].workload && !force && !twins(b[0], c[0]) => {
            let (b, c) = (b[0], c[0]);
            Err(DifferentWorkloads {
                base: base.label.clone(),
                base_workload: b.workload.clone(),
                current: current.label.clone(),
                current_workload: c.workload.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// Pairs the runs of two sets: by workload; two single runs are paired
/// whatever their workloads (e.g. a fast twin against its slow twin).
pub fn pair<'a>(base: &'a RunSet, current: &'a RunSet) -> Vec<(&'a LoadedRun, &'a LoadedRun)> {
    if base.runs.len() == 1 && current.runs.len() == 1 {
        return vec![(&base.runs[0], &current.runs[0])];
    }
    current
        .runs
        .iter()
        .filter_map(|c| base.by_workload(&c.workload).map(|b| (b, c)))
        .collect()
}

/// The runs a comparison sets side by side, grouped by workload: each
/// side's runs of a workload, in run order, are its replicates. Two sides
/// of one workload each (two single runs, or two twins' repeated runs) are
/// paired whatever their names; otherwise by workload name.
pub fn pair_groups<'a>(
    base: &'a RunSet,
    current: &'a RunSet,
) -> Vec<(Vec<&'a LoadedRun>, Vec<&'a LoadedRun>)> {
    let groups = |set: &'a RunSet| {
        let mut g: Vec<(String, Vec<&'a LoadedRun>)> = Vec::new();
        for r in &set.runs {
            match g.iter_mut().find(|(w, _)| *w == r.workload) {
                Some((_, v)) => v.push(r),
                None => g.push((r.workload.clone(), vec![r])),
            }
        }
        for (_, v) in &mut g {
            v.sort_by(|a, b| a.id.cmp(&b.id));
        }
        g
    };
    let (b, c) = (groups(base), groups(current));
    if b.len() == 1 && c.len() == 1 {
        return vec![(b[0].1.clone(), c[0].1.clone())];
    }
    c.into_iter()
        .filter_map(|(w, cur)| {
            b.iter()
                .find(|(bw, _)| *bw == w)
                .map(|(_, base)| (base.clone(), cur))
        })
        .collect()
}
