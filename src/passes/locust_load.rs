//! What a Locust run is asked ([`Load`]) and what it reports ([`Figures`]),
//! the same for `profkit load --locust` and `profkit attach`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::locust::{check_counts, defaults, EndpointStats, Spec};
use crate::units::Nanos;

/// How hard and how long Locust loads: the flags `load --locust` and
/// `attach` share.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    /// Worker processes (default [`defaults::WORKERS`]).
    pub workers: usize,
    /// Simulated users (default [`defaults::USERS`]).
    pub users: u64,
    /// Users started per second (default [`defaults::SPAWN_RATE`]).
    pub spawn_rate: f64,
    /// Length of the run (default [`defaults::DURATION`]).
    pub duration: Duration,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            workers: defaults::WORKERS,
            users: defaults::USERS,
            spawn_rate: defaults::SPAWN_RATE,
            duration: Duration::from_secs(10),
        }
    }
}

impl Load {
    /// In range ([`check_counts`]), or a message naming the flag.
    pub fn check(&self, max_duration: Duration) -> Result<(), String> {
        check_counts(
            self.workers,
            self.users,
            self.spawn_rate,
            self.duration,
            max_duration,
        )
    }
}

/// What Locust was asked and what it measured: the part `locust.json` and
/// `attach.json` share, flattened into each (their keys and order unchanged).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Locust version that ran.
    pub locust_version: String,
    /// Worker processes.
    pub workers: usize,
    /// Simulated users.
    pub users: u64,
    /// Users started per second.
    pub spawn_rate: f64,
    /// Asked length of the run.
    pub duration: Nanos,
    /// Per endpoint, busiest first.
    pub endpoints: Vec<EndpointStats>,
    /// All endpoints together.
    pub aggregated: EndpointStats,
}

impl Figures {
    /// The load `spec` asked for, with what Locust measured.
    pub fn new(
        locust_version: String,
        spec: &Spec<'_>,
        endpoints: Vec<EndpointStats>,
        aggregated: EndpointStats,
    ) -> Self {
        Figures {
            locust_version,
            workers: spec.load.workers,
            users: spec.load.users,
            spawn_rate: spec.load.spawn_rate,
            duration: spec.load.duration.into(),
            endpoints,
            aggregated,
        }
    }
}
