//! Budgets, baselines, comparisons and reports through the real binary on
//! small data.

mod common;

use std::path::{Path, PathBuf};

// The tests of this file run one at a time (`serial`): the same-code
// comparison measures two runs and must not see one of them slowed down by
// another test's workload on the two cores.
use common::{profkit, serial};
use serde_json::Value;

const EVIL: &str = "<script>alert(1)</script>";
const EVIL2: &str = "\"><img src=x onerror=alert(1)>";

/// A run folder from `profkit sql` (bench, sql.json, sql.folded, findings).
fn sql_run(dir: &Path, workload: &str, ops: &str) -> PathBuf {
    common::sql_run(dir, &[workload, "--rows", "2000", "--ops", ops])
}

fn compare_json(dir: &Path, base: &Path, cur: &Path) -> Value {
    compare_json_with(dir, base, cur, &[])
}

fn compare_json_with(dir: &Path, base: &Path, cur: &Path, extra: &[&str]) -> Value {
    let out = profkit(dir)
        .arg("compare")
        .arg(base)
        .arg(cur)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    common::assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn verdict<'a>(w: &'a Value, metric: &str) -> (&'a str, f64) {
    let m = w["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == metric)
        .unwrap_or_else(|| panic!("no {metric}"));
    (
        m["verdict"].as_str().unwrap(),
        m["change"].as_f64().unwrap_or(f64::NAN),
    )
}

/// A copy of run folder `from` at `to`, its latencies and CPU time scaled
/// by `factor` and its throughput by 1 ÷ `factor`: the same run, measured
/// as a slightly slower (or faster) machine would.
fn scaled_copy(from: &Path, to: &Path, factor: f64) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    let path = to.join("bench.json");
    let mut b: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let scale = |v: &mut Value| *v = Value::from((v.as_f64().unwrap() * factor).round() as u64);
    for k in [
        "mean", "stdev", "min", "p50", "p90", "p95", "p99", "p999", "max",
    ] {
        scale(&mut b["latency"][k]);
    }
    for bucket in b["latency"]["histogram"].as_array_mut().unwrap() {
        scale(&mut bucket[0]);
    }
    scale(&mut b["cpu"]["user"]);
    scale(&mut b["cpu"]["system"]);
    b["throughput"] = Value::from(b["throughput"].as_f64().unwrap() / factor);
    std::fs::write(&path, serde_json::to_vec_pretty(&b).unwrap()).unwrap();
    // The manifest names the run; the copy is a run of its own.
    let manifest = to.join("manifest.json");
    if manifest.is_file() {
        let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        m["run_id"] = Value::from(to.file_name().unwrap().to_string_lossy().into_owned());
        std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }
    to.to_path_buf()
}

/// The measured metrics of a comparison whose verdict is not "no-change".
fn changed(w: &Value) -> (usize, Vec<String>) {
    let measured: Vec<&Value> = w["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["verdict"] != "not-measured")
        .collect();
    let changed = measured
        .iter()
        .filter(|m| m["verdict"] != "no-change")
        .map(|m| m["metric"].as_str().unwrap().to_string())
        .collect();
    (measured.len(), changed)
}

#[test]
fn a_copy_of_a_run_and_a_change_within_the_noise_threshold_are_no_change() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Two real runs of the same code on this shared 2-core VM differ by up
    // to ±30 % in p50 (measured), so "the same code" is one real run and
    // copies of it: identical, and 3 % slower everywhere, which a 10 %
    // noise threshold must call no change.
    let a = sql_run(dir.path(), "point-read", "20000");
    let noise = ["--noise", "10%"];
    let same = scaled_copy(&a, &dir.path().join("copy"), 1.0);
    let c = compare_json_with(dir.path(), &a, &same, &noise);
    let (measured, diff) = changed(&c["workloads"][0]);
    assert!(measured >= 7, "{}", c["workloads"][0]);
    assert!(diff.is_empty(), "identical runs changed: {diff:?}");
    let slower = scaled_copy(&a, &dir.path().join("slower"), 1.03);
    let c = compare_json_with(dir.path(), &a, &slower, &noise);
    let w = &c["workloads"][0];
    let (_, diff) = changed(w);
    assert!(diff.is_empty(), "a 3 % change within 10 % noise: {diff:?}");
    let (_, p50) = verdict(w, "p50");
    assert!((p50 - 0.03).abs() < 0.01, "p50 change {p50}");
    assert_eq!(verdict(w, "sql_per_op").0, "no-change");
    // Deterministic: the same comparison gives the same intervals.
    assert_eq!(compare_json_with(dir.path(), &a, &slower, &noise), c);
    // And past the threshold it is a change, with the right sign.
    let much = scaled_copy(&a, &dir.path().join("much"), 1.5);
    let c = compare_json_with(dir.path(), &a, &much, &noise);
    assert_eq!(verdict(&c["workloads"][0], "p50").0, "regressed");
    // With one run a side, throughput is judged against the machine's
    // run-to-run noise model, whose spread for throughput is wide (sd of
    // ln 0.45 here): a 1.5x change may lie within it, but never reads as
    // an improvement.
    let (throughput, change) = verdict(&c["workloads"][0], "throughput");
    assert!(change < -0.3, "throughput change {change}");
    assert_ne!(throughput, "improved");
}

#[test]
fn the_slow_twin_is_a_regression_with_the_right_sign() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let fast = sql_run(dir.path(), "n-plus-one-batched", "200");
    let slow = sql_run(dir.path(), "n-plus-one", "200");
    // CPU and heap profiles: a frame that grows tenfold, hostile names (one
    // of them the grown frame's caller, so that its change is significant
    // and listed).
    for (run, grown) in [(&fast, 10u64), (&slow, 100)] {
        let cpu = format!(
            "main;query;sqlite3_step 100\nmain;query;{EVIL} 5\nmain;{EVIL2} 5\nmain;query;{EVIL};grown_frame {grown}\n"
        );
        std::fs::write(run.join("cpu.folded"), cpu).unwrap();
        let heap = format!("main;alloc_rows {}\nmain;keep 1000\n", grown * 64);
        std::fs::write(run.join("heap.folded"), heap).unwrap();
    }
    let c = compare_json(dir.path(), &fast, &slow);
    let w = &c["workloads"][0];
    assert_eq!(w["workload"], "n-plus-one");
    assert_eq!(w["base_workload"], "n-plus-one-batched");
    // One run a side: judged against the machine's noise model, so only
    // the large changes are verdicts (the mean's +30 % is within it).
    let (v, change) = verdict(w, "p50");
    assert_eq!(v, "regressed", "{w}");
    assert!(change > 0.05, "slower means a positive change: {change}");
    let (_, change) = verdict(w, "throughput");
    assert!(change < 0.0, "throughput fell: {change}");
    let (v, change) = verdict(w, "sql_per_op");
    assert_eq!(v, "regressed");
    assert!(change > 10.0, "1+100 statements vs 2: {change}");
    // The two statements that changed are listed first: the per-row
    // lookup that appeared (100 per operation) and the IN query that went
    // (which of them moved more time depends on the machine's load).
    let rows = w["sql_statements"].as_array().unwrap();
    let per_row = rows[..2]
        .iter()
        .find(|s| s["current_per_op"].as_f64().unwrap() > 50.0)
        .unwrap_or_else(|| panic!("per-row statement in the first two: {rows:?}"));
    assert_eq!(per_row["base_per_op"].as_f64(), Some(0.0), "{per_row}");
    assert!(
        rows[..2]
            .iter()
            .any(|s| s["current_per_op"].as_f64() == Some(0.0)),
        "the IN query that went, in the first two: {rows:?}"
    );
    // One row for the grown chain, named by the frame where it starts
    // (the grown frame's caller, whose share grew with it).
    assert_eq!(w["cpu_frames"][0]["frame"], EVIL, "{w}");
    assert_eq!(w["cpu_frames"][0]["chain"][0], "grown_frame", "{w}");
    assert_eq!(w["heap_sites"][0]["site"], "alloc_rows");
    // The reverse comparison is an improvement.
    let r = compare_json(dir.path(), &slow, &fast);
    assert_eq!(verdict(&r["workloads"][0], "p50").0, "improved");

    // Differential flamegraphs: written, grown frame red.
    let svgs: Vec<String> = w["flamegraphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert_eq!(svgs.len(), 2);
    assert!(svgs[0].ends_with("-diff.svg") && svgs[1].ends_with("-diff-neg.svg"));
    let svg = std::fs::read_to_string(dir.path().join(&svgs[0])).unwrap();
    let at = svg.find("<title>grown_frame (").expect("grown frame drawn");
    let fill = &svg[at..][svg[at..].find("fill=\"rgb(").unwrap() + 10..];
    let rgb: Vec<u32> = fill[..fill.find(')').unwrap()]
        .split(',')
        .map(|x| x.trim().parse().unwrap())
        .collect();
    assert!(
        rgb[0] == 255 && rgb[1] < 200 && rgb[2] < 200,
        "grown frame is red: {rgb:?}"
    );
    assert!(
        !svg.contains(EVIL) && !svg.contains("<img"),
        "SVG escapes names"
    );

    // Markdown: a PR comment, names as text.
    let md = profkit(dir.path())
        .arg("report")
        .arg(format!("{}..{}", fast.display(), slow.display()))
        .args(["--format", "md"])
        .output()
        .unwrap();
    assert!(md.status.success());
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(
        md.contains("| n-plus-one-batched → n-plus-one | ❌ regressed: ") && md.contains("p50 +"),
        "{md}"
    );
    assert!(md.contains("<details>"));
    assert!(!md.contains("<script") && !md.contains("<img"), "{md}");
    assert!(
        md.contains("&lt;script&gt;alert\\(1\\)&lt;/script&gt;"),
        "{md}"
    );
    // JSON report.
    let js = profkit(dir.path())
        .arg("report")
        .arg(format!("{}..{}", fast.display(), slow.display()))
        .args(["--format", "json"])
        .output()
        .unwrap();
    let js: Value = serde_json::from_slice(&js.stdout).unwrap();
    assert_eq!(js["kind"], "compare");
}

fn check(dir: &Path, run: &Path, budget: &str, extra: &[&str]) -> (i32, String) {
    let file = dir.join("budget.toml");
    std::fs::write(&file, budget).unwrap();
    let out = profkit(dir)
        .arg("check")
        .arg("--budget")
        .arg(&file)
        .args(extra)
        .arg(run)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn budget_exit_codes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = sql_run(d, "point-read", "500");
    let pass = "[default]\np95 = { target = \"1s\", critical = \"2s\" }\nerror_rate = { critical = \"1%\" }\npeak_heap = { target = \"1GiB\" }\n";
    let (code, out) = check(d, &run, pass, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("point-read p95: "), "{out}");
    assert!(
        out.contains("peak_heap: - vs allowed ≤ 1.00 GiB / - not measured"),
        "{out}"
    );
    let warn = "[point-read]\np95 = { target = \"1ns\", critical = \"1s\" }\n";
    let (code, out) = check(d, &run, warn, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("WARN"), "{out}");
    let (code, _) = check(d, &run, warn, &["--strict"]);
    assert_eq!(code, 1);
    let fail = "[default]\nthroughput = { target = \"1000000k\", critical = \"500000k\" }\n";
    let (code, out) = check(d, &run, fail, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL (critical)") && out.contains("budget check failed"),
        "{out}"
    );
    let (code, out) = check(d, &run, "[default]\nlatency = { target = 1 }\n", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown metric 'latency'"), "{out}");
    let (code, _) = check(d, &run, "[default\n", &[]);
    assert_eq!(code, 2);
    let (code, out) = check(d, &d.join("nowhere"), pass, &[]);
    assert_eq!(code, 2, "{out}");
    let out = profkit(d)
        .args(["check", "--budget", "missing.toml"])
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn baselines_and_profile_against_a_baseline() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let profile = |extra: &[&str]| {
        let out = profkit(d)
            .args([
                "profile",
                "--workloads",
                "point-read,n-plus-one",
                "--rows",
                "2000",
                "--ops",
                "200",
            ])
            .args(extra)
            .output()
            .unwrap();
        common::assert_success(&out);
        String::from_utf8(out.stdout).unwrap()
    };
    profile(&[]);
    profkit(d)
        .args(["baseline", "save", "main"])
        .assert()
        .success();
    let list = profkit(d).args(["baseline", "list"]).output().unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.starts_with("main ") && list.contains("2 workload(s)"),
        "{list}"
    );
    profkit(d)
        .args(["baseline", "save", "../evil"])
        .assert()
        .code(2);
    profkit(d)
        .args([
            "profile",
            "--baseline",
            "nosuch",
            "--workloads",
            "point-read",
        ])
        .assert()
        .code(2);
    // Every JSON file carries a schema_version, but heap.json (DHAT's own
    // format, which dh_view.html reads).
    let mut unversioned = Vec::new();
    let mut seen = 0;
    let mut stack = vec![d.join("profiles")];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|x| x == "json") && !p.ends_with("heap.json") {
            seen += 1;
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            if v.get("schema_version").and_then(Value::as_u64).is_none() {
                unversioned.push(p);
            }
        }
    }
    assert!(seen >= 10, "{seen} JSON files");
    assert!(unversioned.is_empty(), "no schema_version: {unversioned:?}");
    // The baseline is a copy: remove its source runs (everything in
    // profiles/ but the baselines) and compare against it.
    let profiles = d.join("profiles");
    let mut removed = 0;
    for e in std::fs::read_dir(&profiles).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "baselines" {
            std::fs::remove_dir_all(&p).unwrap();
            removed += 1;
        }
    }
    assert!(removed >= 3, "two runs and a session index: {removed}");
    let out = profile(&["--baseline", "main"]);
    assert!(out.contains("main → "), "{out}");
    assert!(out.contains("reports: "), "{out}");
    let session = out
        .lines()
        .find_map(|l| l.strip_prefix("comparison: "))
        .map(|p| d.join(p).parent().unwrap().to_path_buf())
        .expect("comparison path printed");
    for f in ["compare.json", "report.md", "report.html"] {
        assert!(session.join(f).is_file(), "{f} missing");
    }
    let json: Value =
        serde_json::from_slice(&std::fs::read(session.join("compare.json")).unwrap()).unwrap();
    let workloads = json["workloads"].as_array().unwrap();
    assert_eq!(workloads.len(), 2, "{json:#}");
    for w in workloads {
        let (_, change) = verdict(w, "throughput");
        assert!(change.is_finite(), "compared against the baseline: {w:#}");
    }
    // Reports of a session and of a baseline by name.
    profkit(d)
        .arg("report")
        .arg(&session)
        .args(["--format", "md"])
        .assert()
        .success();
    profkit(d)
        .args(["report", "main", "--format", "json"])
        .assert()
        .success();
    profkit(d).args(["report", "nosuch..main"]).assert().code(2);
}

#[test]
fn check_can_run_the_workloads_first() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // profkit.toml's statement budget for the slow twin, without its
    // latency lines: a loaded shared machine can miss any latency target.
    let budget = dir.path().join("budget.toml");
    std::fs::write(
        &budget,
        "[n-plus-one]\nsql_per_op = { target = 2, critical = 2.5 }\nerror_rate = { critical = \"1%\" }\n",
    )
    .unwrap();
    let out = profkit(dir.path())
        .args([
            "check",
            "--profile",
            "--workloads",
            "n-plus-one",
            "--scale",
            "0.02",
            "--budget",
        ])
        .arg(&budget)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The slow twin breaks its batched twin's statement budget: exit 1.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::collections::BTreeSet::from([("n-plus-one", "sql_per_op")].map(pair));
    assert_eq!(failing(&stdout), want, "{stdout}");
    assert!(dir.path().join("profiles").read_dir().unwrap().count() >= 2);
}

#[test]
fn budget_init_writes_a_budget_that_passes_its_own_session_and_keeps_user_files() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = sql_run(d, "point-read", "500");
    let file = d.join("calibrated.toml");
    let init = |extra: &[&str]| {
        profkit(d)
            .args(["budget", "init"])
            .arg(&run)
            .arg("-o")
            .arg(&file)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = init(&["--headroom", "2"]);
    common::assert_success(&out);
    // One session: it says that timings may warn on unchanged code.
    assert!(String::from_utf8_lossy(&out.stderr).contains("from one session"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("[point-read]")
            && text.contains("sql_per_op = { target = 1.05, critical = 1.55 }"),
        "{text}"
    );
    // `check --strict` of `run` against `budget` passes.
    let meets = |budget: &Path, run: &Path| {
        let out = profkit(d)
            .args(["check", "--strict", "--budget"])
            .arg(budget)
            .arg(run)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    // The run it was calibrated on meets every target.
    meets(&file, &run);
    // Several sessions: targets from the worst of each, so every one of them
    // meets them, and the header says how far apart they were.
    let second = sql_run(d, "point-read", "500");
    let several = d.join("several.toml");
    let out = profkit(d)
        .args(["budget", "init", "-o"])
        .arg(&several)
        .arg(&run)
        .arg(&second)
        .output()
        .unwrap();
    common::assert_success(&out);
    let text = std::fs::read_to_string(&several).unwrap();
    assert!(text.contains("The sessions differed by up to"), "{text}");
    meets(&several, &run);
    meets(&several, &second);
    // An existing file is not overwritten without --force.
    std::fs::write(&file, "# mine\n").unwrap();
    let out = init(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exists; pass --force"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");
    assert!(init(&["--force"]).status.success());
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("[point-read]"));
    assert_eq!(
        init(&["--force", "--headroom", "0.5"]).status.code(),
        Some(2)
    );
}

fn pair((w, m): (&str, &str)) -> (String, String) {
    (w.to_string(), m.to_string())
}

/// The (workload, metric) pairs `profkit check` printed as FAIL.
fn failing(stdout: &str) -> std::collections::BTreeSet<(String, String)> {
    stdout
        .lines()
        .filter(|l| l.ends_with("FAIL (critical)"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let w = words.next()?;
            let m = words.next()?.trim_end_matches(':');
            Some(pair((w, m)))
        })
        .collect()
}

#[test]
fn the_committed_budget_fails_exactly_on_the_slow_twins_and_the_report_stays_small() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let budget = Path::new(env!("CARGO_MANIFEST_DIR")).join("profkit.toml");
    let profile = |workloads: &str, scale: &str| {
        let out = profkit(d)
            .args(["profile", "--rows", "20000", "--workloads", workloads])
            .args(["--scale", scale])
            .output()
            .unwrap();
        common::assert_success(&out);
    };
    // Every built-in at a small scale; leaky-cache longer, so that its leak
    // check has operations enough to see 96 B per operation.
    profile(
        "populate,point-read,random-emails,random-emails-naive,search-indexed,search-like,\
         fts-search,aggregate,concurrent-write,mixed,n-plus-one,n-plus-one-batched,\
         bounded-cache,tenant-isolation",
        "0.02",
    );
    profile("leaky-cache", "0.4");
    let mut sessions: Vec<_> = std::fs::read_dir(d.join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-profile"))
        .collect();
    sessions.sort();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let out = profkit(d)
        .arg("check")
        .arg("--budget")
        .arg(&budget)
        .args(&sessions)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let want = std::collections::BTreeSet::from(
        [
            ("leaky-cache", "leak_slope"),
            ("n-plus-one", "sql_per_op"),
            ("random-emails-naive", "full_scans"),
            ("search-like", "full_scans"),
        ]
        .map(pair),
    );
    assert_eq!(failing(&stdout), want, "{stdout}");
    // No false alarms: only the slow twins warn or fail. Timings count only
    // beyond the machine's run-to-run noise (and not at all in a debug
    // build); deterministic figures exactly.
    let alarmed: std::collections::BTreeSet<&str> = stdout
        .lines()
        .filter(|l| l.contains("WARN (target missed)") || l.ends_with("FAIL (critical)"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let twins = [
        "leaky-cache",
        "n-plus-one",
        "random-emails-naive",
        "search-like",
    ];
    assert!(
        alarmed.iter().all(|w| twins.contains(w)),
        "alarms beyond the slow twins: {alarmed:?}\n{stdout}"
    );

    // The shareable report of the 14-workload session: one flamegraph per
    // workload, inferno's script once, at most 3 MB.
    let html = d.join("report.html");
    let out = profkit(d)
        .args(["report", "--format", "html", "-o"])
        .arg(&html)
        .arg(&sessions[0])
        .output()
        .unwrap();
    common::assert_success(&out);
    let text = std::fs::read_to_string(&html).unwrap();
    assert_eq!(text.matches("<iframe class=\"flamegraph\"").count(), 14);
    assert_eq!(text.matches("function zoom_parent").count(), 1);
    assert!(text.len() <= 3 << 20, "{} bytes", text.len());
}
