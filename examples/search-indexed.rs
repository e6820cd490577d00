//! Runs the built-in `search-indexed` workload and prints its measurements:
//! `cargo run --release --example search-indexed [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("search-indexed");
}
