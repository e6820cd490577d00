//! Leaks of a running service, from heap snapshots taken while it serves
//! steady load (`profkit attach`): every allocation site's live bytes at
//! each snapshot, fitted against the requests of the endpoint that
//! allocates there by the growth rules of [`super::leaks::soak_sites`]
//! (enough growth, a good line, still growing in the second half: a cache
//! that fills and stops is no leak).
//!
//! A site belongs to the endpoint its stack ends in: `profkit::service`
//! labels each sampled allocation with the request polled on its thread,
//! and its heap profile ends the stack in that endpoint's frame
//! ([`crate::profile::sampled::endpoint_frame`]). Requests at each snapshot
//! are the endpoint's rate over the window times the snapshot's time: the
//! load is steady, so this is the count up to noise. The first snapshot
//! comes after a warm-up.

use std::collections::BTreeMap;

use super::findings::{self, Finding};
use super::fit::slope_interval;
use super::leaks::{merge_shown, soak_sites, LeakReport, SiteGrowth};
use crate::profile::dhat::{frame_without_address, DhatFile};
use crate::profile::sampled::frame_endpoint;

/// One heap profile of the service: live bytes per site.
pub struct Snapshot {
    /// Seconds since the window opened.
    pub seconds: f64,
    /// The sites, live bytes in `eb`.
    pub file: DhatFile,
}

/// One endpoint under the load.
pub struct EndpointLoad {
    /// `GET /customers/{id}`.
    pub endpoint: String,
    /// Its requests per second over the window.
    pub per_second: f64,
}

/// The growing sites of one endpoint, with the 95 % interval of each
/// site's slope (bytes per request).
#[derive(Debug)]
pub struct EndpointLeaks {
    /// `workload` is the endpoint; `ops` the requests at each snapshot.
    pub report: LeakReport,
    /// Per leak, in the order of `report.leaks`.
    pub intervals: Vec<Option<(f64, f64)>>,
    /// Seconds of each snapshot.
    pub seconds: Vec<f64>,
}

/// The endpoint a site's stack (frames innermost first) ends in.
fn owner<'a>(file: &'a DhatFile, fs: &[usize]) -> Option<&'a str> {
    frame_endpoint(file.function(*fs.last()?))
}

/// Every site of every snapshot in one file, and its live bytes at each.
fn merge(snapshots: &[Snapshot]) -> (DhatFile, Vec<Vec<f64>>) {
    let mut ftbl = vec!["[root]".to_string()];
    let mut frames: BTreeMap<String, usize> = BTreeMap::new();
    let mut sites: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
    let mut pps = Vec::new();
    let mut live: Vec<Vec<f64>> = Vec::new();
    for (i, snap) in snapshots.iter().enumerate() {
        for pp in &snap.file.pps {
            let fs: Vec<usize> = pp
                .fs
                .iter()
                .map(|&f| {
                    let name = frame_without_address(&snap.file.ftbl[f]).to_string();
                    let next = ftbl.len();
                    let j = *frames.entry(name.clone()).or_insert(next);
                    if j == next {
                        ftbl.push(name);
                    }
                    j
                })
                .collect();
            let next = pps.len();
            let k = *sites.entry(fs.clone()).or_insert(next);
            if k == next {
                let mut site = pp.clone();
                site.fs = fs;
                pps.push(site);
                live.push(vec![0.0; snapshots.len()]);
            }
            live[k][i] += pp.eb.unwrap_or(0) as f64;
        }
    }
    let mut file = snapshots[0].file.clone();
    file.ftbl = ftbl;
    file.pps = pps;
    (file, live)
}

/// The growing sites of each endpoint (endpoints with none left out).
/// Needs four snapshots or more; profkit's own sites (the window's
/// recording, freed when it ends) are left out.
pub fn by_endpoint(snapshots: &[Snapshot], endpoints: &[EndpointLoad]) -> Vec<EndpointLeaks> {
    if snapshots.len() < 4 {
        return Vec::new();
    }
    let (file, live) = merge(snapshots);
    let owners: Vec<Option<&str>> = file.pps.iter().map(|pp| owner(&file, &pp.fs)).collect();
    let seconds: Vec<f64> = snapshots.iter().map(|s| s.seconds).collect();
    let mut out = Vec::new();
    for e in endpoints.iter().filter(|e| e.per_second > 0.0) {
        let requests: Vec<u64> = seconds
            .iter()
            .map(|t| (t * e.per_second).round() as u64)
            .collect();
        let mine: Vec<Vec<f64>> = live
            .iter()
            .zip(&owners)
            .map(|(ys, o)| {
                if *o == Some(e.endpoint.as_str()) {
                    ys.clone()
                } else {
                    Vec::new()
                }
            })
            .collect();
        // Sites that read the same (a page and the map slot that keeps it)
        // are one finding.
        let mut leaks: Vec<SiteGrowth> = merge_shown(
            soak_sites(&file, &requests, &mine)
                .into_iter()
                .filter(|s| !s.site.starts_with("profkit::"))
                .collect(),
        );
        leaks.sort_by(|a, b| b.slope_bytes_per_op.total_cmp(&a.slope_bytes_per_op));
        if leaks.is_empty() {
            continue;
        }
        let xs: Vec<f64> = requests.iter().map(|&r| r as f64).collect();
        let intervals = leaks
            .iter()
            .map(|s| {
                let ys: Vec<f64> = s.live_end.iter().map(|&b| b as f64).collect();
                slope_interval(&xs, &ys)
            })
            .collect();
        let mut report = LeakReport::skipped(&e.endpoint);
        report.ops = requests;
        report.leaked_bytes_per_op = leaks.iter().map(|s| s.slope_bytes_per_op).sum();
        report.verdict = format!(
            "leak: {:.0} B/request at {}",
            leaks[0].slope_bytes_per_op, leaks[0].site
        );
        report.leaks = leaks;
        out.push(EndpointLeaks {
            report,
            intervals,
            seconds: seconds.clone(),
        });
    }
    out
}

/// One leak finding per growing site, naming the endpoint, the frame and
/// the bytes per request with their interval.
pub fn to_findings(leaks: &[EndpointLeaks]) -> Vec<Finding> {
    let mut out = Vec::new();
    for l in leaks {
        let mut fs = findings::from_leaks(&l.report);
        for (f, (site, interval)) in fs.iter_mut().zip(l.report.leaks.iter().zip(&l.intervals)) {
            f.title = format!(
                "{}: live heap grows {:.0} B/request at {}",
                l.report.workload, site.slope_bytes_per_op, site.site
            );
            if let Some((lo, hi)) = interval {
                f.evidence.push(format!(
                    "95 % interval of the growth: {lo:.0} to {hi:.0} B/request"
                ));
            }
            f.evidence.push(format!(
                "heap snapshots at {} s of the window (the first after a warm-up), requests of the endpoint estimated from its rate over the window",
                l.seconds
                    .iter()
                    .map(|s| format!("{s:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out.extend(fs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with a leaking site under `remember_render` (customers), a
    /// filling cache under `warm` (orders), a flat site under `health`, and
    /// a growing one outside any request.
    fn snapshot(i: usize) -> Snapshot {
        let mut file = crate::profile::dhat::tests::sample();
        file.ftbl = [
            "[root]",
            "0x1: alloc::alloc::alloc (alloc/src/alloc.rs:1:1)",
            "0x2: shop::remember_render (src/main.rs:10:1)",
            "0x3: shop::customer::{{closure}} (src/main.rs:20:1)",
            "0x4: shop::root_span::{{closure}} (src/main.rs:30:1)",
            "0x5: shop::warm (src/main.rs:40:1)",
            "0x6: shop::orders::{{closure}} (src/main.rs:50:1)",
            "0x7: shop::health::{{closure}} (src/main.rs:60:1)",
            "[endpoint GET /customers/{id}]",
            "[endpoint GET /orders]",
            "[endpoint GET /health]",
        ]
        .map(String::from)
        .to_vec();
        let t = i as f64;
        let mut leak = file.pps[0].clone();
        leak.fs = vec![1, 2, 3, 4, 8];
        leak.eb = Some((100_000.0 + 4000.0 * 50.0 * t) as u64);
        let mut fill = leak.clone();
        fill.fs = vec![1, 5, 6, 4, 9];
        fill.eb = Some(if i < 2 { 200_000 * i as u64 } else { 400_000 });
        let mut flat = leak.clone();
        flat.fs = vec![1, 7, 4, 10];
        flat.eb = Some(30_000);
        let mut outside = leak.clone();
        outside.fs = vec![1, 2];
        file.pps = vec![leak, fill, flat, outside];
        Snapshot { seconds: t, file }
    }

    fn load(endpoint: &str, per_second: f64) -> EndpointLoad {
        EndpointLoad {
            endpoint: endpoint.into(),
            per_second,
        }
    }

    #[test]
    fn the_growing_site_is_named_with_its_endpoint_and_bytes_per_request() {
        let snaps: Vec<Snapshot> = (1..=6).map(snapshot).collect();
        let endpoints = [
            load("GET /customers/{id}", 50.0),
            load("GET /orders", 50.0),
            load("GET /health", 200.0),
        ];
        let leaks = by_endpoint(&snaps, &endpoints);
        assert_eq!(leaks.len(), 1, "{leaks:?}");
        let l = &leaks[0];
        assert_eq!(l.report.workload, "GET /customers/{id}");
        assert_eq!(l.report.leaks.len(), 1);
        assert!((l.report.leaks[0].slope_bytes_per_op - 4000.0).abs() < 1.0);
        let f = to_findings(&leaks);
        assert!(f[0].title.contains("GET /customers/{id}"), "{}", f[0].title);
        assert!(
            f[0].title.contains("shop::remember_render"),
            "{}",
            f[0].title
        );
        assert!(f[0].title.contains("4000 B/request"), "{}", f[0].title);
        // Twice the rate: half the bytes per request.
        let faster = [load("GET /customers/{id}", 100.0)];
        let l = &by_endpoint(&snaps, &faster)[0];
        assert!((l.report.leaks[0].slope_bytes_per_op - 2000.0).abs() < 1.0);
        // An endpoint without requests in the window: no rate, no verdict.
        assert!(by_endpoint(&snaps, &[load("GET /customers/{id}", 0.0)]).is_empty());
        // Too few snapshots: no verdict.
        assert!(by_endpoint(&snaps[..3], &endpoints).is_empty());
    }
}
