//! Probes: instrumentation the passes do not know, opened around a run.
//!
//! The passes' own data (SQL hook, CPU and heap profiles) cannot see
//! everything: sqlx runs its statements on its own connections, and only
//! the service layer ([`crate::service`], above the passes) knows which
//! endpoint a request served. A [`Probe`] is opened by the SQL pass while
//! it runs a workload; what it saw ([`Observed`]) is stored as
//! `observed.json` and joined into the run's findings by
//! [`super::rank_findings`]. The passes depend on this trait only; the CLI
//! layer, which may use the service, fills [`super::SessionConfig::probes`]
//! from the [`crate::Harness`].

use std::sync::Arc;

use crate::analyze::observed::Observed;

/// Instrumentation that can watch a run.
pub trait Probe: Send + Sync {
    /// Its name, for messages.
    fn name(&self) -> &str;
    /// Starts watching; the run ends with [`Watch::finish`].
    fn start(&self) -> Box<dyn Watch>;
}

/// One open watch of a [`Probe`].
pub trait Watch: Send {
    /// What it saw of `workload` since it started (`None`: nothing).
    fn finish(self: Box<Self>, workload: &str) -> Option<Observed>;
}

/// The probes of a session (default: none).
#[derive(Clone, Default)]
pub struct Probes(Vec<Arc<dyn Probe>>);

impl Probes {
    /// Adds `probe`.
    pub fn push(&mut self, probe: Arc<dyn Probe>) {
        self.0.push(probe);
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Starts every probe.
    pub fn start(&self) -> Watches {
        Watches(self.0.iter().map(|p| p.start()).collect())
    }
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| p.name()))
            .finish()
    }
}

/// The open watches of a run.
pub struct Watches(Vec<Box<dyn Watch>>);

impl Watches {
    /// What the probes saw, merged: subjects and findings of each in turn.
    pub fn finish(self, workload: &str) -> Option<Observed> {
        self.0
            .into_iter()
            .filter_map(|w| w.finish(workload))
            .reduce(|mut a, b| {
                a.source = format!("{}, {}", a.source, b.source);
                a.subjects.extend(b.subjects);
                a.subjects.sort_by_key(|s| std::cmp::Reverse(s.requests));
                a.findings.extend(b.findings);
                a
            })
    }
}
