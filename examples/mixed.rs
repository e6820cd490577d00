//! The built-in `mixed` workload under profkit's full harness.
//!
//! `cargo run --release --example mixed` profiles it: a measured run, CPU
//! profile, SQL trace, heap profile and leak check, then its findings;
//! results land in `profiles/` and `flamegraphs/`. Any profkit command
//! may follow `--` (`-- cpu --frequency 499`, `-- run --rows 10k`), with
//! this workload when it names none. See `own_code.rs` for your own code.

profkit::main!(profkit::Harness::builtins().default_workload("mixed"));
