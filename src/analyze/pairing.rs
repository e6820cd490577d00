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
    match pair(base, current).as_slice() {
        [(b, c)] if b.workload != c.workload && !force && !twins(b, c) => Err(DifferentWorkloads {
            base: base.label.clone(),
            base_workload: b.workload.clone(),
            current: current.label.clone(),
            current_workload: c.workload.clone(),
        }),
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
