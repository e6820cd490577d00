//! `profkit attach URL`: a running service, loaded by Locust (master + N
//! workers) while profkit pulls its `/debug` endpoints over the same
//! window — `/debug/pprof/profile?seconds=D`, `/debug/pprof/heap?seconds=D`,
//! `/debug/profkit/sql?seconds=D`, `/debug/profkit/endpoints?seconds=D` —
//! from each target (replicas: per instance and merged), into a normal run
//! folder that `report`, `compare`, `check` and `flamegraph` read.
//!
//! An endpoint the service does not have (404) is named in the run (a
//! finding and `attach.json`); the rest are still collected. Load goes to
//! loopback services only and is bounded by `--duration`.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::attach_heap;
use super::attach_locust::{self as locust, Route};
use super::attach_out;
use super::locust::{self as driver, Figures, Load, Spec};
use crate::analyze::rundata::Pass;
use crate::measure::{RunPlan, Stop, Warmup};
use crate::store::{self, files, RunDir};

/// Defaults of an attach run, defined once.
pub mod defaults {
    pub use super::driver::defaults::{DURATION, SPAWN_RATE, USERS, WORKERS};
    /// Longest window (the services' own cap on `seconds` may be lower).
    pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(300);
    /// How long a target may take to accept a connection.
    pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
}

/// What profkit pulls from each target: (name, path). `plans` is
/// optional: a service on PostgreSQL answers it with the findings of the
/// plans (`EXPLAIN (FORMAT JSON)`, never `ANALYZE`) of the statements it
/// ran over the window, through its own pool; its 404 is no finding.
pub const PULLS: [(&str, &str); 5] = [
    ("cpu", "/debug/pprof/profile"),
    ("heap", "/debug/pprof/heap"),
    ("sql", "/debug/profkit/sql"),
    ("endpoints", "/debug/profkit/endpoints"),
    ("plans", "/debug/profkit/plans"),
];

/// Pulls whose 404 is expected of most services.
pub const OPTIONAL_PULLS: [&str; 1] = ["plans"];

/// Bad input to `profkit attach`: exit 2.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// A URL that is not `http://host:port`.
    #[error("'{url}' is not a service URL: {why} (e.g. http://127.0.0.1:8080)")]
    BadUrl {
        /// As given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// Nothing listens there.
    #[error("'{url}' is unreachable: {why}")]
    Unreachable {
        /// As given.
        url: String,
        /// The connection error.
        why: String,
    },
    /// No `locust` program.
    #[error("locust is not installed (no '{0}' on PATH): install it with `pip install locust`")]
    NoLocust(String),
    /// A bad `--mix` or `--locustfile`.
    #[error("'{}': {why}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Nothing to load: no locustfile, no mix, no routes seen.
    #[error("{0}")]
    NoRoutes(String),
    /// Out-of-range option.
    #[error("{0}")]
    BadOption(String),
}

/// How to attach.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    /// The service URL Locust loads.
    pub url: String,
    /// The instances to profile (default: `url` alone).
    pub targets: Vec<String>,
    /// Workers, users, spawn rate and length (defaults in [`Load`]).
    pub load: Load,
    /// The user's locustfile.
    pub locustfile: Option<PathBuf>,
    /// JSON object of routes and weights, `{"GET /orders/{id}": 10}`.
    pub mix: Option<PathBuf>,
    /// Folder of run folders (default [`store::defaults::OUT_DIR`]).
    pub out_dir: PathBuf,
    /// Folder of flamegraphs (default [`store::defaults::FLAMEGRAPH_DIR`]).
    pub flamegraph_dir: PathBuf,
    /// The Locust program (default `locust`, or `$PROFKIT_LOCUST`).
    pub program: String,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            url: String::new(),
            targets: Vec::new(),
            load: Load::default(),
            locustfile: None,
            mix: None,
            out_dir: PathBuf::from(store::defaults::OUT_DIR),
            flamegraph_dir: PathBuf::from(store::defaults::FLAMEGRAPH_DIR),
            program: std::env::var("PROFKIT_LOCUST").unwrap_or_else(|_| "locust".to_string()),
        }
    }
}

/// What one pull gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullStatus {
    /// Collected into `file`.
    Ok,
    /// The service answered 404: it does not have this endpoint.
    Missing,
    /// Another answer or a transport error.
    Failed,
    /// Not finished when the run was interrupted.
    NotFinished,
}

/// One endpoint of one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pull {
    /// `cpu`, `heap`, `sql`, `endpoints`.
    pub what: String,
    /// The URL asked.
    pub url: String,
    /// What came of it.
    pub status: PullStatus,
    /// Why, when not Ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The file written, relative to the run folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// One profiled instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Its base URL.
    pub url: String,
    /// Its folder under `instances/` (`127.0.0.1-8080`).
    pub name: String,
    /// The four pulls.
    pub pulls: Vec<Pull>,
}

/// What `attach.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachSummary {
    /// Version of this layout.
    pub schema_version: u32,
    /// The URL Locust loaded.
    pub url: String,
    /// Where the locustfile came from.
    pub locustfile: String,
    /// What Locust was asked and measured.
    #[serde(flatten)]
    pub figures: Figures,
    /// The profiled instances.
    pub instances: Vec<Instance>,
    /// Cut short by Ctrl-C: figures are partial.
    pub interrupted: bool,
    /// What went wrong or was left out.
    pub notes: Vec<String>,
    /// Process ids of the Locust master and workers (all stopped when the
    /// run returns).
    pub pids: Vec<u32>,
}

/// A finished attach run.
#[derive(Debug)]
pub struct AttachRun {
    /// Its run folder.
    pub dir: PathBuf,
    /// What it measured and collected.
    pub summary: AttachSummary,
}

/// `http://host:port` (a trailing `/` dropped), checked to be loopback.
fn parse_url(url: &str) -> Result<(String, SocketAddr), AttachError> {
    let bad = |why: &str| AttachError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are attached to"))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(bad("give the service's base URL, without a path"));
    }
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve it ({e})")))?
        .next()
        .ok_or_else(|| bad("it resolves to no address"))?;
    if !addr.ip().is_loopback() {
        return Err(bad(
            "attach loads and profiles services on this host only (a loopback address)",
        ));
    }
    Ok((format!("http://{authority}"), addr))
}

/// Fails fast, naming the URL, when nothing accepts connections there.
fn check_reachable(url: &str, addr: SocketAddr) -> Result<(), AttachError> {
    TcpStream::connect_timeout(&addr, defaults::CONNECT_TIMEOUT)
        .map(drop)
        .map_err(|e| AttachError::Unreachable {
            url: url.to_string(),
            why: e.to_string(),
        })
}

fn check(options: &AttachOptions) -> Result<(), AttachError> {
    options
        .load
        .check(defaults::MAX_DURATION)
        .map_err(AttachError::BadOption)
}

/// Routes and weights from a `--mix` file.
fn read_mix(path: &Path) -> Result<Vec<Route>, AttachError> {
    let bad = |why: String| AttachError::BadFile {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mix: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a JSON object of routes and weights: {e}")))?;
    let mut routes = Vec::new();
    for (name, weight) in &mix {
        let w = weight.as_u64().filter(|w| *w <= 1000).ok_or_else(|| {
            bad(format!(
                "the weight of '{name}' must be a whole number 0 to 1000"
            ))
        })?;
        let route = locust::parse_route(name, w).ok_or_else(|| {
            bad(format!(
                "'{name}' is not a route: write \"GET /orders/{{id}}\" or \"/path\""
            ))
        })?;
        if w > 0 {
            routes.push(route);
        }
    }
    if routes.is_empty() {
        return Err(bad("no route with a weight above 0".into()));
    }
    Ok(routes)
}

/// Routes the service has served, from `/debug/profkit/endpoints`.
fn routes_seen(url: &str) -> Result<Vec<Route>, AttachError> {
    let none = |why: String| {
        AttachError::NoRoutes(format!(
            "no locustfile: {why}; give --locustfile FILE or --mix FILE (a JSON object like {{\"GET /orders/{{id}}\": 10}})"
        ))
    };
    let endpoint = format!("{url}/debug/profkit/endpoints?seconds=1");
    let bytes = match attach_out::get(&endpoint, Duration::from_secs(10)) {
        attach_out::Got::Body(b) => b,
        attach_out::Got::Missing => return Err(none(format!("{endpoint} answered 404"))),
        attach_out::Got::Failed(e) => return Err(none(format!("{endpoint}: {e}"))),
    };
    let report: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| none(format!("{endpoint} did not answer JSON ({e})")))?;
    let seen: Vec<Route> = report["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e["endpoint"].as_str()?;
            let requests = e["requests"].as_u64().unwrap_or(1);
            locust::parse_route(name, requests.clamp(1, 1000))
        })
        .collect();
    if seen.is_empty() {
        return Err(none(format!("{endpoint} lists no routes seen")));
    }
    Ok(seen)
}

/// Runs Locust against `options.url` while pulling every target's
/// `/debug` endpoints, and writes the run folder.
pub fn run(options: &AttachOptions) -> anyhow::Result<AttachRun> {
    check(options)?;
    let (url, addr) = parse_url(&options.url)?;
    let mut targets = Vec::new();
    for t in if options.targets.is_empty() {
        std::slice::from_ref(&options.url)
    } else {
        &options.targets[..]
    } {
        let (t_url, t_addr) = parse_url(t)?;
        if !targets.iter().any(|(u, _)| u == &t_url) {
            targets.push((t_url, t_addr));
        }
    }
    check_reachable(&url, addr)?;
    for (t_url, t_addr) in &targets {
        check_reachable(t_url, *t_addr)?;
    }
    let (file_text, source) = match (&options.locustfile, &options.mix) {
        (Some(path), _) => (
            std::fs::read_to_string(path).map_err(|e| AttachError::BadFile {
                path: path.clone(),
                why: e.to_string(),
            })?,
            format!("given: {}", path.display()),
        ),
        (None, Some(path)) => (
            locust::locustfile(&read_mix(path)?),
            format!("generated from --mix {}", path.display()),
        ),
        (None, None) => (
            locust::locustfile(&routes_seen(&url)?),
            "generated from /debug/profkit/endpoints".to_string(),
        ),
    };
    let heap_at_once = attach_out::heap_answers_at_once(&targets);
    let version = driver::version(&options.program)
        .ok_or_else(|| AttachError::NoLocust(options.program.clone()))?;
    let started = SystemTime::now();
    let dir = RunDir::create(&options.out_dir, "attach", started)?;
    store::write_atomic(&dir.file("locustfile.py"), file_text.as_bytes())?;

    let secs = options.load.duration.as_secs().max(1);
    let spec = Spec {
        program: &options.program,
        locustfile: "locustfile.py",
        host: &url,
        load: options.load,
        env: Vec::new(),
    };
    // The window opens when Locust starts its users, so the profiles cover
    // the load and not Locust's start-up.
    let (tx, rx) = mpsc::channel::<(usize, usize, attach_out::Got)>();
    let (heap_tx, heap_rx) = mpsc::channel::<(usize, attach_heap::Series)>();
    let mut pulling = false;
    let driven = driver::drive(&spec, &dir.path, |users_started| {
        if !pulling && users_started {
            pulling = true;
            attach_out::start_pulls(&targets, &heap_at_once, secs, &tx);
            attach_heap::start(&targets, secs, &heap_tx);
        }
    })?;
    drop((tx, heap_tx));
    let (interrupted, mut notes) = (driven.interrupted, driven.notes);
    if !pulling {
        notes.push("Locust never started its users: nothing was pulled".into());
    }
    // The pulls end with their window; after Ctrl-C only the finished ones
    // are kept.
    let wait = if interrupted {
        Duration::ZERO
    } else {
        Duration::from_secs(secs + 30)
    };
    let pulled = attach_out::collect(&rx, targets.len(), wait);
    let series = attach_heap::collect(&heap_rx, targets.len(), wait);
    let figures = Figures::new(version, &spec, driven.endpoints, driven.aggregated);
    let mut instances = attach_out::write_instances(&dir, &targets, pulled, &mut notes)?;
    attach_heap::write(&dir, &mut instances, series, &mut notes)?;
    let summary = AttachSummary {
        schema_version: 1,
        url,
        locustfile: source,
        figures,
        instances,
        interrupted,
        notes,
        pids: driven.pids,
    };
    store::write_json(&dir.file("attach.json"), &summary)?;
    let plan = RunPlan {
        rows: 0,
        threads: options.load.users as usize,
        stop: Stop::Duration(options.load.duration.into()),
        warmup: Warmup::Ops(0),
        seed: 0,
    };
    let bench = driver::bench(
        "attach",
        &summary.figures.aggregated,
        options.load.duration,
        plan,
        interrupted,
    );
    store::write_json(&dir.file(files::BENCH), &bench)?;
    attach_out::findings_and_flamegraphs(&dir, &summary, &options.flamegraph_dir)?;
    let mut manifest = store::manifest(
        &dir,
        "attach",
        &format!("{} under Locust ({})", summary.url, summary.locustfile),
        plan,
        &[Pass::Bench],
        started,
    );
    manifest.interrupted = interrupted;
    store::write_json(&dir.file(files::MANIFEST), &manifest)?;
    Ok(AttachRun {
        dir: dir.path.clone(),
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_loopback_base_urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/").unwrap().0,
            "http://127.0.0.1:8080"
        );
        assert!(parse_url("http://localhost:9").is_ok());
        for bad in [
            "127.0.0.1:8080",
            "https://127.0.0.1:8080",
            "http://127.0.0.1:8080/api",
            "http://10.1.2.3:80",
            "http://",
            "http://127.0.0.1",
        ] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn a_mix_needs_routes_and_whole_weights() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            let p = dir.path().join("mix.json");
            std::fs::write(&p, text).unwrap();
            p
        };
        let routes = read_mix(&write(r#"{"GET /a/{id}": 3, "/b": 0, "POST /c": 1}"#)).unwrap();
        let names: Vec<_> = routes
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(names, ["GET /a/{id}", "POST /c"]);
        for bad in [r#"{"/a": -1}"#, r#"{"/a": 0}"#, r#"{"a b c": 1}"#, "[1]"] {
            assert!(read_mix(&write(bad)).is_err(), "{bad}");
        }
    }
}
