//! Test fixtures of a known shape, not part of the main job: a workload
//! that prepares a fresh statement for every operation (what the
//! preparation finding must name), and one that allocates ~1,000 blocks
//! per operation and keeps ~60 bytes of them (what the leak check must
//! find although the churn dwarfs the growth).

use std::sync::Mutex;

use rand::Rng;

use super::{Factory, SetupEnv, WorkerCtx, Workload, WorkloadDefaults};
use crate::db::DatabaseManager;

/// Blocks `churn-leak` allocates and frees per operation.
pub const CHURN_BLOCKS: usize = 1000;

/// Bytes `churn-leak` keeps per operation.
pub const KEPT_BYTES: usize = 60;

/// The statement `fresh-statements` prepares at every operation.
pub const FRESH_SQL: &str = "SELECT e.id, e.subject, m.name FROM emails e JOIN mailboxes m ON m.id = e.mailbox_id WHERE e.id = ?1 AND e.tenant_id = e.tenant_id AND (e.subject LIKE 'x%' OR length(e.body) >= 0) ORDER BY e.received_at DESC LIMIT 1";

pub(super) fn builtins() -> Vec<(&'static str, Factory)> {
    vec![
        ("fresh-statements", || Box::new(FreshStatements::default())),
        ("churn-leak", || Box::new(ChurnLeak::default())),
    ]
}

/// Looks an email up by id with a statement prepared anew each time
/// (`Connection::prepare`, no statement cache).
#[derive(Default)]
struct FreshStatements {
    db: Option<DatabaseManager>,
    rows: u64,
}

impl Workload for FreshStatements {
    fn name(&self) -> &str {
        "fresh-statements"
    }

    fn description(&self) -> &str {
        "looks an email up with a statement prepared anew per operation (preparation-finding fixture)"
    }

    fn defaults(&self) -> WorkloadDefaults {
        WorkloadDefaults {
            rows: 2000,
            ops: 5000,
            threads: 1,
        }
    }

    fn setup(&mut self, env: &SetupEnv) -> anyhow::Result<()> {
        self.db = Some(env.open_shared_db()?);
        self.rows = env.rows.max(1);
        Ok(())
    }

    fn operation(&self, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("fresh-statements: setup did not run"))?;
        let id = ctx.rng.random_range(1..=self.rows as i64);
        let conn = db.conn()?;
        // Deliberately `prepare`, not `prepare_cached`.
        let mut stmt = conn.prepare(FRESH_SQL)?;
        let mut rows = stmt.query([id])?;
        while rows.next()?.is_some() {}
        Ok(())
    }

    fn database(&self) -> Option<&DatabaseManager> {
        self.db.as_ref()
    }
}

/// Allocates and frees `--rows` small blocks per operation (default
/// [`CHURN_BLOCKS`]) and keeps one string of [`KEPT_BYTES`] forever.
#[derive(Default)]
struct ChurnLeak {
    kept: Mutex<Vec<String>>,
    blocks: usize,
}

impl Workload for ChurnLeak {
    fn name(&self) -> &str {
        "churn-leak"
    }

    fn description(&self) -> &str {
        "allocates --rows blocks per operation (1,000) and keeps 60 bytes of them (leak-check fixture)"
    }

    fn defaults(&self) -> WorkloadDefaults {
        WorkloadDefaults {
            rows: CHURN_BLOCKS as u64,
            ops: 2000,
            threads: 1,
        }
    }

    fn setup(&mut self, env: &SetupEnv) -> anyhow::Result<()> {
        self.blocks = env.rows as usize;
        Ok(())
    }

    fn operation(&self, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        let mut sum = 0usize;
        for i in 0..self.blocks {
            let block = std::hint::black_box(vec![i as u8; 16 + i % 48]);
            sum += block.len();
        }
        let line = format!("{:0>width$}", sum ^ ctx.op as usize, width = KEPT_BYTES);
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
        Ok(())
    }
}
