//! CPU profiling: pprof-rs samples every thread of the process on
//! `SIGPROF` while a measured run goes on, and the samples become plain
//! data, a [`CpuProfile`] of stacks with sample counts.
//!
//! Choices, and why:
//! - **Unwinder**: pprof-rs's `framehop-unwinder` feature. The default
//!   (backtrace-rs) unwinder calls code that is not async-signal-safe in the
//!   signal handler and can deadlock or crash (tikv/pprof-rs#36, #219); the
//!   frame-pointer unwinder needs `-C force-frame-pointers=yes` and charges
//!   the running function's time to its caller. framehop unwinds from the
//!   interrupted context with the binaries' own unwind tables.
//! - **No blocklist**: pprof-rs drops a whole sample whose leaf lies in a
//!   blocked library; time in libc and in the kernel is real and is kept.
//! - **Honest rates**: the process-wide `ITIMER_PROF` timer fires at most
//!   once per kernel tick (250 Hz here), so a profile records the asked
//!   frequency, the samples it got, and the process CPU time measured
//!   alongside; the true weight of a sample is CPU time ÷ samples.
//! - **One profiler at a time**: pprof-rs has one process-wide profiler; a
//!   mutex here serialises every profiled section.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::cpu_pprof::{guard_stacks, pprof_guard, set_process_timer};
pub use super::cpu_stacks::clean_name;
pub use super::perf::Mode;
use super::perf::{PerfTimer, Sampler};
use crate::measure::sys;
use crate::units::Nanos;

/// Defaults of CPU profiling, defined once (the CLI uses them too).
pub mod defaults {
    /// Sampling frequency in Hz. This kernel ticks at 250 Hz and the
    /// process CPU timer fires at most once per tick; 199 Hz is the highest
    /// round prime below that which was delivered in full (see README,
    /// "CPU profiling"). A prime keeps sampling out of step with periodic work.
    pub const FREQUENCY: u32 = 199;
    /// Sampling frequency of the per-thread `cpu-clock` sampler (what
    /// `perf record` uses by default, and a prime): not capped by the tick.
    pub const PERF_FREQUENCY: u32 = 997;
    /// How the per-thread sampler takes its samples by default (see
    /// BENCHMARKS.md, "CPU sampler": the cheaper of the two).
    pub const PERF_MODE: super::Mode = super::Mode::Stack;
    /// Highest frequency accepted.
    pub const MAX_FREQUENCY: u32 = 4000;
    /// Fewer samples than this make no useful flamegraph.
    pub const MIN_SAMPLES: u64 = 20;
    /// Below this share of the asked rate, a profile warns that the
    /// frequency was not honoured. Above it the warning would not matter:
    /// CPU time comes from the process's measured CPU time, so shares and
    /// times stay right and only the resolution is a little coarser.
    pub const MIN_CAPTURE: f64 = 0.5;
    /// Frequencies a rate warning may suggest (primes, like `perf`'s).
    pub const SUGGESTED: [u32; 4] = [997, 499, 199, 99];
}

/// Errors of CPU profiling.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// A frequency out of range.
    #[error("--frequency {0} is out of range: use 1 to {max} Hz (default {def})", max = defaults::MAX_FREQUENCY, def = defaults::FREQUENCY)]
    BadFrequency(u32),
    /// pprof-rs refused to start.
    #[error("cannot start the CPU profiler: {0}")]
    Start(String),
    /// pprof-rs could not produce its report.
    #[error("cannot read the CPU profile: {0}")]
    Report(String),
    /// Too few samples to say anything.
    #[error("{samples} samples in {secs:.2} s of CPU time: too few for a profile; raise --ops/--duration (or --frequency)")]
    TooFewSamples {
        /// Samples taken.
        samples: u64,
        /// CPU seconds the run used.
        secs: f64,
    },
}

/// Which clock drives the samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SamplerChoice {
    /// The per-thread `cpu-clock` ([`defaults::PERF_MODE`]) where the
    /// kernel allows it, else the process timer (with a note saying why).
    #[default]
    Auto,
    /// The per-thread `cpu-clock` ([`defaults::PERF_MODE`]) or an error.
    Perf,
    /// The per-thread `cpu-clock` with stack copies unwound by a watcher
    /// thread ([`Mode::Stack`]), or an error.
    PerfStack,
    /// The per-thread `cpu-clock` with a `SIGPROF` per sample unwound by
    /// pprof-rs ([`Mode::Signal`]), or an error.
    PerfSignal,
    /// pprof-rs's process timer.
    Itimer,
    /// The process timer with profkit's own handler copying stacks, each
    /// sample with its time and thread tag ([`super::itimer_stack`]): no
    /// cost per thread switch, for a running service. Not on the command
    /// line.
    ItimerStack,
}

impl SamplerChoice {
    /// The per-thread mode asked for, if any.
    fn mode(self) -> Option<Mode> {
        match self {
            SamplerChoice::Auto | SamplerChoice::Perf => Some(defaults::PERF_MODE),
            SamplerChoice::PerfStack => Some(Mode::Stack),
            SamplerChoice::PerfSignal => Some(Mode::Signal),
            SamplerChoice::Itimer | SamplerChoice::ItimerStack => None,
        }
    }

    /// The frequency it samples at unless asked for another: the one place
    /// the default is decided ([`defaults::PERF_FREQUENCY`] for the
    /// per-thread samplers, [`defaults::FREQUENCY`] for the process timer).
    pub fn default_frequency(self) -> u32 {
        if self.mode().is_some() {
            defaults::PERF_FREQUENCY
        } else {
            defaults::FREQUENCY
        }
    }

    /// Its name on the command line.
    fn flag(self) -> &'static str {
        match self {
            SamplerChoice::Auto => "auto",
            SamplerChoice::Perf => "perf",
            SamplerChoice::PerfStack => "perf-stack",
            SamplerChoice::PerfSignal => "perf-signal",
            SamplerChoice::Itimer => "itimer",
            SamplerChoice::ItimerStack => "itimer-stack",
        }
    }
}

/// How to sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuOptions {
    /// Samples per CPU-second asked (default: the sampler's,
    /// [`defaults::PERF_FREQUENCY`] or [`defaults::FREQUENCY`]).
    pub frequency: Option<u32>,
    /// Which sampler.
    pub sampler: SamplerChoice,
}

impl CpuOptions {
    /// The frequency asked for, or the sampler's default.
    pub fn frequency(&self) -> u32 {
        self.frequency.unwrap_or(self.sampler.default_frequency())
    }
}

/// One frame of a stack. Inlined functions are frames of their own,
/// marked `inlined` (inlined into the frame before them).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Frame {
    /// Demangled function name, without Rust's hash suffix.
    pub function: String,
    /// Source file, when line tables name one.
    pub file: Option<String>,
    /// Source line, when line tables give one.
    pub line: Option<u32>,
    /// File name of the binary or shared library holding the code.
    pub module: Option<String>,
    /// Inlined into the frame before it (its caller).
    pub inlined: bool,
}

/// A unique stack of one thread name with its sample count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// Thread name (Linux keeps 15 characters), or `thread-<id>`.
    pub thread: String,
    /// Frames, root first.
    pub frames: Vec<Frame>,
    /// Samples that hit this stack.
    pub samples: u64,
}

/// A CPU profile as plain data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuProfile {
    /// Frequency asked of the timer.
    pub frequency: u32,
    /// The clock that drove the samples.
    #[serde(default)]
    pub sampler: Sampler,
    /// Why the sampler is not the one asked for (a fallback), if it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler_note: Option<String>,
    /// Samples taken (sum over `stacks`).
    pub samples: u64,
    /// Process CPU time (user + system) during the profiled section.
    pub cpu_time: Nanos,
    /// Wall time of the profiled section.
    pub wall_time: Nanos,
    /// Start, in nanoseconds since the Unix epoch.
    pub started_unix_nanos: i64,
    /// Unique stacks, in a deterministic order (by thread, then frames).
    pub stacks: Vec<Stack>,
}

/// How [`CpuProfile::rate_warning`] begins, so a caller can tell it from
/// the other warnings.
pub const RATE_WARNING: &str = "CPU sampling:";

impl CpuProfile {
    /// Samples per CPU-second actually taken.
    pub fn effective_rate(&self) -> f64 {
        self.samples as f64 / self.cpu_time.as_secs_f64().max(1e-9)
    }

    /// Share of the asked samples that were taken:
    /// samples ÷ (frequency × CPU seconds).
    pub fn capture(&self) -> f64 {
        self.effective_rate() / self.frequency.max(1) as f64
    }

    /// CPU time one sample stands for: CPU time ÷ samples (the asked
    /// period when there are no samples).
    pub fn sample_period(&self) -> Nanos {
        match self.samples {
            0 => Nanos(1_000_000_000 / u64::from(self.frequency.max(1))),
            n => Nanos(self.cpu_time.0 / n),
        }
    }

    /// A warning when the asked frequency was not honoured by far (below
    /// [`defaults::MIN_CAPTURE`]): what limited it and, when there is one,
    /// a frequency this run would have kept up with (never the one asked).
    pub fn rate_warning(&self) -> Option<String> {
        if self.samples < defaults::MIN_SAMPLES || self.capture() >= defaults::MIN_CAPTURE {
            return None;
        }
        let why = match self.sampler {
            Sampler::Itimer | Sampler::ItimerStack => {
                "the kernel's timer tick limits the process timer"
            }
            Sampler::PerfSignal | Sampler::PerfSignalUser => {
                "samples were lost: the signal handler or the machine could not keep up"
            }
            Sampler::PerfStack | Sampler::PerfStackUser => {
                "samples were lost: the ring buffers filled faster than the watcher read them"
            }
        };
        let rate = self.effective_rate();
        let advice = defaults::SUGGESTED
            .iter()
            .find(|&&f| f < self.frequency && f64::from(f) <= 0.9 * rate)
            .map(|f| format!(" For full resolution use --frequency {f}."))
            .unwrap_or_else(|| {
                " The machine was too busy to sample steadily: profile it when it is idler.".into()
            });
        Some(format!(
            "{RATE_WARNING} asked for {} Hz, got {rate:.0} samples per CPU-second ({:.0} %): {why}. \
             Times and shares are still right (taken from the process's measured CPU time, {:.2} s); \
             only the resolution is coarser.{advice}",
            self.frequency,
            100.0 * self.capture(),
            self.cpu_time.as_secs_f64(),
        ))
    }

    /// Folds runtime plumbing frames out of every stack (see
    /// [`super::runtime`]) and merges the stacks that become equal.
    pub fn fold_runtime_frames(&mut self) {
        let mut merged: BTreeMap<(String, Vec<Frame>), u64> = BTreeMap::new();
        for s in std::mem::take(&mut self.stacks) {
            let names: Vec<&str> = s.frames.iter().map(|f| f.function.as_str()).collect();
            let kept = super::runtime::keep(&names);
            let frames: Vec<Frame> = s
                .frames
                .into_iter()
                .zip(kept)
                .filter(|(_, k)| *k)
                .map(|(f, _)| f)
                .collect();
            let frames = fold_allocator_hooks(frames);
            *merged.entry((s.thread, frames)).or_default() += s.samples;
        }
        self.stacks = super::cpu_stacks::sorted(merged);
    }

    /// An error when there are too few samples for a useful profile.
    pub fn check_enough(&self) -> Result<(), CpuError> {
        if self.samples < defaults::MIN_SAMPLES {
            return Err(CpuError::TooFewSamples {
                samples: self.samples,
                secs: self.cpu_time.as_secs_f64(),
            });
        }
        Ok(())
    }

    /// Thread names with their sample counts, busiest first.
    pub fn threads(&self) -> Vec<(String, u64)> {
        let mut by: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &self.stacks {
            *by.entry(&s.thread).or_default() += s.samples;
        }
        let mut v: Vec<_> = by.into_iter().map(|(t, n)| (t.to_string(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// The part of the profile from one thread name; CPU time is shared
    /// out by samples.
    pub fn only_thread(&self, thread: &str) -> CpuProfile {
        let stacks: Vec<Stack> = self
            .stacks
            .iter()
            .filter(|s| s.thread == thread)
            .cloned()
            .collect();
        let samples = stacks.iter().map(|s| s.samples).sum::<u64>();
        CpuProfile {
            samples,
            cpu_time: Nanos(self.sample_period().0 * samples),
            stacks,
            ..self.clone()
        }
    }
}

pub(super) static PROFILER: Mutex<()> = Mutex::new(());
/// Runs `f` under the CPU profiler and returns its result with the
/// profile. Only one profiled section runs at a time in a process; a second
/// caller waits.
pub fn profile<T>(
    options: &CpuOptions,
    f: impl FnOnce() -> T,
) -> Result<(T, CpuProfile), CpuError> {
    profile_timed(options, f).map(|(v, p, _)| (v, p))
}

/// Every sample of a profile with its thread and time, unsymbolised: what
/// the per-thread stack sampler ([`Sampler::PerfStack`]) saw, for matching
/// samples to what ran on their thread at that moment (the tracing layer
/// of `profkit::service` labels them with the request). Empty for the
/// samplers that unwind in a signal handler (no time per sample).
#[derive(Debug, Default)]
pub struct Timed {
    /// The samples, each with its thread id, time (CLOCK_MONOTONIC, ns)
    /// and index into `stacks`.
    pub samples: Vec<super::perf_stack::TimedSample>,
    /// Distinct stacks: addresses, leaf first.
    pub stacks: Vec<Vec<usize>>,
    /// Thread names by id.
    pub names: std::collections::HashMap<i32, String>,
}

/// [`profile`], also returning each sample with its time ([`Timed`]).
pub fn profile_timed<T>(
    options: &CpuOptions,
    f: impl FnOnce() -> T,
) -> Result<(T, CpuProfile, Timed), CpuError> {
    let mode = options.sampler.mode();
    let mut frequency = options.frequency();
    if frequency == 0 || frequency > defaults::MAX_FREQUENCY {
        return Err(CpuError::BadFrequency(frequency));
    }
    let _one_at_a_time = PROFILER.lock().unwrap_or_else(|p| p.into_inner());
    let started = SystemTime::now();
    let mut sampler = Sampler::Itimer;
    let mut sampler_note = None;
    let mut timer = None;
    let mut guard = None;
    let mut itimer = None;
    if options.sampler == SamplerChoice::ItimerStack {
        let t = super::itimer_stack::start(frequency)
            .map_err(|e| CpuError::Start(format!("--sampler itimer-stack: {e}")))?;
        itimer = Some(t);
        sampler = Sampler::ItimerStack;
    }
    if mode == Some(Mode::Signal) {
        // pprof-rs's handler takes the per-thread clock's signals; its
        // process timer gives way.
        guard = Some(pprof_guard(frequency)?);
        set_process_timer(0);
    }
    if let Some(mode) = mode {
        match PerfTimer::start(frequency, mode) {
            Ok(t) => {
                sampler = t.sampler();
                timer = Some(t);
            }
            Err(e) if options.sampler != SamplerChoice::Auto => {
                return Err(CpuError::Start(format!(
                    "--sampler {}: {e}",
                    options.sampler.flag()
                )));
            }
            Err(e) => {
                frequency = options
                    .frequency
                    .unwrap_or(SamplerChoice::Itimer.default_frequency());
                sampler_note = Some(format!(
                    "{e}: sampling with the process timer at {frequency} Hz instead \
                     (at most one sample per kernel tick, about 250 per CPU-second here)"
                ));
            }
        }
    }
    match (&guard, &timer) {
        (Some(_), None) => set_process_timer(frequency),
        (None, None) if itimer.is_none() => guard = Some(pprof_guard(frequency)?),
        _ => {}
    }
    let cpu_before = sys::cpu_times();
    let clock = Instant::now();
    let value = f();
    let collected = timer.map(PerfTimer::stop).or_else(|| {
        itimer.map(|t| super::perf::Collected {
            threads: 0,
            samples: t.stop(),
        })
    });
    let wall_time = Nanos::from(clock.elapsed());
    let cpu_time = Nanos(
        sys::cpu_times()
            .total()
            .0
            .saturating_sub(cpu_before.total().0),
    );
    let mut timed = Timed::default();
    let stacks = match guard {
        // The report must be built before the guard drops: stopping clears it.
        Some(guard) => guard_stacks(guard)?,
        None => {
            let mut c = collected.unwrap_or_default().samples;
            timed = Timed {
                samples: std::mem::take(&mut c.timed),
                stacks: std::mem::take(&mut c.interned),
                names: c.names.clone(),
            };
            super::cpu_stacks::stacks(c.stacks.into_iter().map(|((tid, ips), n)| {
                let name = c
                    .names
                    .get(&tid)
                    .map_or_else(|| format!("thread-{tid}"), |n| clean_name(n));
                (name, ips, n)
            }))
        }
    };
    let samples = stacks.iter().map(|s| s.samples).sum();
    let started_unix_nanos = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    Ok((
        value,
        CpuProfile {
            frequency,
            sampler,
            sampler_note,
            samples,
            cpu_time,
            wall_time,
            started_unix_nanos,
            stacks,
        },
        timed,
    ))
}

/// Each run of profkit's allocator hooks in `frames` (see
/// [`super::runtime::allocator_hook_runs`]) as one frame,
/// [`super::runtime::ALLOCATOR_HOOK`].
fn fold_allocator_hooks(frames: Vec<Frame>) -> Vec<Frame> {
    let runs = super::runtime::allocator_hook_runs(
        &frames
            .iter()
            .map(|f| f.function.as_str())
            .collect::<Vec<_>>(),
    );
    if runs.is_empty() {
        return frames;
    }
    let mut out = Vec::with_capacity(frames.len());
    let mut runs = runs.into_iter().peekable();
    for (i, f) in frames.into_iter().enumerate() {
        match runs.peek() {
            Some(r) if r.start == i => out.push(Frame {
                function: super::runtime::ALLOCATOR_HOOK.to_string(),
                file: None,
                line: None,
                module: f.module,
                inlined: false,
            }),
            Some(r) if r.contains(&i) => {}
            _ => out.push(f),
        }
        if runs.peek().is_some_and(|r| r.end == i + 1) {
            runs.next();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_measured_cpu_time() {
        let p = CpuProfile {
            frequency: 997,
            sampler: Default::default(),
            sampler_note: None,
            samples: 250,
            cpu_time: Nanos(1_000_000_000),
            wall_time: Nanos(1_000_000_000),
            started_unix_nanos: 0,
            stacks: vec![],
        };
        assert!((p.effective_rate() - 250.0).abs() < 1e-9);
        assert_eq!(p.sample_period(), Nanos(4_000_000));
        let warning = p.rate_warning().unwrap();
        assert!(warning.contains("asked for 997 Hz"), "{warning}");
        assert!(warning.contains("--frequency 199."), "{warning}");
        // Never the frequency that was asked for.
        let asked_199 = CpuProfile {
            frequency: 199,
            samples: 60,
            ..p.clone()
        };
        let warning = asked_199.rate_warning().unwrap();
        assert!(!warning.contains("--frequency 199"), "{warning}");
        // 82 % of the asked rate does not matter: no warning.
        assert_eq!(
            CpuProfile {
                samples: 818,
                ..p.clone()
            }
            .rate_warning(),
            None
        );
        assert!(CpuProfile { samples: 5, ..p }.check_enough().is_err());
    }
}
