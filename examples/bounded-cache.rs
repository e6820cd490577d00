//! Runs the built-in `bounded-cache` workload and prints its measurements:
//! `cargo run --release --example bounded-cache [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("bounded-cache");
}
