//! Runs the built-in `leaky-cache` workload and prints its measurements:
//! `cargo run --release --example leaky-cache [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("leaky-cache");
}
