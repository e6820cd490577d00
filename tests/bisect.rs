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
        .args(["bisect", good, bad, "--workload", "sleep", "--runs", "3"])
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
