//! Profiling your own code: a small shop on its own rusqlite connection,
//! which profkit has never seen, under the full profkit command line.
//!
//! `cargo run --release --example own_code` profiles it (bench, CPU, SQL,
//! heap, leak check) and prints its findings; `-- cpu`, `-- sql`, `-- run
//! --rows 50k` and every other profkit command work too. Two problems are
//! planted for profkit to find: an N+1 query (one customer lookup per
//! order) and a leak (every operation keeps a line in `Shop::log`).

use std::sync::Mutex;

use profkit::workload::{from_fn, SetupEnv, WorkerCtx};
use rand::Rng;
use rusqlite::Connection;

struct Shop {
    conn: Mutex<Connection>,
    orders: i64,
    log: Mutex<Vec<String>>,
}

/// Opens the shop's database at the path profkit gives and fills it with
/// `env.rows` orders, 10 per customer.
fn open_shop(env: &SetupEnv) -> anyhow::Result<Shop> {
    anyhow::ensure!(
        env.rows >= 100,
        "needs --rows 100 or more, got {}",
        env.rows
    );
    let conn = Connection::open(&env.db_path)?;
    env.trace_sql(&conn); // statement stats, plans and N+1 verdicts for `sql` and `profile`
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, total INTEGER NOT NULL);
         DELETE FROM orders; DELETE FROM customers;",
    )?;
    let tx = conn.unchecked_transaction()?;
    for c in 0..env.rows / 10 {
        tx.execute(
            "INSERT INTO customers VALUES (?1, ?2)",
            (c, format!("customer {c}")),
        )?;
    }
    for o in 0..env.rows {
        tx.execute(
            "INSERT INTO orders VALUES (?1, ?2, ?3)",
            (o, o % (env.rows / 10), o * 7 % 500),
        )?;
    }
    tx.commit()?;
    Ok(Shop {
        conn: Mutex::new(conn),
        orders: env.rows as i64,
        log: Mutex::default(),
    })
}

/// Twenty orders from a random point, each with its customer's name.
fn recent_orders(shop: &Shop, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
    let start = ctx.rng.random_range(0..shop.orders - 20);
    let conn = shop.conn.lock().unwrap();
    let mut orders = conn.prepare_cached(
        "SELECT id, customer, total FROM orders WHERE id >= ?1 ORDER BY id LIMIT 20",
    )?;
    let rows: Vec<(i64, i64, i64)> = orders
        .query_map([start], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (id, customer, total) in rows {
        // Planted N+1: one query per order instead of a join.
        let name: String = conn.query_row(
            "SELECT name FROM customers WHERE id = ?1",
            [customer],
            |r| r.get(0),
        )?;
        remember(shop, id, &name, total);
    }
    Ok(())
}

/// Planted leak: the log is never trimmed.
#[inline(never)]
fn remember(shop: &Shop, id: i64, name: &str, total: i64) {
    shop.log
        .lock()
        .unwrap()
        .push(format!("order {id} for {name}: {total}"));
}

profkit::main!(profkit::Harness::new()
    .register(
        from_fn("shop-orders", open_shop, recent_orders)
            .describe("twenty recent orders with their customers' names")
            .rows(20_000)
            .ops(2_000)
    )
    .default_workload("shop-orders"));
