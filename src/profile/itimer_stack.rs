//! The sampler for a running service ([`super::cpu::SamplerChoice::ItimerStack`]):
//! the process CPU timer (`ITIMER_PROF`, as pprof-rs and Go before 1.18
//! use) and profkit's own `SIGPROF` handler, which copies the interrupted
//! thread's registers and the top [`STACK_BYTES`] of its stack into a
//! preallocated slot, with the time and the thread's sample tag
//! ([`set_tag`]). A drainer thread unwinds the slots with framehop, as the
//! per-thread `cpu-clock` sampler's watcher does with ring records.
//!
//! Why not the per-thread `cpu-clock`: its events are switched in and out
//! with their thread, and a service whose requests hop between runtime
//! workers and the blocking pool switches threads tens of thousands of
//! times a second; on 2 cores that took a third of the throughput at
//! 99 Hz (BENCHMARKS.md, "Layer cost"). The process timer costs nothing
//! per switch. It is capped by the kernel tick (~250 Hz), far above the
//! 99 Hz a service is sampled at.
//!
//! Why a tag read in the handler: the handler runs on the sampled thread,
//! so "which request is this thread running" is one thread-local read
//! (Go's profiler reads the goroutine's labels the same way), and the
//! tracing layer's hot path is one thread-local write per span entry and
//! exit, not a timestamped log matched afterwards.
//!
//! The stack is copied with `process_vm_readv` on the process itself, so a
//! copy that runs past the end of a thread's stack stops at the unmapped
//! page instead of faulting. Where that call is refused (some seccomp
//! profiles) or off x86_64 Linux, [`start`] says why and the caller uses
//! another sampler.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use super::perf_stack::{StackSamples, STACK_BYTES};
use crate::unwind::Regs;

/// The tag of a thread that set none.
pub const NO_TAG: u32 = u32::MAX;

thread_local! {
    static TAG: Cell<u32> = const { Cell::new(NO_TAG) };
}

/// Tags this thread's samples from now on with `tag` ([`NO_TAG`] for
/// none): one thread-local write.
#[inline]
pub fn set_tag(tag: u32) {
    let _ = TAG.try_with(|t| t.set(tag));
}

/// Slots of samples not yet unwound: at 99 Hz on a few cores the drainer
/// empties one or two per [`DRAIN_INTERVAL`]; a full ring counts the
/// sample lost.
const SLOTS: usize = 128;

/// How often the drainer unwinds the filled slots.
const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

const EMPTY: u32 = 0;
const WRITING: u32 = 1;
const FULL: u32 = 2;

struct SlotData {
    tid: i32,
    tag: u32,
    time: u64,
    regs: Regs,
    len: usize,
    stack: Box<[u8]>,
}

struct Slot {
    state: AtomicU32,
    data: UnsafeCell<SlotData>,
}

// SAFETY: `data` is written only by the handler that moved `state` from
// EMPTY to WRITING, and read only by the drainer after it saw FULL.
unsafe impl Sync for Slot {}

static RING: OnceLock<Box<[Slot]>> = OnceLock::new();
/// The ring while sampling, null otherwise (the handler then does nothing).
static ACTIVE: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());
static NEXT: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);
static PAGE: AtomicU64 = AtomicU64::new(4096);

fn ring() -> &'static [Slot] {
    RING.get_or_init(|| {
        (0..SLOTS)
            .map(|_| Slot {
                state: AtomicU32::new(EMPTY),
                data: UnsafeCell::new(SlotData {
                    tid: 0,
                    tag: NO_TAG,
                    time: 0,
                    regs: Regs::default(),
                    len: 0,
                    stack: vec![0; STACK_BYTES as usize].into_boxed_slice(),
                }),
            })
            .collect()
    })
}

/// CLOCK_MONOTONIC in nanoseconds (async-signal-safe): what samples are
/// stamped with, and what the service layer stamps requests with.
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given (async-signal-safe).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Copies this process's memory from `from` into `out`, stopping at the
/// first unreadable page; the bytes copied (0 when refused).
fn copy_own(from: usize, out: &mut [u8]) -> usize {
    let page = PAGE.load(Ordering::Relaxed) as usize;
    // Page-sized pieces: the call stops at the first piece it cannot read
    // and never splits one, so the valid prefix comes back.
    let mut remote = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 8];
    let mut n = 0;
    let mut at = from;
    let end = from.saturating_add(out.len());
    while at < end && n < remote.len() {
        let next = ((at / page) + 1).saturating_mul(page).min(end);
        remote[n] = libc::iovec {
            iov_base: at as *mut libc::c_void,
            iov_len: next - at,
        };
        n += 1;
        at = next;
    }
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: at - from,
    };
    // SAFETY: `local` is our buffer of at least that length; the kernel
    // checks every remote address and fails (EFAULT) instead of faulting.
    let got =
        unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, remote.as_ptr(), n as _, 0) };
    got.max(0) as usize
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn regs_of(ctx: *mut libc::c_void) -> Regs {
    // SAFETY: the kernel passes a ucontext_t to an SA_SIGINFO handler.
    let g = unsafe { &(*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs };
    Regs {
        pc: g[libc::REG_RIP as usize] as usize,
        sp: g[libc::REG_RSP as usize] as usize,
        bp: g[libc::REG_RBP as usize] as usize,
    }
}

/// The handler: async-signal-safe (atomics, a thread-local `Cell`, and the
/// system calls gettid, clock_gettime and process_vm_readv).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
extern "C" fn on_sigprof(_: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let base = ACTIVE.load(Ordering::Acquire);
    if base.is_null() || ctx.is_null() {
        return;
    }
    // SAFETY: errno is this thread's; restored below for the code we interrupted.
    let errno = unsafe { *libc::__errno_location() };
    let i = NEXT.fetch_add(1, Ordering::Relaxed) as usize % SLOTS;
    // SAFETY: `base` points at the ring's SLOTS slots, which live forever.
    let slot = unsafe { &*base.add(i) };
    if slot
        .state
        .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        LOST.fetch_add(1, Ordering::Relaxed);
    } else {
        // SAFETY: this handler owns the slot until it stores FULL.
        let d = unsafe { &mut *slot.data.get() };
        d.regs = regs_of(ctx);
        // SAFETY: gettid has no preconditions.
        d.tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        d.time = now_ns();
        d.tag = TAG.try_with(Cell::get).unwrap_or(NO_TAG);
        d.len = copy_own(d.regs.sp, &mut d.stack);
        slot.state.store(FULL, Ordering::Release);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// The sampler, running: [`ItimerStack::stop`] it to get the samples.
pub struct ItimerStack {
    old: libc::sigaction,
    stop: Option<mpsc::Sender<()>>,
    drainer: Option<JoinHandle<StackSamples>>,
}

/// Starts sampling the process at `frequency` Hz of its CPU time, or says
/// why it cannot here. One at a time (the caller holds the profiler lock).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub fn start(frequency: u32) -> Result<ItimerStack, String> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE.store(page as u64, Ordering::Relaxed);
    }
    let probe = [7u8; 64];
    let mut back = [0u8; 64];
    if copy_own(probe.as_ptr() as usize, &mut back) != back.len() || back != probe {
        return Err(format!(
            "process_vm_readv on this process was refused ({})",
            std::io::Error::last_os_error()
        ));
    }
    crate::unwind::prepare();
    let slots = ring();
    for s in slots {
        s.state.store(EMPTY, Ordering::Relaxed);
    }
    LOST.store(0, Ordering::Relaxed);
    let (stop, stop_rx) = mpsc::channel::<()>();
    let drainer = std::thread::Builder::new()
        .name("profkit-itimer".into())
        .spawn(move || {
            let mut samples = StackSamples::default();
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(DRAIN_INTERVAL) {
                drain(slots, &mut samples);
            }
            drain(slots, &mut samples);
            samples
        })
        .map_err(|e| format!("cannot start the sampler's thread: {e}"))?;
    ACTIVE.store(slots.as_ptr().cast_mut(), Ordering::Release);
    // SAFETY: installing a handler that only does async-signal-safe work;
    // the previous disposition is kept and put back by `stop`.
    let old = unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            on_sigprof;
        new.sa_sigaction = handler as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut new.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPROF, &new, &mut old);
        old
    };
    super::cpu_pprof::set_process_timer(frequency);
    Ok(ItimerStack {
        old,
        stop: Some(stop),
        drainer: Some(drainer),
    })
}

/// Off x86_64 Linux: not available.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub fn start(_frequency: u32) -> Result<ItimerStack, String> {
    Err("the stack-copying process timer needs x86_64 Linux".into())
}

/// Unwinds every filled slot into `samples` and frees it.
fn drain(slots: &[Slot], samples: &mut StackSamples) {
    for s in slots {
        if s.state.load(Ordering::Acquire) == FULL {
            // SAFETY: FULL: the handler is done with it and no other will
            // write it until it is EMPTY again.
            let d = unsafe { &*s.data.get() };
            samples.push(d.tid, d.time, Some(d.regs), &d.stack[..d.len], d.tag);
            s.state.store(EMPTY, Ordering::Release);
        }
    }
}

impl ItimerStack {
    /// Stops the timer, puts the previous `SIGPROF` disposition back and
    /// returns every sample taken (with those the ring had no room for
    /// counted in [`StackSamples::lost`]).
    pub fn stop(mut self) -> StackSamples {
        self.halt()
    }

    fn halt(&mut self) -> StackSamples {
        super::cpu_pprof::set_process_timer(0);
        ACTIVE.store(std::ptr::null_mut(), Ordering::Release);
        // A SIGPROF generated just before the timer stopped may still be
        // pending; SIGPROF's default action ends the process, so where the
        // saved disposition is the default, ignore it instead (as pprof-rs
        // does when it stops).
        // SAFETY: restoring the disposition saved by `start`, or SIG_IGN.
        unsafe {
            let mut back = self.old;
            if back.sa_sigaction == libc::SIG_DFL {
                back.sa_sigaction = libc::SIG_IGN;
                back.sa_flags = 0;
            }
            libc::sigaction(libc::SIGPROF, &back, std::ptr::null_mut());
        }
        self.stop.take();
        let mut samples = self
            .drainer
            .take()
            .and_then(|d| d.join().ok())
            .unwrap_or_default();
        samples.lost += LOST.swap(0, Ordering::Relaxed);
        samples
    }
}

impl Drop for ItimerStack {
    fn drop(&mut self) {
        if self.drainer.is_some() {
            self.halt();
        }
    }
}

#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_copy_stops_at_the_first_unreadable_page() {
        let page = 4096;
        let mut out = vec![0u8; 3 * page];
        // SAFETY: mapping two pages, then unmapping the second.
        let base = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            std::ptr::write_bytes(p.cast::<u8>(), 9, page);
            libc::munmap(p.cast::<u8>().add(page).cast(), page);
            p as usize
        };
        assert_eq!(copy_own(base + 100, &mut out), page - 100);
        assert!(out[..page - 100].iter().all(|&b| b == 9));
        // SAFETY: the first page is still ours.
        unsafe { libc::munmap(base as *mut libc::c_void, page) };
    }

    #[test]
    fn samples_carry_the_thread_tag() {
        let _lock = super::super::cpu::PROFILER
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let t = start(250).expect("the sampler starts here");
        set_tag(7);
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        set_tag(NO_TAG);
        let s = t.stop();
        assert!(s.timed.len() >= 5, "{} samples", s.timed.len());
        let me = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        let mine: Vec<_> = s.timed.iter().filter(|t| t.tid == me).collect();
        assert!(!mine.is_empty());
        assert!(mine.iter().all(|t| t.tag == 7), "{mine:?}");
        assert!(
            s.interned.iter().any(|f| f.len() > 3),
            "stacks were unwound"
        );
    }
}
