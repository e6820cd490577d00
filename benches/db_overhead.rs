//! DatabaseManager against a plain rusqlite loop doing the same work in the
//! same process: populate 100k rows, then 10k point reads. Runs alternate
//! (A, B, A, B, …) and the ratio of medians is reported, so both sides see
//! the same machine state.
//!
//! `cargo bench --bench db_overhead` (PROFKIT_BENCH_ROWS, PROFKIT_BENCH_ROUNDS to change sizes)

use std::time::{Duration, Instant};

use profkit::db::data::{Generator, Shape};
use profkit::db::{schema, DatabaseManager, DbConfig, Scope};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{params, Connection};

const INSERT: &str = "INSERT INTO emails (tenant_id, mailbox_id, sender, recipients, subject, body, \
     sent_at, received_at, size, flags, labels) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const GET: &str = "SELECT id, tenant_id, mailbox_id, sender, recipients, subject, body, sent_at, \
     received_at, size, flags, labels FROM emails WHERE id = ?1 AND tenant_id = ?2";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn raw_connection(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA cache_size = -65536; PRAGMA mmap_size = 268435456;
         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;",
    )
    .unwrap();
    conn
}

/// The same load as `DatabaseManager::populate`, written as a plain loop.
fn raw_populate(path: &std::path::Path, rows: u64) -> Duration {
    let start = Instant::now();
    let mut conn = raw_connection(path);
    let shape = Shape::for_rows(rows);
    conn.execute_batch(schema::TABLES).unwrap();
    conn.execute_batch("PRAGMA synchronous = OFF").unwrap();
    let tx = conn.transaction().unwrap();
    for t in 1..=shape.tenants as i64 {
        tx.execute(
            "INSERT INTO tenants (id, name) VALUES (?1, ?2)",
            params![t, format!("tenant{t}")],
        )
        .unwrap();
        for n in 0..shape.users_per_tenant {
            let id = shape.user_id(t, n);
            tx.execute(
                "INSERT INTO users (id, tenant_id, address, display_name) VALUES (?1, ?2, ?3, ?4)",
                params![
                    id,
                    t,
                    shape.user_address(t, n),
                    format!("User {n} of tenant {t}")
                ],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO mailboxes (id, user_id, name) VALUES (?1, ?2, 'INBOX')",
                params![2 * (id - 1) + 1, id],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO mailboxes (id, user_id, name) VALUES (?1, ?2, 'Archive')",
                params![2 * (id - 1) + 2, id],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    let mut generator = Generator::new(shape, 42);
    let mut next = 1u64;
    while next <= rows {
        let end = (next + 10_000).min(rows + 1);
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx.prepare_cached(INSERT).unwrap();
            for id in next..end {
                let e = generator.email(id as i64);
                let size = (e.subject.len() + e.body.len()) as i64;
                stmt.execute(params![
                    e.tenant_id,
                    e.mailbox_id,
                    e.sender,
                    e.recipients,
                    e.subject,
                    e.body,
                    e.sent_at,
                    e.received_at,
                    size,
                    e.flags,
                    e.labels
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
        next = end;
    }
    conn.execute_batch("INSERT INTO emails_fts(emails_fts) VALUES ('rebuild')")
        .unwrap();
    conn.execute_batch(schema::INDEXES).unwrap();
    conn.execute_batch("ANALYZE; PRAGMA synchronous = NORMAL")
        .unwrap();
    start.elapsed()
}

fn manager_populate(path: &std::path::Path, rows: u64) -> Duration {
    let start = Instant::now();
    let db = DatabaseManager::open(DbConfig::new(path)).unwrap();
    db.populate(rows, 42).unwrap();
    start.elapsed()
}

/// Point reads on one connection. `hoisted`: the statement is prepared once
/// outside the loop; otherwise each read looks it up with `prepare_cached`,
/// as a function called per request does.
fn raw_reads(conn: &Connection, shape: Shape, max: i64, n: u64, hoisted: bool) -> Duration {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let start = Instant::now();
    let mut outer = hoisted.then(|| conn.prepare_cached(GET).unwrap());
    for _ in 0..n {
        let id = rng.random_range(1..=max);
        let mut per_call;
        let stmt = match outer.as_mut() {
            Some(s) => s,
            None => {
                per_call = conn.prepare_cached(GET).unwrap();
                &mut per_call
            }
        };
        let e = stmt
            .query_row(params![id, shape.tenant_of(id)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(11)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, i64>(10)?,
                ))
            })
            .unwrap();
        std::hint::black_box(e);
    }
    start.elapsed()
}

fn manager_reads(db: &DatabaseManager, n: u64) -> Duration {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let shape = db.shape();
    let max = db.max_id();
    let start = Instant::now();
    for _ in 0..n {
        let id = rng.random_range(1..=max);
        std::hint::black_box(
            db.get_email(Scope::Tenant(shape.tenant_of(id)), id)
                .unwrap(),
        );
    }
    start.elapsed()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(what: &str, raw: &mut [f64], manager: &mut [f64], unit: &str) {
    let (r, m) = (median(raw), median(manager));
    let spread = |v: &[f64]| 100.0 * (v[v.len() - 1] - v[0]) / median(&mut v.to_vec());
    println!(
        "{what:<28} raw {r:>10.3} {unit}  manager {m:>10.3} {unit}  ratio {:.3}x  (spread raw {:.1} %, manager {:.1} %)",
        m / r,
        spread(raw),
        spread(manager)
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful either.
    let rows = env("PROFKIT_BENCH_ROWS", 100_000);
    let rounds = env("PROFKIT_BENCH_ROUNDS", 5) as usize;
    let reads = env("PROFKIT_BENCH_READS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let (mut pop_raw, mut pop_mgr, mut rd_raw, mut rd_mgr) = (vec![], vec![], vec![], vec![]);
    let mut rd_hoisted = vec![];
    for round in 0..rounds {
        let raw_path = dir.path().join(format!("raw-{round}.db"));
        let mgr_path = dir.path().join(format!("mgr-{round}.db"));
        // Alternate which side goes first.
        if round % 2 == 0 {
            pop_raw.push(raw_populate(&raw_path, rows).as_secs_f64());
            pop_mgr.push(manager_populate(&mgr_path, rows).as_secs_f64());
        } else {
            pop_mgr.push(manager_populate(&mgr_path, rows).as_secs_f64());
            pop_raw.push(raw_populate(&raw_path, rows).as_secs_f64());
        }
        let mut config = DbConfig::new(&mgr_path);
        // For measuring the tuning itself: PROFKIT_BENCH_CACHE_KIB=2000 PROFKIT_BENCH_MMAP=0
        // gives SQLite's defaults.
        config.cache_kib = env("PROFKIT_BENCH_CACHE_KIB", config.cache_kib.into()) as u32;
        config.mmap_bytes = env("PROFKIT_BENCH_MMAP", config.mmap_bytes);
        let db = DatabaseManager::open(config).unwrap();
        let conn = raw_connection(&raw_path);
        let (shape, max) = (db.shape(), db.max_id());
        // Warm both caches, then measure alternately.
        raw_reads(&conn, shape, max, reads, false);
        manager_reads(&db, reads);
        let per_op = |d: Duration| d.as_secs_f64() * 1e9 / reads as f64;
        for i in 0..3 {
            if (round + i) % 2 == 0 {
                rd_raw.push(per_op(raw_reads(&conn, shape, max, reads, false)));
                rd_hoisted.push(per_op(raw_reads(&conn, shape, max, reads, true)));
                rd_mgr.push(per_op(manager_reads(&db, reads)));
            } else {
                rd_mgr.push(per_op(manager_reads(&db, reads)));
                rd_hoisted.push(per_op(raw_reads(&conn, shape, max, reads, true)));
                rd_raw.push(per_op(raw_reads(&conn, shape, max, reads, false)));
            }
        }
    }
    println!("db_overhead: {rows} rows, {reads} point reads, {rounds} rounds");
    report(
        &format!("populate {rows} rows"),
        &mut pop_raw,
        &mut pop_mgr,
        "s ",
    );
    report(
        "point read (per op)",
        &mut rd_raw,
        &mut rd_mgr.clone(),
        "ns",
    );
    report(
        "point read vs hoisted stmt",
        &mut rd_hoisted,
        &mut rd_mgr,
        "ns",
    );
    {
        let db = DatabaseManager::open(DbConfig::new(dir.path().join("mgr-0.db"))).unwrap();
        let start = Instant::now();
        for _ in 0..reads {
            std::hint::black_box(db.conn().unwrap());
        }
        println!(
            "pool checkout + return: {:.0} ns",
            start.elapsed().as_nanos() as f64 / reads as f64
        );
    }
    println!(
        "populate rate (manager): {:.0} rows/s",
        rows as f64 / median(&mut pop_mgr)
    );
}
