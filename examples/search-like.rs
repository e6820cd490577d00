//! Runs the built-in `search-like` workload and prints its measurements:
//! `cargo run --release --example search-like [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("search-like");
}
