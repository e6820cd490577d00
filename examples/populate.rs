//! Runs the built-in `populate` workload and prints its measurements:
//! `cargo run --release --example populate [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("populate");
}
