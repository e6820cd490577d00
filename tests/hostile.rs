//! Hostile-input tests: what a careless or malicious user might hand the
//! CLI must never touch their data or pass silently (issue 12).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{profkit, sigint};
use predicates::prelude::*;

const FOLDED: &str = "main;work;leaf 7\nmain;idle 3\n";

#[test]
fn flamegraph_never_writes_over_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.folded");
    std::fs::write(&input, FOLDED).unwrap();
    std::os::unix::fs::symlink(&input, dir.path().join("link.svg")).unwrap();
    for out in ["in.folded", "./in.folded", "link.svg"] {
        profkit(dir.path())
            .args(["flamegraph", "in.folded", "-o", out])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("in.folded").and(predicate::str::contains("input")));
        assert_eq!(std::fs::read_to_string(&input).unwrap(), FOLDED, "-o {out}");
    }
}

/// Runs `profkit run WORKLOAD` on tiny data under `<dir>/profiles` and returns its folder.
fn run_folder(dir: &Path, workload: &str) -> PathBuf {
    let out = dir.join("profiles");
    let before = folders(&out);
    profkit(dir)
        .args(["run", workload, "--rows", "200", "--ops", "40", "--out"])
        .arg(&out)
        .assert()
        .success();
    folders(&out)
        .into_iter()
        .find(|p| !before.contains(p))
        .expect("a new run folder")
}

fn folders(out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(out)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn stdout_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

/// Waits (polling, bounded) until `ready` holds; panics after a minute.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never became ready: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of `key` in a profkit database's meta table, if it is there.
fn meta(db: &Path, key: &str) -> Option<String> {
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row(
        "SELECT value FROM profkit_meta WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
    .ok()
}

#[test]
fn a_database_in_use_by_another_profkit_is_never_reset() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let first = Command::new(assert_cmd::cargo::cargo_bin("profkit"))
        .current_dir(dir.path())
        .args([
            "run",
            "concurrent-write",
            "--rows",
            "2000",
            "--threads",
            "2",
            "--duration",
            "300s",
            "--warmup",
            "0",
            "--db",
        ])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Populated (the meta row is written last) and measuring.
    wait_for("first run populated", || {
        meta(&db, "rows").as_deref() == Some("2000")
    });
    let a = profkit(dir.path())
        .args(["run", "point-read", "--rows", "1000", "--ops", "10", "--db"])
        .arg(&db)
        .assert()
        .code(2);
    let err = stderr_of(&a);
    assert!(
        err.contains("s.db") && err.contains(&format!("in use by profkit pid {}", first.id())),
        "{err}"
    );
    assert_eq!(meta(&db, "rows").as_deref(), Some("2000"), "not reset");
    sigint(first.id());
    let out = first.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("lost rows"), "{err}");
    assert_eq!(out.status.code(), Some(130), "{err}");
    // Free again once the first run ended.
    profkit(dir.path())
        .args(["run", "point-read", "--rows", "1000", "--ops", "10", "--db"])
        .arg(&db)
        .assert()
        .success();
}

#[test]
fn check_refuses_to_pass_having_checked_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_folder(dir.path(), "point-read");
    let budget = dir.path().join("b.toml");
    // A typo in the section name: no rule applies to anything.
    std::fs::write(&budget, "[point-raed]\np95 = { critical = \"1s\" }\n").unwrap();
    let a = profkit(dir.path())
        .args(["check", "--budget"])
        .arg(&budget)
        .arg(&run)
        .assert()
        .code(2);
    let err = stderr_of(&a);
    assert!(
        err.contains("point-raed") && err.contains("point-read"),
        "{err}"
    );
    // An empty budget.
    std::fs::write(&budget, "").unwrap();
    profkit(dir.path())
        .args(["check", "--budget"])
        .arg(&budget)
        .arg(&run)
        .assert()
        .code(2);
    // A run of 0 measured operations is not measured, not ok.
    std::fs::write(&budget, "[default]\np95 = { critical = \"1s\" }\n").unwrap();
    edit_json(&run.join("bench.json"), |b| {
        b["ops"] = 0.into();
        b["latency"]["histogram"] = serde_json::json!([]);
    });
    let a = profkit(dir.path())
        .args(["check", "--budget"])
        .arg(&budget)
        .arg(&run)
        .assert()
        .code(2);
    let out = stdout_of(&a);
    assert!(
        out.contains("0 ok") && out.contains("1 not measured"),
        "{out}"
    );
}

#[test]
fn budget_thresholds_must_be_sane() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_folder(dir.path(), "point-read");
    let budget = dir.path().join("b.toml");
    for (text, key) in [
        (
            "throughput = { target = -1, critical = -100 }",
            "throughput",
        ),
        ("sql_per_op = { critical = -1 }", "sql_per_op"),
        ("p95 = { target = -5.0 }", "p95"),
        ("error_rate = { critical = \"200%\" }", "error_rate"),
        ("error_rate = { target = 1.5 }", "error_rate"),
    ] {
        std::fs::write(&budget, format!("[point-read]\n{text}\n")).unwrap();
        let a = profkit(dir.path())
            .args(["check", "--budget"])
            .arg(&budget)
            .arg(&run)
            .assert()
            .code(2);
        let err = stderr_of(&a);
        assert!(
            err.contains(key) && err.lines().count() == 1,
            "{text}: {err}"
        );
    }
}

#[test]
fn compare_questions_what_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let read = run_folder(dir.path(), "point-read");
    let noop = run_folder(dir.path(), "noop");
    let a = profkit(dir.path())
        .arg("compare")
        .args([&read, &noop])
        .assert()
        .code(2);
    let err = stderr_of(&a);
    assert!(
        err.contains("point-read") && err.contains("noop") && err.contains("--force"),
        "{err}"
    );
    profkit(dir.path())
        .arg("compare")
        .args([&read, &noop])
        .arg("--force")
        .assert()
        .success();
    // An unknown schema version.
    let other = run_folder(dir.path(), "point-read");
    edit_json(&other.join("bench.json"), |b| {
        b["schema_version"] = 99.into()
    });
    let a = profkit(dir.path())
        .arg("compare")
        .args([&read, &other])
        .assert()
        .code(2);
    assert!(
        stderr_of(&a).contains("schema_version 99"),
        "{}",
        stderr_of(&a)
    );
    edit_json(&other.join("bench.json"), |b| {
        b["schema_version"] = 1.into()
    });
    edit_json(&other.join("manifest.json"), |m| {
        m["schema_version"] = 99.into()
    });
    let a = profkit(dir.path())
        .arg("compare")
        .args([&read, &other])
        .assert()
        .code(2);
    assert!(
        stderr_of(&a).contains("schema_version 99"),
        "{}",
        stderr_of(&a)
    );
    edit_json(&other.join("manifest.json"), |m| {
        m["schema_version"] = 1.into()
    });
    // A truncated cpu.folded is refused as flamegraph refuses it.
    std::fs::write(other.join("cpu.folded"), "main;work 7\nmain;tru").unwrap();
    profkit(dir.path())
        .arg("compare")
        .args([&read, &other])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cpu.folded").and(predicate::str::contains("line 2")));
}

#[test]
fn run_length_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--ops", "18446744073709551615"][..],
        &["--duration", "1000000h"],
        &["--warmup", "1000000h"],
        &["--warmup", "18446744073709551615"],
    ] {
        let a = profkit(dir.path())
            .args(["run", "noop"])
            .args(args)
            .timeout(Duration::from_secs(20))
            .assert()
            .code(2);
        let err = stderr_of(&a);
        assert!(
            err.contains("limit") && err.contains(args[0]),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn bad_paths_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // Non-UTF-8 folded text is a folded-file error.
    std::fs::write(dir.path().join("bad.folded"), b"main;\xff\xfe 3\n").unwrap();
    let a = profkit(dir.path())
        .args(["flamegraph", "bad.folded"])
        .assert()
        .code(2);
    let err = stderr_of(&a);
    assert!(err.contains("UTF-8") && !err.contains("pprof"), "{err}");
    // --db naming a folder, or inside a missing folder.
    for db in ["sub", "missing/x.db"] {
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let a = profkit(dir.path())
            .args([
                "run",
                "point-read",
                "--rows",
                "100",
                "--ops",
                "5",
                "--db",
                db,
            ])
            .assert()
            .code(2);
        assert!(
            stderr_of(&a).contains(db.split('/').next().unwrap()),
            "{}",
            stderr_of(&a)
        );
    }
    // --out naming a file.
    std::fs::write(dir.path().join("notes"), "mine").unwrap();
    let a = profkit(dir.path())
        .args(["run", "noop", "--ops", "5", "--out", "notes"])
        .assert()
        .code(2);
    assert!(stderr_of(&a).contains("notes"), "{}", stderr_of(&a));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes")).unwrap(),
        "mine"
    );
}

#[test]
fn a_heap_run_folder_is_checked_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("profiles");
    profkit(dir.path())
        .args([
            "heap",
            "point-read",
            "--rows",
            "200",
            "--ops",
            "40",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let run = folders(&out).pop().unwrap();
    assert!(!run.join("bench.json").exists());
    let budget = dir.path().join("b.toml");
    std::fs::write(
        &budget,
        "[point-read]\npeak_heap = { critical = \"1GiB\" }\nalloc_per_op = { critical = \"1GiB\" }\n",
    )
    .unwrap();
    let a = profkit(dir.path())
        .args(["check", "--budget"])
        .arg(&budget)
        .arg(&run)
        .assert()
        .success();
    let text = stdout_of(&a);
    assert!(text.contains("2 ok"), "{text}");
    profkit(dir.path())
        .arg("report")
        .arg(&run)
        .assert()
        .success()
        .stdout(predicate::str::contains("point-read"));
}

#[test]
fn a_histogram_that_disagrees_with_ops_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a_run = run_folder(dir.path(), "noop");
    let b_run = run_folder(dir.path(), "noop");
    edit_json(&b_run.join("bench.json"), |b| b["ops"] = 1_000_000.into());
    let a = profkit(dir.path())
        .arg("compare")
        .args([&a_run, &b_run])
        .assert()
        .code(2);
    let err = stderr_of(&a);
    let id = b_run.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&id) && err.contains("histogram"), "{err}");
    // A count of 2^63 is refused too, not resampled forever.
    edit_json(&b_run.join("bench.json"), |b| {
        b["ops"] = (1u64 << 63).into();
        b["latency"]["histogram"] = serde_json::json!([[100, 1u64 << 62], [200, 1u64 << 62]]);
    });
    profkit(dir.path())
        .arg("compare")
        .args([&a_run, &b_run])
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
}

#[test]
fn interrupted_runs_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("profiles");
    let child = Command::new(assert_cmd::cargo::cargo_bin("profkit"))
        .current_dir(dir.path())
        .args([
            "run",
            "point-read",
            "--rows",
            "500",
            "--duration",
            "300s",
            "--warmup",
            "0",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The manifest is written first, before measuring.
    wait_for("manifest written", || {
        folders(&out)
            .iter()
            .any(|r| r.join("manifest.json").is_file())
    });
    // Let it measure for a while: an interrupt 1.5 ms in leaves too few
    // operations for a p95, and the budget below then checks nothing (a CI
    // run failed so, correctly).
    std::thread::sleep(Duration::from_millis(1500));
    sigint(child.id());
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(130));
    let run = folders(&out).pop().unwrap();
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(run.join(name)).unwrap()).unwrap()
    };
    let (bench, manifest) = (read("bench.json"), read("manifest.json"));
    assert_eq!(bench["interrupted"], true, "{bench}");
    assert_eq!(manifest["interrupted"], true, "{manifest}");
    assert!(manifest["measured"].as_u64().unwrap() > 0, "{manifest}");
    let budget = dir.path().join("b.toml");
    std::fs::write(&budget, "[default]\np95 = { critical = \"10s\" }\n").unwrap();
    profkit(dir.path())
        .args(["check", "--budget"])
        .arg(&budget)
        .arg(&run)
        .assert()
        .success()
        .stderr(predicate::str::contains("interrupted"));
    let other = run_folder(dir.path(), "point-read");
    profkit(dir.path())
        .arg("compare")
        .args([&other, &run])
        .assert()
        .success()
        .stderr(predicate::str::contains("interrupted"));
}

#[test]
fn ctrl_c_during_populate_leaves_an_incomplete_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    let child = Command::new(assert_cmd::cargo::cargo_bin("profkit"))
        .current_dir(dir.path())
        .args([
            "run",
            "point-read",
            "--rows",
            "2000000",
            "--ops",
            "10",
            "--db",
        ])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("populate started", || {
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT count(*) FROM emails", [], |r| r.get::<_, i64>(0)))
            .is_ok_and(|n| n > 0)
    });
    sigint(child.id());
    let done = child.wait_with_output().unwrap();
    assert_eq!(
        done.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // Like a kill -9: no dataset recorded, so the next run repopulates.
    assert_eq!(meta(&db, "rows"), None);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM emails", [], |r| r.get(0))
        .unwrap();
    assert!(n < 2_000_000, "populate ran to the end: {n} rows");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn heap_totals_that_overflow_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let max = u64::MAX;
    let pp = format!(
        r#"{{"tb":{max},"tbk":1,"tl":0,"mb":1,"mbk":1,"gb":1,"gbk":1,"eb":0,"ebk":0,"fs":[1]}}"#
    );
    let text = format!(
        r#"{{"dhatFileVersion":2,"mode":"rust-heap","verb":"Allocated","bklt":true,"bkacc":false,"tu":"µs","Mtu":"µs","cmd":"x","pid":1,"te":10,"tg":5,"pps":[{pp},{pp}],"ftbl":["[root]","main"]}}"#
    );
    std::fs::write(dir.path().join("heap.json"), text).unwrap();
    let a = profkit(dir.path())
        .args(["flamegraph", "heap.json"])
        .assert()
        .code(2);
    assert!(stderr_of(&a).contains("'tb'"), "{}", stderr_of(&a));
    assert!(!dir.path().join("heap.json.svg").exists());
}

#[test]
fn report_never_writes_over_a_run_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_folder(dir.path(), "point-read");
    let bench = std::fs::read(run.join("bench.json")).unwrap();
    profkit(dir.path())
        .arg("report")
        .arg(&run)
        .arg("-o")
        .arg(run.join("bench.json"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bench.json"));
    assert_eq!(std::fs::read(run.join("bench.json")).unwrap(), bench);
}
