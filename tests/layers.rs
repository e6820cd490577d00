//! The layers hold: reads every source file's `crate::` paths and fails
//! when a layer reaches up (see README, "How the code is laid out").
//!
//! db → workload → measure → profile → analyze → render / store → passes → serve → cli,
//! with `units` (the newtypes), `unwind` (stack walking) and `alloc` (the
//! global allocator, over `unwind`) below all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules that use nothing of the crate.
const BOTTOM: &[&str] = &["units", "unwind"];

/// What each top-level module may use of the crate.
fn allowed(layer: &str) -> &'static [&'static str] {
    match layer {
        "units" | "unwind" => &[],
        // The heap sampler and exact tracker take stacks with `unwind`.
        "alloc" => &["unwind"],
        "db" => &["units"],
        "workload" => &["db", "units"],
        "measure" => &["workload", "db", "units"],
        "profile" => &["measure", "workload", "db", "units", "alloc", "unwind"],
        // Data types of lower layers only; the trace tallies are db's.
        "analyze" => &["profile", "measure", "workload", "db", "units"],
        // No db, no store, no passes: renderers get data, return bytes.
        "render" => &["analyze", "profile", "measure", "units"],
        // Reads and writes the run model; never renders or runs.
        "store" => &["analyze", "profile", "measure", "units"],
        "passes" => &[
            "store", "render", "analyze", "profile", "measure", "workload", "db", "units", "alloc",
        ],
        // A user's service, profiled in place: serves and collects, runs
        // nothing (no passes, no store).
        "service" => &[
            "render", "analyze", "profile", "measure", "db", "units", "alloc",
        ],
        // The HTTP server: runs things like a pass, over passes and below.
        "serve" => &[
            "service", "passes", "store", "render", "analyze", "profile", "measure", "workload",
            "db", "units", "alloc",
        ],
        "cli" => &[
            "service", "serve", "passes", "store", "render", "analyze", "profile", "measure",
            "workload", "db", "units", "alloc",
        ],
        _ => &[],
    }
}

/// Calls that write files: render must not make them.
const WRITES: &[&str] = &[
    "fs::write",
    "File::create",
    "OpenOptions",
    "write_atomic",
    "write_json",
    "create_dir",
    "fs::rename",
    "fs::copy",
    "fs::remove",
];

/// The source without comments (doc links name modules without using them).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| match l.find("//") {
            // Not inside a string: good enough for this code base, whose
            // string literals do not hold `//` before code on one line
            // except URLs, which name no crate module.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules a source file uses: `crate::x…` and the first names
/// inside `crate::{x, y::z}`.
fn uses(src: &str) -> BTreeSet<String> {
    let src = strip_comments(src);
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in src.match_indices("crate::") {
        // `profkit::crate::` does not occur; skip identifiers ending in "crate".
        if i > 0 {
            let prev = src[..i].chars().next_back().unwrap();
            if prev.is_ascii_alphanumeric() || prev == '_' {
                continue;
            }
        }
        let rest = &src[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        out.insert(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth >= 1 {
                    item.push(c);
                }
            }
            out.insert(ident(item.trim()));
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

/// What is wrong with one file of `layer`.
fn violations(layer: &str, file: &str, src: &str) -> Vec<String> {
    let ok = allowed(layer);
    let mut v: Vec<String> = uses(src)
        .into_iter()
        .filter(|m| m != layer && !ok.contains(&m.as_str()))
        .map(|m| format!("{file}: layer '{layer}' uses crate::{m}"))
        .collect();
    let code = strip_comments(src);
    if layer == "analyze" && code.contains("std::fs") {
        v.push(format!("{file}: analyze touches std::fs"));
    }
    if layer == "render" {
        for w in WRITES {
            if code.contains(w) {
                v.push(format!("{file}: render writes files ({w})"));
            }
        }
    }
    v
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// (layer, file, source) of every module file under src/.
fn sources() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            let layer = rel.split(['/', '.']).next().unwrap().to_string();
            if layer == "lib" || layer == "main" {
                return None;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            Some((layer, rel, text))
        })
        .collect()
}

#[test]
fn no_layer_reaches_up() {
    let mut all = Vec::new();
    for (layer, file, src) in sources() {
        assert!(
            !allowed(&layer).is_empty() || BOTTOM.contains(&layer.as_str()),
            "{file}: top-level module '{layer}' has no layer rule; add it to tests/layers.rs"
        );
        all.extend(violations(&layer, &file, &src));
    }
    assert!(all.is_empty(), "layer violations:\n{}", all.join("\n"));
}

#[test]
fn top_level_modules_form_no_circle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (layer, _, src) in sources() {
        let deps = graph.entry(layer.clone()).or_default();
        deps.extend(uses(&src).into_iter().filter(|m| *m != layer));
    }
    // Depth-first search for a back edge.
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| *p == n) {
            return Some(format!("{} → {n}", path[i..].join(" → ")));
        }
        if !done.insert(n) {
            return None;
        }
        path.push(n);
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        let circle = visit(n, &graph, &mut Vec::new(), &mut done);
        assert!(circle.is_none(), "import circle: {}", circle.unwrap());
    }
}

/// Where a file opens SQLite connections without going through
/// `sqlite_alloc`, which sets the allocator hook before SQLite initialises.
fn unhooked_opens(file: &str, src: &str) -> Vec<String> {
    let code = strip_comments(src);
    let mut v = Vec::new();
    if file != "db/sqlite_alloc.rs" && code.contains("Connection::open") {
        v.push(format!(
            "{file}: opens a connection directly; use db::sqlite_alloc::open*"
        ));
    }
    if code.contains("SqliteConnectionManager::") && !code.contains("sqlite_alloc::") {
        v.push(format!(
            "{file}: builds a connection pool without db::sqlite_alloc"
        ));
    }
    v
}

#[test]
fn every_connection_goes_through_the_allocator_hook() {
    let all: Vec<String> = sources()
        .iter()
        .flat_map(|(_, file, src)| unhooked_opens(file, src))
        .collect();
    assert!(all.is_empty(), "{}", all.join("\n"));
    // The check itself can fail.
    assert_eq!(
        unhooked_opens("db/x.rs", "let c = rusqlite::Connection::open(p)?;").len(),
        1
    );
    assert_eq!(
        unhooked_opens("db/x.rs", "let m = SqliteConnectionManager::file(p);").len(),
        1
    );
}

#[test]
fn no_file_is_too_long() {
    for (_, file, src) in sources() {
        let lines = src.lines().count();
        assert!(
            lines <= 610,
            "{file} has {lines} lines: split it (see STYLE.md)"
        );
    }
}

#[test]
fn the_check_catches_made_up_violations() {
    // A profiler that renders.
    let v = violations(
        "profile",
        "profile/x.rs",
        "use crate::render::flamegraph;\nuse crate::units::Nanos;",
    );
    assert_eq!(v, vec!["profile/x.rs: layer 'profile' uses crate::render"]);
    // Grouped imports, nested groups, and a path in an expression.
    let v = violations(
        "analyze",
        "analyze/x.rs",
        "use crate::{measure::Stop, store::{self, files}};\nfn f() { crate::passes::run(); }",
    );
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().any(|l| l.contains("crate::store")));
    assert!(v.iter().any(|l| l.contains("crate::passes")));
    // analyze touching the file system; render writing a file.
    assert!(violations("analyze", "a.rs", "let t = std::fs::read(p);")
        .iter()
        .any(|l| l.contains("std::fs")));
    assert!(!violations("render", "r.rs", "std::fs::write(p, b)").is_empty());
    // Comments and doc links are not uses; db may use units only.
    assert!(violations(
        "db",
        "db/x.rs",
        "//! see [`crate::passes`]\nuse crate::units::Nanos;"
    )
    .is_empty());
    assert!(!violations("db", "db/x.rs", "use crate::workload::Workload;").is_empty());
}
