//! Runs the built-in `n-plus-one` workload and prints its measurements:
//! `cargo run --release --example n-plus-one [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("n-plus-one");
}
