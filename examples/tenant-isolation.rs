//! Runs the built-in `tenant-isolation` workload and prints its measurements:
//! `cargo run --release --example tenant-isolation [-- profkit run flags]`.
//! See `custom_workload.rs` for measuring your own code the same way.

fn main() {
    profkit::cli::example_main("tenant-isolation");
}
