//! The run model: what a run folder holds, as typed data. [`crate::store`]
//! reads and writes it; budgets, comparisons and reports work on it.
//!
//! A run folder must hold `bench.json`; every other file is optional.
//! Unknown fields are ignored and missing optional files are `None`, so a
//! report never breaks on a run that lacks a pass.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::alloc::AllocSummary;
use super::findings::Finding;
use super::leaks::LeakReport;
use super::scaling::SweepResult;
use super::sql::{SqlReport, StatementStats};
use super::stacks::Folded;
use crate::measure::{BenchResult, RunPlan};
use crate::units::{Bytes, Nanos};

/// Version of `manifest.json`.
pub const MANIFEST_VERSION: u32 = 1;

/// A pass a run folder holds the output of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    /// A closed-loop measured run (`bench.json`).
    Bench,
    /// An open-loop run at a fixed rate (`load.json`).
    Load,
    /// CPU profile (`cpu.pb.gz`, `cpu.folded`, `cpu.json`).
    Cpu,
    /// SQL statements (`sql.json`, `sql.folded`).
    Sql,
    /// Heap profile (`heap.json`, `alloc.json`, `heap*.folded`).
    Heap,
    /// Leak check by growth (`leaks.json`).
    Leaks,
    /// RSS soak run (`leaks.json` with `soak`).
    Soak,
}

/// The machine a run happened on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Host name.
    pub hostname: String,
    /// Operating system and architecture.
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// Logical cores available.
    pub cores: usize,
    /// Physical memory.
    pub memory: Bytes,
}

/// Versions of the tools that made a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolVersions {
    /// profkit.
    pub profkit: String,
    /// The bundled SQLite library.
    pub sqlite: String,
    /// Built without optimisations (`debug_assertions` on): timings are not
    /// comparable with an optimised build's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub debug_build: bool,
}

/// What ran: `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub schema_version: u32,
    /// The run folder's name.
    pub run_id: String,
    /// Workload name.
    pub workload: String,
    /// Its description.
    pub description: String,
    /// Parameters (rows, threads, ops or duration, warm-up, seed).
    pub plan: RunPlan,
    /// What the run included.
    pub passes: Vec<Pass>,
    /// Git revision of the working directory, when there is one.
    pub git_revision: Option<String>,
    /// The machine.
    pub host: Host,
    /// Tool versions.
    pub tools: ToolVersions,
    /// Start, UTC.
    pub started_at: String,
    /// End, UTC.
    pub finished_at: String,
    /// How the CPU pass sampled, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_sampling: Option<CpuSampling>,
    /// Cut short by Ctrl-C. Absent (false) in complete runs and older files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// How long the measured phase ran, when it was cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Nanos>,
}

/// The sampler of a run's CPU pass and what it delivered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuSampling {
    /// The clock that drove the samples.
    pub sampler: crate::profile::perf::Sampler,
    /// Frequency asked (Hz).
    pub frequency: u32,
    /// Samples per CPU-second taken.
    pub effective_rate: f64,
    /// Samples taken.
    pub samples: u64,
    /// Why the sampler is not the one asked for, if it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Manifest {
    /// Adds passes not yet listed.
    pub fn add_passes(&mut self, passes: &[Pass]) {
        for p in passes {
            if !self.passes.contains(p) {
                self.passes.push(*p);
            }
        }
    }
}

/// Everything a report needs from one run folder.
#[derive(Clone, Debug)]
pub struct LoadedRun {
    /// The folder.
    pub dir: PathBuf,
    /// Its name (the run id).
    pub id: String,
    /// Workload name.
    pub workload: String,
    /// `manifest.json`, when present.
    pub manifest: Option<Manifest>,
    /// A `profkit heap` run: no `bench.json`, so [`LoadedRun::bench`] is
    /// empty (0 operations) and only the heap figures are measured.
    pub heap_only: bool,
    /// `bench.json`.
    pub bench: BenchResult,
    /// `findings.json`, most important first, without the CPU findings its
    /// CPU samples do not support ([`super::findings::supported`]).
    pub findings: Vec<Finding>,
    /// The advice section of `findings.json`: what `profkit advise` would
    /// try per finding, or what it measured.
    pub advice: Vec<super::advice_plan::AdviceLine>,
    /// CPU findings withheld: too few CPU samples.
    pub withheld_cpu_findings: usize,
    /// `sql.json`, when present.
    pub sql: Option<SqlReport>,
    /// `cpu.folded`.
    pub cpu_folded: Option<Folded>,
    /// `heap.folded`.
    pub heap_folded: Option<Folded>,
    /// `sql.folded`.
    pub sql_folded: Option<Folded>,
    /// `alloc.json`.
    pub alloc: Option<AllocSummary>,
    /// Peak live bytes from `heap.json` (dhat), when there is no `alloc.json`.
    pub dhat_peak: Option<u64>,
    /// `leaks.json`.
    pub leaks: Option<LeakReport>,
    /// `sweep.json`.
    pub sweep: Option<SweepResult>,
    /// SVG plots in the run folder: (file name, contents).
    pub plots: Vec<(String, String)>,
}

impl LoadedRun {
    /// Whether the run was cut short by Ctrl-C (said by `bench.json` or
    /// `manifest.json`).
    pub fn interrupted(&self) -> bool {
        self.bench.interrupted || self.manifest.as_ref().is_some_and(|m| m.interrupted)
    }

    /// SQL statements of every operation, from `sql.json`.
    pub fn statements(&self) -> Vec<&StatementStats> {
        self.sql
            .iter()
            .flat_map(|s| s.operations.iter())
            .flat_map(|op| op.statements.iter())
            .collect()
    }

    /// The git revision in the manifest.
    pub fn git_revision(&self) -> Option<String> {
        self.manifest.as_ref()?.git_revision.clone()
    }

    /// One line naming the machine, from the manifest.
    pub fn machine(&self) -> Option<String> {
        let h = &self.manifest.as_ref()?.host;
        Some(format!(
            "{} ({}, {} cores, {:.1} GiB, kernel {})",
            h.hostname,
            h.os,
            h.cores,
            h.memory.0 as f64 / (1024.0 * 1024.0 * 1024.0),
            h.kernel,
        ))
    }

    /// One line naming the parameters.
    pub fn parameters(&self) -> String {
        self.bench.plan.to_string()
    }

    /// A run folder `r` holding only `bench` (test builds only).
    #[cfg(test)]
    pub(crate) fn of(bench: BenchResult) -> LoadedRun {
        LoadedRun {
            dir: PathBuf::from("r"),
            id: "r".into(),
            workload: bench.workload.clone(),
            manifest: None,
            heap_only: false,
            bench,
            findings: Vec::new(),
            advice: Vec::new(),
            withheld_cpu_findings: 0,
            sql: None,
            cpu_folded: None,
            heap_folded: None,
            sql_folded: None,
            alloc: None,
            dhat_peak: None,
            leaks: None,
            sweep: None,
            plots: Vec::new(),
        }
    }
}

/// Runs read together: one run, a profile session, or a baseline.
#[derive(Clone, Debug)]
pub struct RunSet {
    /// What the user named (path or baseline name).
    pub label: String,
    /// The runs, in index order.
    pub runs: Vec<LoadedRun>,
}

impl RunSet {
    /// The run of `workload`.
    pub fn by_workload(&self, workload: &str) -> Option<&LoadedRun> {
        self.runs.iter().find(|r| r.workload == workload)
    }
}

/// One entry of a session's or baseline's `index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The run folder's name.
    pub run_id: String,
    /// Its workload.
    pub workload: String,
}

/// Version of the layout of `index.json` and `baseline.json`.
pub const INDEX_SCHEMA_VERSION: u32 = 1;

/// `index.json` of a profile session or a baseline: the runs it groups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// [`INDEX_SCHEMA_VERSION`] (0 in files written before it was added).
    #[serde(default)]
    pub schema_version: u32,
    /// The runs, in order.
    pub runs: Vec<IndexEntry>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            schema_version: INDEX_SCHEMA_VERSION,
            runs: Vec::new(),
        }
    }
}
