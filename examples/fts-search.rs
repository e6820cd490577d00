//! Runs the built-in `fts-search` workload and prints its measurements:
//! `cargo run --release --example fts-search [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("fts-search");
}
