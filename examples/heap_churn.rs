// Allocation-heavy workload (`alloc-churn`) with the plain system
// allocator: the baseline of `scripts/bench-heap.sh`. Its twin
// `heap_churn_profkit` is the same program with profkit's allocator.
//
// Usage: `heap_churn <threads> <ops> <repeats>`; prints ops/s per repeat.

use profkit::measure::{self, Progress, RunOptions, RunPlan, Stop, Warmup};

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or(0))
        .collect();
    let threads = args.first().copied().unwrap_or(1).max(1) as usize;
    let ops = args.get(1).copied().unwrap_or(200_000).max(1);
    let repeats = args.get(2).copied().unwrap_or(1).max(1);
    let workload = profkit::workload::by_name("alloc-churn")?;
    let plan = RunPlan::resolve(
        &RunOptions {
            threads: Some(threads),
            stop: Some(Stop::Ops(ops)),
            warmup: Some(Warmup::Ops(ops / 10)),
            ..RunOptions::default()
        },
        workload.defaults(),
    )?;
    for _ in 0..repeats {
        let r = measure::measure(workload.as_ref(), &plan, &Progress::default())?;
        println!("{:.0}", r.throughput.0);
    }
    Ok(())
}
