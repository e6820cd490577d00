//! `profkit bisect GOOD BAD --workload NAME`: the first commit whose
//! workload measures significantly worse than GOOD's, by the comparison of
//! [`crate::analyze::replicates`] (several runs per probed commit, pooled
//! with the machine's noise model).
//!
//! Each probed commit is checked out in a temporary `git worktree`, built
//! (`cargo build --release --bin profkit`, one shared target dir) and run
//! `runs` times; the worktree is removed after each probe, on errors too.
//! Ctrl-C stops the probe's build or run (each runs in a process group of
//! its own, so the whole group is stopped, cargo's rustc children too),
//! removes its worktree and returns [`BisectError::Interrupted`]; the
//! caller's temporary folder goes with it.
//! A commit that fails to build is skipped and named, as `git bisect skip`
//! does. `build_cmd`/`run_cmd` replace the build and the run with shell
//! commands run in the worktree (the run command prints the metric's
//! value, a number, on its last line): a seam for projects that are not
//! profkit itself, and for tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::analyze::budget::Metric;
use crate::analyze::replicates::{change_interval, NoiseModel, Scale};

/// What to bisect.
#[derive(Clone, Debug)]
pub struct BisectOptions {
    /// The repository.
    pub repo: PathBuf,
    /// A commit that measures well.
    pub good: String,
    /// A later commit that measures worse.
    pub bad: String,
    /// Workload to run.
    pub workload: String,
    /// Metric to judge.
    pub metric: Metric,
    /// Runs per probed commit.
    pub runs: usize,
    /// Smallest relative change that counts.
    pub noise: f64,
    /// Shell command that builds a worktree (default: cargo build).
    pub build_cmd: Option<String>,
    /// Shell command that runs the workload once and prints the metric.
    pub run_cmd: Option<String>,
}

/// Input bisect refuses: exit 2, nothing left behind.
#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    /// Uncommitted changes.
    #[error("'{}' has uncommitted changes: commit or stash them first (bisect checks out other commits)", .0.display())]
    Dirty(PathBuf),
    /// Not a commit.
    #[error("'{0}' is not a commit of this repository")]
    UnknownCommit(String),
    /// GOOD is not an ancestor of BAD.
    #[error("'{good}' is not an ancestor of '{bad}': bisect needs GOOD before BAD on one line of history")]
    NotAncestor {
        /// GOOD.
        good: String,
        /// BAD.
        bad: String,
    },
    /// Ctrl-C: the probe was stopped and its worktree removed.
    #[error("interrupted (Ctrl-C): the probe was stopped and its worktree removed")]
    Interrupted,
    /// Not a git repository, or git missing.
    #[error("'{}' is not a git repository (or git is missing)", .0.display())]
    NotARepo(PathBuf),
}

/// What a probe found.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// Measured: the metric's values, one per run.
    Measured(Vec<f64>),
    /// The build (or a run) failed: skipped.
    Skipped(String),
}

/// The outcome.
#[derive(Clone, Debug)]
pub struct BisectOutcome {
    /// The first commit significantly worse than GOOD (None: BAD is not).
    pub first_bad: Option<String>,
    /// Its subject line.
    pub subject: String,
    /// Its change against GOOD: (point, lo, hi), relative.
    pub change: Option<(f64, f64, f64)>,
    /// Commits skipped (failed to build or run), with why.
    pub skipped: Vec<(String, String)>,
    /// Commits probed, in order.
    pub probed: Vec<String>,
}

fn git(repo: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A temporary worktree, removed when dropped.
struct Worktree<'a> {
    repo: &'a Path,
    path: PathBuf,
}

impl Drop for Worktree<'_> {
    fn drop(&mut self) {
        let p = self.path.display().to_string();
        let _ = git(self.repo, &["worktree", "remove", "--force", &p]);
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = git(self.repo, &["worktree", "prune"]);
    }
}

/// Runs `cmd` with `sh -c` in `dir`, its own process group; its stdout
/// when it succeeds. Ctrl-C ([`crate::measure::interrupted`]) stops the
/// whole group (TERM, then KILL after two seconds).
fn sh(cmd: &str, dir: &Path, target: &Path) -> Result<Option<String>, BisectError> {
    use std::io::Read as _;
    use std::os::unix::process::CommandExt as _;
    use std::time::{Duration, Instant};
    if crate::measure::interrupted() {
        return Err(BisectError::Interrupted);
    }
    let Ok(mut child) = Command::new("sh")
        .args(["-c", cmd])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
    else {
        return Ok(None);
    };
    let mut stdout = child.stdout.take();
    // Read on a thread: a full pipe must not stall the child.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_string(&mut text);
        }
        text
    });
    let group = child.id() as libc::pid_t;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let text = reader.join().unwrap_or_default();
                return Ok(status.success().then_some(text));
            }
            Ok(None) => {}
            Err(_) => return Ok(None),
        }
        if crate::measure::interrupted() {
            // SAFETY: kill(2) on the child's own process group.
            unsafe { libc::kill(-group, libc::SIGTERM) };
            let until = Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above; the group may be gone already.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            // The reader is left to end with the pipe.
            return Err(BisectError::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The metric from a run's output: a number on the last line, or
/// `profkit run --json`'s result.
fn metric_of(out: &str, metric: Metric) -> Option<f64> {
    let last = out.lines().rev().find(|l| !l.trim().is_empty())?;
    if let Ok(x) = last.trim().parse::<f64>() {
        return Some(x);
    }
    let v: serde_json::Value = serde_json::from_str(out).ok()?;
    let lat = |k: &str| v["latency"][k].as_f64();
    match metric {
        Metric::Mean => lat("mean"),
        Metric::P50 => lat("p50"),
        Metric::P95 => lat("p95"),
        Metric::P99 => lat("p99"),
        Metric::Throughput => v["throughput"].as_f64(),
        _ => None,
    }
}

/// Builds `commit` in a temporary worktree and runs the workload.
fn probe(
    o: &BisectOptions,
    commit: &str,
    scratch: &Path,
    target: &Path,
) -> Result<Probe, BisectError> {
    if crate::measure::interrupted() {
        return Err(BisectError::Interrupted);
    }
    let path = scratch.join(&commit[..commit.len().min(12)]);
    let p = path.display().to_string();
    // The guard first: whatever happens from here, the worktree goes.
    let wt = Worktree {
        repo: &o.repo,
        path,
    };
    if git(&o.repo, &["worktree", "add", "--detach", &p, commit]).is_none() {
        if crate::measure::interrupted() {
            return Err(BisectError::Interrupted);
        }
        return Ok(Probe::Skipped("no worktree".into()));
    }
    let build = o
        .build_cmd
        .clone()
        .unwrap_or_else(|| "cargo build --release --bin profkit".into());
    if sh(&build, &wt.path, target)?.is_none() {
        return Ok(Probe::Skipped("build failed".into()));
    }
    let run = o.run_cmd.clone().unwrap_or_else(|| {
        format!(
            "\"$CARGO_TARGET_DIR/release/profkit\" run {} --json --out \"{}\"",
            o.workload,
            scratch.join("runs").display()
        )
    });
    let mut values = Vec::new();
    for _ in 0..o.runs.max(1) {
        match sh(&run, &wt.path, target)?.and_then(|out| metric_of(&out, o.metric)) {
            Some(x) => values.push(x),
            None => return Ok(Probe::Skipped("run failed or printed no metric".into())),
        }
    }
    Ok(Probe::Measured(values))
}

/// Whether `probe` is significantly worse than `good`.
fn worse(good: &[f64], probe: &[f64], o: &BisectOptions) -> Option<(f64, f64, f64)> {
    let model = NoiseModel::default();
    let i = change_interval(
        good,
        probe,
        Scale::Relative,
        model.sd(o.metric),
        model.df,
        0.95,
        0.0,
    )?;
    let sign = if o.metric.higher_is_better() {
        -1.0
    } else {
        1.0
    };
    let (lo, p) = if sign > 0.0 {
        (i.lo, i.point)
    } else {
        (-i.hi, -i.point)
    };
    (lo > 0.0 && p > o.noise).then_some((i.point, i.lo, i.hi))
}

/// Checks the input: a clean tree, known commits, GOOD an ancestor of BAD.
pub fn check(o: &BisectOptions) -> Result<(String, String), BisectError> {
    let status = git(&o.repo, &["status", "--porcelain", "--untracked-files=no"])
        .ok_or_else(|| BisectError::NotARepo(o.repo.clone()))?;
    if !status.is_empty() {
        return Err(BisectError::Dirty(o.repo.clone()));
    }
    let rev = |c: &str| {
        git(
            &o.repo,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{c}^{{commit}}"),
            ],
        )
        .ok_or_else(|| BisectError::UnknownCommit(c.to_string()))
    };
    let (good, bad) = (rev(&o.good)?, rev(&o.bad)?);
    if good == bad || git(&o.repo, &["merge-base", "--is-ancestor", &good, &bad]).is_none() {
        return Err(BisectError::NotAncestor {
            good: o.good.clone(),
            bad: o.bad.clone(),
        });
    }
    Ok((good, bad))
}

/// Runs the bisection. `scratch` holds the temporary worktrees (removed
/// as it goes); `target` is the shared cargo target dir.
pub fn run(o: &BisectOptions, scratch: &Path, target: &Path) -> anyhow::Result<BisectOutcome> {
    let (good, bad) = check(o)?;
    let list = git(
        &o.repo,
        &[
            "rev-list",
            "--reverse",
            "--ancestry-path",
            &format!("{good}..{bad}"),
        ],
    )
    .unwrap_or_default();
    let commits: Vec<String> = list.lines().map(str::to_string).collect();
    let mut out = BisectOutcome {
        first_bad: None,
        subject: String::new(),
        change: None,
        skipped: Vec::new(),
        probed: Vec::new(),
    };
    let base = match probe(o, &good, scratch, target)? {
        Probe::Measured(v) => v,
        Probe::Skipped(why) => anyhow::bail!("GOOD ({}) could not be measured: {why}", o.good),
    };
    let mut results: Vec<Option<Option<(f64, f64, f64)>>> = vec![None; commits.len()];
    type Verdict = Option<(f64, f64, f64)>;
    let mut judge = |i: usize, out: &mut BisectOutcome| -> Result<Option<Verdict>, BisectError> {
        if let Some(r) = results[i] {
            return Ok(Some(r));
        }
        out.probed.push(commits[i].clone());
        match probe(o, &commits[i], scratch, target)? {
            Probe::Measured(v) => {
                let r = worse(&base, &v, o);
                results[i] = Some(r);
                Ok(Some(r))
            }
            Probe::Skipped(why) => {
                out.skipped.push((commits[i].clone(), why));
                Ok(None)
            }
        }
    };
    let last = commits.len() - 1;
    if !matches!(judge(last, &mut out)?, Some(Some(_))) {
        return Ok(out);
    }
    // Invariant: everything at or before `lo` is not worse (GOOD is -1),
    // `hi` is worse.
    let (mut lo, mut hi) = (-1i64, last as i64);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        // A skipped commit: try its neighbours towards lo, then hi.
        let mut verdict = None;
        let mut at = mid;
        let mut candidates: Vec<i64> = (lo + 1..hi).collect();
        candidates.sort_by_key(|c| (c - mid).abs());
        for c in candidates {
            if let Some(r) = judge(c as usize, &mut out)? {
                verdict = Some(r);
                at = c;
                break;
            }
        }
        match verdict {
            Some(Some(_)) => hi = at,
            Some(None) => lo = at,
            None => break,
        }
    }
    let first = &commits[hi as usize];
    out.subject = git(&o.repo, &["log", "-1", "--format=%s", first]).unwrap_or_default();
    out.change = results[hi as usize].flatten();
    out.first_bad = Some(first.clone());
    Ok(out)
}
