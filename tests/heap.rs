//! Heap profiling and leak checks through the real binary, on small data.

mod common;

use common::{json as read, only_run, profkit, RUNTIME_FRAMES};
use serde_json::Value;

fn leaks(workload: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    profkit(dir.path())
        .args(["leaks", workload, "--rows", "2000", "--ops", "1000"])
        .assert()
        .success();
    read(&only_run(&dir.path().join("profiles")).join("leaks.json"))
}

#[test]
fn leaky_cache_leaks_96_bytes_per_op_at_its_preview() {
    let r = leaks("leaky-cache");
    let verdict = r["verdict"].as_str().unwrap();
    assert!(verdict.starts_with("leak: "), "{verdict}");
    let top = &r["leaks"][0];
    let slope = top["slope_bytes_per_op"].as_f64().unwrap();
    assert!(
        (slope - 96.0).abs() <= 9.6,
        "slope {slope} B/op, not within 10 % of 96"
    );
    assert!(top["site"].as_str().unwrap().contains("preview"), "{top}");
    let stack = top["stack"].to_string();
    assert!(stack.contains("cache.rs"), "{stack}");
    // Everything that grows: the previews and the map that holds them.
    let all = r["leaked_bytes_per_op"].as_f64().unwrap();
    assert!(all >= 96.0 * 0.9, "{all}");
}

#[test]
fn bounded_cache_is_clean() {
    let r = leaks("bounded-cache");
    assert_eq!(r["verdict"], "no growth found", "{r:#}");
    assert_eq!(r["leaks"].as_array().unwrap().len(), 0);
}

#[test]
fn heap_profile_writes_dhat_file_summary_and_flamegraphs() {
    let dir = tempfile::tempdir().unwrap();
    let out = profkit(dir.path())
        .args(["heap", "random-emails", "--rows", "2000", "--ops", "50"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("peak live"), "{stdout}");
    let run = only_run(&dir.path().join("profiles"));
    let heap = read(&run.join("heap.json"));
    assert_eq!(heap["dhatFileVersion"], 2);
    assert_eq!(heap["mode"], "rust-heap");
    for key in ["verb", "bklt", "tu", "Mtu", "te", "cmd", "pid"] {
        assert!(!heap[key].is_null(), "heap.json lacks {key}");
    }
    let ftbl = heap["ftbl"].as_array().unwrap();
    assert_eq!(ftbl[0], "[root]");
    let pps = heap["pps"].as_array().unwrap();
    assert!(!pps.is_empty());
    let sum = |k: &str| pps.iter().map(|p| p[k].as_u64().unwrap()).sum::<u64>();
    for pp in pps {
        for f in pp["fs"].as_array().unwrap() {
            assert!((f.as_u64().unwrap() as usize) < ftbl.len());
        }
    }
    let alloc = read(&run.join("alloc.json"));
    assert_eq!(alloc["total_bytes"].as_u64().unwrap(), sum("tb"));
    assert_eq!(alloc["total_blocks"].as_u64().unwrap(), sum("tbk"));
    assert_eq!(alloc["end_bytes"].as_u64().unwrap(), sum("eb"));
    assert_eq!(alloc["peak_bytes"].as_u64().unwrap(), sum("gb"));
    // SQLite's memory is visible through the allocator hook.
    assert!(alloc["sqlite_bytes"].as_u64().unwrap() > 0, "{alloc:#}");
    assert!(ftbl.iter().any(|f| f.as_str().unwrap().contains("sqlite3")));
    // Folded stacks add up to the same total.
    let folded = std::fs::read_to_string(run.join("heap.folded")).unwrap();
    let folded_total: u64 = folded
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(folded_total, sum("tb"));
    // Runtime plumbing between the thread and the workload is folded.
    for frame in RUNTIME_FRAMES {
        assert!(!folded.contains(frame), "{frame} in heap.folded");
    }
    assert!(run.join("heap-blocks.folded").exists());
    let id = run.file_name().unwrap().to_string_lossy().to_string();
    for suffix in ["heap", "heap-live"] {
        let svg = dir.path().join(format!("flamegraphs/{id}-{suffix}.svg"));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg"), "{}", svg.display());
    }
    let manifest = read(&run.join("manifest.json"));
    assert_eq!(manifest["passes"][0], "heap");
}

#[test]
fn corrupt_heap_json_is_a_one_line_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("heap.json");
    for text in [
        "{ not json",
        r#"{"dhatFileVersion":2,"mode":"rust-heap","te":1,"pps":[{"tb":1,"tbk":1,"fs":[5]}],"ftbl":["[root]"]}"#,
        r#"{"dhatFileVersion":9,"mode":"rust-heap","te":1,"pps":[],"ftbl":["[root]"]}"#,
    ] {
        std::fs::write(&p, text).unwrap();
        let err = profkit::profile::dhat::DhatFile::read(&p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("heap.json"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
    let missing = profkit::profile::dhat::DhatFile::read(&dir.path().join("nope.json"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.json"), "{missing}");
}

#[test]
fn unknown_workload_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    profkit(dir.path()).args(["heap", "nope"]).assert().code(2);
    profkit(dir.path()).args(["leaks", "nope"]).assert().code(2);
}
