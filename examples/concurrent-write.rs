//! Runs the built-in `concurrent-write` workload and prints its measurements:
//! `cargo run --release --example concurrent-write [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("concurrent-write");
}
