//! Runs the built-in `random-emails` workload and prints its measurements:
//! `cargo run --release --example random-emails [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("random-emails");
}
