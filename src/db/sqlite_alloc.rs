//! Routes SQLite's memory through Rust's global allocator.
//!
//! SQLite allocates with C `malloc`, which Rust heap profilers (dhat) never
//! see: on a small run dhat saw 1.9 MB where valgrind's DHAT saw 30.6 MB,
//! 93 % of it SQLite's page cache and statements. [`install`] registers
//! `SQLITE_CONFIG_MALLOC` methods that allocate through
//! [`std::alloc::alloc`], so heap profiles, leak checks and allocation
//! budgets cover SQLite too. Each block carries a 16-byte header holding its
//! size (SQLite's `xSize` must answer it; Rust's deallocation needs it).
//!
//! `sqlite3_config` only works before SQLite initialises, which rusqlite
//! does on the first `Connection::open`, and it is not thread-safe against
//! an initialisation on another thread. So every connection profkit opens
//! goes through [`install`] first: directly through [`open`],
//! [`open_in_memory`] and [`open_with_flags`], or through
//! [`crate::DatabaseManager::open`], which calls it before its pool opens
//! any. [`install`] is one [`OnceLock`]: the first caller configures SQLite
//! while any other waits, so no connection opens before the hook is set,
//! whatever the order of the callers. (tests/layers.rs checks that no other
//! file opens a connection directly.)

use std::alloc::Layout;
use std::os::raw::{c_int, c_void};
use std::path::Path;
use std::sync::OnceLock;

use rusqlite::{ffi, Connection, OpenFlags};

/// Bytes in front of each block: its requested size, keeping 16-byte alignment.
const HEADER: usize = 16;
const ALIGN: usize = 16;

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, ALIGN).ok()
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    let Ok(size) = usize::try_from(n) else {
        return std::ptr::null_mut();
    };
    let Some(layout) = layout(size) else {
        return std::ptr::null_mut();
    };
    #[cfg(test)]
    tests::HOOKED_BYTES.fetch_add(size as u64, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: the layout has a non-zero size (HEADER > 0).
    let base = unsafe { std::alloc::alloc(layout) };
    if base.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: base points to at least HEADER bytes aligned to 16.
    unsafe {
        (base as *mut usize).write(size);
        base.add(HEADER) as *mut c_void
    }
}

/// The start of the block and its requested size.
///
/// # Safety
/// `p` must come from [`x_malloc`] or [`x_realloc`] and not be freed.
unsafe fn header(p: *mut c_void) -> (*mut u8, usize) {
    // SAFETY: per the contract, HEADER bytes before p hold the size.
    unsafe {
        let base = (p as *mut u8).sub(HEADER);
        (base, (base as *const usize).read())
    }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: SQLite frees only what its xMalloc/xRealloc returned.
    unsafe {
        let (base, size) = header(p);
        if let Some(layout) = layout(size) {
            std::alloc::dealloc(base, layout);
        }
    }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    if p.is_null() {
        // SAFETY: forwarding.
        return unsafe { x_malloc(n) };
    }
    let Ok(new_size) = usize::try_from(n) else {
        return std::ptr::null_mut();
    };
    let Some(new_layout) = layout(new_size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: p came from x_malloc/x_realloc; the old layout is rebuilt from
    // its header, and the new size is non-zero and does not overflow.
    unsafe {
        let (base, old_size) = header(p);
        let Some(old_layout) = layout(old_size) else {
            return std::ptr::null_mut();
        };
        let new_base = std::alloc::realloc(base, old_layout, new_layout.size());
        if new_base.is_null() {
            return std::ptr::null_mut();
        }
        (new_base as *mut usize).write(new_size);
        new_base.add(HEADER) as *mut c_void
    }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    if p.is_null() {
        return 0;
    }
    // SAFETY: SQLite asks only about its live blocks.
    let (_, size) = unsafe { header(p) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    // SQLite needs at least 8-byte granularity; malloc rounds to 16 anyway.
    n.checked_add(7).map_or(n, |m| m & !7)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// The methods table; `pAppData` is null and never used.
struct Methods(ffi::sqlite3_mem_methods);

// SAFETY: the table is immutable and its only pointer is null.
unsafe impl Sync for Methods {}

static METHODS: Methods = Methods(ffi::sqlite3_mem_methods {
    xMalloc: Some(x_malloc),
    xFree: Some(x_free),
    xRealloc: Some(x_realloc),
    xSize: Some(x_size),
    xRoundup: Some(x_roundup),
    xInit: Some(x_init),
    xShutdown: Some(x_shutdown),
    pAppData: std::ptr::null_mut(),
});

static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Set to `0` in a process's environment, SQLite's memory statistics
/// (`SQLITE_CONFIG_MEMSTATUS`) are turned off before it initialises.
pub const MEMSTATUS_ENV: &str = "PROFKIT_SQLITE_MEMSTATUS";

/// Makes SQLite allocate through Rust's global allocator. Idempotent and
/// cheap after the first call. Returns whether the hook is in place: `false`
/// when SQLite was already initialised (someone opened a connection first);
/// then it warns once on stderr and SQLite keeps using C `malloc`, invisible
/// to heap profiles.
pub fn install() -> bool {
    *INSTALLED.get_or_init(|| {
        // `profkit advise` measures SQLite without its memory statistics
        // in a child process started with this variable.
        if std::env::var_os(MEMSTATUS_ENV).is_some_and(|v| v == "0") {
            // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; before initialisation.
            unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int) };
        }
        // SAFETY: METHODS is 'static and SQLite copies the struct; SQLITE_CONFIG_MALLOC
        // takes one pointer argument.
        let rc = unsafe {
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_MALLOC,
                &METHODS.0 as *const ffi::sqlite3_mem_methods,
            )
        };
        if rc == ffi::SQLITE_OK {
            true
        } else {
            eprintln!(
                "profkit: warning: SQLite was initialised before profkit could route its memory \
                 through Rust's allocator (sqlite3_config returned {rc}); heap profiles will not \
                 include SQLite's memory. Call profkit::db::sqlite_alloc::install() before opening \
                 the first connection."
            );
            false
        }
    })
}

/// Whether [`install`] succeeded in this process.
pub fn installed() -> bool {
    INSTALLED.get().copied().unwrap_or(false)
}

/// [`Connection::open`] after [`install`].
pub fn open(path: impl AsRef<Path>) -> rusqlite::Result<Connection> {
    install();
    Connection::open(path)
}

/// [`Connection::open_in_memory`] after [`install`].
pub fn open_in_memory() -> rusqlite::Result<Connection> {
    install();
    Connection::open_in_memory()
}

/// [`Connection::open_with_flags`] after [`install`].
pub fn open_with_flags(path: impl AsRef<Path>, flags: OpenFlags) -> rusqlite::Result<Connection> {
    install();
    Connection::open_with_flags(path, flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn blocks_round_trip_through_the_hooks() {
        // SAFETY: exercising the hooks as SQLite would.
        unsafe {
            let p = x_malloc(100);
            assert!(!p.is_null());
            assert_eq!(p as usize % 16, 0);
            assert_eq!(x_size(p), 100);
            std::ptr::write_bytes(p as *mut u8, 7, 100);
            let q = x_realloc(p, 5000);
            assert_eq!(x_size(q), 5000);
            assert_eq!(*(q as *const u8).add(99), 7);
            x_free(q);
            assert!(x_malloc(-1).is_null());
            assert_eq!(x_roundup(13), 16);
        }
    }

    /// Bytes asked of [`x_malloc`] in this test binary.
    pub(super) static HOOKED_BYTES: AtomicU64 = AtomicU64::new(0);

    #[test]
    fn sqlite_memory_goes_through_the_hook_whichever_thread_opens_first() {
        // Several threads open connections at once; whichever test or thread
        // runs first, the hook is in place before SQLite initialises.
        let installed: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let c = open_in_memory().unwrap();
                        c.execute_batch("CREATE TABLE t(x)").unwrap();
                        installed()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(installed, [true; 4]);
        assert!(install(), "the hook is in place");
        let before = HOOKED_BYTES.load(Ordering::Relaxed);
        let c = open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE b(x); INSERT INTO b VALUES (randomblob(300000));")
            .unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM (WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r WHERE x < 5000) SELECT x FROM r)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 5000);
        let counted = HOOKED_BYTES.load(Ordering::Relaxed) - before;
        assert!(
            counted >= 300_000,
            "SQLite's allocations went through the hook: {counted} bytes"
        );
    }
}
