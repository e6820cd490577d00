//! Example binaries for the tests that run them as programs: found beside
//! the `profkit` binary, built once (`cargo build --example NAME`) when a
//! narrow `cargo test --test X` did not build the examples; and an example
//! started as a server on a free loopback port.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// Examples built by this test process, so each is built once.
static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The example binary `name` (built with the test's own profile, and
/// `--features postgres` when the test has it).
pub fn example(name: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_profkit"));
    let path = bin.with_file_name("examples").join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if bin.components().any(|c| c.as_os_str() == "release") {
            cmd.arg("--release");
        }
        // The features this test was built with (`postgres`: the plans route).
        if cfg!(feature = "postgres") {
            cmd.args(["--features", "postgres"]);
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_string());
    }
    assert!(path.is_file(), "{} is not built", path.display());
    path
}

/// An example running as a server, stopped (SIGTERM) when dropped.
pub struct ExampleServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl ExampleServer {
    /// Starts `example args…`, which prints `listening on http://ADDR` on
    /// stdout when it accepts connections.
    pub fn start(name: &str, args: &[&str], dir: &Path) -> ExampleServer {
        let mut child = Command::new(example(name))
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait();
                panic!("{name} {args:?} ended before listening: {status:?}");
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        ExampleServer { child, url }
    }
}

impl Drop for ExampleServer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
