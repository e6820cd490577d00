//! `profkit serve` and `profkit load --locust` through the real binary:
//! bad addresses, SIGTERM, and a bounded distributed Locust run.

#![cfg(feature = "service")]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::profkit;

fn bin() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("profkit"))
}

#[test]
fn a_port_in_use_is_one_line_and_exit_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = profkit(dir.path())
        .args(["serve", "--rows", "100", "--addr", &addr])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
}

#[test]
fn a_remote_address_needs_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = profkit(dir.path())
        .args(["serve", "--addr", "0.0.0.0:0"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote"), "{err}");
}

/// The rest of a server's stderr, after its first line.
type Stderr = BufReader<std::process::ChildStderr>;

/// Starts `profkit serve` on a free loopback port with `args`; returns the
/// child, its base URL and the rest of its stderr.
fn serve(args: &[&str]) -> (std::process::Child, String, Stderr) {
    let mut child = bin()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, url, err)
}

fn http_get(url: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut r = agent.get(url).call().expect("the server answers");
    (r.status().as_u16(), r.body_mut().read_to_vec().unwrap())
}

#[test]
fn the_server_samples_its_heap_for_debug_pprof_heap() {
    let (mut child, url, _) = serve(&["--rows", "300", "--heap-sample-interval", "16KiB"]);
    for _ in 0..200 {
        assert_eq!(http_get(&format!("{url}/api/random-emails?k=50")).0, 200);
    }
    let (status, gz) = http_get(&format!("{url}/debug/pprof/heap"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&gz));
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
    let p = <profkit::render::pprof::Profile as prost::Message>::decode(&raw[..]).unwrap();
    let s = |i: i64| p.string_table[i as usize].as_str();
    let types: Vec<&str> = p.sample_type.iter().map(|t| s(t.r#type)).collect();
    assert_eq!(
        types,
        [
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space"
        ]
    );
    // 200 requests of 50 emails each: megabytes allocated, estimated from
    // samples taken while the server answered them.
    let allocated: i64 = p.sample.iter().map(|x| x.value[1]).sum();
    assert!(allocated > 1_000_000, "{allocated} bytes");
    let names: Vec<&str> = p.function.iter().map(|f| s(f.name)).collect();
    assert!(
        names.iter().any(|n| n.contains("random_emails")),
        "no handler frame in {names:?}"
    );

    // Off: the endpoint says why, in one line.
    let (mut child, url, _) = serve(&["--rows", "300", "--no-heap-profile"]);
    let (status, body) = http_get(&format!("{url}/debug/pprof/heap"));
    child.kill().unwrap();
    child.wait().unwrap();
    let reason = String::from_utf8_lossy(&body);
    assert_eq!(status, 501, "{reason}");
    assert!(reason.contains("--no-heap-profile") && !reason.contains('\n'));
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mail.db");
    let (mut child, url, mut err) = serve(&["--rows", "200", "--db", db.to_str().unwrap()]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let body = agent
        .get(&format!("{url}/api/info"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(body.contains("\"rows\":200"), "{body}");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(
        rest.contains("stopped after") && rest.contains("database closed"),
        "{rest}"
    );
    // Checkpointed: no write-ahead log left with content.
    let wal = dir.path().join("mail.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}

#[test]
fn a_missing_locust_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = profkit(dir.path())
        .args(["load", "--locust", "--duration", "2s"])
        .env("PROFKIT_LOCUST", dir.path().join("no-such-locust"))
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("pip install locust=="), "{err}");
}

#[test]
fn locust_master_and_two_workers_load_the_server_into_a_run_folder() {
    if !common::locust::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = profkit(dir.path())
        .args([
            "load",
            "--locust",
            "--workers",
            "2",
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--duration",
            "6s",
            "--rows",
            "500",
            "--out",
            "runs",
        ])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let run = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("locust.json").exists())
        .expect("a run folder with locust.json");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("locust.json")).unwrap()).unwrap();
    let requests = summary["aggregated"]["requests"].as_u64().unwrap();
    assert!(requests > 0, "{summary}");
    assert_eq!(
        summary["aggregated"]["failures"].as_u64(),
        Some(0),
        "{summary}"
    );
    assert!(summary["server_requests"].as_u64().unwrap() >= requests);
    let names: Vec<&str> = summary["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"/api/tenants/[t]/emails/[id]"), "{names:?}");
    assert_eq!(summary["workers"].as_u64(), Some(2));
    assert_eq!(summary["pids"].as_array().unwrap().len(), 3);
    assert_no_process_left(&summary);
    // Both workers connected and ran users.
    let master_log = std::fs::read_to_string(run.join("locust-master.log")).unwrap();
    assert!(
        master_log.contains("2 workers connected") || master_log.contains("(2 total workers)"),
        "{master_log}"
    );
    for f in [
        "bench.json",
        "manifest.json",
        "locust_stats.csv",
        "locust_stats_history.csv",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    assert!(stdout.contains("Aggregated"), "{stdout}");
    assert!(!stderr.contains("mid-run"), "no worker died: {stderr}");
    // The server's CPU profile over the steady part reaches the handlers
    // and SQLite.
    let gz = std::fs::read(run.join("cpu.pb.gz")).expect("cpu.pb.gz");
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
    let profile = <profkit::render::pprof::Profile as prost::Message>::decode(&raw[..]).unwrap();
    let names: Vec<&str> = profile
        .function
        .iter()
        .map(|f| profile.string_table[f.name as usize].as_str())
        .collect();
    assert!(names.iter().any(|n| n.contains("serve::api")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("sqlite3")), "{names:?}");
    // And its heap, sampled over the whole run.
    let gz = std::fs::read(run.join("heap.pb.gz")).expect("heap.pb.gz");
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
    let heap = <profkit::render::pprof::Profile as prost::Message>::decode(&raw[..]).unwrap();
    assert!(
        heap.sample.iter().map(|x| x.value[1]).sum::<i64>() > 0,
        "no bytes allocated in heap.pb.gz"
    );
    let sql: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("sql.json")).expect("sql.json")).unwrap();
    assert!(sql["ops"].as_u64().unwrap() > 0, "{sql}");
    assert!(
        sql.to_string().contains("\"operation\":\"read-email\""),
        "{sql}"
    );
    // `profkit report` reads the run like any other.
    let report = profkit(dir.path())
        .args(["report"])
        .arg(&run)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    common::assert_success(&report);
}

/// Every Locust process of a run has ended (reaped, so no /proc entry).
fn assert_no_process_left(summary: &serde_json::Value) {
    for pid in summary["pids"].as_array().unwrap() {
        let pid = pid.as_u64().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !status.contains("locust"),
            "Locust process {pid} outlived the run: {status}"
        );
    }
}

#[test]
fn ctrl_c_stops_master_workers_and_server_and_keeps_the_partial_stats() {
    if !common::locust::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args([
            "load",
            "--locust",
            "--workers",
            "2",
            "--users",
            "2",
            "--spawn-rate",
            "2",
            "--duration",
            "60s",
            "--rows",
            "300",
            "--out",
            "runs",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (at most 60 s) until the master has handed users to the workers.
    let started = std::time::Instant::now();
    let log = loop {
        let log = std::fs::read_dir(dir.path().join("runs"))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path().join("locust-master.log"))
            .find_map(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        if log.contains("Sending spawn jobs") {
            break log;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Locust did not start: {log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(log.contains("2 workers connected"), "{log}");
    std::thread::sleep(Duration::from_secs(2));
    let (status, err) = common::interrupt(&mut child);
    assert_eq!(status.code(), Some(130), "{err}");
    let run = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("locust.json").exists())
        .unwrap_or_else(|| panic!("no locust.json after Ctrl-C: {err}"));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("locust.json")).unwrap()).unwrap();
    assert!(
        summary["notes"].to_string().contains("interrupted"),
        "{summary}"
    );
    assert_no_process_left(&summary);
}
