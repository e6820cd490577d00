//! [`ServiceProbe`]: the service layer's per-endpoint figures as a probe
//! of the passes. It lives here, in the CLI layer, because the passes may
//! not use [`crate::service`] (it sits beside them, serving users' apps)
//! and the service may not use the passes (it runs nothing).

use crate::analyze::observed::Observed;
use crate::passes::{Probe, Watch};
use crate::service::{self, Recording};

/// Opens a [`service::record`] recording while the SQL pass runs: the
/// endpoints the workload's requests reached name its findings, and the
/// layer's per-endpoint findings (an N+1 over sqlx, blocking in async)
/// join them. Needs [`service::layer`] installed in the process's
/// subscriber; without it the probe sees nothing and adds nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServiceProbe;

impl Probe for ServiceProbe {
    fn name(&self) -> &str {
        service::OBSERVED_SOURCE
    }

    fn start(&self) -> Box<dyn Watch> {
        Box::new(service::record())
    }
}

impl Watch for Recording {
    fn finish(self: Box<Self>, workload: &str) -> Option<Observed> {
        Recording::finish(*self).observed(workload)
    }
}
