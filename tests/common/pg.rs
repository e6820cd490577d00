//! A throwaway PostgreSQL cluster from `scripts/postgres.sh`, stopped and
//! removed when dropped.

use std::path::Path;
use std::process::Command;

/// A running cluster.
pub struct Cluster {
    /// `postgres://profkit@127.0.0.1:PORT/profkit`.
    pub url: String,
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh")
}

/// Whether PostgreSQL's server programs are installed (Debian keeps them in
/// /usr/lib/postgresql/N/bin).
pub fn installed() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").exists()))
        .unwrap_or(false)
}

/// Starts a cluster, or `None` (the test skips) when PostgreSQL is missing
/// outside CI; under CI a missing PostgreSQL fails the test.
pub fn start() -> Option<Cluster> {
    if !super::tool_available("PostgreSQL", installed(), "apt-get install postgresql") {
        return None;
    }
    let out = Command::new("bash")
        .arg(script())
        .arg("start")
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/postgres.sh start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let url = stdout
        .lines()
        .last()
        .expect("a URL line")
        .trim()
        .to_string();
    assert!(
        url.starts_with("postgres://"),
        "last line is not a URL: {stdout}"
    );
    Some(Cluster { url })
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.url])
            .output();
    }
}
