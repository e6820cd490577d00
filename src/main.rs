//! The `profkit` binary: a thin layer over the library.

mod cli;
mod commands;

use clap::Parser;

/// profkit's allocator: the system allocator, or dhat's when this process
/// profiles its heap (`profkit heap`, `profkit leaks`). Free when off.
#[global_allocator]
static ALLOC: profkit::alloc::ProfkitAlloc = profkit::alloc::ProfkitAlloc;

fn main() {
    // Like other command-line tools, end quietly when the reader of our
    // output goes away (`profkit list | head`) instead of panicking on a
    // failed write to stdout.
    // SAFETY: setting a signal's disposition to its default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Before SQLite initialises: its memory goes through ALLOC too.
    profkit::db::sqlite_alloc::install();
    let cli = cli::Cli::parse();
    if commands::wants_heap_profiling(&cli) {
        // Before any other thread starts.
        if let Err(e) = profkit::alloc::enable_heap_profiling() {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    }
    // Ctrl-C ends the current run early but normally, so its files (a heap
    // profile, which dhat writes when its profiler is dropped, included)
    // are still written; a second Ctrl-C quits at once.
    let _ = ctrlc::set_handler(|| {
        if profkit::measure::interrupted() {
            std::process::exit(130);
        }
        eprintln!("profkit: interrupted: finishing the current run and writing its files (Ctrl-C again to quit now)");
        profkit::measure::interrupt();
    });
    if let Err(e) = commands::dispatch(cli) {
        eprintln!("Error: {}", one_line(&e));
        std::process::exit(commands::exit_code(&e));
    }
    if profkit::measure::interrupted() {
        // The files are written; the exit status still says it was cut short.
        std::process::exit(130);
    }
}

/// The error and its causes on one line, leaving out a cause whose text an
/// outer message already quotes (library errors name their cause).
fn one_line(e: &anyhow::Error) -> String {
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
