//! The `profkit` binary: the library's command line over the built-in
//! workloads.

/// profkit's allocator: the system allocator, or dhat's when this process
/// profiles its heap (`profkit heap`, `profkit leaks`). Free when off.
#[global_allocator]
static ALLOC: profkit::alloc::ProfkitAlloc = profkit::alloc::ProfkitAlloc;

fn main() {
    profkit::cli::main_with(profkit::workload::Registry::builtins())
}
