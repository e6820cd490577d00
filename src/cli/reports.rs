//! The subcommands that read files back: `check`, `baseline`, `compare`,
//! `report`, `flamegraph`.

use std::path::{Path, PathBuf};

use super::args::*;
use crate::analyze::budget::Status;
use crate::analyze::compare::{self, CompareOptions};
use crate::analyze::rundata::RunSet;
use crate::passes;
use crate::render::report::{self, Format, ReportInput};
use crate::render::{flamegraph, input};
use crate::store::{self, baseline};
use crate::workload::Registry;

/// A budget check that failed: exit 1.
#[derive(Debug, thiserror::Error)]
#[error(
    "budget check failed: {critical} critical threshold(s) broken, {warnings} target(s) missed"
)]
pub struct CheckFailed {
    critical: usize,
    warnings: usize,
}

/// A file the user has, which a command will not overwrite.
#[derive(Debug, thiserror::Error)]
#[error("'{}' exists; pass --force to overwrite it", .0.display())]
pub struct WouldOverwrite(pub PathBuf);

/// A budget check in which no rule applied to any measured value: exit 2,
/// never a silent pass.
#[derive(Debug, thiserror::Error)]
#[error("nothing was checked: no budget rule applies to a measured value of these runs (workloads: {workloads}); check the section names and that the runs measured operations")]
pub struct NothingChecked {
    workloads: String,
}

/// A `report` target that is neither a run nor BASE..CURRENT.
#[derive(Debug, thiserror::Error)]
#[error(
    "'{0}' is neither a run folder, a profile session, a baseline name, nor BASE..CURRENT of those"
)]
pub struct BadTarget(String);

fn resolve_runs(runs: &[String], out: &Path) -> anyhow::Result<Vec<RunSet>> {
    if runs.is_empty() {
        return Ok(vec![store::load_set(&store::newest_session(out)?)?]);
    }
    Ok(runs
        .iter()
        .map(|r| store::resolve(r, out))
        .collect::<Result<_, _>>()?)
}

pub(super) fn check(
    a: CheckArgs,
    registry: &Registry,
    probes: &passes::Probes,
) -> anyhow::Result<()> {
    let budget = store::read_budget(&a.budget)?;
    if a.profile {
        // The budget is valid: run the workloads, then check what they wrote.
        let options = passes::profile::ProfileOptions {
            workloads: a.workloads.clone(),
            scale: a.scale,
            heap: true,
            run: Default::default(),
            baseline: None,
            noise_model: Default::default(),
        };
        // The harness's probes watch it as they watch `profile`.
        let config = passes::SessionConfig {
            probes: probes.clone(),
            ..session_config(&a.out, None, false)
        };
        super::dispatch::run_profile(registry, config, &options, None)?;
    }
    let sets = resolve_runs(&a.runs, &a.out)?;
    let runs: Vec<_> = sets.iter().flat_map(|s| s.runs.iter()).collect();
    let mut workloads: Vec<&str> = runs.iter().map(|r| r.workload.as_str()).collect();
    workloads.sort_unstable();
    workloads.dedup();
    let workloads = workloads.join(", ");
    warn_unmatched_sections(&budget, &runs, registry, &workloads);
    warn_interrupted(&sets.iter().collect::<Vec<_>>());
    let report = budget.check(runs.iter().copied());
    for line in &report.lines {
        println!("{line}");
    }
    let (critical, warnings) = (report.count(Status::Fail), report.count(Status::Warn));
    println!(
        "{} line(s): {} ok, {warnings} target(s) missed, {critical} critical, {} not measured",
        report.lines.len(),
        report.count(Status::Ok),
        report.count(Status::NotMeasured)
    );
    if report.lines.iter().all(|l| l.status == Status::NotMeasured) {
        return Err(NothingChecked { workloads }.into());
    }
    if critical > 0 || (a.strict && warnings > 0) {
        return Err(CheckFailed { critical, warnings }.into());
    }
    Ok(())
}

pub(super) fn budget_cmd(a: BudgetArgs) -> anyhow::Result<()> {
    let BudgetCommand::Init {
        sessions,
        headroom,
        output,
        force,
    } = a.command;
    if output.exists() && !force {
        return Err(WouldOverwrite(output).into());
    }
    let sets = resolve_runs(&sessions, &a.out)?;
    let runs = || sets.iter().flat_map(|s| &s.runs);
    let budget = crate::analyze::calibrate::calibrate(runs(), headroom);
    let machine = runs().find_map(|r| r.machine()).unwrap_or_default();
    let labels: Vec<&str> = sets.iter().map(|s| s.label.as_str()).collect();
    let spread = match crate::analyze::calibrate::timing_spread(runs()) {
        _ if sets.len() == 1 => {
            "\nFrom one session: timings may warn on unchanged code; give several sessions."
                .to_string()
        }
        Some((what, ratio)) => format!(
            "\nThe sessions differed by up to {ratio:.2}x ({what}); targets start from the worst."
        ),
        None => String::new(),
    };
    let header = format!(
        "profkit budget, calibrated by `profkit budget init --headroom {headroom}` from\n{} ({} workload(s)){}{}.\nTargets = the worst measured × {headroom} (throughput ÷); critical thresholds are looser\n(timings 4× the target, sizes 2×, statements per operation +0.5).{spread}\nRecalibrate on your own machine; edit freely.",
        labels.join(", "),
        budget.workloads.len(),
        if machine.is_empty() { "" } else { "\non " },
        machine
    );
    let text = crate::render::budget::budget_toml(&budget, &header);
    store::write_atomic(&output, text.as_bytes())?;
    println!(
        "wrote {} ({} workload(s) from {} session(s), headroom {headroom})",
        output.display(),
        budget.workloads.len(),
        sets.len()
    );
    if sets.len() == 1 {
        eprintln!("profkit: calibrated from one session: timing targets may warn on unchanged code; give several sessions (`profkit budget init S1 S2 S3`)");
    }
    Ok(())
}

pub(super) fn baseline_cmd(a: BaselineArgs) -> anyhow::Result<()> {
    match a.command {
        BaselineCommand::Save { name, run } => {
            let set = match run {
                Some(r) => store::resolve(&r, &a.out)?,
                None => store::load_set(&store::newest_session(&a.out)?)?,
            };
            let dest = baseline::save(&a.out, &name, &set)?;
            let names: Vec<&str> = set.runs.iter().map(|r| r.workload.as_str()).collect();
            println!(
                "saved baseline '{name}' ({} run(s): {}) to {}",
                set.runs.len(),
                names.join(", "),
                dest.display()
            );
        }
        BaselineCommand::List => {
            let all = baseline::list(&a.out);
            if all.is_empty() {
                let dir = store::runs::baselines_dir(&a.out);
                println!("no baselines under {}", dir.display());
            }
            for b in all {
                println!(
                    "{:<20} {}  git {}  {} workload(s)  from {}",
                    b.name,
                    b.saved_at,
                    b.git_revision.as_deref().unwrap_or("unknown"),
                    b.workloads.len(),
                    b.source
                );
            }
        }
    }
    Ok(())
}

/// Resolves a side of a comparison: one run folder, session or baseline,
/// or several, comma separated, whose runs of a workload are replicates.
fn resolve_side(arg: &str, out: &Path) -> anyhow::Result<RunSet> {
    if !arg.contains(',') || Path::new(arg).exists() {
        return Ok(store::resolve(arg, out)?);
    }
    let mut set = RunSet {
        label: arg.to_string(),
        runs: Vec::new(),
    };
    for part in arg.split(',').filter(|p| !p.is_empty()) {
        set.runs.extend(store::resolve(part, out)?.runs);
    }
    Ok(set)
}

pub(super) fn compare_cmd(a: CompareArgs) -> anyhow::Result<()> {
    let base = resolve_side(&a.base, &a.out)?;
    let current = resolve_side(&a.current, &a.out)?;
    compare::check_workloads(&base, &current, a.force)?;
    warn_interrupted(&[&base, &current]);
    let options = CompareOptions {
        noise: a.noise,
        noise_model: store::noise::noise_model_for(a.noise_model.as_deref(), &a.out)?,
        ..CompareOptions::default()
    };
    let comparison = passes::compare::compare_and_draw(&base, &current, &options, &a.flamegraphs);
    let format = match (a.format, a.json) {
        (Some(f), _) => f,
        (None, true) => CompareFormat::Json,
        (None, false) => CompareFormat::Text,
    };
    match format {
        CompareFormat::Json => println!("{}", serde_json::to_string_pretty(&comparison)?),
        CompareFormat::Text => print!("{}", report::comparison_text(&comparison)),
        CompareFormat::Github => print!(
            "{}",
            crate::render::github::github_comment(
                &comparison,
                &base,
                &current,
                crate::render::github::LIMIT
            )
        ),
    }
    Ok(())
}

/// Splits `BASE..CURRENT` where both sides resolve.
fn split_range(target: &str, out: &Path) -> Option<(RunSet, RunSet)> {
    target.match_indices("..").find_map(|(i, _)| {
        let (l, r) = (&target[..i], &target[i + 2..]);
        if l.is_empty() || r.is_empty() {
            return None;
        }
        Some((store::resolve(l, out).ok()?, store::resolve(r, out).ok()?))
    })
}

pub(super) fn report_cmd(a: ReportArgs) -> anyhow::Result<()> {
    let format = match a.format {
        ReportFormat::Md => Format::Markdown,
        ReportFormat::Html => Format::Html,
        ReportFormat::Json => Format::Json,
    };
    let (text, inputs) = match store::resolve(&a.target, &a.out) {
        Ok(set) => {
            let budget_path = a.budget.clone().or_else(|| {
                let p = PathBuf::from(store::defaults::BUDGET_FILE);
                p.is_file().then_some(p)
            });
            let check = match budget_path {
                Some(p) => Some(store::read_budget(&p)?.check(&set.runs)),
                None => None,
            };
            let input = ReportInput::Runs {
                set: &set,
                check: check.as_ref(),
                all_flamegraphs: a.all_flamegraphs,
            };
            (format.exporter().render(&input), input_files(&[&set]))
        }
        Err(e) => {
            let Some((base, current)) = split_range(&a.target, &a.out) else {
                if a.target.contains("..") {
                    return Err(BadTarget(a.target.clone()).into());
                }
                return Err(e.into());
            };
            compare::check_workloads(&base, &current, a.force)?;
            warn_interrupted(&[&base, &current]);
            let options = CompareOptions {
                noise: a.noise,
                noise_model: store::noise::noise_model_for(None, &a.out)?,
                ..CompareOptions::default()
            };
            let comparison = compare::compare(&base, &current, &options);
            let input = ReportInput::Compare {
                base: &base,
                current: &current,
                comparison: &comparison,
            };
            let inputs = input_files(&[&base, &current]);
            (format.exporter().render(&input), inputs)
        }
    };
    match &a.output {
        Some(p) => {
            store::refuse_overwrite(p, inputs.iter().map(PathBuf::as_path))?;
            store::write_atomic(p, text.as_bytes())?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Warns, on stderr, of budget sections that no run checked has: one line
/// per section naming no known workload (a typo?), one line for the rest.
fn warn_unmatched_sections(
    budget: &crate::analyze::budget::Budget,
    runs: &[&crate::analyze::rundata::LoadedRun],
    registry: &Registry,
    workloads: &str,
) {
    let unmatched = budget
        .workloads
        .keys()
        .filter(|s| !runs.iter().any(|r| &&r.workload == s));
    let (unknown, other): (Vec<&String>, Vec<&String>) =
        unmatched.partition(|s| registry.entries().iter().all(|e| &&e.name != s));
    for s in unknown {
        eprintln!(
            "warning: budget section [{s}] names no known workload and no run checked ({workloads}): a typo?"
        );
    }
    if !other.is_empty() {
        let names: Vec<String> = other.iter().map(|s| format!("[{s}]")).collect();
        eprintln!(
            "warning: budget section(s) {} match no run checked ({workloads})",
            names.join(", ")
        );
    }
}

/// Warns, on stderr, of each run in `sets` that Ctrl-C cut short.
fn warn_interrupted(sets: &[&RunSet]) {
    for r in sets.iter().flat_map(|s| s.runs.iter()) {
        if r.interrupted() {
            let measured = r.bench.elapsed;
            eprintln!(
                "warning: run {} was interrupted (Ctrl-C) after {measured}: its figures cover only part of the planned run ({})",
                r.id, r.bench.plan.stop
            );
        }
    }
}

/// The files of the runs in `sets` that a report reads (all but earlier
/// reports): an output path must not name one of them.
fn input_files(sets: &[&RunSet]) -> Vec<PathBuf> {
    let reports = [store::files::REPORT_MD, store::files::REPORT_HTML];
    sets.iter()
        .flat_map(|s| s.runs.iter())
        .flat_map(|r| store::run_files(&r.dir))
        .filter(|p| !reports.iter().any(|n| p.file_name() == Some(n.as_ref())))
        .collect()
}

/// `profkit flamegraph FILE`: a folded, pprof or dhat file as an SVG.
pub(super) fn flamegraph_cmd(a: FlamegraphArgs) -> anyhow::Result<()> {
    let output = a.output.clone().unwrap_or_else(|| {
        let mut name = a.file.clone().into_os_string();
        name.push(".svg");
        name.into()
    });
    store::refuse_overwrite(&output, [a.file.as_path()])?;
    let stacks = input::read_stacks(&a.file)?;
    let options = flamegraph::SvgOptions {
        title: a.title.clone().unwrap_or_default(),
        subtitle: None,
        inverted: a.inverted,
        count_name: stacks.unit().to_string(),
        memory: stacks.format == input::Format::Dhat,
    };
    let svg = flamegraph::render_stacks(&stacks.stacks, &a.file, &options)?;
    store::write_atomic(&output, &svg)?;
    println!("wrote {}", output.display());
    Ok(())
}
