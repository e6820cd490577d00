//! `go tool pprof` reads profkit's pprof files as a reviewer would see
//! them: stored names (no re-symbolising, no demangling that strips
//! `<A as B>`), and heap stacks cut at the allocator. Needs Go (Debian's
//! `golang-go`): skipped locally without it, a failure under `CI`.

mod common;

use std::path::Path;
use std::process::Command as Std;

fn go_available() -> bool {
    let present = Std::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    common::tool_available("go", present, "apt-get install golang-go")
}

/// `go tool pprof -top` of a file, with Go's caches in `dir` (a test must
/// not write to the user's home).
fn pprof_top(dir: &Path, file: &Path, extra: &[&str]) -> String {
    let out = Std::new("go")
        .args(["tool", "pprof", "-top", "-nodecount=20"])
        .args(extra)
        .arg(file)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("PPROF_TMPDIR", dir.join("pprof"))
        .env("HOME", dir)
        .output()
        .expect("go runs");
    assert!(
        out.status.success(),
        "go tool pprof -top {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The function names of `-top`'s rows, in order (the last column; names
/// hold spaces, so everything after the fifth column).
fn top_rows(top: &str) -> Vec<String> {
    top.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 6).then(|| cols[5..].join(" "))
        })
        .collect()
}

#[test]
fn go_pprof_shows_stored_cpu_names() {
    if !go_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::profkit(dir.path())
        .args([
            "cpu",
            "point-read",
            "--rows",
            "500",
            "--ops",
            "20000",
            "--out",
        ])
        .arg(dir.path().join("profiles"))
        .assert()
        .success();
    let run = common::only_run(&dir.path().join("profiles"));
    let top = pprof_top(dir.path(), &run.join("cpu.pb.gz"), &["-cum"]);
    assert!(
        top_rows(&top)
            .iter()
            .any(|r| r.starts_with('<') && r.contains(" as ") && r.ends_with(">::operation")),
        "no full `<… as …>::operation` name in:\n{top}"
    );
}

#[test]
fn go_pprof_heap_top_starts_at_allocation_sites() {
    if !go_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::profkit(dir.path())
        .args([
            "heap",
            "random-emails",
            "--rows",
            "2000",
            "--ops",
            "50",
            "--out",
        ])
        .arg(dir.path().join("profiles"))
        .assert()
        .success();
    let run = common::only_run(&dir.path().join("profiles"));
    let top = pprof_top(
        dir.path(),
        &run.join("heap.pb.gz"),
        &["-sample_index=alloc_space"],
    );
    let rows = top_rows(&top);
    let first = rows.first().unwrap_or_else(|| panic!("no rows in:\n{top}"));
    let allocator = regex_lite_match(first);
    assert!(
        !allocator,
        "first flat row is an allocator frame: {first}\n{top}"
    );
}

/// Whether a name is one of the allocator's own frames (the names
/// `profkit::render::pprof::ALLOCATOR_FRAMES` drops), checked here by
/// plain prefixes so the test does not share the code it checks.
fn regex_lite_match(name: &str) -> bool {
    let name = name.trim_start_matches('<');
    [
        "__rust",
        "__rustc::",
        "alloc::alloc::",
        "alloc::raw_vec::",
        "alloc::boxed::box_new",
        "profkit::alloc::",
        "profkit::db::sqlite_alloc::",
        "sqlite3Malloc",
        "mallocWithAlarm",
        "sqlite3Realloc",
        "sqlite3DbMalloc",
        "sqlite3DbRealloc",
        "dbReallocFinish",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}
