//! Golden files for the writers: folded stacks, a decoded pprof profile,
//! text tables, Markdown and JSON reports. The expected outputs live in
//! `tests/data/golden/`; a change to any writer shows up there as a diff in
//! review. Refresh them with `PROFKIT_BLESS=1 cargo test --test golden`.
//!
//! The input is a committed profile session (`tests/data/golden/input/`,
//! two small runs of n-plus-one and point-read), two sessions of one
//! leaky-cache run each with heap and leak data (`heap-before/`,
//! `heap-after/`, their bulky profiles left out) and a hand-built CPU
//! profile.

use std::path::{Path, PathBuf};

use profkit::analyze::rundata::RunSet;
use profkit::analyze::stacks;
use profkit::profile::cpu::{CpuProfile, Frame, Stack};
use profkit::render::report::{Format, ReportInput};
use profkit::render::{folded, input, pprof, table};
use profkit::units::Nanos;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

/// Compares `actual` with the golden file `name`, or rewrites it when
/// `PROFKIT_BLESS=1`.
fn check(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("PROFKIT_BLESS").is_some_and(|v| v == "1") {
        // CI checks the goldens; it never rewrites them to match.
        assert!(
            std::env::var_os("CI").is_none(),
            "PROFKIT_BLESS=1 is refused when CI is set: bless golden files locally and commit them"
        );
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `PROFKIT_BLESS=1 cargo test --test golden`",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its golden file at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
             (if the change is intended: PROFKIT_BLESS=1 cargo test --test golden)",
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

fn session() -> RunSet {
    let mut set = profkit::store::load_set(&golden_dir().join("input")).unwrap();
    // The label is the path the set was read from: make it independent of
    // where the repository is checked out.
    set.label = "golden-session".into();
    set
}

fn frame(name: &str, inlined: bool) -> Frame {
    Frame {
        function: name.into(),
        file: Some("src/app.rs".into()),
        line: Some(7),
        module: Some("app".into()),
        inlined,
    }
}

/// A small CPU profile with two threads, an inlined frame and a frame
/// name that needs escaping.
fn cpu_profile() -> CpuProfile {
    CpuProfile {
        frequency: 997,
        sampler: Default::default(),
        sampler_note: None,
        samples: 60,
        cpu_time: Nanos(60_000_000),
        wall_time: Nanos(65_000_000),
        started_unix_nanos: 1_795_000_000_000_000_000,
        stacks: vec![
            Stack {
                thread: "pk-worker-0".into(),
                frames: vec![
                    frame("main", false),
                    frame("app::handle", false),
                    frame("app::<parse>", true),
                ],
                samples: 40,
            },
            Stack {
                thread: "pk-worker-1".into(),
                frames: vec![frame("main", false), frame("sqlite3VdbeExec", false)],
                samples: 20,
            },
        ],
    }
}

#[test]
fn folded_writer() {
    let text = folded::to_folded(&cpu_profile());
    check("cpu.folded", &text);
    // What the writer writes, the one parser reads back.
    let back = stacks::parse_folded(&text).unwrap();
    assert_eq!(back, folded::folded_counts(&cpu_profile()));
}

#[test]
fn decoded_pprof() {
    let gz = pprof::to_pprof_gz(&cpu_profile()).unwrap();
    let mut decoded = input::decode(&gz, Path::new("cpu.pb.gz")).unwrap();
    // The mapping names the running binary: not the same path everywhere.
    let exe = std::env::current_exe().unwrap().display().to_string();
    for s in &mut decoded.string_table {
        if *s == exe {
            *s = "<current executable>".into();
        }
    }
    check("pprof.txt", &format!("{decoded:#?}\n"));
}

#[test]
fn text_tables() {
    let set = session();
    let mut out = String::new();
    for run in &set.runs {
        out.push_str(&table::bench_table(&run.bench));
        out.push('\n');
    }
    let benches: Vec<_> = set.runs.iter().map(|r| r.bench.clone()).collect();
    out.push_str(&table::summary_table(&benches));
    out.push('\n');
    let n1 = set.by_workload("n-plus-one").unwrap();
    out.push_str(&table::sql_table(n1.sql.as_ref().unwrap(), 5));
    out.push('\n');
    let findings = profkit::analyze::findings::Findings::new("n-plus-one", n1.findings.clone());
    out.push_str(&table::findings_text(&findings));
    check("tables.txt", &out);
}

#[test]
fn markdown_and_json_reports() {
    let set = session();
    let input = ReportInput::Runs {
        set: &set,
        check: None,
        all_flamegraphs: false,
    };
    check("report.md", &Format::Markdown.exporter().render(&input));
    check("report.json", &Format::Json.exporter().render(&input));
}

#[test]
fn check_output() {
    // What `profkit check` prints, from the real binary, on the golden
    // session: the budget's lines and the summary, with the exit status.
    let out = assert_cmd::Command::cargo_bin("profkit")
        .unwrap()
        .current_dir(golden_dir())
        .args(["check", "--budget", "budget.toml", "input"])
        .output()
        .unwrap();
    let text = format!(
        "exit status {}\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout)
    );
    check("check.txt", &text);
}

#[test]
fn html_report() {
    let set = session();
    let input = ReportInput::Runs {
        set: &set,
        check: None,
        all_flamegraphs: false,
    };
    check(
        "report.html",
        &unpacked(&Format::Html.exporter().render(&input)),
    );
}

/// `html` with each packed flamegraph document (`data-svgz`, gzip and
/// base64) written out in its place, so the golden file shows the graphs
/// and does not depend on the compressor's exact bytes.
fn unpacked(html: &str) -> String {
    let mut out = String::with_capacity(html.len() * 4);
    let mut rest = html;
    while let Some(i) = rest.find(" data-svgz=\"") {
        let start = i + " data-svgz=\"".len();
        let end = start + rest[start..].find('"').unwrap();
        let doc = profkit::render::html::unpack(&rest[start..end]).expect("a packed document");
        out.push_str(&rest[..i]);
        out.push_str(" data-svgz-unpacked=\"");
        out.push_str(&profkit::render::html::escape(&doc));
        out.push('"');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn heap_and_leak_report() {
    // The heap summary, the allocation sites and the leak check of a run
    // that leaks, as the Markdown report shows them.
    let mut set = profkit::store::load_set(&golden_dir().join("heap-after")).unwrap();
    set.label = "golden-heap".into();
    let input = ReportInput::Runs {
        set: &set,
        check: None,
        all_flamegraphs: false,
    };
    let md = Format::Markdown.exporter().render(&input);
    assert!(md.contains("96 B/op"), "no leak section:\n{md}");
    check("heap-report.md", &md);
}

#[test]
fn compare_output() {
    // What `profkit compare` prints for two sessions of the same workload.
    let flamegraphs = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("profkit")
        .unwrap()
        .current_dir(golden_dir())
        .args(["compare", "heap-before", "heap-after", "--flamegraphs"])
        .arg(flamegraphs.path())
        .output()
        .unwrap();
    let text = format!(
        "exit status {}\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout)
    );
    check("compare.txt", &text);
}
