//! The `service` feature: off (`default-features = false`), profkit's
//! dependency tree holds none of the server and tracing crates, and the
//! harness-only fixture crate that .ci/run builds and profiles is the
//! README's snippet as it is.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn tree(extra: &[&str]) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-e", "normal", "--prefix", "none", "--offline"])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn without_default_features_no_server_tracing_pprof_rs_export_or_progress_crate_is_built() {
    let full = tree(&[]);
    let light = tree(&["--no-default-features"]);
    let service = [
        "axum",
        "tokio",
        "hyper",
        "tower",
        "tracing",
        "tracing-subscriber",
        "metrics",
        "metrics-exporter-prometheus",
        // The other default features: pprof-rs (process-timer sampler),
        // firefox (export), progress (bars); color is clap's own.
        "pprof",
        "fxprof-processed-profile",
        "indicatif",
    ];
    for c in service {
        assert!(
            full.contains(c),
            "{c} is missing from the default tree: {full:?}"
        );
        assert!(!light.contains(c), "{c} is in the harness-only tree");
    }
    // Everything a harness needs is still there.
    for c in [
        "clap",
        "rusqlite",
        "framehop",
        "inferno",
        "dhat",
        "comfy-table",
    ] {
        assert!(
            light.contains(c),
            "{c} is missing from the harness-only tree"
        );
    }
    eprintln!(
        "crates: {} with the service feature, {} without",
        full.len(),
        light.len()
    );
    // Issue 22's target: 40 % fewer than the 235 lines of
    // `cargo tree -e normal --prefix none | sort -u` before the features
    // (131 lines here on 2026-12-07, 240 with the default features).
    assert!(
        light.len() * 10 <= full.len() * 6,
        "{} vs {}",
        light.len(),
        full.len()
    );
}

#[test]
fn the_fixture_is_the_readme_snippet() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("## Profile your own code").unwrap()..];
    let start = section.find("```rust,no_run\n").unwrap() + "```rust,no_run\n".len();
    let snippet = &section[start..start + section[start..].find("```").unwrap()];
    let fixture =
        std::fs::read_to_string(root.join("tests/fixtures/harness-only/src/main.rs")).unwrap();
    assert!(
        fixture.ends_with(snippet),
        "tests/fixtures/harness-only/src/main.rs differs from the README's snippet"
    );
    let manifest =
        std::fs::read_to_string(root.join("tests/fixtures/harness-only/Cargo.toml")).unwrap();
    assert!(manifest.contains("default-features = false"));
}
