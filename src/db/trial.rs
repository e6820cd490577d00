//! PRAGMAs the advisor tries: set for the whole process, they run on every
//! connection opened afterwards (through SQLite's auto-extension hook, so
//! a workload's own connections get them too) and again at the end of
//! [`DatabaseManager`](super::DatabaseManager)'s own connection settings,
//! which would otherwise override them. Cleared after each trial.

use std::ffi::{c_char, c_int, CString};
use std::sync::RwLock;

use rusqlite::{ffi, Connection};

static PRAGMAS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Runs `sql` on every connection opened from now on, until [`clear`].
pub fn set(sql: &[String]) {
    if let Ok(mut p) = PRAGMAS.write() {
        *p = sql.to_vec();
    }
    // SAFETY: registering a function with the signature SQLite expects of
    // an auto-extension entry point; it stays valid for the process.
    unsafe {
        ffi::sqlite3_auto_extension(Some(on_open));
    }
}

/// Stops running trial PRAGMAs on new connections.
pub fn clear() {
    if let Ok(mut p) = PRAGMAS.write() {
        p.clear();
    }
    // SAFETY: no arguments; removes every auto-extension (profkit
    // registers none other).
    unsafe { ffi::sqlite3_reset_auto_extension() };
}

/// The PRAGMAs now set.
pub fn current() -> Vec<String> {
    PRAGMAS.read().map(|p| p.clone()).unwrap_or_default()
}

/// Runs the trial PRAGMAs on `conn` (after a connection's own settings).
pub fn apply(conn: &Connection) -> rusqlite::Result<()> {
    for sql in current() {
        conn.execute_batch(&sql)?;
    }
    Ok(())
}

unsafe extern "C" fn on_open(
    db: *mut ffi::sqlite3,
    _err: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    for sql in current() {
        let Ok(c) = CString::new(sql) else { continue };
        // SAFETY: `db` is the connection being opened; errors are ignored
        // here (a PRAGMA a connection refuses leaves it as it was).
        unsafe {
            ffi::sqlite3_exec(
                db,
                c.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }
    ffi::SQLITE_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_pragmas_reach_new_connections_until_cleared() {
        set(&["PRAGMA cache_size = -12345".to_string()]);
        let conn = crate::db::sqlite_alloc::open_in_memory().unwrap();
        let size: i64 = conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(size, -12345);
        clear();
        let conn = crate::db::sqlite_alloc::open_in_memory().unwrap();
        let size: i64 = conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap();
        assert_ne!(size, -12345);
    }
}
