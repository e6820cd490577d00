//! The command line: clap definitions, and their conversion into the
//! library's option structs. Nothing here does work of its own.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use profkit::measure::{RunOptions, Stop, Warmup};
use profkit::session::SessionConfig;
use profkit::units::{parse_count, parse_duration, Nanos};

/// profkit: profile database-backed Rust code — CPU, heap and SQL profiles,
/// load runs, flamegraphs and regression reports.
#[derive(Debug, Parser)]
#[command(name = "profkit", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the built-in workloads.
    List,
    /// Run one workload and measure it (latency histogram, throughput, CPU, memory).
    Run(RunArgs),
    /// The main job: run every built-in workload and write run folders and an index.
    Profile(ProfileArgs),
    /// Profile a workload's SQL: per-statement times, query plans, N+1 and full scans, findings.
    Sql(SqlArgs),
    /// Check runs against the budgets in profkit.toml (exit 1 when a critical threshold breaks).
    Check(CheckArgs),
    /// Save or list baselines (named copies of runs or profile sessions).
    Baseline(BaselineArgs),
    /// Compare a current run or session against a base: changes with confidence intervals, differential flamegraphs.
    Compare(CompareArgs),
    /// Write a report of a run or session (RUN) or of a comparison (BASE..CURRENT) as Markdown, HTML or JSON.
    Report(ReportArgs),
}

/// `profkit check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Run folders or profile sessions (default: the newest profile session under --out).
    pub runs: Vec<String>,
    /// The budget file.
    #[arg(long, default_value = "profkit.toml")]
    pub budget: PathBuf,
    /// Exit 1 when a target is missed, too.
    #[arg(long)]
    pub strict: bool,
    /// Where run folders (and baselines) are.
    #[arg(long, default_value = "profiles")]
    pub out: PathBuf,
}

/// `profkit baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BaselineCommand,
    /// Where run folders and baselines (`<out>/baselines/`) are.
    #[arg(long, default_value = "profiles", global = true)]
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
fn parse_noise(s: &str) -> Result<f64, String> {
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
    /// Base: run folder, profile session or baseline name.
    pub base: String,
    /// Current: run folder, profile session or baseline name.
    pub current: String,
    /// Changes below this are no change (5%, 0.05).
    #[arg(long, default_value = "5%", value_parser = parse_noise)]
    pub noise: f64,
    /// Where differential flamegraphs go.
    #[arg(long, default_value = "flamegraphs")]
    pub flamegraphs: PathBuf,
    /// Where baselines are (`<out>/baselines/`).
    #[arg(long, default_value = "profiles")]
    pub out: PathBuf,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
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
    #[arg(long, default_value = "5%", value_parser = parse_noise)]
    pub noise: f64,
    /// Where baselines are (`<out>/baselines/`).
    #[arg(long, default_value = "profiles")]
    pub out: PathBuf,
}

/// `profkit sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Workload name (see `profkit list`).
    pub workload: String,
    /// Run options.
    #[command(flatten)]
    pub run: RunFlags,
    /// Statements to show in the table.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// How much warm-up: an operation count (`500`) or a duration (`1s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarmupArg(pub Warmup);

fn parse_warmup(s: &str) -> Result<WarmupArg, String> {
    let t = s.trim();
    if t.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return parse_count(t).map(|n| WarmupArg(Warmup::Ops(n)));
    }
    parse_duration(t)
        .map(|d| WarmupArg(Warmup::Duration(d.into())))
        .map_err(|_| {
            format!("'{s}' is neither an operation count (500) nor a duration (1s, 200ms)")
        })
}

fn parse_count_arg(s: &str) -> Result<u64, String> {
    parse_count(s)
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// Options shared by every command that runs a workload.
#[derive(Debug, Clone, Args)]
pub struct RunFlags {
    /// Data volume: emails in the store (default: the workload's, usually 100k).
    #[arg(long, value_parser = parse_count_arg, allow_negative_numbers = true)]
    pub rows: Option<u64>,
    /// Worker threads (default: the workload's, usually 1).
    #[arg(long, short = 't', allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Measured operations over all threads (e.g. 5000, 100k).
    #[arg(long, value_parser = parse_count_arg, conflicts_with = "duration", allow_negative_numbers = true)]
    pub ops: Option<u64>,
    /// Measure for this long instead of a number of operations (e.g. 10s).
    #[arg(long, value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Warm-up before measuring: operations (500) or a duration (1s); default a tenth of the run.
    #[arg(long, value_parser = parse_warmup)]
    pub warmup: Option<WarmupArg>,
    /// Seed of the data generator and the workers' random streams.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Use this SQLite file instead of a fresh temporary one (created if missing).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Where run folders go.
    #[arg(long, default_value = "profiles")]
    pub out: PathBuf,
}

impl From<&RunFlags> for RunOptions {
    fn from(f: &RunFlags) -> RunOptions {
        RunOptions {
            rows: f.rows,
            threads: f.threads,
            stop: f
                .ops
                .map(Stop::Ops)
                .or(f.duration.map(|d| Stop::Duration(Nanos::from(d)))),
            warmup: f.warmup.map(|w| w.0),
            seed: f.seed,
        }
    }
}

impl From<&RunFlags> for SessionConfig {
    fn from(f: &RunFlags) -> SessionConfig {
        use std::io::IsTerminal;
        SessionConfig {
            out_dir: f.out.clone(),
            db_path: f.db.clone(),
            progress: std::io::stderr().is_terminal(),
            ..SessionConfig::default()
        }
    }
}

/// `profkit run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Workload name (see `profkit list`).
    pub workload: String,
    /// Run options.
    #[command(flatten)]
    pub run: RunFlags,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `profkit profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Only these workloads (comma separated; default: every built-in).
    #[arg(long, value_delimiter = ',')]
    pub workloads: Vec<String>,
    /// Scale every workload's default operation count by this factor.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Compare the session against this baseline at the end and write reports.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Run options (override every workload's defaults).
    #[command(flatten)]
    pub run: RunFlags,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_become_options() {
        let cli = Cli::try_parse_from([
            "profkit",
            "run",
            "point-read",
            "--rows",
            "10k",
            "--threads",
            "4",
            "--ops",
            "2000",
            "--warmup",
            "200ms",
            "--seed",
            "7",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let o = RunOptions::from(&args.run);
        assert_eq!(o.rows, Some(10_000));
        assert_eq!(o.threads, Some(4));
        assert_eq!(o.stop, Some(Stop::Ops(2000)));
        assert_eq!(o.warmup, Some(Warmup::Duration(Nanos(200_000_000))));
        assert_eq!(o.seed, Some(7));
    }

    #[test]
    fn report_commands_parse() {
        let cli = Cli::try_parse_from(["profkit", "compare", "a", "b", "--noise", "2%"]).unwrap();
        let Command::Compare(c) = cli.command else {
            panic!("not compare")
        };
        assert!((c.noise - 0.02).abs() < 1e-12);
        assert!(Cli::try_parse_from(["profkit", "compare", "a", "b", "--noise", "150%"]).is_err());
        let cli = Cli::try_parse_from([
            "profkit", "report", "a..b", "--format", "html", "-o", "x.html",
        ])
        .unwrap();
        let Command::Report(r) = cli.command else {
            panic!("not report")
        };
        assert_eq!(r.format, ReportFormat::Html);
        assert!(Cli::try_parse_from(["profkit", "report", "a", "--format", "pdf"]).is_err());
        assert!(Cli::try_parse_from(["profkit", "baseline", "save", "main"]).is_ok());
        assert!(Cli::try_parse_from(["profkit", "check", "--strict", "r1", "r2"]).is_ok());
    }

    #[test]
    fn bad_values_are_rejected_by_the_parser() {
        assert!(Cli::try_parse_from(["profkit", "run", "x", "--duration", "soon"]).is_err());
        assert!(Cli::try_parse_from(["profkit", "run", "x", "--rows", "-5"]).is_err());
        assert!(
            Cli::try_parse_from(["profkit", "run", "x", "--ops", "5", "--duration", "1s"]).is_err()
        );
        assert!(Cli::try_parse_from(["profkit", "run", "x", "--warmup", "lots"]).is_err());
    }
}
