//! `tenant-isolation`: the same reads with and without tenant scoping, to
//! measure what isolation costs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use rand::Rng;

use super::{Metrics, SetupEnv, WorkerCtx, Workload, WorkloadDefaults};
use crate::db::{DatabaseManager, Scope};

/// Runs a point read, a sender search and a page listing twice per
/// operation — scoped to the tenant and unscoped — alternating which goes
/// first, and reports both times and their ratio.
#[derive(Default)]
pub struct TenantIsolation {
    db: Option<DatabaseManager>,
    scoped_nanos: AtomicU64,
    unscoped_nanos: AtomicU64,
    pairs: AtomicU64,
}

fn reads(db: &DatabaseManager, scope: Scope, id: i64, sender: &str) -> anyhow::Result<()> {
    db.get_email(scope, id)?;
    db.search_by_sender(scope, sender, 20)?;
    db.list_page(scope, 0, 20)?;
    Ok(())
}

impl Workload for TenantIsolation {
    fn name(&self) -> &str {
        "tenant-isolation"
    }

    fn description(&self) -> &str {
        "point read, sender search and page listing, scoped to a tenant vs unscoped (reports the ratio)"
    }

    fn defaults(&self) -> WorkloadDefaults {
        WorkloadDefaults {
            ops: 3000,
            ..WorkloadDefaults::default()
        }
    }

    fn setup(&mut self, env: &SetupEnv) -> anyhow::Result<()> {
        self.db = Some(env.open_shared_db()?);
        Ok(())
    }

    fn operation(&self, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        let db = self.db.as_ref().context("workload used before setup")?;
        let shape = db.shape();
        let id = ctx.rng.random_range(1..=db.max_id().max(1));
        let tenant = shape.tenant_of(id);
        let sender = shape.sender_for(ctx.rng.random());
        let scoped_first = ctx.op % 2 == 0;
        let timed = |scope: Scope| -> anyhow::Result<u64> {
            let start = Instant::now();
            reads(db, scope, id, &sender)?;
            Ok(start.elapsed().as_nanos() as u64)
        };
        let (scoped, unscoped) = if scoped_first {
            let s = timed(Scope::Tenant(tenant))?;
            (s, timed(Scope::All)?)
        } else {
            let u = timed(Scope::All)?;
            (timed(Scope::Tenant(tenant))?, u)
        };
        self.scoped_nanos.fetch_add(scoped, Ordering::Relaxed);
        self.unscoped_nanos.fetch_add(unscoped, Ordering::Relaxed);
        self.pairs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn database(&self) -> Option<&DatabaseManager> {
        self.db.as_ref()
    }

    fn finish(&self) -> anyhow::Result<Metrics> {
        let pairs = self.pairs.load(Ordering::Relaxed).max(1) as f64;
        let scoped = self.scoped_nanos.load(Ordering::Relaxed) as f64 / pairs;
        let unscoped = self.unscoped_nanos.load(Ordering::Relaxed) as f64 / pairs;
        let mut m = Metrics::new();
        m.insert("scoped_mean_ns".into(), scoped);
        m.insert("unscoped_mean_ns".into(), unscoped);
        m.insert("scoping_cost_ratio".into(), scoped / unscoped.max(1.0));
        Ok(m)
    }
}
