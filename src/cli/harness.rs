//! [`Harness`]: the whole profkit command line for any binary, over the
//! workloads it registers — an example, a `[[bench]] harness = false`
//! target, or your own `main.rs` (see [`crate::main!`]).

use std::ffi::OsString;

use crate::passes::{Probe, Probes};
use crate::workload::{Registry, Workload, WorkloadError};

/// A binary's profkit command line: `list run cpu heap leaks sql sweep
/// stress profile check compare report flamegraph`, over the workloads
/// registered here exactly as over profkit's built-ins.
///
/// ```no_run
/// use profkit::workload::from_fn;
///
/// profkit::main!(profkit::Harness::new().register(from_fn(
///     "sort",
///     |env| Ok(env.rows),
///     |n, ctx| {
///         use rand::Rng;
///         let mut v: Vec<u64> = (0..*n).map(|_| ctx.rng.random()).collect();
///         v.sort_unstable();
///         Ok(())
///     },
/// )));
/// ```
///
/// With no subcommand the binary runs `profile` (of its default workload,
/// when it has one); `cargo bench`'s trailing `--bench` is ignored.
#[derive(Clone, Debug, Default)]
pub struct Harness {
    registry: Registry,
    /// The first registration error, reported when the harness runs.
    error: Option<String>,
    default_workload: Option<String>,
    /// Instrumentation the SQL passes open (see [`Harness::probe`]).
    probes: Probes,
}

impl Harness {
    /// A harness with no workloads.
    pub fn new() -> Harness {
        Harness::default()
    }

    /// A harness with profkit's built-in workloads (the `profkit` binary).
    pub fn builtins() -> Harness {
        Harness::from(Registry::builtins())
    }

    /// Registers `ctor`'s workload under `name`, which its `name()` must
    /// return. A name registered twice is an error when the harness runs.
    pub fn workload(
        mut self,
        name: &str,
        ctor: impl Fn() -> Box<dyn Workload> + Send + Sync + 'static,
    ) -> Harness {
        if let Err(e) = self.registry.register(name, ctor) {
            self.error.get_or_insert(e.to_string());
        }
        self
    }

    /// Registers a workload under its own name; each run gets a fresh clone
    /// (a [`crate::workload::FnWorkload`] clones without its state).
    pub fn register<W: Workload + Clone + 'static>(self, workload: W) -> Harness {
        let name = workload.name().to_string();
        self.workload(&name, move || Box::new(workload.clone()))
    }

    /// The workload the binary runs when none is named: with no subcommand
    /// it runs `profile` of this one, and `cpu`, `run`, … without a name
    /// run it (what each built-in example does).
    pub fn default_workload(mut self, name: &str) -> Harness {
        self.default_workload = Some(name.to_string());
        self
    }

    /// Adds a probe: instrumentation outside the passes' own data, opened
    /// while the SQL pass of `profile` or `sql` runs a workload, whose
    /// findings join the run's `findings.json` (and which names the
    /// endpoint the run served, when it served one). For an async service
    /// with profkit's tracing layer installed, [`super::ServiceProbe`]: its
    /// N+1 over sqlx, which profkit's rusqlite hook cannot see, becomes a
    /// finding of `profile`.
    pub fn probe(mut self, probe: impl Probe + 'static) -> Harness {
        self.probes.push(std::sync::Arc::new(probe));
        self
    }

    /// The probes added with [`Harness::probe`].
    pub fn probes(&self) -> &Probes {
        &self.probes
    }

    /// The registered workloads.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Parses `argv` (program name first) into the command line it stands
    /// for: `--bench` dropped, `profile` when no subcommand is given, the
    /// default workload filled in where a name is missing. Errors are
    /// registration errors and clap's own (help and version included).
    pub fn parse(&self, argv: Vec<OsString>) -> Result<super::Cli, HarnessError> {
        if let Some(e) = &self.error {
            return Err(HarnessError::Registry(e.clone()));
        }
        if let Some(name) = &self.default_workload {
            self.registry
                .ctor(name)
                .map_err(|e| HarnessError::Registry(e.to_string()))?;
        }
        let argv = self.complete(argv);
        use clap::Parser as _;
        match super::Cli::try_parse_from(&argv) {
            Err(e)
                if e.kind() == clap::error::ErrorKind::MissingRequiredArgument
                    && self.default_workload.is_some() =>
            {
                let name = self.default_workload.clone().unwrap_or_default();
                let mut with_name = argv.clone();
                with_name.insert(2.min(with_name.len()), name.into());
                super::Cli::try_parse_from(&with_name).map_err(|_| HarnessError::Clap(e))
            }
            other => other.map_err(HarnessError::Clap),
        }
    }

    /// `argv` with cargo bench's flag dropped and the implied subcommand.
    fn complete(&self, argv: Vec<OsString>) -> Vec<OsString> {
        let mut argv: Vec<OsString> = argv.into_iter().filter(|a| a != "--bench").collect();
        if argv.is_empty() {
            argv.push("profkit".into());
        }
        // `example -- cpu` run by hand, as one would through `cargo run`.
        if argv.get(1).is_some_and(|a| a == "--") {
            argv.remove(1);
        }
        let first = argv.get(1).and_then(|a| a.to_str()).map(str::to_string);
        let implied = match first.as_deref() {
            None => true,
            Some("-h" | "--help" | "-V" | "--version") => false,
            Some(flag) => flag.starts_with('-'),
        };
        if implied {
            argv.insert(1, "profile".into());
        }
        let is_profile = argv.get(1).is_some_and(|a| a == "profile");
        if let (true, Some(name)) = (is_profile, &self.default_workload) {
            if !argv.iter().any(|a| a == "--workloads") {
                argv.push("--workloads".into());
                argv.push(name.into());
            }
        }
        argv
    }

    /// Runs the command line of this process over the registered workloads
    /// and exits (see [`super::main_with`]).
    pub fn run(self) -> ! {
        super::main_with(self)
    }
}

impl From<Registry> for Harness {
    fn from(registry: Registry) -> Harness {
        Harness {
            registry,
            error: None,
            default_workload: None,
            probes: Probes::default(),
        }
    }
}

/// Why a harness could not start.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A workload registered twice, or a default that is not registered.
    #[error("{0}")]
    Registry(String),
    /// The command line did not parse (or asked for help or the version).
    #[error("{0}")]
    Clap(clap::Error),
}

impl From<WorkloadError> for HarnessError {
    fn from(e: WorkloadError) -> HarnessError {
        HarnessError::Registry(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::super::args::Command;
    use super::*;
    use crate::workload::by_name;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("example")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn example() -> Harness {
        Harness::builtins().default_workload("n-plus-one")
    }

    #[test]
    fn no_subcommand_profiles_the_default_workload() {
        let cli = example().parse(argv(&[])).unwrap();
        let Command::Profile(p) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(p.workloads, ["n-plus-one"]);
        let cli = example().parse(argv(&["--rows", "500"])).unwrap();
        let Command::Profile(p) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(
            (p.workloads.as_slice(), p.run.rows),
            (&["n-plus-one".to_string()][..], Some(500))
        );
        // Without a default, `profile` of everything registered.
        let Command::Profile(p) = Harness::builtins().parse(argv(&[])).unwrap().command else {
            panic!()
        };
        assert!(p.workloads.is_empty());
    }

    #[test]
    fn a_subcommand_without_a_name_runs_the_default_and_cargo_bench_flag_is_dropped() {
        let cli = example()
            .parse(argv(&["--", "cpu", "--frequency", "99", "--bench"]))
            .unwrap();
        let Command::Cpu(c) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(c.workload, "n-plus-one");
        let cli = example().parse(argv(&["cpu", "point-read"])).unwrap();
        let Command::Cpu(c) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(c.workload, "point-read");
        // No default: the missing name stays clap's error.
        let e = Harness::builtins().parse(argv(&["cpu"])).unwrap_err();
        assert!(matches!(e, HarnessError::Clap(_)), "{e}");
    }

    #[test]
    fn registration_errors_are_reported_when_the_harness_runs() {
        let h = Harness::new()
            .workload("noop", || by_name("noop").unwrap())
            .workload("noop", || by_name("noop").unwrap());
        let e = h.parse(argv(&["list"])).unwrap_err().to_string();
        assert!(e.contains("two workloads are registered as 'noop'"), "{e}");
        let e = Harness::new()
            .default_workload("nope")
            .parse(argv(&["list"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown workload 'nope'"), "{e}");
    }
}
