//! A session: a series of runs sharing a temporary folder (and so the
//! populated database templates), with where their outputs go. Every pass
//! prepares, measures and discards its workloads through it; the bench
//! pass is [`Session::run`].

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;

use super::probe::Probes;
use crate::analyze::rundata::Pass;
use crate::measure::{self, BenchResult, Progress, RunOptions, RunPlan};
use crate::store::{self, defaults, files, RunDir};
use crate::workload::{SetupEnv, Workload};

/// Where a session puts things.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Root of run folders (default [`defaults::OUT_DIR`]).
    pub out_dir: PathBuf,
    /// Where flamegraphs go (default [`defaults::FLAMEGRAPH_DIR`]).
    pub flamegraph_dir: PathBuf,
    /// The database file to use; `None` uses a fresh file per run in a
    /// temporary folder, copied from a populated template.
    pub db_path: Option<PathBuf>,
    /// Show progress bars on stderr.
    pub progress: bool,
    /// Count SQL statements in measured runs with SQLite's trace hook
    /// (default off: the hook costs 1.13–1.15× on the cheapest operations
    /// and shows up in CPU profiles; the SQL pass counts statements
    /// instead). A run measured with it on is marked `instrumented` in
    /// `bench.json`.
    pub sql_trace: bool,
    /// Keep runtime plumbing frames (thread start, panic guards, closure
    /// shims) in CPU and heap stacks; default off: they are folded.
    pub keep_runtime_frames: bool,
    /// Instrumentation the SQL pass opens while it runs a workload, whose
    /// findings join the run's (default none; a [`crate::Harness`] fills it).
    pub probes: Probes,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            out_dir: PathBuf::from(defaults::OUT_DIR),
            flamegraph_dir: PathBuf::from(defaults::FLAMEGRAPH_DIR),
            db_path: None,
            progress: false,
            sql_trace: false,
            keep_runtime_frames: false,
            probes: Probes::default(),
        }
    }
}

/// A series of runs sharing a temporary folder (and so populated templates).
pub struct Session {
    config: SessionConfig,
    temp: tempfile::TempDir,
    runs: usize,
    templates: Option<PathBuf>,
    /// Warnings already shown, by kind: each is said once per session.
    warned: std::collections::HashSet<&'static str>,
}

/// A workload that is set up and ready to measure, with where its run goes.
pub struct Prepared {
    /// The workload.
    pub workload: Box<dyn Workload>,
    /// The concrete parameters.
    pub plan: RunPlan,
    /// Its environment (database path, seed, …).
    pub env: SetupEnv,
}

/// What a finished run left behind.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// Its folder.
    pub dir: RunDir,
    /// Its measured result.
    pub bench: BenchResult,
    /// Bytes the measured run (warm-up included, setup not) had written
    /// to storage ([`measure::sys::written_bytes`]); `None` where the
    /// system does not say.
    pub written: Option<u64>,
}

impl Session {
    /// A new session.
    pub fn new(config: SessionConfig) -> anyhow::Result<Session> {
        // An --out that is a file is refused now, not after the run.
        store::check_out_dir(&config.out_dir)?;
        let temp = tempfile::Builder::new()
            .prefix("profkit-")
            .tempdir()
            .context("creating a temporary folder for the database")?;
        Ok(Session {
            config,
            temp,
            runs: 0,
            templates: None,
            warned: Default::default(),
        })
    }

    /// The session's configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Whether a warning of this kind is to be shown: true the first
    /// time the session asks, false after (a warning that holds for every
    /// workload is said once, not once per workload).
    pub fn first_warning(&mut self, kind: &'static str) -> bool {
        self.warned.insert(kind)
    }

    /// The temporary folder this session owns.
    pub fn temp_dir(&self) -> &Path {
        self.temp.path()
    }

    /// Uses populated templates from `dir` (another session's
    /// [`Session::temp_dir`], e.g. a parent process's) instead of building
    /// its own; new templates are added there too.
    pub fn share_templates(&mut self, dir: PathBuf) {
        self.templates = Some(dir);
    }

    /// Resolves the plan and sets the workload up on a fresh database.
    pub fn prepare(
        &mut self,
        mut workload: Box<dyn Workload>,
        options: &RunOptions,
        sql_trace: bool,
    ) -> anyhow::Result<Prepared> {
        let plan = RunPlan::resolve(options, workload.defaults())?;
        self.runs += 1;
        let (db_path, template_dir) = match &self.config.db_path {
            Some(p) => (p.clone(), None),
            None => (
                self.temp
                    .path()
                    .join(format!("run-{}-{}.db", self.runs, workload.name())),
                Some(
                    self.templates
                        .clone()
                        .unwrap_or_else(|| self.temp.path().to_path_buf()),
                ),
            ),
        };
        let env = SetupEnv {
            rows: plan.rows,
            seed: plan.seed,
            threads: plan.threads,
            concurrency: options
                .concurrency
                .unwrap_or(workload.defaults().concurrency),
            db_path,
            template_dir,
            sql_trace,
        };
        workload
            .setup(&env)
            .with_context(|| format!("setting up workload '{}'", workload.name()))?;
        // Every connection the run will use is open before it starts, so
        // none opens in the background mid-run in some runs and not others.
        if let Some(db) = workload.database() {
            db.warm_pool()
                .with_context(|| format!("opening connections for '{}'", workload.name()))?;
        }
        super::writes::log(&format!("{} setup", workload.name()));
        Ok(Prepared {
            workload,
            plan,
            env,
        })
    }

    /// Releases a prepared workload and deletes its temporary database.
    pub fn discard(&self, prepared: Prepared) {
        let Prepared { workload, env, .. } = prepared;
        drop(workload);
        if env.template_dir.is_some() {
            for suffix in ["", "-wal", "-shm", ".lock"] {
                let mut p = env.db_path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
    }

    /// A progress bar labelled `label`, shown if the session shows progress.
    pub fn progress(&self, label: &str) -> Progress {
        Progress {
            enabled: self.config.progress,
            label: label.to_string(),
        }
    }

    /// Measures a prepared workload.
    pub fn measure(&self, prepared: &Prepared) -> anyhow::Result<BenchResult> {
        let progress = self.progress(prepared.workload.name());
        measure::measure(prepared.workload.as_ref(), &prepared.plan, &progress)
            .with_context(|| format!("running workload '{}'", prepared.workload.name()))
    }

    /// Creates the run folder for a workload.
    pub fn run_dir(&self, workload: &str, started: SystemTime) -> anyhow::Result<RunDir> {
        Ok(RunDir::create(&self.config.out_dir, workload, started)?)
    }

    /// Writes `manifest.json` for a run (it says whether Ctrl-C cut the
    /// run short).
    pub fn write_manifest(
        &self,
        dir: &RunDir,
        prepared: &Prepared,
        passes: &[Pass],
        started: SystemTime,
    ) -> anyhow::Result<()> {
        self.write_manifest_of(dir, prepared, passes, started, None)
    }

    /// [`Session::write_manifest`] after a measurement: an interrupted
    /// run's manifest also says how long it measured.
    pub fn write_manifest_of(
        &self,
        dir: &RunDir,
        prepared: &Prepared,
        passes: &[Pass],
        started: SystemTime,
        bench: Option<&BenchResult>,
    ) -> anyhow::Result<()> {
        let mut manifest = store::manifest(
            dir,
            prepared.workload.name(),
            prepared.workload.description(),
            prepared.plan,
            passes,
            started,
        );
        if let Some(b) = bench.filter(|b| b.interrupted) {
            manifest.interrupted = true;
            manifest.measured = Some(b.elapsed);
        }
        store::write_json(&dir.file(files::MANIFEST), &manifest)?;
        Ok(())
    }

    /// A flamegraph's path: `<flamegraph dir>/<run id>-<kind>.svg`.
    pub fn flamegraph_path(&self, run_id: &str, kind: &str) -> PathBuf {
        self.config
            .flamegraph_dir
            .join(format!("{run_id}-{kind}.svg"))
    }

    /// Sets up, measures and records one workload: `bench.json` and
    /// `manifest.json` in a new run folder.
    pub fn run(
        &mut self,
        workload: Box<dyn Workload>,
        options: &RunOptions,
    ) -> anyhow::Result<RunOutcome> {
        let started = SystemTime::now();
        let prepared = self.prepare(workload, options, self.config.sql_trace)?;
        // The manifest first: a folder cut short still says what it is.
        let dir = self.run_dir(prepared.workload.name(), started)?;
        self.write_manifest(&dir, &prepared, &[Pass::Bench], started)?;
        let before = measure::sys::written_bytes();
        let bench = self.measure(&prepared)?;
        let written = measure::sys::written_bytes()
            .zip(before)
            .map(|(after, before)| after.saturating_sub(before));
        store::write_json(&dir.file(files::BENCH), &bench)?;
        self.write_manifest_of(&dir, &prepared, &[Pass::Bench], started, Some(&bench))?;
        self.discard(prepared);
        Ok(RunOutcome {
            dir,
            bench,
            written,
        })
    }
}
