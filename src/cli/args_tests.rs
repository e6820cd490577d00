//! Tests of the clap definitions.
use super::*;
use crate::passes::cpu::CpuPassOptions;
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
fn cpu_flags_become_options() {
    let cli = Cli::try_parse_from([
        "profkit",
        "cpu",
        "hot-loop",
        "--frequency",
        "99",
        "--inverted",
        "--ops",
        "100",
    ])
    .unwrap();
    let Command::Cpu(args) = cli.command else {
        panic!("not cpu")
    };
    let o = CpuPassOptions::from(&args);
    assert_eq!(o.cpu.frequency, Some(99));
    assert!(o.inverted && !o.per_thread);
    assert!(Cli::try_parse_from(["profkit", "cpu", "x", "--frequency", "0"]).is_err());
    assert!(Cli::try_parse_from(["profkit", "cpu", "x", "--frequency", "100000"]).is_err());
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
    assert!(Cli::try_parse_from(["profkit", "run", "x", "--rate", "fast"]).is_err());
    assert!(Cli::try_parse_from(["profkit", "stress", "x", "--slo", "p99>5ms"]).is_err());
    assert!(Cli::try_parse_from(["profkit", "stress", "x", "--max-errors", "lots"]).is_err());
    assert!(Cli::try_parse_from(["profkit", "sweep", "x", "--threads", "1,two"]).is_err());
}

#[test]
fn scale_flags_become_options() {
    let cli = Cli::try_parse_from(["profkit", "run", "noop", "--rate", "5k/s"]).unwrap();
    let Command::Run(args) = cli.command else {
        panic!("not run")
    };
    assert_eq!(args.rate, Some(OpsPerSec(5000.0)));
    let cli = Cli::try_parse_from([
        "profkit",
        "sweep",
        "search-like",
        "--rows",
        "1k,10k",
        "--ops",
        "20",
    ])
    .unwrap();
    let Command::Sweep(args) = cli.command else {
        panic!("not sweep")
    };
    assert_eq!(args.rows, vec![1000, 10_000]);
    assert_eq!(args.base_options().stop, Some(Stop::Ops(20)));
    let cli = Cli::try_parse_from([
        "profkit",
        "stress",
        "point-read",
        "--slo",
        "p95<2ms",
        "--max-errors",
        "0.5%",
        "--threads",
        "2",
    ])
    .unwrap();
    let Command::Stress(args) = cli.command else {
        panic!("not stress")
    };
    let o = stress::StressOptions::from(&args);
    assert_eq!(o.slo.limit, Nanos(2_000_000));
    assert_eq!(o.max_error_rate, 0.005);
    assert_eq!(o.base.threads, Some(2));
}

#[test]
fn clap_errors_become_one_line() {
    let line = |args: &[&str]| {
        let e = Cli::try_parse_from(args.iter().copied()).err().unwrap();
        super::super::clap_error_line(&e)
    };
    assert_eq!(
        line(&["profkit", "run", "point-read", "--rows", "-5"]).unwrap(),
        "invalid value '-5' for '--rows <ROWS>': '-5' is not a count (examples: 1000, 100k, 1m)"
    );
    let missing = line(&["profkit", "flamegraph"]).unwrap();
    let mut lines = missing.lines();
    assert_eq!(
        lines.next().unwrap(),
        "the following required arguments were not provided: <FILE>"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("Usage: profkit flamegraph"),
        "{missing}"
    );
    assert!(
        missing.ends_with("For more information, try '--help'."),
        "{missing}"
    );
    let bogus = line(&["profkit", "run", "point-read", "--bogus"]).unwrap();
    assert!(
        bogus.starts_with("unexpected argument '--bogus' found; tip: "),
        "{bogus}"
    );
    assert!(!bogus.contains('\n'));
    assert_eq!(line(&["profkit", "--help"]), None, "help is not an error");
    assert_eq!(line(&["profkit", "--version"]), None);
}

#[test]
fn sampled_heap_flags_parse() {
    let parse = |extra: &[&str]| {
        let mut v = vec!["profkit", "heap", "alloc-churn"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v)
    };
    let cli = parse(&["--sampled", "--sample-interval", "64KiB"]).unwrap();
    assert_eq!(crate::cli::heap_sample_interval(&cli), Some(65536));
    assert!(crate::cli::wants_heap_profiling(&cli));
    let cli = parse(&["--sampled"]).unwrap();
    assert_eq!(crate::cli::heap_sample_interval(&cli), Some(512 * 1024));
    // Exact by default: every allocation, through profkit's allocator.
    let cli = parse(&[]).unwrap();
    assert_eq!(crate::cli::heap_sample_interval(&cli), Some(0));
    // dhat-rs's profiler only when asked.
    let cli = parse(&["--dhat"]).unwrap();
    assert_eq!(crate::cli::heap_sample_interval(&cli), None);
    assert!(parse(&["--dhat", "--sampled"]).is_err());
    let leaks = |extra: &[&str]| {
        let mut v = vec!["profkit", "leaks", "leaky-cache"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).unwrap()
    };
    assert_eq!(crate::cli::heap_sample_interval(&leaks(&[])), Some(0));
    assert_eq!(crate::cli::heap_sample_interval(&leaks(&["--dhat"])), None);
    let pass = Cli::try_parse_from([
        "profkit",
        "heap-pass",
        "alloc-churn",
        "--into",
        "x",
        "--templates",
        "y",
        "--heap-ops",
        "1",
        "--leak-ops",
        "1",
        "--out",
        "z",
    ])
    .unwrap();
    assert_eq!(crate::cli::heap_sample_interval(&pass), Some(0));
    assert!(
        parse(&["--sample-interval", "64KiB"]).is_err(),
        "needs --sampled"
    );
    assert!(parse(&["--sampled", "--sample-interval", "0"]).is_err());
}
