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
use std::sync::atomic::{fence, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use perf_event_open_sys as sys;
use serde::{Deserialize, Serialize};

use super::perf_stack::StackSamples;

/// How often the watcher looks for new threads and empties ring buffers:
/// a thread started meanwhile misses at most this much of its time, and
/// listing `/proc/self/task` more often costs the profiled process
/// measurably on 2 cores.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(10);

/// Data pages of each event's ring buffer (a power of two). Records are
/// 8 bytes: 2 pages hold 1,024 of them, half a second at 2 kHz — fifty
/// watcher intervals.
const DATA_PAGES: usize = 2;

/// Which clock drives the samples, and how they are taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampler {
    /// `perf_event_open` `cpu-clock`, per thread, user and kernel time;
    /// registers and stack copied into the ring buffer, unwound by a
    /// watcher thread ([`Mode::Stack`]).
    PerfStack,
    /// As [`Sampler::PerfStack`], user time only (`perf_event_paranoid` 2).
    PerfStackUser,
    /// `perf_event_open` `cpu-clock`, per thread, user and kernel time;
    /// a `SIGPROF` per sample, unwound in pprof-rs's handler ([`Mode::Signal`]).
    #[serde(alias = "perf")]
    PerfSignal,
    /// As [`Sampler::PerfSignal`], user time only (`perf_event_paranoid` 2).
    #[serde(alias = "perf-user")]
    PerfSignalUser,
    /// pprof-rs's process CPU timer (`ITIMER_PROF`), capped by the tick.
    #[default]
    Itimer,
    /// The process timer, stacks copied by profkit's handler
    /// ([`super::itimer_stack`]), each sample timed and tagged.
    ItimerStack,
}

impl Sampler {
    fn of(mode: Mode, user_only: bool) -> Sampler {
        match (mode, user_only) {
            (Mode::Stack, false) => Sampler::PerfStack,
            (Mode::Stack, true) => Sampler::PerfStackUser,
            (Mode::Signal, false) => Sampler::PerfSignal,
            (Mode::Signal, true) => Sampler::PerfSignalUser,
        }
    }

    /// A per-thread `cpu-clock` sampler (either mode).
    pub fn is_perf(self) -> bool {
        !matches!(self, Sampler::Itimer | Sampler::ItimerStack)
    }
}

impl std::fmt::Display for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sampler::PerfStack => "perf cpu-clock (stack copies)",
            Sampler::PerfStackUser => "perf cpu-clock (stack copies, user time only)",
            Sampler::PerfSignal => "perf cpu-clock (SIGPROF)",
            Sampler::PerfSignalUser => "perf cpu-clock (SIGPROF, user time only)",
            Sampler::Itimer => "itimer (ITIMER_PROF)",
            Sampler::ItimerStack => "itimer (ITIMER_PROF, stack copies)",
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

/// How samples leave the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Each overflow is a `SIGPROF` to the sampled thread; pprof-rs's
    /// handler unwinds there. Ring records carry no sample data.
    Signal,
    /// Each overflow writes the thread's user registers and a copy of the
    /// top of its stack ([`super::perf_stack::STACK_BYTES`]) into the ring
    /// buffer; the watcher unwinds them (as samply does). No signal.
    Stack,
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
    /// Opens a `cpu-clock` event on thread `tid` that samples it every
    /// `period_ns` of its CPU time, as `mode` says.
    fn open(tid: i32, period_ns: u64, user_only: bool, mode: Mode) -> std::io::Result<Event> {
        let mut attr = sys::bindings::perf_event_attr {
            type_: sys::bindings::PERF_TYPE_SOFTWARE,
            size: std::mem::size_of::<sys::bindings::perf_event_attr>() as u32,
            config: u64::from(sys::bindings::PERF_COUNT_SW_CPU_CLOCK),
            ..Default::default()
        };
        attr.sample_period = period_ns;
        attr.wakeup_events = 1;
        if mode == Mode::Stack {
            super::perf_stack::configure(&mut attr);
        }
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
        let (mut pages, fewest) = match mode {
            Mode::Signal => (DATA_PAGES, DATA_PAGES),
            Mode::Stack => (
                super::perf_stack::ring_pages(period_ns, page),
                super::perf_stack::MIN_PAGES,
            ),
        };
        // A smaller ring when the locked-memory allowance is spent (more
        // samples may then be lost, and are counted).
        let ring = loop {
            let len = page * (1 + pages);
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
            if ring != libc::MAP_FAILED {
                break ring;
            }
            let e = std::io::Error::last_os_error();
            if pages <= fewest {
                // SAFETY: fd is ours and open.
                unsafe { libc::close(fd) };
                return Err(e);
            }
            pages /= 2;
        };
        let event = Event {
            fd,
            ring,
            len: page * (1 + pages),
        };
        let owner = FOwnerEx {
            kind: F_OWNER_TID,
            pid: tid,
        };
        // SAFETY: fcntl/ioctl on our own descriptor with valid arguments.
        let ok = unsafe {
            match mode {
                Mode::Signal => {
                    libc::fcntl(fd, F_SETOWN_EX, &owner) == 0
                        && libc::fcntl(fd, F_SETSIG, libc::SIGPROF) == 0
                        && libc::fcntl(fd, libc::F_SETFL, libc::O_ASYNC | libc::O_NONBLOCK) == 0
                }
                Mode::Stack => true,
            }
        } && unsafe { sys::ioctls::ENABLE(fd, 0) } == 0;
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

    /// Hands every unread record to `f` (whole, header included; copied
    /// into `scratch` when it wraps around the ring's end), then marks them
    /// read.
    fn read(&self, scratch: &mut Vec<u8>, mut f: impl FnMut(&[u8])) {
        let control = self.ring as *mut sys::bindings::perf_event_mmap_page;
        let page = page_size();
        let size = (self.len - page) as u64;
        // SAFETY: the data area follows the control page; the kernel has
        // written every byte between data_tail and data_head (read with
        // acquire ordering), and does not touch them until data_tail moves.
        unsafe {
            let data = (self.ring as *const u8).add(page);
            let head = std::ptr::read_volatile(std::ptr::addr_of!((*control).data_head));
            fence(Ordering::Acquire);
            let mut tail = std::ptr::read_volatile(std::ptr::addr_of!((*control).data_tail));
            let copy = |from: u64, n: usize, out: &mut Vec<u8>| {
                out.clear();
                let start = (from % size) as usize;
                let first = n.min(size as usize - start);
                out.extend_from_slice(std::slice::from_raw_parts(data.add(start), first));
                out.extend_from_slice(std::slice::from_raw_parts(data, n - first));
            };
            while head.saturating_sub(tail) >= 8 {
                copy(tail, 8, scratch);
                let len = u16::from_ne_bytes([scratch[6], scratch[7]]) as u64;
                if len < 8 || len > head - tail {
                    tail = head;
                    break;
                }
                let start = (tail % size) as usize;
                if start + len as usize <= size as usize {
                    // Not wrapped: read in place (no 16 KiB copy per sample).
                    f(std::slice::from_raw_parts(data.add(start), len as usize));
                } else {
                    copy(tail, len as usize, scratch);
                    f(scratch);
                }
                tail += len;
            }
            fence(Ordering::SeqCst);
            std::ptr::write_volatile(std::ptr::addr_of_mut!((*control).data_tail), tail);
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
/// the `SIGPROF` handler goes away (signal mode).
pub struct PerfTimer {
    sampler: Sampler,
    /// Dropping it (or a send) stops the watcher at once.
    stop: Option<mpsc::Sender<()>>,
    watcher: Option<JoinHandle<Collected>>,
}

/// What the watcher gathered.
#[derive(Debug, Default)]
pub struct Collected {
    /// Threads an event was opened on.
    pub threads: usize,
    /// The unwound samples (stack mode; empty in signal mode).
    pub samples: StackSamples,
}

impl PerfTimer {
    /// Starts sampling every thread of the process (but the watcher) at
    /// `frequency` Hz of its CPU time. In signal mode a `SIGPROF` handler
    /// must be installed first. Errors when the kernel refuses the event.
    pub fn start(frequency: u32, mode: Mode) -> Result<PerfTimer, PerfRefused> {
        let period_ns = 1_000_000_000 / u64::from(frequency.max(1));
        let (stop, stop_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let watcher = std::thread::Builder::new()
            .name("profkit-perf".into())
            .spawn(move || watch(period_ns, mode, &stop_rx, &ready_tx))
            .map_err(|e| PerfRefused(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(sampler)) => Ok(PerfTimer {
                sampler,
                stop: Some(stop),
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

    /// Stops sampling; returns what was gathered.
    pub fn stop(mut self) -> Collected {
        self.halt()
    }

    fn halt(&mut self) -> Collected {
        self.stop.take();
        self.watcher
            .take()
            .and_then(|w| w.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for PerfTimer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The watcher: opens events on every thread (reporting the first
/// outcome), then keeps up with new threads and empties the rings until
/// told to stop.
fn watch(
    period_ns: u64,
    mode: Mode,
    stop: &mpsc::Receiver<()>,
    ready: &mpsc::Sender<Result<Sampler, PerfRefused>>,
) -> Collected {
    let me = gettid();
    let mut seen: HashSet<i32> = HashSet::from([me]);
    let mut events: Vec<Event> = Vec::new();
    // Kernel and user time first; user time only where paranoid forbids more.
    let first = threads().into_iter().find(|&t| t != me).unwrap_or(me);
    let user_only = match Event::open(first, period_ns, false, mode) {
        Ok(e) => {
            events.push(e);
            seen.insert(first);
            false
        }
        Err(_) => match Event::open(first, period_ns, true, mode) {
            Ok(e) => {
                events.push(e);
                seen.insert(first);
                true
            }
            Err(e) => {
                let _ = ready.send(Err(PerfRefused(e.to_string())));
                return Collected::default();
            }
        },
    };
    let mut samples = StackSamples::default();
    let attach = |events: &mut Vec<Event>, seen: &mut HashSet<i32>, samples: &mut StackSamples| {
        for tid in threads() {
            // A thread that ended between listing and opening is skipped.
            if seen.insert(tid) {
                if let Ok(e) = Event::open(tid, period_ns, user_only, mode) {
                    events.push(e);
                    if mode == Mode::Stack {
                        samples.attached(tid);
                    }
                }
            }
        }
    };
    if mode == Mode::Stack {
        samples.attached(first);
    }
    attach(&mut events, &mut seen, &mut samples);
    let sampler = Sampler::of(mode, user_only);
    let _ = ready.send(Ok(sampler));
    let mut scratch = Vec::new();
    let mut empty = |events: &[Event], samples: &mut StackSamples| {
        for e in events {
            match mode {
                Mode::Signal => e.drain(),
                Mode::Stack => e.read(&mut scratch, |r| samples.record(r)),
            }
        }
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(WATCH_INTERVAL) {
        attach(&mut events, &mut seen, &mut samples);
        empty(&events, &mut samples);
    }
    for e in &events {
        // SAFETY: an ioctl on our own open descriptor.
        unsafe { sys::ioctls::DISABLE(e.fd, 0) };
    }
    empty(&events, &mut samples);
    Collected {
        threads: events.len(),
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_open_on_every_thread_including_ones_started_later() {
        // One profiler at a time: another test's SIGPROF handler must not
        // be swapped for SIG_DFL under its running timer.
        let _one = super::super::cpu::PROFILER
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Without a handler SIGPROF would end the test process: ignore it.
        // SAFETY: setting a disposition has no preconditions.
        let old = unsafe { libc::signal(libc::SIGPROF, libc::SIG_IGN) };
        let timer = match PerfTimer::start(997, Mode::Signal) {
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
        let sampled = timer.stop().threads;
        // SAFETY: restoring the previous disposition.
        unsafe { libc::signal(libc::SIGPROF, old) };
        assert!(sampled >= 2, "{sampled} threads");
    }
}
