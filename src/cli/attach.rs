//! `profkit attach URL`: arguments and dispatch.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{parse_count_arg, parse_duration_arg};
use super::serve::{locust_load, print_notes_and_folder};

use crate::passes::attach::{self, AttachOptions};
use crate::store;

/// `profkit attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The running service Locust loads (http://127.0.0.1:PORT; loopback only).
    pub url: String,
    /// An instance to profile (repeat for replicas; default: URL).
    #[arg(long = "target", value_name = "URL")]
    pub targets: Vec<String>,
    /// Length of the load and of the profiling window (10s, 1m).
    #[arg(long, value_parser = parse_duration_arg, default_value = attach::defaults::DURATION)]
    pub duration: Duration,
    /// Simulated users (over all workers).
    #[arg(long, value_parser = parse_count_arg, default_value_t = attach::defaults::USERS)]
    pub users: u64,
    /// Users started per second.
    #[arg(long, default_value_t = attach::defaults::SPAWN_RATE)]
    pub spawn_rate: f64,
    /// Locust worker processes.
    #[arg(long, default_value_t = attach::defaults::WORKERS)]
    pub workers: usize,
    /// Your locustfile (default: one generated from --mix, or from the routes /debug/profkit/endpoints has seen).
    #[arg(long, conflicts_with = "mix")]
    pub locustfile: Option<PathBuf>,
    /// JSON object of routes and weights, e.g. {"GET /orders/{id}": 10, "POST /orders": 1}.
    #[arg(long)]
    pub mix: Option<PathBuf>,
    /// Folder of run folders.
    #[arg(long, default_value = store::defaults::OUT_DIR)]
    pub out: PathBuf,
}

impl From<AttachArgs> for AttachOptions {
    fn from(a: AttachArgs) -> Self {
        AttachOptions {
            url: a.url,
            targets: a.targets,
            load: locust_load(a.workers, a.users, a.spawn_rate, a.duration),
            locustfile: a.locustfile,
            mix: a.mix,
            out_dir: a.out,
            ..AttachOptions::default()
        }
    }
}

pub(super) fn attach(a: AttachArgs) -> anyhow::Result<()> {
    let run = attach::run(&AttachOptions::from(a))?;
    let (s, f) = (&run.summary, &run.summary.figures);
    println!(
        "Locust {} · {} workers · {} users · {} against {}",
        f.locust_version, f.workers, f.users, f.duration, s.url
    );
    for e in f.endpoints.iter().chain(std::iter::once(&f.aggregated)) {
        println!(
            "  {:40} {:>8} requests {:>6} failed  p50 {:>5.0} ms  p99 {:>5.0} ms",
            // A generated locustfile names requests "GET /path" already.
            if e.name.starts_with(&format!("{} ", e.method)) {
                e.name.clone()
            } else {
                format!("{} {}", e.method, e.name).trim().to_string()
            },
            e.requests,
            e.failures,
            e.p50_ms,
            e.p99_ms
        );
    }
    for inst in &s.instances {
        for p in &inst.pulls {
            let status = serde_json::to_value(&p.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            match &p.detail {
                Some(d) => println!("  {:9} {:12} {} ({d})", p.what, status, p.url),
                None => println!("  {:9} {:12} {}", p.what, status, p.url),
            }
        }
    }
    print_notes_and_folder(&s.notes, &run.dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::args::{Cli, Command};
    use clap::Parser as _;

    #[test]
    fn attach_flags_become_options() {
        let cli = Cli::try_parse_from([
            "profkit",
            "attach",
            "http://127.0.0.1:8080",
            "--target",
            "http://127.0.0.1:8081",
            "--target",
            "http://127.0.0.1:8082",
            "--users",
            "2k",
            "--duration",
            "3s",
        ])
        .unwrap();
        let Command::Attach(a) = cli.command else {
            panic!("not attach")
        };
        let o = super::AttachOptions::from(a);
        assert_eq!(o.targets.len(), 2);
        assert_eq!((o.load.users, o.load.duration.as_secs()), (2000, 3));
        assert_eq!(o.load.workers, super::attach::defaults::WORKERS);
        assert!(Cli::try_parse_from(["profkit", "attach"]).is_err());
        assert!(Cli::try_parse_from([
            "profkit",
            "attach",
            "http://x:1",
            "--mix",
            "m",
            "--locustfile",
            "f"
        ])
        .is_err());
    }
}
