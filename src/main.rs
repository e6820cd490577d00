//! The `profkit` binary: the library's command line over the built-in
//! workloads.

profkit::main!(profkit::Harness::builtins());
