//! `profkit compare --format github` on committed runs (tests/data/github:
//! point-read and aggregate on each side; the current point-read ran with
//! a planted slowdown, `PROFKIT_TEST_SLOWDOWN=1.0`, aggregate is the same
//! code): the planted regression is listed and nothing else; identical
//! sides list nothing and say so; a comment forced over its limit is cut
//! between rows with a note.

mod common;

use std::path::{Path, PathBuf};

use profkit::analyze::compare::{compare, CompareOptions};
use profkit::analyze::rundata::RunSet;
use profkit::render::github;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/github")
}

fn runs(side: &str, only: Option<&str>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data().join(side))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| only.is_none_or(|w| p.to_string_lossy().ends_with(w)))
        .collect();
    v.sort();
    v
}

fn list(v: &[PathBuf]) -> String {
    v.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn comment(dir: &Path, base: &[PathBuf], current: &[PathBuf]) -> String {
    let out = common::profkit(dir)
        .arg("compare")
        .arg(list(base))
        .arg(list(current))
        .args(["--format", "github", "--flamegraphs", "fg"])
        .output()
        .unwrap();
    common::assert_success(&out);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_planted_regression_and_only_it_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let c = comment(dir.path(), &runs("base", None), &runs("current", None));
    let first = c.lines().next().unwrap();
    assert!(
        first.contains("1 significant regression, 0 improvements, 1 unchanged"),
        "{first}"
    );
    let rows: Vec<&str> = c
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| workload"))
        .collect();
    assert!(!rows.is_empty(), "{c}");
    assert!(rows.iter().all(|r| r.starts_with("| point-read | ")), "{c}");
    assert!(
        rows.iter().any(|r| r.starts_with("| point-read | p50 |")),
        "{c}"
    );
    // Collapsed details with relative links to the differential flamegraphs.
    assert!(c.contains("<details>") && c.contains("</details>"));
    assert!(
        c.contains("](fg/") && c.contains("-point-read-diff.svg)"),
        "{c}"
    );
    assert!(dir.path().join("fg").read_dir().unwrap().count() >= 2);
    assert!(c.chars().count() <= github::LIMIT);
}

#[test]
fn identical_sides_list_nothing_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let same_code = comment(
        dir.path(),
        &runs("base", Some("aggregate")),
        &runs("current", Some("aggregate")),
    );
    assert!(
        same_code
            .starts_with("✅ **profkit: 0 significant regressions, 0 improvements, 1 unchanged**"),
        "{same_code}"
    );
    assert!(same_code.contains("No significant change."), "{same_code}");
    assert!(!same_code.contains("| workload |"), "{same_code}");
    let base = runs("base", None);
    let itself = comment(dir.path(), &base, &base);
    assert!(
        itself.contains("both sides are the same run(s)"),
        "{itself}"
    );
    assert!(!itself.contains("| workload |"), "{itself}");
}

#[test]
fn a_comment_over_its_limit_is_cut_between_rows_with_a_note() {
    let load = |side: &str| RunSet {
        label: side.into(),
        runs: runs(side, None)
            .iter()
            .map(|p| profkit::store::load_run(p).unwrap())
            .collect(),
    };
    let (b, c) = (load("base"), load("current"));
    let cmp = compare(&b, &c, &CompareOptions::default());
    let full = github::github_comment(&cmp, &b, &c, github::LIMIT);
    let limit = full.chars().count() / 2;
    let cut = github::github_comment(&cmp, &b, &c, limit);
    assert!(cut.chars().count() <= limit, "{} > {limit}", cut.len());
    assert!(
        cut.contains("Cut to GitHub's 65536-character limit"),
        "{cut}"
    );
    for l in cut.lines().filter(|l| l.starts_with('|')) {
        assert!(l.ends_with('|'), "half a row: {l}");
    }
    assert!(!full.contains("Cut to"), "{full}");
}
