//! Arguments of the commands that read run folders: `check`, `baseline`,
//! `compare` and `report`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::analyze::compare;
use crate::store;

/// `profkit check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Run folders or profile sessions (default: the newest profile session under --out).
    pub runs: Vec<String>,
    /// The budget file.
    #[arg(long, default_value = store::defaults::BUDGET_FILE)]
    pub budget: PathBuf,
    /// Exit 1 when a target is missed, too.
    #[arg(long)]
    pub strict: bool,
    /// Where run folders (and baselines) are.
    #[arg(long, default_value = store::defaults::OUT_DIR)]
    pub out: PathBuf,
    /// Run the main job first (`profkit profile`) and check the session it writes.
    #[arg(long, conflicts_with = "runs")]
    pub profile: bool,
    /// With --profile: only these workloads (comma separated).
    #[arg(long, value_delimiter = ',', requires = "profile")]
    pub workloads: Vec<String>,
    /// With --profile: scale every workload's default operation count.
    #[arg(long, default_value_t = 1.0, requires = "profile")]
    pub scale: f64,
}

/// `profkit baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BaselineCommand,
    /// Where run folders and baselines (`<out>/baselines/`) are.
    #[arg(long, default_value = store::defaults::OUT_DIR, global = true)]
    pub out: PathBuf,
}

/// `profkit baseline save|list`.
#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Copy a run folder or profile session (default: the newest session) to <out>/baselines/NAME.
    Save {
        /// Baseline name (letters, digits, '.', '_', '-').
        name: String,
        /// Run folder or profile session.
        run: Option<String>,
    },
    /// List the saved baselines.
    List,
}

/// Noise threshold: `5%` or `0.05`.
pub(super) fn parse_noise(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("'{s}' is not a noise threshold (examples: 5%, 0.05)"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "noise threshold '{s}' must be between 0 % and 100 %"
        ))
    }
}

/// `profkit compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Base: run folder, profile session or baseline name; several, comma
    /// separated, are repeated runs (the verdict comes from their spread).
    pub base: String,
    /// Current: likewise.
    pub current: String,
    /// Changes below this are no change (5%, 0.05).
    #[arg(long, default_value_t = compare::defaults::NOISE, value_parser = parse_noise)]
    pub noise: f64,
    /// Where differential flamegraphs go.
    #[arg(long, default_value = store::defaults::FLAMEGRAPH_DIR)]
    pub flamegraphs: PathBuf,
    /// Where baselines are (`<out>/baselines/`).
    #[arg(long, default_value = store::defaults::OUT_DIR)]
    pub out: PathBuf,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
    /// Output format: text (default), json, or github (a pull-request
    /// comment: verdict first, significant changes only, <= 65,536 chars).
    #[arg(long, value_enum, conflicts_with = "json")]
    pub format: Option<CompareFormat>,
    /// Compare two runs of different workloads (declared twins need no --force).
    #[arg(long)]
    pub force: bool,
}

/// `compare`'s output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    /// Plain text for the terminal.
    Text,
    /// The comparison's JSON.
    Json,
    /// Markdown for a pull-request comment.
    Github,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Markdown for a pull-request comment.
    Md,
    /// One self-contained HTML file.
    Html,
    /// JSON.
    Json,
}

/// `profkit report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// RUN (run folder, profile session, baseline) or BASE..CURRENT.
    pub target: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    pub format: ReportFormat,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Budget file for a run report (default: profkit.toml when it exists).
    #[arg(long)]
    pub budget: Option<PathBuf>,
    /// Noise threshold of a comparison (5%, 0.05).
    #[arg(long, default_value_t = compare::defaults::NOISE, value_parser = parse_noise)]
    pub noise: f64,
    /// BASE..CURRENT of two different workloads (declared twins need no --force).
    #[arg(long)]
    pub force: bool,
    /// Where baselines are (`<out>/baselines/`).
    #[arg(long, default_value = store::defaults::OUT_DIR)]
    pub out: PathBuf,
    /// HTML: embed every flamegraph of every run (CPU, heap, SQL); by
    /// default one per workload (CPU, else SQL, else heap).
    #[arg(long)]
    pub all_flamegraphs: bool,
}
