//! Process-level readings: CPU time, resident memory and bytes written.

use crate::units::{Bytes, Nanos};

/// CPU time of the whole process so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Time in user mode.
    pub user: Nanos,
    /// Time in the kernel on the process's behalf.
    pub system: Nanos,
}

impl CpuTimes {
    /// User plus system time.
    pub fn total(&self) -> Nanos {
        Nanos(self.user.0 + self.system.0)
    }
}

fn rusage() -> Option<libc::rusage> {
    // SAFETY: getrusage fills the struct it is given and nothing else.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)
    }
}

fn timeval_nanos(tv: libc::timeval) -> Nanos {
    Nanos(tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000)
}

/// Time the calling thread has spent runnable but waiting for a CPU (its
/// run-queue delay), from `/proc/self/task/<tid>/schedstat`; `None` where
/// the kernel does not keep schedstats.
pub fn thread_run_queue_delay() -> Option<Nanos> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    // "<time on CPU> <time waiting on a run queue> <timeslices>", in ns.
    text.split_whitespace().nth(1)?.parse().ok().map(Nanos)
}

/// CPU time of the process so far (zero where it cannot be read).
pub fn cpu_times() -> CpuTimes {
    rusage()
        .map(|u| CpuTimes {
            user: timeval_nanos(u.ru_utime),
            system: timeval_nanos(u.ru_stime),
        })
        .unwrap_or_default()
}

/// The process's peak resident set size since the last
/// [`reset_peak_rss`] (or since it started).
pub fn peak_rss() -> Bytes {
    // VmHWM follows resets; ru_maxrss (KiB on Linux) never goes down.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    match hwm {
        Some(kib) => Bytes(kib * 1024),
        None => rusage()
            .map(|u| Bytes(u.ru_maxrss as u64 * 1024))
            .unwrap_or_default(),
    }
}

/// Starts a new peak-RSS window (Linux: writing 5 to
/// `/proc/self/clear_refs` resets VmHWM to the current RSS), so a run's
/// peak is its own and not that of an earlier run in the same process.
/// Returns false where that is not possible.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's resident set size now (from /proc/self/statm).
pub fn current_rss() -> Bytes {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Bytes(pages * page.max(0) as u64)
}

/// Bytes this process has had written to storage so far: `write_bytes`
/// of `/proc/self/io`, the counter `/usr/bin/time -v` reports in 512-byte
/// blocks as "File system outputs" (a page counts when it is dirtied;
/// files on a tmpfs do not count). `None` where it cannot be read.
pub fn written_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// Logical cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Total physical memory.
pub fn total_memory() -> Bytes {
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    Bytes(pages.max(0) as u64 * page.max(0) as u64)
}

/// A RAM-backed folder (`/dev/shm`, when it is a tmpfs with at least
/// `free` bytes available) for the scratch databases of passes that count
/// rather than time: SQLite allocates the same blocks whether its file is
/// on a disk or in RAM, so an allocation count or a leak slope measured
/// there is the same figure, without the disk writes. `None` elsewhere.
pub fn ram_scratch(free: u64) -> Option<std::path::PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::path::Path::new("/dev/shm");
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: statfs writes into the zeroed buffer we own; the path is
        // a valid NUL-terminated string.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statfs(c.as_ptr(), &mut fs) } != 0 {
            return None;
        }
        let tmpfs = fs.f_type as u64 == libc::TMPFS_MAGIC as u64;
        let available = (fs.f_bavail as u64).saturating_mul(fs.f_bsize as u64);
        // Writable by us (a read-only or foreign /dev/shm is no use).
        // SAFETY: access only reads the path.
        let writable = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
        (tmpfs && writable && available >= free).then(|| dir.to_path_buf())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = free;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_times();
        let wall = std::time::Instant::now();
        let mut x = 0u64;
        // Work until the reading shows 20 ms more (a reader stuck at zero,
        // or in the wrong unit, never gets there).
        while cpu_times().total().0 < before.total().0 + 20_000_000 {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            assert!(
                wall.elapsed().as_secs() < 60,
                "CPU time did not grow: {before:?} → {:?}",
                cpu_times()
            );
        }
        assert!(cpu_times().user > before.user);
    }

    #[test]
    fn resident_memory_follows_a_touched_block() {
        const BLOCK: usize = 64 << 20;
        let block = std::hint::black_box(vec![1u8; BLOCK]);
        let current = current_rss();
        let peak = peak_rss();
        assert!(current.0 >= BLOCK as u64, "current {current:?}");
        assert!(peak.0 >= BLOCK as u64, "peak {peak:?}");
        assert!(current.0 < total_memory().0, "{current:?}");
        drop(block);
        assert!(cores() >= 1);
    }

    #[test]
    fn a_ram_scratch_folder_is_writable_and_never_promised_beyond_its_space() {
        assert_eq!(ram_scratch(u64::MAX), None);
        if let Some(dir) = ram_scratch(0) {
            let f = tempfile::tempfile_in(&dir).expect("a file in the RAM scratch folder");
            drop(f);
        }
    }
}
