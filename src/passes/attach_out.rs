//! What `profkit attach` pulls and writes: the `/debug` requests (one
//! thread each, all over the same window), the per-instance and merged
//! files of the run folder, `bench.json` from Locust's figures, the
//! findings and the flamegraphs.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::attach::{AttachSummary, Instance, Pull, PullStatus, OPTIONAL_PULLS, PULLS};
use crate::analyze::findings::{self, Finding, FindingKind, Findings, Severity};
use crate::analyze::sql::SqlReport;
use crate::analyze::stacks::Folded;

use crate::render;
use crate::store::{self, files, RunDir};

/// What a GET gave.
#[derive(Debug)]
pub enum Got {
    /// 2xx, with its body.
    Body(Vec<u8>),
    /// 404.
    Missing,
    /// Anything else, said in words.
    Failed(String),
}

/// GETs `url` with an overall `timeout`.
pub fn get(url: &str, timeout: Duration) -> Got {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(e) => return Got::Failed(e.to_string()),
    };
    let status = resp.status().as_u16();
    let body = resp.body_mut().with_config().limit(512 << 20).read_to_vec();
    match (status, body) {
        (404, _) => Got::Missing,
        (200..=299, Ok(b)) => Got::Body(b),
        (200..=299, Err(e)) => Got::Failed(format!("reading the answer: {e}")),
        (s, Ok(b)) => Got::Failed(format!(
            "HTTP {s}: {}",
            String::from_utf8_lossy(&b[..b.len().min(200)]).trim()
        )),
        (s, Err(_)) => Got::Failed(format!("HTTP {s}")),
    }
}

/// Which targets answer `/debug/pprof/heap` at once, ignoring `seconds`
/// (a heap profile since start-up, like `profkit serve`'s), rather than a
/// delta over the window, as Go's does: asked with `seconds=1` before the
/// load starts, and timed.
pub fn heap_answers_at_once(targets: &[(String, SocketAddr)]) -> Vec<bool> {
    let probes: Vec<_> = targets
        .iter()
        .map(|(url, _)| {
            let url = format!("{url}/debug/pprof/heap?seconds=1");
            std::thread::spawn(move || {
                let t = Instant::now();
                let got = get(&url, Duration::from_secs(10));
                matches!(got, Got::Body(_)) && t.elapsed() < Duration::from_millis(800)
            })
        })
        .collect();
    probes
        .into_iter()
        .map(|p| p.join().unwrap_or(false))
        .collect()
}

/// Starts every pull of every target, each on its own thread, sending
/// `(target, pull, what it got)` when done. A heap endpoint that answers
/// at once is asked after the window instead, so that the work of
/// symbolizing it does not land in the CPU profile taken meanwhile.
pub fn start_pulls(
    targets: &[(String, SocketAddr)],
    heap_at_once: &[bool],
    secs: u64,
    tx: &mpsc::Sender<(usize, usize, Got)>,
) {
    for (i, (url, _)) in targets.iter().enumerate() {
        for (j, (what, path)) in PULLS.iter().enumerate() {
            let url = format!("{url}{path}?seconds={secs}");
            let tx = tx.clone();
            let later = *what == "heap" && heap_at_once.get(i) == Some(&true);
            let cpu = *what == "cpu";
            std::thread::spawn(move || {
                if later {
                    std::thread::sleep(Duration::from_secs(secs) + Duration::from_millis(500));
                } else if !cpu {
                    // The CPU profile first: a profkit::service endpoints
                    // window takes the process's one CPU profile when it is
                    // free, and the CPU pull would then get 409.
                    std::thread::sleep(Duration::from_millis(500));
                }
                let got = get(&url, Duration::from_secs(secs + 30));
                let _ = tx.send((i, j, got));
            });
        }
    }
}

/// What arrived within `wait` (or at once when `wait` is zero), as
/// `[target][pull]`.
pub fn collect(
    rx: &mpsc::Receiver<(usize, usize, Got)>,
    targets: usize,
    wait: Duration,
) -> Vec<Vec<Option<Got>>> {
    let mut out: Vec<Vec<Option<Got>>> = (0..targets)
        .map(|_| PULLS.iter().map(|_| None).collect())
        .collect();
    let deadline = Instant::now() + wait;
    let mut left = targets * PULLS.len();
    while left > 0 {
        let next = if wait.is_zero() {
            rx.try_recv().ok()
        } else {
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .ok()
        };
        let Some((i, j, got)) = next else { break };
        out[i][j] = Some(got);
        left -= 1;
    }
    out
}

/// `127.0.0.1:8080` → `127.0.0.1-8080`.
fn instance_name(url: &str) -> String {
    url.trim_start_matches("http://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn gzipped(bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()
}

/// The pprof label naming a sample's endpoint (`profkit::service`'s CPU
/// profiles carry it; `go tool pprof -tagfocus endpoint=…` reads it).
pub const ENDPOINT_LABEL: &str = "endpoint";

/// Folder of the per-endpoint folded stacks in a run folder.
pub const ENDPOINTS_DIR: &str = "cpu-endpoints";

/// Folded stacks per value of a CPU profile's `endpoint` label (empty when
/// its samples carry none).
pub fn per_endpoint(bytes: &[u8], path: &Path) -> BTreeMap<String, Folded> {
    let mut out = BTreeMap::new();
    let Ok(profile) = render::input::decode(bytes, path) else {
        return out;
    };
    let st = &profile.string_table;
    let Some(key) = st.iter().position(|s| s == ENDPOINT_LABEL) else {
        return out;
    };
    let mut by: BTreeMap<String, Vec<render::pprof::Sample>> = BTreeMap::new();
    for sample in &profile.sample {
        let value = sample
            .label
            .iter()
            .find(|l| l.key == key as i64)
            .and_then(|l| usize::try_from(l.str).ok())
            .and_then(|i| st.get(i));
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            by.entry(v.clone()).or_default().push(sample.clone());
        }
    }
    let kind = profile
        .sample_type
        .iter()
        .any(|t| st.get(t.r#type as usize).map(String::as_str) == Some("samples"))
        .then_some("samples");
    for (endpoint, samples) in by {
        let one = render::pprof::Profile {
            sample: samples,
            ..profile.clone()
        };
        if let Ok(folded) = render::input::to_folded_counts(&one, kind, path) {
            out.insert(endpoint, folded);
        }
    }
    out
}

/// `GET /orders/{id}` → `GET_orders_id`: a file name.
fn file_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches('_').to_string();
    let mut out = String::new();
    for c in s.chars() {
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.chars().take(80).collect()
}

/// Writes each target's pulls (into `instances/<name>/` when there are
/// several, merged at the top), and says what each gave.
pub fn write_instances(
    dir: &RunDir,
    targets: &[(String, SocketAddr)],
    pulled: Vec<Vec<Option<Got>>>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Instance>> {
    let several = targets.len() > 1;
    let mut merged = Folded::new();
    let mut endpoints: BTreeMap<String, Folded> = BTreeMap::new();
    let mut top_sql = false;
    let mut instances = Vec::new();
    for ((url, _), gots) in targets.iter().zip(pulled) {
        let name = instance_name(url);
        let sub = if several {
            format!("instances/{name}/")
        } else {
            String::new()
        };
        if several {
            std::fs::create_dir_all(dir.path.join(&sub))?;
        }
        let mut pulls = Vec::new();
        for ((what, path), got) in PULLS.iter().zip(gots) {
            let asked = format!("{url}{path}");
            let mut pull = Pull {
                what: what.to_string(),
                url: asked.clone(),
                status: PullStatus::NotFinished,
                detail: None,
                file: None,
            };
            match got {
                None => pull.detail = Some("no answer before the run ended".into()),
                Some(Got::Missing) => {
                    pull.status = PullStatus::Missing;
                    pull.detail = Some("404: the service does not serve it".into());
                }
                Some(Got::Failed(e)) => {
                    pull.status = PullStatus::Failed;
                    pull.detail = Some(e);
                }
                Some(Got::Body(bytes)) => {
                    pull.status = PullStatus::Ok;
                    let file = match *what {
                        "cpu" => {
                            let file = format!("{sub}{}", files::CPU_PPROF);
                            let path = dir.path.join(&file);
                            for (e, folded) in per_endpoint(&bytes, &path) {
                                let into = endpoints.entry(e).or_default();
                                for (stack, n) in folded {
                                    *into.entry(stack).or_default() += n;
                                }
                            }
                            match render::input::parse_stacks(&path, &bytes) {
                                Ok(s) => {
                                    for (stack, n) in &s.stacks {
                                        *merged.entry(stack.clone()).or_default() += n;
                                    }
                                    let folded = render::folded::to_text(&s.stacks);
                                    store::write_atomic(
                                        &dir.path.join(format!("{sub}{}", files::CPU_FOLDED)),
                                        folded.as_bytes(),
                                    )?;
                                }
                                Err(e) => notes.push(format!("{asked}: {e}")),
                            }
                            store::write_atomic(&path, &gzipped(bytes)?)?;
                            file
                        }
                        "heap" => {
                            let file = format!("{sub}{}", files::HEAP_PB);
                            store::write_atomic(&dir.path.join(&file), &gzipped(bytes)?)?;
                            file
                        }
                        "sql" => {
                            // sql.json is the SQL report `report` reads; a
                            // service answering another layout keeps it
                            // under its own name.
                            let ours = serde_json::from_slice::<SqlReport>(&bytes).is_ok();
                            let file = if ours {
                                format!("{sub}{}", files::SQL_JSON)
                            } else {
                                format!("{sub}service-sql.json")
                            };
                            store::write_atomic(&dir.path.join(&file), &bytes)?;
                            if ours && several && !top_sql {
                                // The first instance's (the one Locust loads
                                // when it is among the targets).
                                store::write_atomic(&dir.file(files::SQL_JSON), &bytes)?;
                                top_sql = true;
                            }
                            file
                        }
                        "plans" => {
                            let file = format!("{sub}plans.json");
                            store::write_atomic(&dir.path.join(&file), &bytes)?;
                            file
                        }
                        _ => {
                            let file = format!("{sub}endpoints.json");
                            store::write_atomic(&dir.path.join(&file), &bytes)?;
                            file
                        }
                    };
                    pull.file = Some(file);
                }
            }
            pulls.push(pull);
        }
        instances.push(Instance {
            url: url.clone(),
            name,
            pulls,
        });
    }
    if several && !merged.is_empty() {
        store::write_atomic(
            &dir.file(files::CPU_FOLDED),
            render::folded::to_text(&merged).as_bytes(),
        )?;
    }
    for (e, folded) in &endpoints {
        let file = format!("{ENDPOINTS_DIR}/{}.folded", file_safe(e));
        // The endpoint's name, as the first line's comment would break
        // folded readers: it goes in the file name and in endpoints.json.
        store::write_atomic(
            &dir.path.join(file),
            render::folded::to_text(folded).as_bytes(),
        )?;
    }
    Ok(instances)
}

/// The service's own findings (`endpoints.json`: N+1 and blocking per
/// endpoint), in profkit's finding type.
fn service_findings(endpoints: &serde_json::Value, instance: Option<&str>) -> Vec<Finding> {
    let top = endpoints["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let per_endpoint = endpoints["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["findings"].as_array().cloned().unwrap_or_default());
    let mut seen = std::collections::BTreeSet::new();
    top.into_iter()
        .chain(per_endpoint)
        .filter_map(|f| {
            let message = f["message"].as_str()?.to_string();
            let endpoint = f["endpoint"].as_str().unwrap_or("?").to_string();
            seen.insert(message.clone()).then_some(())?;
            let (kind, hint) = match f["kind"].as_str() {
                Some("n-plus-one") => (
                    FindingKind::NPlusOne,
                    "batch them: one query with IN (…) or a JOIN",
                ),
                Some("blocking") => (
                    FindingKind::Blocking,
                    "move blocking work off the runtime's workers (spawn_blocking) or make it async",
                ),
                _ => (
                    FindingKind::Waiting,
                    "see the service's endpoints.json for this finding",
                ),
            };
            let mut evidence: Vec<String> = f["frames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(|s| format!("frame: {s}")))
                .collect();
            if let Some(s) = f["statement"].as_str() {
                evidence.insert(0, format!("statement: {s}"));
            }
            if let Some(i) = instance {
                evidence.push(format!("instance: {i}"));
            }
            Some(Finding {
                kind,
                severity: Severity::Critical,
                score: 1.0,
                workload: endpoint,
                title: message,
                evidence,
                hint: hint.into(),
            })
        })
        .collect()
}

/// `findings.json` (the SQL report's, the service's own per endpoint, and
/// one per endpoint a service did not have) and the CPU flamegraphs:
/// merged, and per instance when there are several.
pub fn findings_and_flamegraphs(
    dir: &RunDir,
    summary: &AttachSummary,
    flamegraph_dir: &Path,
) -> anyhow::Result<()> {
    let sql: Option<SqlReport> = store::read_opt_json(&dir.file(files::SQL_JSON), "SQL report")?;
    let mut all = findings::rank("attach", sql.as_ref(), None, None).findings;
    let several = summary.instances.len() > 1;
    for inst in &summary.instances {
        for p in &inst.pulls {
            match (&p.status, &p.file) {
                (PullStatus::Ok, Some(file)) if p.what == "endpoints" => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(dir.path.join(file))?)
                            .unwrap_or_default();
                    all.extend(service_findings(&v, several.then_some(inst.url.as_str())));
                }
                (PullStatus::Ok, Some(file)) if p.what == "plans" => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(dir.path.join(file))?)
                            .unwrap_or_default();
                    let plans: Vec<Finding> =
                        serde_json::from_value(v["findings"].clone()).unwrap_or_default();
                    all.extend(plans);
                }
                (PullStatus::Missing, _) if OPTIONAL_PULLS.contains(&p.what.as_str()) => {}
                (PullStatus::Missing, _) => all.push(Finding {
                    kind: FindingKind::Missing,
                    severity: Severity::Warning,
                    score: 0.0,
                    workload: "attach".into(),
                    title: format!("{} answered 404: no {} data from it", p.url, p.what),
                    evidence: vec![format!("instance {}", inst.url)],
                    hint: "mount profkit::service::router() in the service (or serve it on a side port with profkit::service::spawn)".into(),
                }),
                _ => {}
            }
        }
    }
    all.extend(super::attach_heap::findings(dir, summary));
    store::write_json(&dir.file(files::FINDINGS), &Findings::new("attach", all))?;
    let draw = |folded_file: &Path, kind: &str, title: &str| -> anyhow::Result<()> {
        let Ok(text) = std::fs::read_to_string(folded_file) else {
            return Ok(());
        };
        let Ok(svg) = render::flamegraph::render_folded(
            &text,
            &render::flamegraph::SvgOptions {
                title: title.to_string(),
                subtitle: Some(format!("{} under Locust", summary.url)),
                inverted: false,
                count_name: "samples".to_string(),
                memory: false,
            },
        ) else {
            return Ok(());
        };
        store::write_atomic(&flamegraph_dir.join(format!("{}-{kind}.svg", dir.id)), &svg)?;
        Ok(())
    };
    draw(&dir.file(files::CPU_FOLDED), "cpu", "CPU: attach")?;
    if let Ok(entries) = std::fs::read_dir(dir.path.join(ENDPOINTS_DIR)) {
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".folded"))
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        for name in names {
            draw(
                &dir.path.join(format!("{ENDPOINTS_DIR}/{name}.folded")),
                &format!("cpu-endpoint-{name}"),
                &format!("CPU: endpoint {name}"),
            )?;
        }
    }
    if several {
        for inst in &summary.instances {
            let folded = dir
                .path
                .join(format!("instances/{}/{}", inst.name, files::CPU_FOLDED));
            draw(
                &folded,
                &format!("cpu-{}", inst.name),
                &format!("CPU: {}", inst.url),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::cpu::{CpuProfile, Frame, Stack};
    use crate::units::Nanos;
    use prost::Message as _;

    #[test]
    fn endpoint_labels_split_a_cpu_profile_and_unlabelled_samples_go_nowhere() {
        let frame = |f: &str| Frame {
            function: f.into(),
            file: None,
            line: None,
            module: None,
            inlined: false,
        };
        let stack = |f: &str, n: u64| Stack {
            thread: "w".into(),
            frames: vec![frame("main"), frame(f)],
            samples: n,
        };
        let profile = CpuProfile {
            frequency: 99,
            sampler: Default::default(),
            sampler_note: None,
            samples: 10,
            cpu_time: Nanos(1),
            wall_time: Nanos(1),
            started_unix_nanos: 0,
            stacks: vec![stack("orders", 5), stack("users", 3), stack("idle", 2)],
        };
        let mut pb = render::pprof::to_pprof(&profile);
        let key = pb.string_table.len() as i64;
        pb.string_table
            .extend(["endpoint", "GET /orders/{id}", "GET /users"].map(String::from));
        // Samples in the order of the stacks: label the first two.
        assert_eq!(pb.sample.len(), 3);
        for (i, value) in [(0, key + 1), (1, key + 2)] {
            pb.sample[i].label.push(render::pprof::Label {
                key,
                str: value,
                num: 0,
                num_unit: 0,
            });
        }
        let by = per_endpoint(&pb.encode_to_vec(), Path::new("cpu.pb"));
        let names: Vec<&str> = by.keys().map(String::as_str).collect();
        assert_eq!(names, ["GET /orders/{id}", "GET /users"]);
        let total = |f: &Folded| f.values().sum::<u64>();
        assert_eq!(total(&by["GET /orders/{id}"]), 5);
        assert_eq!(total(&by["GET /users"]), 3);
        assert!(
            by["GET /users"].keys().all(|k| k.ends_with("users")),
            "{by:?}"
        );
        // No label at all: nothing per endpoint.
        let plain = render::pprof::to_pprof(&profile).encode_to_vec();
        assert!(per_endpoint(&plain, Path::new("cpu.pb")).is_empty());
        assert_eq!(file_safe("GET /orders/{id}"), "GET_orders_id");
    }
}
