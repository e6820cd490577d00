//! Comparisons with their differential flamegraphs, and the comparison
//! that ends `profkit profile --baseline`.

use std::path::{Path, PathBuf};

use crate::analyze::compare::{self, CompareOptions, Comparison, NoiseModel};
use crate::analyze::rundata::RunSet;
use crate::analyze::stacks::Folded;
use crate::render::report::{Format, ReportInput};
use crate::render::{diffgraph, github};
use crate::store::{self, files, RunDir};

/// Compares two run sets and writes the differential flamegraphs of every
/// workload with CPU profiles on both sides into `flamegraphs`.
pub fn compare_and_draw(
    base: &RunSet,
    current: &RunSet,
    options: &CompareOptions,
    flamegraphs: &Path,
) -> Comparison {
    let mut comparison = compare::compare(base, current, options);
    for (w, (b, c)) in comparison
        .workloads
        .iter_mut()
        .zip(compare::pair_groups(base, current))
    {
        // Nothing to draw between a run and itself.
        if w.same_runs {
            continue;
        }
        let (Some(bf), Some(cf)) = (merged(&b), merged(&c)) else {
            continue;
        };
        let (b, c) = (b[0], c[0]);
        let title = format!("{}: {} → {}", c.workload, b.id, c.id);
        let written = diffgraph::differential_pair(&bf, &cf, &title)
            .map_err(anyhow::Error::from)
            .and_then(|pair| {
                pair.into_iter()
                    .map(|(suffix, svg)| {
                        let path = flamegraphs.join(format!("{}-{suffix}.svg", c.id));
                        store::write_atomic(&path, svg.as_bytes())?;
                        Ok(path)
                    })
                    .collect::<anyhow::Result<Vec<PathBuf>>>()
            });
        match written {
            Ok(paths) => w.flamegraphs = paths,
            Err(e) => eprintln!(
                "profkit: no differential flamegraph for '{}': {e}",
                c.workload
            ),
        }
    }
    comparison
}

/// The CPU stacks of a side's runs, summed (`None` when a run has none).
fn merged(runs: &[&crate::analyze::rundata::LoadedRun]) -> Option<Folded> {
    let mut out = Folded::new();
    for r in runs {
        for (stack, n) in r.cpu_folded.as_ref()? {
            *out.entry(stack.clone()).or_default() += n;
        }
    }
    Some(out)
}

/// The pull-request comment a profile session against a baseline writes.
pub const COMMENT_MD: &str = "comment.md";

/// Where the end of `profkit profile --baseline` wrote its files.
#[derive(Clone, Debug)]
pub struct BaselineOutcome {
    /// The comparison.
    pub comparison: Comparison,
    /// `compare.json`.
    pub json: PathBuf,
    /// `report.md` and `report.html`.
    pub reports: Vec<PathBuf>,
}

/// Compares a finished profile session against `base` (one-run sides
/// judged by `noise_model`) and writes
/// `compare.json`, `report.md` and `report.html` into the session folder.
pub fn against_baseline(
    base: &RunSet,
    index_dir: &RunDir,
    flamegraphs: &Path,
    noise_model: &NoiseModel,
) -> anyhow::Result<BaselineOutcome> {
    let current = store::load_set(&index_dir.path)?;
    let options = CompareOptions {
        noise_model: noise_model.clone(),
        ..CompareOptions::default()
    };
    let comparison = compare_and_draw(base, &current, &options, flamegraphs);
    let json = index_dir.file(files::COMPARE);
    store::write_json(&json, &comparison)?;
    let input = ReportInput::Compare {
        base,
        current: &current,
        comparison: &comparison,
    };
    let mut reports = Vec::new();
    for (name, format) in [
        (files::REPORT_MD, Format::Markdown),
        (files::REPORT_HTML, Format::Html),
    ] {
        let path = index_dir.file(name);
        store::write_atomic(&path, format.exporter().render(&input).as_bytes())?;
        reports.push(path);
    }
    // The pull-request comment (`--format github`).
    let path = index_dir.file(COMMENT_MD);
    let comment = github::github_comment(&comparison, base, &current, github::LIMIT);
    store::write_atomic(&path, comment.as_bytes())?;
    reports.push(path);
    Ok(BaselineOutcome {
        comparison,
        json,
        reports,
    })
}
