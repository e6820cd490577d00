//! Runs the built-in `point-read` workload and prints its measurements:
//! `cargo run --release --example point-read [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("point-read");
}
