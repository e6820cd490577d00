//! Cost of SQL instrumentation: the same operations on a DatabaseManager
//! with the trace hook on and off, alternating, in one process. "Off" means
//! the hook is not installed, which is exactly an uninstrumented
//! connection; an off-vs-off pair shows the noise floor.
//!
//! `cargo bench --bench sql_overhead` (PROFKIT_BENCH_ROWS, PROFKIT_BENCH_ROUNDS)

use std::time::Instant;

use profkit::db::{trace, DatabaseManager, DbConfig, Scope};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(path: &std::path::Path, sql_trace: bool) -> DatabaseManager {
    let mut config = DbConfig::new(path);
    config.sql_trace = sql_trace;
    DatabaseManager::open(config).unwrap()
}

/// Nanoseconds per operation of `n` operations.
fn time(db: &DatabaseManager, random_emails: bool, n: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let shape = db.shape();
    let max = db.max_id();
    let start = Instant::now();
    for _ in 0..n {
        if random_emails {
            std::hint::black_box(db.query_random_emails(&mut rng, 100).unwrap());
        } else {
            let id = rng.random_range(1..=max);
            std::hint::black_box(
                db.get_email(Scope::Tenant(shape.tenant_of(id)), id)
                    .unwrap(),
            );
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    trace::take_thread_tallies();
    ns
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rows = env("PROFKIT_BENCH_ROWS", 100_000);
    let rounds = env("PROFKIT_BENCH_ROUNDS", 7);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.db");
    open(&path, false).populate(rows, 42).unwrap();
    let off = open(&path, false);
    let off2 = open(&path, false);
    let on = open(&path, true);
    println!("sql_overhead: {rows} rows, {rounds} alternating rounds, medians");
    for (name, random, n) in [
        ("point-read", false, 50_000),
        ("random-emails(100)", true, 500),
    ] {
        // Warm all three connections' caches.
        for db in [&off, &off2, &on] {
            time(db, random, n / 5);
        }
        let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
        for r in 0..rounds {
            let order: [usize; 3] = if r % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
            for i in order {
                match i {
                    0 => a.push(time(&off, random, n)),
                    1 => b.push(time(&off2, random, n)),
                    _ => c.push(time(&on, random, n)),
                }
            }
        }
        let (off_ns, off2_ns, on_ns) = (median(a), median(b), median(c));
        println!(
            "{name:<20} off {off_ns:>10.0} ns  off again {off2_ns:>10.0} ns ({:.3}x)  on {on_ns:>10.0} ns ({:.3}x)",
            off2_ns / off_ns,
            on_ns / off_ns
        );
    }
}
