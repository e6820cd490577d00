//! The heap-stats helper: needs profkit's allocator in this test binary. One
//! test only, since dhat counts every thread's allocations.

#[global_allocator]
static ALLOC: profkit::alloc::ProfkitAlloc = profkit::alloc::ProfkitAlloc;

use profkit::profile::heap::measure_heap;

#[test]
fn measure_heap_counts_allocations_and_leftovers() {
    let (len, stats) = measure_heap(|| {
        let v = vec![1u8; 10_000];
        v.len()
    })
    .unwrap();
    assert_eq!(len, 10_000);
    assert!(stats.total_bytes >= 10_000, "{stats:?}");
    assert!(stats.max_bytes >= 10_000, "{stats:?}");
    assert_eq!(stats.curr_bytes, 0, "nothing left behind: {stats:?}");

    let (kept, stats) = measure_heap(|| vec![0u64; 1000]).unwrap();
    assert!(
        stats.curr_bytes >= 8000,
        "the result is still live: {stats:?}"
    );
    drop(kept);

    // SQLite's memory counts too.
    let (_, stats) = measure_heap(|| {
        let c = profkit::db::sqlite_alloc::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(100000));")
            .unwrap();
    })
    .unwrap();
    assert!(profkit::db::sqlite_alloc::installed());
    assert!(stats.total_bytes > 100_000, "{stats:?}");
}
