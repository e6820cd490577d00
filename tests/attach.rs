//! `profkit attach` through the real binary against `profkit serve`
//! instances on loopback: bad URLs, a bounded Locust run with 2 workers
//! whose run folder `report` renders, two replicas, and Ctrl-C.

#![cfg(feature = "service")]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::locust::{assert_loaded_without_failures, json, one_at_a_time, the_attach_run};
use common::profkit;
use serde_json::Value;

fn bin() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("profkit"))
}

/// A `profkit serve` on a free loopback port, stopped when dropped.
struct Served {
    child: Child,
    url: String,
}

fn serve(dir: &Path) -> Served {
    let mut child = bin()
        .args(["serve", "--addr", "127.0.0.1:0", "--rows", "300"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("serve says where it listens").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, url }
}

impl Drop for Served {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn assert_no_process_left(summary: &Value) {
    for pid in summary["pids"].as_array().unwrap() {
        let pid = pid.as_u64().unwrap();
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !cmd.contains("locust"),
            "Locust process {pid} outlived the run: {cmd}"
        );
    }
}

fn locustfile() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/locustfile.py")
        .display()
        .to_string()
}

#[test]
fn an_unreachable_or_remote_url_is_one_line_and_exit_2_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for (url, says) in [
        (format!("http://127.0.0.1:{closed}"), "unreachable"),
        ("http://10.9.8.7:80".to_string(), "loopback"),
        ("127.0.0.1:80".to_string(), "http://"),
    ] {
        let started = Instant::now();
        let out = profkit(dir.path())
            .args(["attach", &url, "--duration", "2s"])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "{url}: slow");
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(&url) && err.contains(says), "{err}");
    }
    // A second target that is down fails the same way, before Locust starts.
    let up = serve(dir.path());
    let out = profkit(dir.path())
        .args(["attach", &up.url, "--target", &up.url])
        .args(["--target", &format!("http://127.0.0.1:{closed}")])
        .args(["--out", "runs"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !dir.path().join("runs").exists(),
        "a run folder was started"
    );
}

#[test]
fn a_bad_mix_or_a_missing_locust_is_one_line_and_exit_2_with_no_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let up = serve(dir.path());
    let bad_mix = dir.path().join("mix.json");
    std::fs::write(&bad_mix, r#"{"GET /a": "lots"}"#).unwrap();
    let good_mix = dir.path().join("good.json");
    std::fs::write(&good_mix, r#"{"GET /api/random-emails": 1}"#).unwrap();
    let cases: [(&Path, &str, &str); 2] = [
        (&bad_mix, "locust", "weight of 'GET /a'"),
        (&good_mix, "/no/such/locust", "pip install locust"),
    ];
    for (mix, program, says) in cases {
        let out = profkit(dir.path())
            .args(["attach", &up.url, "--out", "runs"])
            .arg("--mix")
            .arg(mix)
            .env("PROFKIT_LOCUST", program)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{mix:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(
            !dir.path().join("runs").exists(),
            "a run folder was started"
        );
    }
    // A fresh profkit serve has seen no route: without a locustfile or a
    // mix there is nothing to load, and the error says what to give.
    let out = profkit(dir.path())
        .args(["attach", &up.url, "--out", "runs"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/debug/profkit/endpoints") && err.contains("--mix FILE"),
        "{err}"
    );
}

#[test]
fn two_workers_load_a_served_instance_into_a_run_folder_report_renders() {
    if !common::locust::available() {
        return;
    }
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let out = profkit(dir.path())
        .args(["attach", &served.url, "--locustfile", &locustfile()])
        .args(["--workers", "2", "--users", "4", "--spawn-rate", "4"])
        .args(["--duration", "4s", "--out", "runs"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let run = the_attach_run(&dir.path().join("runs"));
    let summary = json(&run.join("attach.json"));
    assert_loaded_without_failures(&summary);
    assert_eq!(summary["interrupted"], false);
    assert_no_process_left(&summary);
    // profkit serve is a profkit::service user: it has all four.
    let status: Vec<(String, String)> = summary["instances"][0]["pulls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["what"].as_str().unwrap().into(),
                p["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("cpu", "ok"),
            ("heap", "ok"),
            ("sql", "ok"),
            ("endpoints", "ok"),
            // Only a service on PostgreSQL serves plans.
            ("plans", "missing")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for f in [
        "cpu.pb.gz",
        "cpu.folded",
        "heap.pb.gz",
        "sql.json",
        "bench.json",
        "manifest.json",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let folded = std::fs::read_to_string(run.join("cpu.folded")).unwrap();
    assert!(!folded.trim().is_empty());
    let bench = json(&run.join("bench.json"));
    assert_eq!(bench["ops"], summary["aggregated"]["requests"]);
    let findings = json(&run.join("findings.json"));
    assert!(findings["findings"].is_array(), "{findings}");
    let report = profkit(dir.path())
        .args(["report"])
        .arg(&run)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&report.stdout);
    assert!(
        report.status.success(),
        "{md}\n{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(md.contains("| attach |"), "{md}");
    let id = run.file_name().unwrap().to_string_lossy().to_string();
    assert!(dir
        .path()
        .join(format!("flamegraphs/{id}-cpu.svg"))
        .exists());
}

#[test]
fn two_replicas_give_per_instance_and_merged_profiles_from_a_generated_mix() {
    if !common::locust::available() {
        return;
    }
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (serve(dir.path()), serve(dir.path()));
    let mix = dir.path().join("mix.json");
    std::fs::write(
        &mix,
        r#"{"GET /api/random-emails": 3, "GET /api/tenants/1/senders/top": 1}"#,
    )
    .unwrap();
    let out = profkit(dir.path())
        .args(["attach", &a.url, "--target", &a.url, "--target", &b.url])
        .arg("--mix")
        .arg(&mix)
        .args(["--workers", "2", "--users", "2", "--spawn-rate", "2"])
        .args(["--duration", "3s", "--out", "runs"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = the_attach_run(&dir.path().join("runs"));
    let summary = json(&run.join("attach.json"));
    assert!(summary["locustfile"].as_str().unwrap().contains("--mix"));
    let names: Vec<&str> = summary["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"GET /api/random-emails"), "{names:?}");
    assert_eq!(
        summary["aggregated"]["failures"].as_u64(),
        Some(0),
        "{summary}"
    );
    let instances = summary["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    let mut per_instance = 0;
    for inst in instances {
        let sub = run.join("instances").join(inst["name"].as_str().unwrap());
        for f in ["cpu.pb.gz", "heap.pb.gz", "sql.json"] {
            assert!(sub.join(f).exists(), "{sub:?}/{f} missing");
        }
        // An idle replica's profile may hold no sample (a running service
        // is sampled at 99 Hz): no cpu.folded then, and a note says why.
        let folded = sub.join("cpu.folded");
        if !folded.exists() {
            let cpu = format!("{}/debug/pprof/profile", inst["url"].as_str().unwrap());
            assert!(
                summary["notes"].to_string().contains(&cpu),
                "{folded:?} missing and no note: {summary}"
            );
            continue;
        }
        per_instance += std::fs::read_to_string(folded)
            .unwrap()
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>();
    }
    // The merged profile holds both instances' samples.
    let merged: u64 = std::fs::read_to_string(run.join("cpu.folded"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(merged, per_instance);
    assert!(merged > 0);
    let id = run.file_name().unwrap().to_string_lossy().to_string();
    for inst in instances {
        let name = inst["name"].as_str().unwrap();
        if !run.join("instances").join(name).join("cpu.folded").exists() {
            continue;
        }
        let svg = format!("flamegraphs/{id}-cpu-{name}.svg");
        assert!(dir.path().join(&svg).exists(), "{svg}");
    }
}

#[test]
fn ctrl_c_stops_locust_and_keeps_the_partial_figures_marked_interrupted() {
    if !common::locust::available() {
        return;
    }
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let mut child = bin()
        .args(["attach", &served.url, "--locustfile", &locustfile()])
        .args(["--workers", "2", "--users", "2", "--spawn-rate", "2"])
        .args(["--duration", "60s", "--out", "runs"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let logs = |name: &str| {
            std::fs::read_dir(dir.path().join("runs"))
                .into_iter()
                .flatten()
                .map(|e| e.unwrap().path().join(name))
                .find_map(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default()
        };
        let log =
            logs("locust-master.log") + &logs("locust-worker-0.log") + &logs("locust-worker-1.log");
        if log.contains("All users spawned") {
            break;
        }
        // Waits on Locust's readiness, however slow the machine: the hang
        // guard is profkit's own start-up bound (180 s), and profkit ending
        // first fails at once.
        if let Some(status) = child.try_wait().unwrap() {
            panic!("profkit ended ({status}) before Locust started: {log}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(200),
            "Locust did not start: {log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Past a worker's first report to the master (every 3 s).
    std::thread::sleep(Duration::from_secs(4));
    let (status, err) = common::interrupt(&mut child);
    assert_eq!(status.code(), Some(130), "{err}");
    let run = the_attach_run(&dir.path().join("runs"));
    let summary = json(&run.join("attach.json"));
    assert_eq!(summary["interrupted"], true, "{summary}");
    assert!(
        summary["aggregated"]["requests"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert_no_process_left(&summary);
    assert_eq!(json(&run.join("bench.json"))["interrupted"], true);
    assert_eq!(json(&run.join("manifest.json"))["interrupted"], true);
}

#[test]
fn workers_slower_to_start_than_30_s_still_get_the_run_going() {
    if !common::locust::available() {
        return;
    }
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    // A locust whose workers start 35 s late, as Python start-up can on a
    // loaded machine (Locust's --expect-workers-max-wait 30 gave up there).
    let slow = dir.path().join("slow-locust");
    std::fs::write(
        &slow,
        "#!/bin/sh\ncase \" $* \" in *\" --worker \"*) sleep 35;; esac\nexec locust \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &slow,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let out = profkit(dir.path())
        .args(["attach", &served.url, "--locustfile", &locustfile()])
        .args(["--workers", "2", "--users", "2", "--spawn-rate", "2"])
        .args(["--duration", "2s", "--out", "runs"])
        .env("PROFKIT_LOCUST", &slow)
        .timeout(Duration::from_secs(240))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run = the_attach_run(&dir.path().join("runs"));
    let summary = json(&run.join("attach.json"));
    assert!(
        summary["aggregated"]["requests"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert_eq!(summary["notes"], serde_json::json!([]), "{summary}");
    assert_no_process_left(&summary);
}
