//! The inter-process lock of a database file: `flock` on `<db>.lock`
//! beside it, holding the owner's pid, taken before anything is read or
//! changed and held while the [`DatabaseManager`](super::DatabaseManager)
//! lives. A second profkit process on the same database is refused instead
//! of resetting the rows under the first.
//!
//! The kernel drops the lock when its holder exits, however it exits
//! (`kill -9` included), so a stale lock file is harmless. Within one
//! process, managers of the same file share one lock.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use super::{DbError, Result};

/// A held lock; released when the last holder in this process drops it.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
}

/// The locks this process holds, by canonical lock-file path.
static HELD: Mutex<Vec<(PathBuf, Weak<DbLock>)>> = Mutex::new(Vec::new());

/// The lock file of the database at `db`: `<db>.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Takes the lock of the database at `db` (whose folder exists), or
/// reports which process holds it. A `shared` lock is for managers that
/// only read (see [`super::DbConfig::read_only`]): any number of them hold
/// it at once, across processes, and no writer can take the file from
/// them (nor they from a writer).
pub fn acquire(db: &Path, shared: bool) -> Result<Arc<DbLock>> {
    let path = lock_path(db);
    let open_err = |e: std::io::Error| DbError::Open {
        path: path.clone(),
        source: Box::new(e),
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(open_err)?;
    let key = path.canonicalize().map_err(open_err)?;
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    held.retain(|(_, w)| w.strong_count() > 0);
    if let Some(lock) = held
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(lock);
    }
    // SAFETY: flock on a file descriptor we own.
    let mode = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
    let rc = unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(open_err(e));
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        return Err(DbError::InUse {
            path: db.to_path_buf(),
            pid: text.trim().parse().ok(),
        });
    }
    // Ours now: say who holds it (a shared lock has many holders; the file
    // names the last writer).
    if !shared {
        file.set_len(0).map_err(open_err)?;
        file.rewind().map_err(open_err)?;
        writeln!(file, "{}", std::process::id()).map_err(open_err)?;
    }
    let lock = Arc::new(DbLock { _file: file });
    held.push((key, Arc::downgrade(&lock)));
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_shares_its_lock_and_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let a = acquire(&db, false).unwrap();
        let b = acquire(&db, false).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let pid = std::fs::read_to_string(lock_path(&db)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        // Another open file description (as another process would have) is refused.
        let other = File::open(lock_path(&db)).unwrap();
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_ne!(rc, 0);
        drop((a, b));
        // SAFETY: as above.
        let rc = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(rc, 0, "released with its last holder");
    }

    #[test]
    fn readers_share_the_lock_and_keep_writers_out() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let reader = acquire(&db, true).unwrap();
        // Another process's reader (another open file description) gets in…
        let other = File::open(lock_path(&db)).unwrap();
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        assert_eq!(rc, 0);
        // …a writer does not.
        let writer = File::open(lock_path(&db)).unwrap();
        // SAFETY: as above.
        let rc = unsafe { libc::flock(writer.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_ne!(rc, 0);
        drop(reader);
    }
}
