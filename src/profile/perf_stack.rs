//! The stack-copy side of the per-thread sampler ([`super::perf::Mode::Stack`]),
//! as samply does it: each `cpu-clock` overflow writes the thread's user
//! registers (ip, sp, bp) and a copy of the top [`STACK_BYTES`] of its stack
//! into the event's ring buffer, with no signal and nothing run on the
//! sampled thread. The watcher thread reads the records, unwinds each one
//! from (registers, stack copy) with framehop ([`crate::unwind`]) and keeps
//! the return addresses; symbols are looked up once per address when the
//! profile is built, as for pprof-rs's samples.
//!
//! A sample in a system call (kernel time, where `perf_event_paranoid`
//! allows it) carries the user registers of the call, so its time goes to
//! the user-space caller — as `perf report` folds kernel frames.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use perf_event_open_sys::bindings as b;

use crate::unwind;

/// Bytes of stack copied per sample: enough for the stacks of profkit's
/// workloads (SQLite's deepest paths included), small enough that a 2 kHz
/// sampler copies 32 MB/s at most.
pub const STACK_BYTES: u32 = 16 * 1024;

/// Deepest stack kept (frames).
const MAX_FRAMES: usize = 256;

/// Size of one sample record: header, pid/tid, time, ABI, 3 registers,
/// stack size, stack, dynamic size.
const RECORD_BYTES: u64 = 8 + 8 + 8 + 8 + 3 * 8 + 8 + STACK_BYTES as u64 + 8;

/// Largest ring buffer per thread, in data pages (1 MiB of 4 KiB pages).
const MAX_PAGES: usize = 256;

/// Smallest ring buffer per thread, in data pages, when locked memory is
/// short: room for one sample record at least.
pub(super) const MIN_PAGES: usize = 8;

/// The registers asked for, in the bit order the kernel writes them.
#[cfg(target_arch = "x86_64")]
const REGS_MASK: u64 =
    (1 << b::PERF_REG_X86_BP) | (1 << b::PERF_REG_X86_SP) | (1 << b::PERF_REG_X86_IP);

/// Sets up `attr` to copy registers and stack into each sample record.
#[cfg(target_arch = "x86_64")]
pub(super) fn configure(attr: &mut b::perf_event_attr) {
    attr.sample_type = u64::from(
        b::PERF_SAMPLE_TID
            | b::PERF_SAMPLE_TIME
            | b::PERF_SAMPLE_REGS_USER
            | b::PERF_SAMPLE_STACK_USER,
    );
    // Sample times on CLOCK_MONOTONIC, the clock `profkit::service`'s
    // tracing layer stamps span entries and exits with, so that a sample
    // can be matched to the request running on its thread at that moment.
    attr.set_use_clockid(1);
    attr.clockid = libc::CLOCK_MONOTONIC;
    attr.sample_regs_user = REGS_MASK;
    attr.sample_stack_user = STACK_BYTES;
    // Nobody waits on the descriptor: the watcher polls.
    attr.wakeup_events = 0;
}

/// Data pages for a ring that holds two watcher intervals of samples of a
/// thread running all the time (a power of two, as the kernel requires).
pub(super) fn ring_pages(period_ns: u64, page: usize) -> usize {
    let per_interval = super::perf::WATCH_INTERVAL.as_nanos() as u64 / period_ns.max(1) + 1;
    let bytes = 2 * per_interval * RECORD_BYTES;
    (bytes.div_ceil(page as u64) as usize)
        .next_power_of_two()
        .clamp(MIN_PAGES, MAX_PAGES)
}

/// How long a ring of `pages` holds at `frequency` Hz of one busy thread.
pub fn ring_span(pages: usize, page: usize, frequency: u32) -> Duration {
    let samples = (pages * page) as u64 / RECORD_BYTES;
    Duration::from_nanos(samples * 1_000_000_000 / u64::from(frequency.max(1)))
}

/// One record of the ring buffer, as far as the sampler cares.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record<'a> {
    /// A sample: the thread, when (CLOCK_MONOTONIC, ns), its registers
    /// (none for a kernel thread) and the valid part of its stack copy.
    Sample {
        tid: i32,
        time: u64,
        regs: Option<unwind::Regs>,
        stack: &'a [u8],
    },
    /// The kernel dropped this many samples (the ring was full).
    Lost(u64),
    /// Anything else (throttling, …).
    Other,
}

fn u64_at(r: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(r.get(at..at + 8)?.try_into().ok()?))
}

/// Reads one whole record (header included) written with [`configure`]'s
/// sample format.
pub(super) fn parse(r: &[u8]) -> Option<Record<'_>> {
    let kind = u32::from_ne_bytes(r.get(..4)?.try_into().ok()?);
    match kind {
        b::PERF_RECORD_LOST => Some(Record::Lost(u64_at(r, 16)?)),
        b::PERF_RECORD_SAMPLE => {
            let tid = u32::from_ne_bytes(r.get(12..16)?.try_into().ok()?) as i32;
            let time = u64_at(r, 16)?;
            let abi = u64_at(r, 24)?;
            let mut at = 32;
            let regs = if abi == 0 {
                None
            } else {
                // Bit order: bp (6), sp (7), ip (8).
                let (bp, sp, pc) = (u64_at(r, at)?, u64_at(r, at + 8)?, u64_at(r, at + 16)?);
                at += 24;
                Some(unwind::Regs {
                    pc: pc as usize,
                    sp: sp as usize,
                    bp: bp as usize,
                })
            };
            let size = u64_at(r, at)? as usize;
            at += 8;
            let stack = r.get(at..at + size)?;
            let valid = if size == 0 {
                0
            } else {
                (u64_at(r, at + size)? as usize).min(size)
            };
            Some(Record::Sample {
                tid,
                time,
                regs,
                stack: &stack[..valid],
            })
        }
        _ => Some(Record::Other),
    }
}

/// One sample with its time (and tag), for matching it to what ran on its thread
/// then (see [`StackSamples::timed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedSample {
    /// Thread id.
    pub tid: i32,
    /// CLOCK_MONOTONIC, nanoseconds.
    pub time: u64,
    /// Index of its stack in [`StackSamples::interned`].
    pub stack: u32,
    /// The thread's tag when sampled ([`super::itimer_stack::set_tag`];
    /// [`super::itimer_stack::NO_TAG`] from samplers that read none).
    pub tag: u32,
}

/// Samples gathered by the watcher: per thread and stack (addresses leaf
/// first: the interrupted instruction, then return addresses), a count.
#[derive(Debug, Default)]
pub struct StackSamples {
    /// (thread id, frames leaf first) → samples.
    pub stacks: HashMap<(i32, Vec<usize>), u64>,
    /// Every sample in the order read, with its time (16 bytes each).
    pub timed: Vec<TimedSample>,
    /// The distinct stacks [`TimedSample::stack`] points into.
    pub interned: Vec<Vec<usize>>,
    index: HashMap<Vec<usize>, u32>,
    /// Thread names (`/proc/self/task/<tid>/comm`), read when the thread's
    /// event opened and again at its first sample (a new thread may name
    /// itself just after it starts).
    pub names: HashMap<i32, String>,
    /// Threads whose name was read at a sample.
    named: HashSet<i32>,
    /// Samples the kernel dropped because a ring was full.
    pub lost: u64,
    /// Records that could not be read.
    pub bad: u64,
    frames: Vec<usize>,
}

impl StackSamples {
    /// Takes one ring-buffer record.
    pub(super) fn record(&mut self, raw: &[u8]) {
        match parse(raw) {
            Some(Record::Sample {
                tid,
                time,
                regs,
                stack,
            }) => self.push(tid, time, regs, stack, super::itimer_stack::NO_TAG),
            Some(Record::Lost(n)) => self.lost += n,
            Some(Record::Other) => {}
            None => self.bad += 1,
        }
    }

    /// Takes one sample: unwinds `stack` (a copy of the thread's stack
    /// from `regs.sp` on) and counts it, with its time and tag.
    pub(super) fn push(
        &mut self,
        tid: i32,
        time: u64,
        regs: Option<unwind::Regs>,
        stack: &[u8],
        tag: u32,
    ) {
        self.frames.resize(MAX_FRAMES, 0);
        let n = match regs {
            Some(regs) => unwind::from_regs(regs, stack, &mut self.frames),
            None => 0,
        };
        let frames = &self.frames[..n];
        let id = match self.index.get(frames) {
            Some(&id) => id,
            None => {
                let id = self.interned.len() as u32;
                self.interned.push(frames.to_vec());
                self.index.insert(frames.to_vec(), id);
                id
            }
        };
        self.timed.push(TimedSample {
            tid,
            time,
            stack: id,
            tag,
        });
        let key = (tid, frames.to_vec());
        *self.stacks.entry(key).or_default() += 1;
        if self.named.insert(tid) {
            if let Some(name) = thread_name(tid) {
                self.names.insert(tid, name);
            }
        }
    }

    /// Notes the name of a thread whose event just opened.
    pub(super) fn attached(&mut self, tid: i32) {
        if let Some(name) = thread_name(tid) {
            self.names.insert(tid, name);
        }
    }

    /// Samples taken.
    pub fn total(&self) -> u64 {
        self.stacks.values().sum()
    }

    /// Samples per thread id.
    pub fn per_thread(&self) -> HashMap<i32, u64> {
        let mut by = HashMap::new();
        for ((tid, _), n) in &self.stacks {
            *by.entry(*tid).or_default() += n;
        }
        by
    }
}

/// A thread's name, unless it is gone.
fn thread_name(tid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .map(|s| s.trim_end().to_string())
        .ok()
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(tid: u32, regs: Option<[u64; 3]>, stack: &[u8], size: usize) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&b::PERF_RECORD_SAMPLE.to_ne_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]); // misc, size: not read here
        r.extend_from_slice(&7u32.to_ne_bytes());
        r.extend_from_slice(&tid.to_ne_bytes());
        r.extend_from_slice(&1234u64.to_ne_bytes());
        match regs {
            Some(v) => {
                r.extend_from_slice(&2u64.to_ne_bytes());
                for x in v {
                    r.extend_from_slice(&x.to_ne_bytes());
                }
            }
            None => r.extend_from_slice(&0u64.to_ne_bytes()),
        }
        r.extend_from_slice(&(size as u64).to_ne_bytes());
        let mut copy = stack.to_vec();
        copy.resize(size, 0xaa);
        r.extend_from_slice(&copy);
        if size > 0 {
            r.extend_from_slice(&(stack.len() as u64).to_ne_bytes());
        }
        r
    }

    #[test]
    fn sample_records_give_thread_registers_and_the_valid_stack() {
        let r = sample(
            42,
            Some([0xb0, 0x5000, 0x1234]),
            &[1, 2, 3, 4, 5, 6, 7, 8],
            32,
        );
        assert_eq!(
            parse(&r),
            Some(Record::Sample {
                tid: 42,
                time: 1234,
                regs: Some(unwind::Regs {
                    pc: 0x1234,
                    sp: 0x5000,
                    bp: 0xb0
                }),
                stack: &[1, 2, 3, 4, 5, 6, 7, 8],
            })
        );
        // No user registers (a kernel thread), no stack.
        let r = sample(9, None, &[], 0);
        assert_eq!(
            parse(&r),
            Some(Record::Sample {
                tid: 9,
                time: 1234,
                regs: None,
                stack: &[]
            })
        );
        // Cut short: unreadable, not a panic.
        assert_eq!(parse(&r[..10]), None);
    }

    #[test]
    fn lost_records_are_counted() {
        let mut r = Vec::new();
        r.extend_from_slice(&b::PERF_RECORD_LOST.to_ne_bytes());
        r.extend_from_slice(&[0, 0, 24, 0]);
        r.extend_from_slice(&1u64.to_ne_bytes());
        r.extend_from_slice(&17u64.to_ne_bytes());
        let mut s = StackSamples::default();
        s.record(&r);
        s.record(&sample(5, None, &[], 0));
        s.record(&sample(5, None, &[], 0));
        s.record(&[1, 2, 3]);
        assert_eq!((s.lost, s.total(), s.bad), (17, 2, 1));
        assert_eq!(s.per_thread()[&5], 2);
        assert_eq!(s.timed.len(), 2);
        assert_eq!((s.timed[1].tid, s.timed[1].time), (5, 1234));
        assert_eq!(s.interned.len(), 1);
    }

    #[test]
    fn rings_hold_two_watcher_intervals() {
        let page = 4096;
        let at_997 = ring_pages(1_000_000_000 / 997, page);
        assert!(at_997.is_power_of_two());
        assert!(ring_span(at_997, page, 997) >= 2 * super::super::perf::WATCH_INTERVAL);
        assert_eq!(ring_pages(1_000_000_000 / 4000, page), MAX_PAGES);
        // The smallest ring still holds a whole sample record.
        assert!((MIN_PAGES * page) as u64 >= RECORD_BYTES);
    }
}
