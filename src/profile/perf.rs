//! A CPU sampler not capped by the kernel tick: Linux's software
//! `cpu-clock` event (an hrtimer, as `perf record -e cpu-clock` uses), one
//! per thread of the process, each overflow delivered as `SIGPROF` to the
//! thread that was running (`F_SETOWN_EX` with `F_OWNER_TID`, `F_SETSIG`).
//! pprof-rs's own `SIGPROF` handler then takes the sample and unwinds it
//! with framehop, exactly as for its process timer — only the clock
//! changes. The process timer (`ITIMER_PROF`) fires at most once per kernel
//! tick (250 Hz here); this clock delivers ~1,000 Hz and more.
//!
//! Threads started while sampling (the workers) are found by a watcher
//! thread that lists `/proc/self/task` every [`WATCH_INTERVAL`] and opens
//! their events; it also empties each event's ring buffer, which the kernel
//! needs in order to keep signalling (`wakeup_events = 1`; records carry no
//! sample data, only their header).
//!
//! Kernel time is sampled when `perf_event_paranoid` allows it (≤ 1, or
//! root); at 2, the common default, only user time is, and the profile says
//! so. Refused outright (paranoid 3, seccomp, some containers), the caller
//! falls back to the process timer.

use std::collections::HashSet;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use perf_event_open_sys as sys;
use serde::{Deserialize, Serialize};

/// How often the watcher looks for new threads and empties ring buffers:
/// a thread started meanwhile misses at most this much of its time, and
/// listing `/proc/self/task` more often costs the profiled process
/// measurably on 2 cores.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(10);

/// Data pages of each event's ring buffer (a power of two). Records are
/// 8 bytes: 2 pages hold 1,024 of them, half a second at 2 kHz — fifty
/// watcher intervals.
const DATA_PAGES: usize = 2;

/// Which clock drives the samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampler {
    /// `perf_event_open` `cpu-clock`, per thread, user and kernel time.
    Perf,
    /// `perf_event_open` `cpu-clock`, per thread, user time only
    /// (`perf_event_paranoid` 2).
    PerfUser,
    /// pprof-rs's process CPU timer (`ITIMER_PROF`), capped by the tick.
    #[default]
    Itimer,
}

impl std::fmt::Display for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sampler::Perf => "perf cpu-clock",
            Sampler::PerfUser => "perf cpu-clock (user time only)",
            Sampler::Itimer => "itimer (ITIMER_PROF)",
        })
    }
}

/// Why the per-thread clock could not be used.
#[derive(Debug, thiserror::Error)]
#[error("perf_event_open refused the cpu-clock event ({0})")]
pub struct PerfRefused(pub String);

// fcntl(2) commands of Linux's <fcntl.h> that the libc crate does not
// export (the same numbers on every Linux architecture).
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;

/// `struct f_owner_ex` of <fcntl.h>.
#[repr(C)]
struct FOwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// One thread's event: its file descriptor and ring buffer.
struct Event {
    fd: libc::c_int,
    ring: *mut libc::c_void,
    len: usize,
}

// SAFETY: the ring is a private mapping owned by this value; only the
// watcher thread touches it after the event moves there.
unsafe impl Send for Event {}

impl Event {
    /// Opens a `cpu-clock` event on thread `tid` that signals it with
    /// `SIGPROF` every `period_ns` of its CPU time.
    fn open(tid: i32, period_ns: u64, user_only: bool) -> std::io::Result<Event> {
        let mut attr = sys::bindings::perf_event_attr {
            type_: sys::bindings::PERF_TYPE_SOFTWARE,
            size: std::mem::size_of::<sys::bindings::perf_event_attr>() as u32,
            config: u64::from(sys::bindings::PERF_COUNT_SW_CPU_CLOCK),
            ..Default::default()
        };
        attr.sample_period = period_ns;
        attr.wakeup_events = 1;
        attr.set_disabled(1);
        attr.set_exclude_kernel(u64::from(user_only));
        attr.set_exclude_hv(1);
        // SAFETY: attr is a valid, fully initialised perf_event_attr.
        let fd = unsafe {
            sys::perf_event_open(
                &mut attr,
                tid,
                -1,
                -1,
                sys::bindings::PERF_FLAG_FD_CLOEXEC as _,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let page = page_size();
        let len = page * (1 + DATA_PAGES);
        // SAFETY: mapping a perf event's ring buffer, as perf_event_open(2) describes.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            // SAFETY: fd is ours and open.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        let event = Event { fd, ring, len };
        let owner = FOwnerEx {
            kind: F_OWNER_TID,
            pid: tid,
        };
        // SAFETY: fcntl/ioctl on our own descriptor with valid arguments.
        let ok = unsafe {
            libc::fcntl(fd, F_SETOWN_EX, &owner) == 0
                && libc::fcntl(fd, F_SETSIG, libc::SIGPROF) == 0
                && libc::fcntl(fd, libc::F_SETFL, libc::O_ASYNC | libc::O_NONBLOCK) == 0
                && sys::ioctls::ENABLE(fd, 0) == 0
        };
        if !ok {
            return Err(std::io::Error::last_os_error());
        }
        Ok(event)
    }

    /// Marks every record read, so the kernel keeps writing (and signalling).
    fn drain(&self) {
        let page = self.ring as *mut sys::bindings::perf_event_mmap_page;
        // SAFETY: the first page of the mapping is the control page; the
        // kernel writes data_head, we write data_tail (perf_event_open(2)).
        unsafe {
            let head = std::ptr::read_volatile(std::ptr::addr_of!((*page).data_head));
            fence(Ordering::SeqCst);
            std::ptr::write_volatile(std::ptr::addr_of_mut!((*page).data_tail), head);
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: both were obtained in `open` and are released once.
        unsafe {
            sys::ioctls::DISABLE(self.fd, 0);
            libc::munmap(self.ring, self.len);
            libc::close(self.fd);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// The process's thread ids.
fn threads() -> Vec<i32> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The per-thread clock, running: drop or [`PerfTimer::stop`] it before
/// the `SIGPROF` handler goes away.
pub struct PerfTimer {
    sampler: Sampler,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<usize>>,
}

impl PerfTimer {
    /// Starts sampling every thread of the process (but the watcher) at
    /// `frequency` Hz of its CPU time. A `SIGPROF` handler must be
    /// installed first. Errors when the kernel refuses the event.
    pub fn start(frequency: u32) -> Result<PerfTimer, PerfRefused> {
        let period_ns = 1_000_000_000 / u64::from(frequency.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = stop.clone();
        let watcher = std::thread::Builder::new()
            .name("profkit-perf".into())
            .spawn(move || watch(period_ns, &flag, &ready_tx))
            .map_err(|e| PerfRefused(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(sampler)) => Ok(PerfTimer {
                sampler,
                stop,
                watcher: Some(watcher),
            }),
            Ok(Err(e)) => {
                let _ = watcher.join();
                Err(e)
            }
            Err(_) => Err(PerfRefused("the sampler thread ended".into())),
        }
    }

    /// Which clock this is (kernel time included or not).
    pub fn sampler(&self) -> Sampler {
        self.sampler
    }

    /// Stops sampling; returns the number of threads sampled.
    pub fn stop(mut self) -> usize {
        self.halt()
    }

    fn halt(&mut self) -> usize {
        self.stop.store(true, Ordering::Release);
        self.watcher.take().and_then(|w| w.join().ok()).unwrap_or(0)
    }
}

impl Drop for PerfTimer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The watcher: opens events on every thread (reporting the first
/// outcome), then keeps up with new threads and drains the rings until
/// told to stop. Returns the threads sampled.
fn watch(
    period_ns: u64,
    stop: &AtomicBool,
    ready: &mpsc::Sender<Result<Sampler, PerfRefused>>,
) -> usize {
    let me = gettid();
    let mut seen: HashSet<i32> = HashSet::from([me]);
    let mut events: Vec<Event> = Vec::new();
    // Kernel and user time first; user time only where paranoid forbids more.
    let first = threads().into_iter().find(|&t| t != me).unwrap_or(me);
    let user_only = match Event::open(first, period_ns, false) {
        Ok(e) => {
            events.push(e);
            seen.insert(first);
            false
        }
        Err(_) => match Event::open(first, period_ns, true) {
            Ok(e) => {
                events.push(e);
                seen.insert(first);
                true
            }
            Err(e) => {
                let _ = ready.send(Err(PerfRefused(e.to_string())));
                return 0;
            }
        },
    };
    let attach = |events: &mut Vec<Event>, seen: &mut HashSet<i32>| {
        for tid in threads() {
            // A thread that ended between listing and opening is skipped.
            if seen.insert(tid) {
                if let Ok(e) = Event::open(tid, period_ns, user_only) {
                    events.push(e);
                }
            }
        }
    };
    attach(&mut events, &mut seen);
    let sampler = if user_only {
        Sampler::PerfUser
    } else {
        Sampler::Perf
    };
    let _ = ready.send(Ok(sampler));
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(WATCH_INTERVAL);
        attach(&mut events, &mut seen);
        for e in &events {
            e.drain();
        }
    }
    events.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_open_on_every_thread_including_ones_started_later() {
        // Without a handler SIGPROF would end the test process: ignore it.
        // SAFETY: setting a disposition has no preconditions.
        let old = unsafe { libc::signal(libc::SIGPROF, libc::SIG_IGN) };
        let timer = match PerfTimer::start(997) {
            Ok(t) => t,
            Err(e) => panic!("this machine allows perf_event_open (paranoid ≤ 2): {e}"),
        };
        let spin = std::thread::spawn(|| {
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_millis(30) {
                std::hint::black_box(0u64);
            }
        });
        spin.join().unwrap();
        let sampled = timer.stop();
        // SAFETY: restoring the previous disposition.
        unsafe { libc::signal(libc::SIGPROF, old) };
        assert!(sampled >= 2, "{sampled} threads");
    }
}
