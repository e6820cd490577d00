//! The database workloads: each performs one kind of [`DatabaseManager`]
//! operation. They share one struct; what differs is a function and sizes.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context as _};
use rand::Rng;

use super::{Factory, Metrics, SetupEnv, WorkerCtx, Workload, WorkloadDefaults};
use crate::db::data::{random_email, rare_code, RARE_CODES};
use crate::db::{DatabaseManager, Scope};

/// One operation: returns the number of rows it wrote.
type OpFn = fn(&DatabaseManager, &mut WorkerCtx) -> anyhow::Result<u64>;

/// A workload that performs one kind of database operation, and checks
/// afterwards that every row it wrote is there.
pub struct DbWorkload {
    name: &'static str,
    description: &'static str,
    defaults: WorkloadDefaults,
    op: OpFn,
    /// Only reads: runs on the session's shared populated database
    /// ([`SetupEnv::open_shared_db`]) instead of a copy of its own.
    reads_only: bool,
    db: Option<DatabaseManager>,
    rows_before: u64,
    rows_written: AtomicU64,
}

impl DbWorkload {
    fn new(
        name: &'static str,
        description: &'static str,
        ops: u64,
        threads: usize,
        op: OpFn,
    ) -> DbWorkload {
        DbWorkload {
            name,
            description,
            defaults: WorkloadDefaults {
                ops,
                threads,
                ..WorkloadDefaults::default()
            },
            op,
            reads_only: false,
            db: None,
            rows_before: 0,
            rows_written: AtomicU64::new(0),
        }
    }
}

impl DbWorkload {
    /// Marks a workload whose operations never write.
    fn reads_only(mut self) -> DbWorkload {
        self.reads_only = true;
        self
    }
}

impl Workload for DbWorkload {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        self.description
    }

    fn defaults(&self) -> WorkloadDefaults {
        self.defaults
    }

    fn setup(&mut self, env: &SetupEnv) -> anyhow::Result<()> {
        let db = if self.reads_only {
            env.open_shared_db()?
        } else {
            env.open_populated_db()?
        };
        self.rows_before = db.count_emails()?;
        self.db = Some(db);
        Ok(())
    }

    fn operation(&self, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        let db = self.db.as_ref().context("workload used before setup")?;
        let written = (self.op)(db, ctx)?;
        if written > 0 {
            self.rows_written.fetch_add(written, Ordering::Relaxed);
        }
        Ok(())
    }

    fn database(&self) -> Option<&DatabaseManager> {
        self.db.as_ref()
    }

    fn finish(&self) -> anyhow::Result<Metrics> {
        let db = self.db.as_ref().context("workload finished before setup")?;
        let written = self.rows_written.load(Ordering::Relaxed);
        let expected = self.rows_before + written;
        let found = db.count_emails()?;
        // Only this run's writes are counted; the database lock keeps other
        // profkit processes out, so a difference is a bug or an outside writer.
        if found != expected {
            let what = if found < expected {
                "lost rows"
            } else {
                "unexpected rows (another writer?)"
            };
            bail!(
                "{}: {what}: {} before + {} written = {} expected, {} found",
                self.name,
                self.rows_before,
                written,
                expected,
                found
            );
        }
        let mut m = Metrics::new();
        m.insert("rows_before".into(), self.rows_before as f64);
        m.insert("rows_written".into(), written as f64);
        m.insert("rows_after".into(), found as f64);
        Ok(m)
    }
}

fn random_id(db: &DatabaseManager, ctx: &mut WorkerCtx) -> i64 {
    ctx.rng.random_range(1..=db.max_id().max(1))
}

fn insert_one(db: &DatabaseManager, ctx: &mut WorkerCtx) -> anyhow::Result<u64> {
    let slot = db.max_id() + 1;
    let email = random_email(&db.shape(), &mut ctx.rng, slot);
    db.insert_email(&email)?;
    Ok(1)
}

/// A test-only switch: `PROFKIT_TEST_SLOWDOWN=0.15` makes each point-read
/// spin 15 % of its own time longer, so a comparison's tests and
/// `scripts/bench-compare.sh` can plant a known slowdown in a real
/// workload without building a second binary. Unset (always, outside
/// those), it costs one load of a cached value per operation.
fn planted_slowdown() -> f64 {
    static SLOWDOWN: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *SLOWDOWN.get_or_init(|| {
        std::env::var("PROFKIT_TEST_SLOWDOWN")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(0.0)
    })
}

fn point_read(db: &DatabaseManager, ctx: &mut WorkerCtx) -> anyhow::Result<u64> {
    let started = std::time::Instant::now();
    let id = random_id(db, ctx);
    let tenant = db.shape().tenant_of(id);
    db.get_email(Scope::Tenant(tenant), id)?;
    let slowdown = planted_slowdown();
    if slowdown > 0.0 {
        let until = started.elapsed().mul_f64(1.0 + slowdown);
        while started.elapsed() < until {
            std::hint::spin_loop();
        }
    }
    Ok(0)
}

pub(super) fn builtins() -> Vec<(&'static str, Factory)> {
    vec![
        ("populate", || {
            Box::new(DbWorkload::new(
                "populate",
                "bulk-insert 1,000 generated emails in one transaction",
                40,
                1,
                |db, ctx| {
                    let shape = db.shape();
                    let first = db.max_id() + 1;
                    let batch: Vec<_> = (0..1000)
                        .map(|i| random_email(&shape, &mut ctx.rng, first + i))
                        .collect();
                    db.insert_emails(&batch)?;
                    Ok(batch.len() as u64)
                },
            ))
        }),
        ("point-read", || {
            Box::new(
                DbWorkload::new(
                    "point-read",
                    "read one email by id, scoped to its tenant",
                    100_000,
                    1,
                    point_read,
                )
                .reads_only(),
            )
        }),
        ("random-emails", || {
            Box::new(
                DbWorkload::new(
                    "random-emails",
                    "query_random_emails(100): 100 random row-id lookups",
                    2000,
                    1,
                    |db, ctx| {
                        let got = db.query_random_emails(&mut ctx.rng, 100)?;
                        anyhow::ensure!(got.len() == 100, "got {} of 100 emails", got.len());
                        Ok(0)
                    },
                )
                .reads_only(),
            )
        }),
        ("random-emails-naive", || {
            Box::new(
                DbWorkload::new(
                    "random-emails-naive",
                    "slow twin of random-emails: ORDER BY RANDOM() LIMIT 100 sorts the whole table",
                    60,
                    1,
                    |db, _| {
                        db.query_random_emails_naive(100)?;
                        Ok(0)
                    },
                )
                .reads_only(),
            )
        }),
        ("search-indexed", || {
            Box::new(
                DbWorkload::new(
                    "search-indexed",
                    "newest 50 emails from a sender, within a tenant (index on tenant, sender)",
                    5000,
                    1,
                    |db, ctx| {
                        let shape = db.shape();
                        let sender = shape.sender_for(ctx.rng.random());
                        let tenant = ctx.rng.random_range(1..=shape.tenants as i64);
                        db.search_by_sender(Scope::Tenant(tenant), &sender, 50)?;
                        Ok(0)
                    },
                )
                .reads_only(),
            )
        }),
        ("search-like", || {
            Box::new(DbWorkload::new(
                "search-like",
                "slow twin of fts-search: find a reference code with LIKE '%code%' (full table scan)",
                15,
                1,
                |db, ctx| {
                    let code = rare_code(ctx.rng.random_range(0..RARE_CODES));
                    db.search_like(Scope::All, &code, 1000)?;
                    Ok(0)
                },
            ).reads_only())
        }),
        ("fts-search", || {
            Box::new(
                DbWorkload::new(
                    "fts-search",
                    "find a reference code through the FTS5 index",
                    5000,
                    1,
                    |db, ctx| {
                        let code = rare_code(ctx.rng.random_range(0..RARE_CODES));
                        db.search_fts(Scope::All, &code, 1000)?;
                        Ok(0)
                    },
                )
                .reads_only(),
            )
        }),
        ("aggregate", || {
            Box::new(
                DbWorkload::new(
                    "aggregate",
                    "top-10 senders of a tenant by count and bytes (GROUP BY)",
                    100,
                    1,
                    |db, ctx| {
                        let tenant = ctx.rng.random_range(1..=db.shape().tenants as i64);
                        db.sender_report(Scope::Tenant(tenant), 10)?;
                        Ok(0)
                    },
                )
                .reads_only(),
            )
        }),
        ("concurrent-write", || {
            Box::new(DbWorkload::new(
                "concurrent-write",
                "insert one email per operation from many threads (10 x 100 by default); no row may be lost",
                1000,
                10,
                insert_one,
            ))
        }),
        ("mixed", || {
            Box::new(DbWorkload::new(
                "mixed",
                "80 % point reads, 20 % inserts, from 4 threads",
                20_000,
                4,
                |db, ctx| {
                    // Labelled, so SQL figures come out per kind of operation.
                    if ctx.rng.random_bool(0.2) {
                        crate::db::trace::set_operation("insert");
                        insert_one(db, ctx)
                    } else {
                        crate::db::trace::set_operation("read");
                        point_read(db, ctx)
                    }
                },
            ))
        }),
        ("n-plus-one", || {
            Box::new(DbWorkload::new(
                "n-plus-one",
                "slow twin: newest 100 emails of a tenant, one query for ids then one query per email",
                1000,
                1,
                |db, ctx| {
                    let tenant = ctx.rng.random_range(1..=db.shape().tenants as i64);
                    db.recent_emails_n_plus_one(tenant, 100)?;
                    Ok(0)
                },
            ).reads_only())
        }),
        ("n-plus-one-batched", || {
            Box::new(
                DbWorkload::new(
                    "n-plus-one-batched",
                    "fast twin of n-plus-one: the ids, then one query for all of them",
                    1000,
                    1,
                    |db, ctx| {
                        let tenant = ctx.rng.random_range(1..=db.shape().tenants as i64);
                        db.recent_emails_batched(tenant, 100)?;
                        Ok(0)
                    },
                )
                .reads_only(),
            )
        }),
    ]
}

#[cfg(test)]
mod tests {
    use crate::workload::{Registry, SetupEnv};

    #[test]
    fn rows_from_another_writer_are_unexpected_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Registry::builtins().get("point-read").unwrap();
        let env = SetupEnv {
            rows: 50,
            seed: 1,
            threads: 1,
            concurrency: 1,
            db_path: dir.path().join("t.db"),
            template_dir: None,
            sql_trace: false,
        };
        w.setup(&env).unwrap();
        let db = w.database().unwrap();
        db.conn()
            .unwrap()
            .execute_batch(&format!(
                "INSERT INTO emails ({c}) SELECT id + 1000, {rest} FROM emails WHERE id = 1",
                c = crate::db::schema::EMAIL_COLUMNS,
                rest = crate::db::schema::EMAIL_COLUMNS.trim_start_matches("id, ")
            ))
            .unwrap();
        let err = w.finish().unwrap_err().to_string();
        assert!(
            err.contains("unexpected rows") && !err.contains("lost"),
            "{err}"
        );
    }
}
