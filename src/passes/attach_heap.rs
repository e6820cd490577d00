//! The heap series of `profkit attach`: live-heap snapshots of each target
//! (`/debug/pprof/heap` without `seconds`: live bytes since start-up) taken
//! over the window after a warm-up, written to `heap-series/`, and turned
//! into leak findings per endpoint by [`crate::analyze::leaks_series`]
//! with the endpoints' request rates (`endpoints.json`).
//!
//! Asked without `seconds`, a pprof heap endpoint (profkit's, Go's)
//! answers at once with what is live.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::attach::{AttachSummary, Instance, Pull, PullStatus};
use super::attach_out::{self, Got};
use crate::analyze::findings::Finding;
use crate::analyze::leaks_series::{self, EndpointLoad, Snapshot};
use crate::render;
use crate::store::{self, RunDir};

/// Defaults of the series, defined once.
pub mod defaults {
    /// Snapshots per target (the growth rules need four or more).
    pub const SNAPSHOTS: usize = 6;
    /// Share of the window left to warm up before the first snapshot
    /// (caches that fill at start-up are full by then).
    pub const WARMUP_SHARE: f64 = 0.3;
    /// Share of the window at the last snapshot: before Locust stops, so
    /// that requests still follow time.
    pub const LAST_SHARE: f64 = 0.85;
}

/// What one target gave: (seconds into the window, answer) per snapshot.
pub type Series = Vec<(f64, Got)>;

/// `attach.json`'s name of the series pull.
const WHAT: &str = "heap-series";

/// Starts the snapshots of every target, each on its own thread at its
/// time (a snapshot is taken when its request arrives; turning it into a
/// profile takes a while, so one must not wait for the one before), and
/// sends `(target, series)` when a target's are all in.
pub fn start(targets: &[(String, SocketAddr)], secs: u64, tx: &mpsc::Sender<(usize, Series)>) {
    let window = secs as f64;
    let n = defaults::SNAPSHOTS;
    for (i, (url, _)) in targets.iter().enumerate() {
        let url = format!("{url}/debug/pprof/heap");
        let tx = tx.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let shots: Vec<_> = (0..n)
                .map(|k| {
                    let url = url.clone();
                    let share = defaults::WARMUP_SHARE
                        + (defaults::LAST_SHARE - defaults::WARMUP_SHARE) * k as f64
                            / (n - 1) as f64;
                    let at = Duration::from_secs_f64(window * share);
                    std::thread::spawn(move || {
                        std::thread::sleep(at.saturating_sub(start.elapsed()));
                        if crate::measure::interrupted() {
                            return None;
                        }
                        let t = start.elapsed().as_secs_f64();
                        Some((t, attach_out::get(&url, Duration::from_secs(30))))
                    })
                })
                .collect();
            let series: Series = shots
                .into_iter()
                .filter_map(|s| s.join().ok().flatten())
                .collect();
            let _ = tx.send((i, series));
        });
    }
}

/// What arrived within `wait` (at once when zero), per target.
pub fn collect(
    rx: &mpsc::Receiver<(usize, Series)>,
    targets: usize,
    wait: Duration,
) -> Vec<Option<Series>> {
    let mut out: Vec<Option<Series>> = (0..targets).map(|_| None).collect();
    let deadline = Instant::now() + wait;
    loop {
        let next = if wait.is_zero() {
            rx.try_recv().ok()
        } else {
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .ok()
        };
        let Some((i, series)) = next else { break };
        out[i] = Some(series);
    }
    out
}

/// One snapshot in `heap-series.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    seconds: f64,
    file: String,
}

/// Writes each target's snapshots (`heap-series/<k>.pb.gz` and
/// `heap-series.json`, in the instance's folder when there are several)
/// and adds the pull to its instance.
pub fn write(
    dir: &RunDir,
    instances: &mut [Instance],
    series: Vec<Option<Series>>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let several = instances.len() > 1;
    for (inst, series) in instances.iter_mut().zip(series) {
        let Some(series) = series else { continue };
        let sub = if several {
            format!("instances/{}/", inst.name)
        } else {
            String::new()
        };
        let url = format!("{}/debug/pprof/heap", inst.url);
        let mut entries = Vec::new();
        let mut failed = Vec::new();
        for (k, (seconds, got)) in series.into_iter().enumerate() {
            match got {
                Got::Body(bytes) => {
                    let file = format!("{sub}{WHAT}/{k}.pb.gz");
                    store::write_atomic(&dir.path.join(&file), &bytes)?;
                    entries.push(Entry { seconds, file });
                }
                // A service without the endpoint: its heap pull's finding says so.
                Got::Missing => {}
                Got::Failed(e) => failed.push(format!("at {seconds:.1} s: {e}")),
            }
        }
        if !failed.is_empty() {
            notes.push(format!("{url} (heap series): {}", failed.join("; ")));
        }
        if entries.is_empty() {
            continue;
        }
        let file = format!("{sub}{WHAT}.json");
        store::write_json(&dir.path.join(&file), &entries)?;
        inst.pulls.push(Pull {
            what: WHAT.into(),
            url,
            status: PullStatus::Ok,
            detail: Some(format!("{} live-heap snapshots", entries.len())),
            file: Some(file),
        });
    }
    Ok(())
}

/// The endpoints an instance served over the window, from its
/// `endpoints.json`, with their rates.
fn loads(dir: &Path, endpoints_file: &str) -> Vec<EndpointLoad> {
    let Ok(bytes) = std::fs::read(dir.join(endpoints_file)) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let window = v["window"].as_u64().unwrap_or(0) as f64 / 1e9;
    if window <= 0.0 {
        return Vec::new();
    }
    v["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let endpoint = e["endpoint"].as_str()?.to_string();
            let per_second = e["requests"].as_u64()? as f64 / window;
            Some(EndpointLoad {
                endpoint,
                per_second,
            })
        })
        .collect()
}

/// The leak findings of every instance's series.
pub fn findings(dir: &RunDir, summary: &AttachSummary) -> Vec<Finding> {
    let mut out = Vec::new();
    let several = summary.instances.len() > 1;
    for inst in &summary.instances {
        let file_of = |what: &str| {
            inst.pulls
                .iter()
                .find(|p| p.what == what && p.status == PullStatus::Ok)
                .and_then(|p| p.file.clone())
        };
        let (Some(series), Some(endpoints)) = (file_of(WHAT), file_of("endpoints")) else {
            continue;
        };
        let entries: Vec<Entry> = std::fs::read(dir.path.join(series))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let snapshots: Vec<Snapshot> = entries
            .iter()
            .filter_map(|e| {
                let path = dir.path.join(&e.file);
                let bytes = std::fs::read(&path).ok()?;
                let profile = render::input::decode(&bytes, &path).ok()?;
                Some(Snapshot {
                    seconds: e.seconds,
                    file: render::heap_input::heap_to_dhat(&profile)?,
                })
            })
            .collect();
        let loads = loads(&dir.path, &endpoints);
        let mut found = leaks_series::to_findings(&leaks_series::by_endpoint(&snapshots, &loads));
        if several {
            for f in &mut found {
                f.evidence.push(format!("instance: {}", inst.url));
            }
        }
        out.extend(found);
    }
    out
}
