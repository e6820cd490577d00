//! Runs the built-in `aggregate` workload and prints its measurements:
//! `cargo run --release --example aggregate [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("aggregate");
}
