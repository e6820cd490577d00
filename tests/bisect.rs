//! `profkit bisect` on a scratch git repository made here: five commits,
//! a sleep planted in the fourth; through the `--build-cmd`/`--run-cmd`
//! seam (a shell script times the sleep), so no crate is built. Bad input
//! (dirty tree, unknown commit, GOOD not an ancestor of BAD): one line,
//! exit 2, nothing left behind.

mod common;

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Five commits; each writes `delay` (seconds the run sleeps); the fourth
/// plants a slow one. Returns the commits in order.
fn scratch_repo(dir: &Path) -> Vec<String> {
    git(dir, &["init", "-q"]);
    std::fs::write(
        dir.join("run.sh"),
        "s=$(date +%s%N); sleep \"$(cat delay)\"; e=$(date +%s%N); echo $((e - s))\n",
    )
    .unwrap();
    let mut commits = Vec::new();
    for (i, delay) in ["0.05", "0.05", "0.05", "0.25", "0.25"].iter().enumerate() {
        std::fs::write(dir.join("delay"), delay).unwrap();
        std::fs::write(dir.join("n"), i.to_string()).unwrap();
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", &format!("commit {}", i + 1)]);
        commits.push(git(dir, &["rev-parse", "HEAD"]));
    }
    commits
}

fn bisect(dir: &Path, good: &str, bad: &str) -> std::process::Output {
    common::profkit(dir)
        // The planted sleep is 5x; on a loaded machine a 50 ms sleep
        // overshoots by several ms from run to run, which the default 5 %
        // threshold can read as a change.
        .args(["bisect", good, bad, "--workload", "sleep", "--runs", "3"])
        .args(["--noise", "50%"])
        .args(["--build-cmd", "true", "--run-cmd", "sh run.sh"])
        .output()
        .unwrap()
}

fn worktrees(dir: &Path) -> usize {
    git(dir, &["worktree", "list"]).lines().count()
}

#[test]
fn bisect_names_the_commit_that_planted_the_sleep() {
    let dir = tempfile::tempdir().unwrap();
    let c = scratch_repo(dir.path());
    let out = bisect(dir.path(), &c[0], &c[4]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("first bad commit: {} commit 4", c[3])),
        "{said}"
    );
    assert_eq!(worktrees(dir.path()), 1, "a worktree was left behind");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let c = scratch_repo(dir.path());
    for (good, bad, want) in [
        ("nope", c[4].as_str(), "not a commit"),
        (c[4].as_str(), c[0].as_str(), "not an ancestor"),
    ] {
        let out = bisect(dir.path(), good, bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{err}");
    }
    std::fs::write(dir.path().join("delay"), "1").unwrap();
    let out = bisect(dir.path(), &c[0], &c[4]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("uncommitted changes"), "{err}");
    assert_eq!(worktrees(dir.path()), 1);
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Ctrl-C in the middle of a probe's build: the build is stopped, the
/// worktree removed, the temporary folder deleted, and profkit exits 130.
#[test]
fn ctrl_c_mid_build_leaves_no_worktree_behind() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let c = scratch_repo(&repo);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let pidfile = dir.path().join("build.pid");
    // The build records its pid (exec keeps it) and takes a minute.
    let build = format!("echo $$ > '{}'; exec sleep 60", pidfile.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_profkit"))
        .current_dir(&repo)
        .env("TMPDIR", &tmp)
        .args(["bisect", &c[0], &c[4], "--workload", "sleep", "--runs", "3"])
        .args(["--build-cmd", &build, "--run-cmd", "sh run.sh"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let build_pid: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        assert!(child.try_wait().unwrap().is_none(), "bisect ended early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // Mid-build: a worktree and a temporary folder exist.
    assert_eq!(worktrees(&repo), 2, "no worktree during the build");
    let temps = || {
        std::fs::read_dir(&tmp)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("profkit-bisect"))
            .count()
    };
    assert_eq!(temps(), 1, "no temporary folder during the build");
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    // It ends well before the build's minute is up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bisect still running 20 s after Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert_eq!(worktrees(&repo), 1, "a worktree was left behind: {err}");
    assert!(
        std::fs::read_dir(repo.join(".git/worktrees"))
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "git still records a worktree"
    );
    assert_eq!(temps(), 0, "a temporary folder was left behind: {err}");
    // The build it started was stopped, not left running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !gone(build_pid) {
        if std::time::Instant::now() > deadline {
            unsafe { libc::kill(build_pid, libc::SIGKILL) };
            panic!("the build (pid {build_pid}) still runs after Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
