//! Runs the built-in `mixed` workload and prints its measurements:
//! `cargo run --release --example mixed [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("mixed");
}
