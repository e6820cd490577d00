//! Where a thread's database time went, by clock stamps (no sampling):
//! waiting for a pool connection, waiting for the write lock (this
//! process's write queue, `BEGIN IMMEDIATE` with SQLite's busy handler, and
//! the retries after `SQLITE_BUSY`), and holding a connection. Counted per
//! thread, so a measured run reads its workers' own figures.
//!
//! The pool's waits and holds are r2d2's own stamps (its checkout and
//! checkin events), so reads cost no extra clock reads; only writes stamp
//! the write lock.

use std::cell::Cell;
use std::time::Duration;

/// Nanoseconds a thread spent, summed since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadWaits {
    /// Waiting for a connection from the pool.
    pub pool_wait: u64,
    /// Waiting for the write lock (queue, busy handler, retries), while
    /// holding a connection.
    pub lock_wait: u64,
    /// Holding a connection (the lock wait included).
    pub held: u64,
}

impl ThreadWaits {
    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &ThreadWaits) -> ThreadWaits {
        ThreadWaits {
            pool_wait: self.pool_wait.saturating_sub(earlier.pool_wait),
            lock_wait: self.lock_wait.saturating_sub(earlier.lock_wait),
            held: self.held.saturating_sub(earlier.held),
        }
    }
}

thread_local! {
    static WAITS: Cell<ThreadWaits> = const { Cell::new(ThreadWaits { pool_wait: 0, lock_wait: 0, held: 0 }) };
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn add(f: impl FnOnce(&mut ThreadWaits)) {
    WAITS.with(|w| {
        let mut v = w.get();
        f(&mut v);
        w.set(v);
    });
}

/// The calling thread's figures so far.
pub fn thread_waits() -> ThreadWaits {
    WAITS.with(Cell::get)
}

/// Adds waits measured on another thread to the calling thread's (see
/// [`crate::db::trace::credit_thread`]).
pub fn credit_thread(w: ThreadWaits) {
    add(|v| {
        v.pool_wait = v.pool_wait.saturating_add(w.pool_wait);
        v.lock_wait = v.lock_wait.saturating_add(w.lock_wait);
        v.held = v.held.saturating_add(w.held);
    });
}

pub(crate) fn add_pool_wait(d: Duration) {
    add(|w| w.pool_wait = w.pool_wait.saturating_add(nanos(d)));
}

pub(crate) fn add_lock_wait(d: Duration) {
    add(|w| w.lock_wait = w.lock_wait.saturating_add(nanos(d)));
}

pub(crate) fn add_held(d: Duration) {
    add(|w| w.held = w.held.saturating_add(nanos(d)));
}
