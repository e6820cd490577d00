//! `profkit export RUN --format speedscope|firefox`: a run's CPU profile
//! (with its SQL statements and heap stacks where present) in the file
//! formats of speedscope and the Firefox Profiler.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::render::export::{self, ExportInput, SqlMarker, ThreadStacks};
use crate::render::input;
use crate::store::{self, files};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// speedscope's JSON file format (open at speedscope.app or with the
    /// `speedscope` npm package).
    Speedscope,
    /// The Firefox Profiler's processed profile (open at profiler.firefox.com).
    Firefox,
}

/// `profkit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run folder with a CPU profile (`cpu.pb.gz` or `cpu.folded`).
    pub run: PathBuf,
    /// Which viewer's format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Where to write (default: `<RUN>/cpu.speedscope.json` or
    /// `<RUN>/cpu.firefox.json`); an existing file is not overwritten.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// A run that has nothing to export.
#[derive(Debug, thiserror::Error)]
#[error("'{}' has no CPU data (neither cpu.pb.gz nor cpu.folded): export reads a CPU profile; make one with `profkit cpu WORKLOAD` or `profkit profile`", .0.display())]
pub struct NoCpuData(pub PathBuf);

/// An export that would overwrite a file.
#[derive(Debug, thiserror::Error)]
#[error("'{}' exists; export writes over no file: name another with -o", .0.display())]
pub struct ExportExists(pub PathBuf);

/// CPU stacks per thread: from `cpu.pb.gz` (its thread labels), else
/// `cpu.folded` (one thread, "all threads").
fn threads(run: &Path) -> anyhow::Result<(Vec<ThreadStacks>, u64, i64)> {
    let pb = run.join(files::CPU_PPROF);
    if pb.is_file() {
        let bytes = std::fs::read(&pb)?;
        let profile = input::decode(&bytes, &pb)?;
        let folded = input::to_folded_counts(&profile, Some("samples"), &pb)?;
        let mut out: Vec<ThreadStacks> = Vec::new();
        for (line, n) in folded {
            let mut frames: Vec<String> = line.split(';').map(str::to_string).collect();
            let thread = if frames.len() > 1 {
                frames.remove(0)
            } else {
                "all threads".into()
            };
            match out.iter_mut().find(|t| t.name == thread) {
                Some(t) => t.stacks.push((frames, n)),
                None => out.push(ThreadStacks {
                    name: thread,
                    stacks: vec![(frames, n)],
                }),
            }
        }
        return Ok((out, profile.period.max(0) as u64, profile.time_nanos));
    }
    let folded_path = run.join(files::CPU_FOLDED);
    if folded_path.is_file() {
        let stacks = input::read_stacks(&folded_path)?;
        let thread = ThreadStacks {
            name: "all threads".into(),
            stacks: stacks
                .stacks
                .iter()
                .map(|(line, n)| (line.split(';').map(str::to_string).collect(), *n))
                .collect(),
        };
        // cpu.folded counts samples; 199 Hz is the sampler's default.
        return Ok((vec![thread], 1_000_000_000 / 199, 0));
    }
    Err(NoCpuData(run.to_path_buf()).into())
}

pub(super) fn export_cmd(a: ExportArgs) -> anyhow::Result<()> {
    if !a.run.is_dir() {
        return Err(store::runs::RunError::NotARun {
            path: a.run.clone(),
        }
        .into());
    }
    let (threads, period, start) = threads(&a.run)?;
    let loaded = store::load_run(&a.run).ok();
    let sql = loaded
        .as_ref()
        .map(|r| {
            r.statements()
                .into_iter()
                .map(|s| SqlMarker {
                    text: s.shape.clone(),
                    executions: s.executions,
                    total_ns: s.total.0,
                })
                .collect()
        })
        .unwrap_or_default();
    let heap = loaded
        .as_ref()
        .and_then(|r| r.heap_folded.as_ref())
        .map(|f| {
            f.iter()
                .map(|(line, n)| (line.split(';').map(str::to_string).collect(), *n))
                .collect()
        })
        .unwrap_or_default();
    let name = a
        .run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let input = ExportInput {
        name,
        sample_period_ns: period,
        start_unix_ns: start,
        threads,
        sql,
        heap,
    };
    let (text, default_name) = match a.format {
        ExportFormat::Speedscope => (export::to_speedscope(&input), "cpu.speedscope.json"),
        #[cfg(feature = "firefox")]
        ExportFormat::Firefox => (export::to_firefox(&input), "cpu.firefox.json"),
        #[cfg(not(feature = "firefox"))]
        ExportFormat::Firefox => anyhow::bail!(
            "--format firefox: this profkit was built without its `firefox` feature (on by default)"
        ),
    };
    let output = a.output.unwrap_or_else(|| a.run.join(default_name));
    if output.exists() {
        return Err(ExportExists(output).into());
    }
    store::write_atomic(&output, text.as_bytes())?;
    println!("wrote {}", output.display());
    Ok(())
}
