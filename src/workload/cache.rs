//! `leaky-cache` and `bounded-cache`: an in-process cache of email previews
//! in front of the database. The leaky one keys entries by request (so
//! nothing is ever hit or evicted and it grows without bound); its twin keys
//! by email id in a bounded LRU.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Context as _;
use lru::LruCache;
use rand::Rng;

use super::{Metrics, SetupEnv, WorkerCtx, Workload, WorkloadDefaults};
use crate::db::{DatabaseManager, Email, Scope};

/// Bytes of preview kept per cached email.
pub const PREVIEW_BYTES: usize = 96;

/// Entries the bounded cache keeps.
pub const LRU_CAPACITY: usize = 1000;

enum Cache {
    /// Keyed by (worker, request number): every request misses and adds.
    Leaky(HashMap<(usize, u64), Box<[u8]>>),
    /// Keyed by email id, evicting the least recently used.
    Bounded(LruCache<i64, Box<[u8]>>),
}

/// The cache workloads.
pub struct CacheWorkload {
    cache: Mutex<Cache>,
    db: Option<DatabaseManager>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Requests so far, over warm-up and measured phases (a worker's
    /// `ctx.op` restarts in each phase, so it cannot key the leak).
    requests: AtomicU64,
}

impl CacheWorkload {
    /// The leaky cache.
    pub fn leaky() -> CacheWorkload {
        CacheWorkload::with(Cache::Leaky(HashMap::new()))
    }

    /// The bounded (LRU) cache.
    pub fn bounded() -> CacheWorkload {
        let cap = NonZeroUsize::new(LRU_CAPACITY).expect("capacity is not zero");
        CacheWorkload::with(Cache::Bounded(LruCache::new(cap)))
    }

    fn with(cache: Cache) -> CacheWorkload {
        CacheWorkload {
            cache: Mutex::new(cache),
            db: None,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    fn len(&self) -> usize {
        match &*self.cache.lock().unwrap_or_else(|e| e.into_inner()) {
            Cache::Leaky(m) => m.len(),
            Cache::Bounded(l) => l.len(),
        }
    }
}

/// A fixed-size preview of an email: the bytes a mail list shows.
fn preview(email: &Email) -> Box<[u8]> {
    let mut p = vec![b' '; PREVIEW_BYTES];
    let text = email
        .subject
        .bytes()
        .chain(b" - ".iter().copied())
        .chain(email.body.bytes());
    for (slot, b) in p.iter_mut().zip(text) {
        *slot = b;
    }
    p.into_boxed_slice()
}

impl Workload for CacheWorkload {
    fn name(&self) -> &str {
        match &*self.cache.lock().unwrap_or_else(|e| e.into_inner()) {
            Cache::Leaky(_) => "leaky-cache",
            Cache::Bounded(_) => "bounded-cache",
        }
    }

    fn description(&self) -> &str {
        match &*self.cache.lock().unwrap_or_else(|e| e.into_inner()) {
            Cache::Leaky(_) => "slow twin: cache email previews keyed by request id, so it grows 96 B per operation forever",
            Cache::Bounded(_) => "fast twin of leaky-cache: previews keyed by email id in a 1,000-entry LRU",
        }
    }

    fn defaults(&self) -> WorkloadDefaults {
        WorkloadDefaults {
            ops: 50_000,
            ..WorkloadDefaults::default()
        }
    }

    fn setup(&mut self, env: &SetupEnv) -> anyhow::Result<()> {
        self.db = Some(env.open_shared_db()?);
        Ok(())
    }

    fn operation(&self, ctx: &mut WorkerCtx) -> anyhow::Result<()> {
        let db = self.db.as_ref().context("workload used before setup")?;
        // Most reads go to a hot set of recent mail, as in a real inbox.
        let max = db.max_id().max(1);
        let id = if ctx.rng.random_bool(0.9) {
            max - ctx
                .rng
                .random_range(0..LRU_CAPACITY as i64 / 2)
                .min(max - 1)
        } else {
            ctx.rng.random_range(1..=max)
        };
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Cache::Bounded(lru) = &mut *cache {
                if lru.get(&id).is_some() {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let tenant = db.shape().tenant_of(id);
        let Some(email) = db.get_email(Scope::Tenant(tenant), id)? else {
            return Ok(());
        };
        let p = preview(&email);
        match &mut *self.cache.lock().unwrap_or_else(|e| e.into_inner()) {
            Cache::Leaky(map) => {
                let request = self.requests.fetch_add(1, Ordering::Relaxed);
                map.insert((ctx.thread, request), p);
            }
            Cache::Bounded(lru) => {
                lru.put(id, p);
            }
        }
        Ok(())
    }

    fn database(&self) -> Option<&DatabaseManager> {
        self.db.as_ref()
    }

    fn finish(&self) -> anyhow::Result<Metrics> {
        let mut m = Metrics::new();
        let len = self.len();
        m.insert("cache_entries".into(), len as f64);
        m.insert("cache_preview_bytes".into(), (len * PREVIEW_BYTES) as f64);
        let hits = self.hits.load(Ordering::Relaxed) as f64;
        let misses = self.misses.load(Ordering::Relaxed) as f64;
        m.insert("cache_hit_rate".into(), hits / (hits + misses).max(1.0));
        Ok(m)
    }
}
