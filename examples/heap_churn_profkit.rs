//! `heap_churn` with profkit's allocator installed and heap profiling off:
//! what every profkit binary pays when not profiling the heap.

#[global_allocator]
static ALLOC: profkit::alloc::ProfkitAlloc = profkit::alloc::ProfkitAlloc;

include!("heap_churn.rs");
