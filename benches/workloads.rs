//! profkit's command line as a `cargo bench` target, the way criterion and
//! divan benches run: `cargo bench --bench workloads` runs the main job
//! (`profile` of every built-in), `cargo bench --bench workloads -- cpu
//! n-plus-one` any other command. Register your own workloads the same way
//! in a bench of your crate.

profkit::main!(profkit::Harness::builtins());
