//! The command line, in the library: clap definitions ([`args`]), a
//! dispatch that calls the passes and prints, and [`main_with`], the whole
//! `main` of any binary that gives its workloads the profkit CLI, and
//! [`Harness`], which names those workloads — the `profkit` binary is
//! `Harness::builtins().run()`.

pub mod args;
mod args_advise;
mod args_budget;
mod args_cpu;
mod args_reports;
#[cfg(feature = "service")]
pub mod attach;
mod bisect;
mod dispatch;
mod export;
mod harness;
#[cfg(feature = "service")]
mod probe;
mod reports;
#[cfg(feature = "service")]
pub mod serve;

use clap::error::ErrorKind;

pub use args::Cli;
pub use harness::{Harness, HarnessError};
#[cfg(feature = "service")]
pub use probe::ServiceProbe;
pub use reports::{BadTarget, CheckFailed, NothingChecked};

use crate::analyze::budget::BudgetError;
use crate::analyze::scaling::SweepError;
use crate::analyze::stress::StressError;
use crate::db::DbError;
use crate::measure::open_loop::RateError;
use crate::measure::PlanError;
#[cfg(feature = "service")]
use crate::passes::attach::AttachError;
#[cfg(feature = "service")]
use crate::passes::load_locust::LocustError;
use crate::profile::cpu::CpuError;
use crate::profile::dhat::DhatError;
use crate::render::input::InputError;
#[cfg(feature = "service")]
use crate::serve::ServeError;
use crate::store::baseline::BaselineError;
use crate::store::{OutputError, RunError};
#[cfg(doc)]
use crate::workload::Registry;
use crate::workload::WorkloadError;

/// Parses the command line and runs it over the harness's workloads (a
/// [`Registry`] converts into a harness), then exits: 0 on success, 2 for
/// bad input, 1 for any other failure, 130 after Ctrl-C. The binary must
/// have [`crate::alloc::ProfkitAlloc`] as its global allocator for the heap
/// passes ([`crate::main!`] installs it).
pub fn main_with(harness: impl Into<Harness>) -> ! {
    let harness = harness.into();
    // Like other command-line tools, end quietly when the reader of our
    // output goes away (`profkit list | head`) instead of panicking on a
    // failed write to stdout.
    // SAFETY: setting a signal's disposition to its default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Before SQLite initialises: its memory goes through the allocator too.
    crate::db::sqlite_alloc::install();
    let cli = parse_cli(&harness);
    if wants_heap_profiling(&cli) {
        // Before any other thread starts.
        let on = match heap_sample_interval(&cli) {
            Some(interval) => crate::alloc::enable_sampled_heap_profiling(interval),
            None => crate::alloc::enable_heap_profiling(),
        };
        if let Err(e) = on {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    }
    // Ctrl-C ends the current run early but normally, so its files (a heap
    // profile, which dhat writes when its profiler is dropped, included)
    // are still written; a second Ctrl-C quits at once.
    let _ = ctrlc::set_handler(|| {
        if crate::measure::interrupted() {
            std::process::exit(130);
        }
        eprintln!("profkit: interrupted: finishing the current run and writing its files (Ctrl-C again to quit now)");
        crate::measure::interrupt();
    });
    if let Err(e) = dispatch::dispatch(cli, &harness) {
        eprintln!("Error: {}", one_line(&e));
        // Ctrl-C that cut the work short (a populate, say) is still 130.
        std::process::exit(if crate::measure::interrupted() {
            130
        } else {
            exit_code(&e)
        });
    }
    // The files are written; the exit status still says it was cut short.
    std::process::exit(if crate::measure::interrupted() {
        130
    } else {
        0
    });
}

/// Parses the command line. clap's own errors (a value its parser refuses,
/// an unknown or missing argument) print as one `Error: …` line and exit
/// 2, like profkit's; help and version print as clap's.
fn parse_cli(harness: &Harness) -> Cli {
    match harness.parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(HarnessError::Clap(e)) => match clap_error_line(&e) {
            Some(line) => {
                eprintln!("Error: {line}");
                std::process::exit(2);
            }
            None => e.exit(),
        },
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(2);
        }
    }
}

/// A clap error as one line without the `error: ` prefix (followed by
/// clap's usage line and `--help` hint when an argument is missing), or
/// `None` for help and version output (not errors).
pub fn clap_error_line(e: &clap::Error) -> Option<String> {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return None;
    }
    let rendered = e.render().to_string();
    let mut line = String::new();
    for part in rendered.lines().map(str::trim) {
        if part.starts_with("Usage:") || part.starts_with("For more information") {
            break;
        }
        if part.is_empty() {
            continue;
        }
        if !line.is_empty() {
            line.push_str(if part.starts_with("tip:") { "; " } else { " " });
        }
        line.push_str(part.strip_prefix("error: ").unwrap_or(part));
    }
    // Someone who left an argument out needs to see what the command
    // takes: keep clap's usage line and its `--help` hint below the error.
    if matches!(
        e.kind(),
        ErrorKind::MissingRequiredArgument | ErrorKind::MissingSubcommand
    ) {
        let usage = rendered
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("Usage:"))
            .map(str::trim_end)
            .filter(|l| !l.is_empty());
        for l in usage {
            line.push('\n');
            line.push_str(l);
        }
    }
    Some(line)
}

/// Whether the command profiles the heap in this process (then heap
/// profiling must be switched on first thing in `main`).
pub fn wants_heap_profiling(cli: &Cli) -> bool {
    // `leaks`: exact for the growth check, sampling for a soak run.
    match &cli.command {
        args::Command::Heap(_) | args::Command::HeapPass(_) | args::Command::Leaks(_) => true,
        // A server samples its heap unless told not to.
        #[cfg(feature = "service")]
        args::Command::Serve(a) => !a.no_heap_profile,
        #[cfg(feature = "service")]
        args::Command::Load(a) => !a.no_heap_profile,
        _ => false,
    }
}

/// How the command's heap profile records allocations: through profkit's
/// allocator with this mean sample interval (`profkit heap --sampled`), 0
/// ([`crate::alloc::sampler::EXACT`]) for every allocation (the default),
/// or `None` for dhat-rs's profiler (`--dhat`).
pub fn heap_sample_interval(cli: &Cli) -> Option<u64> {
    use crate::alloc::sampler::EXACT;
    match &cli.command {
        args::Command::Heap(a) if a.dhat => None,
        args::Command::Heap(a) if a.sampled => Some(a.sample_interval),
        // A soak run is timed: sampling, never exact.
        args::Command::Leaks(a) if a.soak.is_some() => Some(a.sample_interval),
        // So is a server, under load or not.
        #[cfg(feature = "service")]
        args::Command::Serve(a) => Some(a.heap_sample_interval),
        #[cfg(feature = "service")]
        args::Command::Load(a) => Some(a.heap_sample_interval),
        args::Command::Leaks(a) if a.dhat => None,
        _ => Some(EXACT),
    }
}

/// Bad input to `serve` or `load` (none without the `service` feature).
fn service_error(c: &(dyn std::error::Error + 'static)) -> bool {
    #[cfg(feature = "service")]
    {
        c.is::<ServeError>() || c.is::<LocustError>() || c.is::<AttachError>()
    }
    #[cfg(not(feature = "service"))]
    {
        let _ = c;
        false
    }
}

/// 2 for bad input (a bad flag value, an unknown name, a file that is not
/// what it should be), 1 for anything else.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    let bad_input = e.chain().any(|c| {
        c.is::<PlanError>()
            || c.is::<WorkloadError>()
            || c.is::<InputError>()
            || c.is::<DhatError>()
            || c.is::<SweepError>()
            || c.is::<StressError>()
            || c.is::<RateError>()
            || c.is::<BudgetError>()
            || c.is::<crate::passes::advise::AdviseError>()
            || c.is::<RunError>()
            || c.is::<BadTarget>()
            || c.is::<reports::WouldOverwrite>()
            || c.is::<NothingChecked>()
            || c.is::<export::NoCpuData>()
            || c.is::<crate::passes::bisect::BisectError>()
            || c.is::<export::ExportExists>()
            || c.is::<crate::analyze::compare::DifferentWorkloads>()
            || service_error(c)
            || matches!(
                c.downcast_ref::<CpuError>(),
                Some(CpuError::BadFrequency(_) | CpuError::TooFewSamples { .. })
            )
            || matches!(
                c.downcast_ref::<DbError>(),
                Some(
                    DbError::NotSqlite { .. }
                        | DbError::Foreign { .. }
                        | DbError::Locked { .. }
                        | DbError::InUse { .. }
                        | DbError::BadPath { .. }
                )
            )
            || matches!(
                c.downcast_ref::<OutputError>(),
                Some(
                    OutputError::Parse { .. }
                        | OutputError::Read { .. }
                        | OutputError::Invalid { .. }
                        | OutputError::WouldOverwrite { .. }
                        | OutputError::NotAFolder { .. }
                )
            )
            || matches!(
                c.downcast_ref::<BaselineError>(),
                Some(BaselineError::BadName(_) | BaselineError::Run(_))
            )
    });
    if bad_input {
        2
    } else {
        1
    }
}

/// The error and its causes on one line, leaving out a cause whose text an
/// outer message already quotes (library errors name their cause).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg.replace('\n', " ")
}
