//! The HTML report of the main job's own session at its default size
//! (`profkit profile`, no `--scale`): at most 3 MB, opening on the
//! overview picture, with every workload's CPU flamegraph in it.
//!
//! The session is committed (`tests/data/session-full/`, made by
//! `scripts/fixture-full-session.sh` from a real session of 2026-12-07:
//! 15 workloads, 100,000 rows, ~1,000–2,000 CPU samples each; only the
//! files the report reads, gzipped); the test unpacks it.

mod common;

use std::io::Read as _;
use std::path::Path;

use common::profkit;

/// Copies the fixture to `to`, gunzipping every `*.gz`.
fn unpack_fixture(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            unpack_fixture(&e.path(), &to.join(&name));
        } else if let Some(plain) = name.strip_suffix(".gz") {
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(e.path()).unwrap())
                .read_to_end(&mut text)
                .unwrap();
            std::fs::write(to.join(plain), text).unwrap();
        }
    }
}

#[test]
fn the_main_jobs_html_report_is_at_most_3_mb_and_opens_on_the_picture() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session");
    unpack_fixture(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/session-full"),
        &session,
    );
    let out = dir.path().join("report.html");
    let run = profkit(dir.path())
        .args(["report", "--format", "html", "-o"])
        .arg(&out)
        .arg(&session)
        .output()
        .unwrap();
    common::assert_success(&run);
    let html = std::fs::read_to_string(&out).unwrap();
    // The budget: 3 MB (7.2 MB before the flamegraphs were packed).
    assert!(html.len() <= 3 << 20, "{} bytes", html.len());
    // One CPU flamegraph per workload, inferno's script once.
    let packed: Vec<&str> = html
        .split(" data-svgz=\"")
        .skip(1)
        .map(|p| &p[..p.find('"').unwrap()])
        .collect();
    assert_eq!(html.matches("<iframe class=\"flamegraph\"").count(), 15);
    assert_eq!(packed.len(), 15);
    assert_eq!(html.matches("function zoom_parent").count(), 1);
    // Nothing was dropped to fit: the packed graphs hold every frame of the
    // profiles (each distinct stack prefix, 20,980 here, and each graph's
    // root); merging frames below 0.1 % of the samples would have left
    // about 11,400.
    let frames: usize = packed
        .iter()
        .map(|p| {
            let doc = profkit::render::html::unpack(p).expect("a packed document");
            assert!(doc.contains("<svg") && doc.contains("id=\"frames\""));
            doc.matches("<g><title>").count()
        })
        .sum();
    let mut prefixes = 0;
    for e in std::fs::read_dir(&session).unwrap() {
        let Ok(folded) = std::fs::read_to_string(e.unwrap().path().join("cpu.folded")) else {
            continue;
        };
        let mut seen = std::collections::HashSet::new();
        for line in folded.lines().filter(|l| !l.is_empty()) {
            let stack = &line[..line.rfind(' ').unwrap()];
            for (i, _) in stack.match_indices(';').chain([(stack.len(), "")]) {
                seen.insert(&stack[..i]);
            }
        }
        prefixes += seen.len() + 1;
    }
    assert!(prefixes > 20_000, "{prefixes}");
    assert_eq!(frames, prefixes, "frames drawn vs in the profiles");
    // It opens on the picture: one row per workload, before any table or
    // flamegraph, each with its latency bar and its top finding.
    let fig = html.find("<figure id=\"overview\">").expect("the overview");
    let fig_end = html[fig..].find("</figure>").unwrap() + fig;
    assert!(fig < html.find("<table").unwrap());
    assert!(fig < html.find("<iframe").unwrap());
    let picture = &html[fig..fig_end];
    assert_eq!(picture.matches("<text class=\"wl\"").count(), 15);
    assert!(!picture.contains("no latency breakdown"), "{picture}");
    assert_eq!(picture.matches("<text class=\"finding\"").count(), 15);
    assert!(picture.contains("n-plus-one: 101 statements per operation"));
    assert!(picture.contains("81 % of latency waiting for the write lock"));
}
