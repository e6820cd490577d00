//! Runs the built-in `n-plus-one-batched` workload and prints its measurements:
//! `cargo run --release --example n-plus-one-batched [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("n-plus-one-batched");
}
