//! `profkit serve` and `profkit load --locust`: arguments and dispatch.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::args::{parse_count_arg, parse_duration_arg, parse_size_arg};

use crate::passes::load_locust::{self as locust, LocustOptions};
use crate::passes::locust::Load;
use crate::serve::{self as server, ServeOptions, Server};
use crate::store;

/// `profkit serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback unless --allow-remote; port 0 picks a free one).
    #[arg(long, default_value = server::defaults::ADDR)]
    pub addr: SocketAddr,
    /// Emails to populate a new database with.
    #[arg(long, value_parser = parse_count_arg, default_value_t = server::defaults::ROWS)]
    pub rows: u64,
    /// Database file (created and populated if empty; default: a temporary one).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Allow listening on a non-loopback address (profiles and SQL text become reachable from other hosts).
    #[arg(long)]
    pub allow_remote: bool,
    /// Do not sample the heap (/debug/pprof/heap then answers 501).
    #[arg(long)]
    pub no_heap_profile: bool,
    /// Mean bytes allocated between heap samples (e.g. 512KiB, 64k, 1MiB).
    #[arg(long, value_parser = parse_size_arg, default_value = "512KiB", conflicts_with = "no_heap_profile")]
    pub heap_sample_interval: u64,
}

impl From<&ServeArgs> for ServeOptions {
    fn from(a: &ServeArgs) -> Self {
        ServeOptions {
            addr: a.addr,
            rows: a.rows,
            db: a.db.clone(),
            allow_remote: a.allow_remote,
        }
    }
}

/// `profkit load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Drive the server with Locust in distributed mode (the one engine so far; required).
    #[arg(long, required = true)]
    pub locust: bool,
    /// Locust worker processes.
    #[arg(long, default_value_t = locust::defaults::WORKERS)]
    pub workers: usize,
    /// Simulated users (over all workers).
    #[arg(long, value_parser = parse_count_arg, default_value_t = locust::defaults::USERS)]
    pub users: u64,
    /// Users started per second.
    #[arg(long, default_value_t = locust::defaults::SPAWN_RATE)]
    pub spawn_rate: f64,
    /// Length of the run (10s, 2m).
    #[arg(long, value_parser = parse_duration_arg, default_value = locust::defaults::DURATION)]
    pub duration: Duration,
    /// Emails in the server's database.
    #[arg(long, value_parser = parse_count_arg, default_value_t = locust::defaults::ROWS)]
    pub rows: u64,
    /// JSON file of task weights, e.g. {"read_email": 10, "insert": 2}; unnamed tasks keep their default weight.
    #[arg(long)]
    pub mix: Option<PathBuf>,
    /// Folder of run folders.
    #[arg(long, default_value = store::defaults::OUT_DIR)]
    pub out: PathBuf,
    /// Do not sample the heap (no heap.pb.gz in the run folder).
    #[arg(long)]
    pub no_heap_profile: bool,
    /// Mean bytes allocated between heap samples (e.g. 512KiB, 64k, 1MiB).
    #[arg(long, value_parser = parse_size_arg, default_value = "512KiB", conflicts_with = "no_heap_profile")]
    pub heap_sample_interval: u64,
}

pub(super) fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let options = ServeOptions::from(&a);
    let server = Server::bind(&options)?;
    let addr = server.local_addr();
    if !addr.ip().is_loopback() {
        eprintln!(
            "profkit serve: WARNING: listening on {addr}, a non-loopback address: other hosts can read /debug/pprof and /debug/profkit/sql"
        );
    }
    eprintln!("profkit serve: listening on http://{addr} (Ctrl-C or SIGTERM to stop)");
    let summary = server.run()?;
    eprintln!(
        "profkit serve: stopped after {} requests; database closed",
        summary.requests
    );
    Ok(())
}

pub(super) fn load(a: LoadArgs) -> anyhow::Result<()> {
    let options = LocustOptions {
        load: locust_load(a.workers, a.users, a.spawn_rate, a.duration),
        rows: a.rows,
        mix: a.mix,
        out_dir: a.out,
        ..LocustOptions::default()
    };
    let run = locust::run(&options, crate::serve::locust::start)?;
    print!("{}", locust::table(&run.summary));
    print_notes_and_folder(&run.summary.notes, &run.dir);
    Ok(())
}

/// The Locust load of `profkit load --locust` and of `profkit attach`, from
/// their flags of the same names.
pub(super) fn locust_load(workers: usize, users: u64, spawn_rate: f64, duration: Duration) -> Load {
    Load {
        workers,
        users,
        spawn_rate,
        duration,
    }
}

/// The end of a Locust-driven command's output: its notes on stderr, then
/// the run folder.
pub(super) fn print_notes_and_folder(notes: &[String], dir: &Path) {
    for note in notes {
        eprintln!("note: {note}");
    }
    println!("run folder: {}", dir.display());
}

#[cfg(test)]
mod tests {
    use super::super::args::{Cli, Command};
    use super::*;
    use clap::Parser as _;

    #[test]
    fn serve_flags_become_options() {
        let cli =
            Cli::try_parse_from(["profkit", "serve", "--addr", "127.0.0.1:0", "--rows", "1k"])
                .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        let o = ServeOptions::from(&a);
        assert_eq!((o.addr.port(), o.rows, o.allow_remote), (0, 1000, false));
        let cli = Cli::try_parse_from(["profkit", "serve"]).unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(a.addr.to_string(), server::defaults::ADDR);
        assert!(Cli::try_parse_from(["profkit", "serve", "--addr", "localhost"]).is_err());
    }

    #[test]
    fn load_needs_locust_and_parses_sizes() {
        assert!(Cli::try_parse_from(["profkit", "load"]).is_err());
        let cli = Cli::try_parse_from([
            "profkit",
            "load",
            "--locust",
            "--workers",
            "3",
            "--users",
            "2k",
            "--duration",
            "2m",
        ])
        .unwrap();
        let Command::Load(a) = cli.command else {
            panic!("not load")
        };
        assert_eq!((a.workers, a.users), (3, 2000));
        assert_eq!(a.duration, Duration::from_secs(120));
        assert_eq!(a.spawn_rate, locust::defaults::SPAWN_RATE);
    }
}
