//! pprof-rs behind profkit's CPU profiler: the process-timer sampler (the
//! fallback where the kernel refuses `perf_event_open`) and the
//! perf-signal sampler's `SIGPROF` handler. Without the `pprof-rs` feature
//! only stubs remain, whose errors name the feature.

#[cfg(feature = "pprof-rs")]
use std::sync::atomic::{AtomicBool, Ordering};

use super::cpu::{CpuError, Stack};
#[cfg(feature = "pprof-rs")]
use super::cpu_stacks::clean_name;

#[cfg(feature = "pprof-rs")]
static PRIMED: AtomicBool = AtomicBool::new(false);

#[cfg(feature = "pprof-rs")]
/// pprof-rs's framehop unwinder lists the loaded binaries lazily, on the
/// first `SIGPROF`, inside the signal handler — and that allocates. If the
/// first sample interrupts `malloc` (an allocation-heavy workload), the
/// process deadlocks on the allocator's lock. So once per process the
/// handler is run here first, on this thread, at a point that holds no
/// lock: a profiler at 1 Hz (whose timer will not fire before it stops)
/// and a `raise(SIGPROF)`. Called with [`super::cpu::PROFILER`] held.
pub(super) fn prime_unwinder() -> Result<(), CpuError> {
    if PRIMED.load(Ordering::Acquire) {
        return Ok(());
    }
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(1)
        .build()
        .map_err(|e| CpuError::Start(e.to_string()))?;
    // SAFETY: raise delivers SIGPROF to this thread before returning; the
    // handler pprof-rs just installed runs here, outside any allocator call.
    unsafe { libc::raise(libc::SIGPROF) };
    drop(guard);
    PRIMED.store(true, Ordering::Release);
    Ok(())
}

/// pprof-rs's profiler, running.
#[cfg(feature = "pprof-rs")]
pub(super) type Guard = pprof::ProfilerGuard<'static>;

/// No pprof-rs in this build: no guard can exist.
#[cfg(not(feature = "pprof-rs"))]
pub(super) enum Guard {}

/// The stacks a pprof-rs profiler took (the report must be built before
/// the guard drops: stopping clears it).
#[cfg(feature = "pprof-rs")]
pub(super) fn guard_stacks(guard: Guard) -> Result<Vec<Stack>, CpuError> {
    let report = guard
        .report()
        .build_unresolved()
        .map_err(|e| CpuError::Report(e.to_string()))?;
    Ok(convert(&report))
}

#[cfg(not(feature = "pprof-rs"))]
pub(super) fn guard_stacks(guard: Guard) -> Result<Vec<Stack>, CpuError> {
    match guard {}
}

/// Without pprof-rs, the process-timer and perf-signal samplers are not
/// there: say which feature brings them.
#[cfg(not(feature = "pprof-rs"))]
pub(super) fn pprof_guard(_frequency: u32) -> Result<Guard, CpuError> {
    Err(CpuError::Start(
        "the process-timer and perf-signal samplers need profkit's `pprof-rs` feature (on by default, off in this build): \
         enable it, or use --sampler perf-stack where the kernel allows perf_event (/proc/sys/kernel/perf_event_paranoid)"
            .to_string(),
    ))
}

/// pprof-rs's profiler (its `SIGPROF` handler and process timer at
/// `frequency` Hz), primed first. Called with [`super::cpu::PROFILER`] held.
#[cfg(feature = "pprof-rs")]
pub(super) fn pprof_guard(frequency: u32) -> Result<pprof::ProfilerGuard<'static>, CpuError> {
    prime_unwinder()?;
    pprof::ProfilerGuardBuilder::default()
        .frequency(frequency as i32)
        .build()
        .map_err(|e| CpuError::Start(e.to_string()))
}

/// Sets the process CPU timer (`ITIMER_PROF`) that drives pprof-rs to
/// `frequency` Hz, or stops it (0).
pub(super) fn set_process_timer(frequency: u32) {
    let usec = if frequency == 0 {
        0
    } else {
        1_000_000 / i64::from(frequency)
    };
    let interval = libc::timeval {
        tv_sec: 0,
        tv_usec: usec as libc::suseconds_t,
    };
    let value = libc::itimerval {
        it_interval: interval,
        it_value: interval,
    };
    // SAFETY: a valid itimerval; the old value is not asked for.
    unsafe { libc::setitimer(libc::ITIMER_PROF, &value, std::ptr::null_mut()) };
}

/// pprof-rs's samples as stacks (see [`super::cpu_stacks::stacks`]).
#[cfg(feature = "pprof-rs")]
fn convert(report: &pprof::UnresolvedReport) -> Vec<Stack> {
    let samples = report.data.iter().filter(|(_, &n)| n > 0).map(|(u, &n)| {
        let name = &u.thread_name[..u.thread_name_length];
        let thread = if name.is_empty() {
            format!("thread-{}", u.thread_id)
        } else {
            clean_name(&String::from_utf8_lossy(name))
        };
        let ips: Vec<usize> = u.frames.iter().map(|f| f.ip).collect();
        (thread, ips, n as u64)
    });
    super::cpu_stacks::stacks(samples)
}
