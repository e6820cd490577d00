//! A CPU profile of the whole process with each sample labelled by the
//! request running on its thread at that moment (span entries and exits
//! matched to the per-thread sampler's timestamps, both on
//! CLOCK_MONOTONIC).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::collect::{self, LongPoll, NO_LABEL};
use crate::profile::cpu::{self, CpuError, CpuOptions, CpuProfile, Frame, SamplerChoice, Stack};
use crate::profile::cpu_stacks;

/// pprof label key of the endpoint.
pub const ENDPOINT_LABEL: &str = "endpoint";
/// pprof label key of the span path (root first, `;`-separated).
pub const SPAN_LABEL: &str = "span";

/// An endpoint's CPU samples and busiest self frames (function, samples).
pub type EndpointCpu = (u64, Vec<(String, u64)>);

/// A CPU profile whose stacks are split by request label.
#[derive(Debug)]
pub struct LabelledProfile {
    /// The profile: one stack per (thread, label, frames).
    pub profile: CpuProfile,
    /// Labels of each stack of `profile` (none outside any request).
    pub labels: Vec<Vec<(String, String)>>,
    /// The endpoint of each stack of `profile`.
    pub endpoints: Vec<Option<Arc<str>>>,
    /// Samples matched to a request.
    pub attributed: u64,
    /// Why samples could not be matched to requests, when they could not.
    pub note: Option<String>,
    /// The samples of each thread in time order, kept to look up the frames
    /// of long polls: (time, index into `timed_stacks`).
    by_thread: HashMap<i32, Vec<(u64, u32)>>,
    timed_stacks: Vec<Vec<usize>>,
}

/// Takes a CPU profile while `f` runs (on this thread: a blocking call),
/// labelling samples with requests.
pub fn profile_labelled<T>(f: impl FnOnce() -> T) -> Result<(T, LabelledProfile), CpuError> {
    let options = CpuOptions {
        frequency: Some(super::defaults::FREQUENCY),
        sampler: SamplerChoice::ItimerStack,
    };
    // The process timer's sampler, whose samples carry their request's
    // label; where it cannot run, the per-thread one, matched to a log of
    // span entries and exits by time.
    let consumer = collect::cpu_begin(false);
    let mut f = Some(f);
    let mut result = cpu::profile_timed(&options, || f.take().map(|f| f()));
    if matches!(result, Err(CpuError::Start(_))) {
        drop(consumer);
        let consumer = collect::cpu_begin(true);
        result = cpu::profile_timed(
            &CpuOptions {
                sampler: SamplerChoice::Auto,
                ..options
            },
            || f.take().map(|f| f()),
        );
        return finish(result, collect::cpu_end(consumer));
    }
    finish(result, collect::cpu_end(consumer))
}

type Taken<T> = Result<(Option<T>, CpuProfile, cpu::Timed), CpuError>;

/// Labels the samples of a profile taken.
fn finish<T>(
    result: Taken<T>,
    transitions: HashMap<i32, Vec<(u64, u32)>>,
) -> Result<(T, LabelledProfile), CpuError> {
    let (value, mut profile, timed) = result?;
    let value = value.ok_or_else(|| CpuError::Start("the profiled code did not run".into()))?;
    if timed.samples.is_empty() {
        let n = profile.stacks.len();
        let note = (profile.samples > 0).then(|| {
            format!(
                "the {} sampler gives no time per sample: samples are not matched to requests (perf_event_open must be allowed)",
                profile.sampler
            )
        });
        return Ok((
            value,
            LabelledProfile {
                profile,
                labels: vec![Vec::new(); n],
                endpoints: vec![None; n],
                attributed: 0,
                note,
                by_thread: HashMap::new(),
                timed_stacks: Vec::new(),
            },
        ));
    }
    let mut counts: HashMap<(i32, u32, u32), u64> = HashMap::new();
    let mut by_thread: HashMap<i32, Vec<(u64, u32)>> = HashMap::new();
    let empty = Vec::new();
    for s in &timed.samples {
        let label = if s.tag != NO_LABEL {
            s.tag
        } else {
            collect::label_at(transitions.get(&s.tid).unwrap_or(&empty), s.time)
        };
        *counts.entry((s.tid, label, s.stack)).or_default() += 1;
        by_thread.entry(s.tid).or_default().push((s.time, s.stack));
    }
    for v in by_thread.values_mut() {
        v.sort_unstable();
    }
    let thread_name = |tid: i32| {
        timed
            .names
            .get(&tid)
            .map_or_else(|| format!("thread-{tid}"), |n| cpu_stacks::clean_name(n))
    };
    let merged = cpu_stacks::stacks_by(counts.into_iter().map(|((tid, label, stack), n)| {
        (
            (thread_name(tid), label),
            timed.stacks[stack as usize].clone(),
            n,
        )
    }));
    let mut sorted: BTreeMap<(String, u32, Vec<Frame>), u64> = BTreeMap::new();
    for ((key, frames), n) in merged {
        *sorted.entry((key.0, key.1, frames)).or_default() += n;
    }
    let mut stacks = Vec::with_capacity(sorted.len());
    let mut labels = Vec::with_capacity(sorted.len());
    let mut endpoints = Vec::with_capacity(sorted.len());
    let mut attributed = 0;
    for ((thread, label, frames), samples) in sorted {
        let l = (label != NO_LABEL).then(|| collect::label(label)).flatten();
        match &l {
            Some((endpoint, path)) => {
                attributed += samples;
                labels.push(vec![
                    (ENDPOINT_LABEL.to_string(), endpoint.to_string()),
                    (SPAN_LABEL.to_string(), path.to_string()),
                ]);
            }
            None => labels.push(Vec::new()),
        }
        endpoints.push(l.map(|l| l.0));
        stacks.push(Stack {
            thread,
            frames,
            samples,
        });
    }
    profile.stacks = stacks;
    Ok((
        value,
        LabelledProfile {
            profile,
            labels,
            endpoints,
            attributed,
            note: None,
            by_thread,
            timed_stacks: timed.stacks,
        },
    ))
}

impl LabelledProfile {
    /// Only the stacks of `endpoint` (for its own flamegraph).
    pub fn only_endpoint(&self, endpoint: &str) -> CpuProfile {
        let stacks: Vec<Stack> = self
            .profile
            .stacks
            .iter()
            .zip(&self.endpoints)
            .filter(|(_, e)| e.as_deref() == Some(endpoint))
            .map(|(s, _)| s.clone())
            .collect();
        let samples = stacks.iter().map(|s| s.samples).sum::<u64>();
        CpuProfile {
            samples,
            cpu_time: crate::units::Nanos(self.profile.sample_period().0 * samples),
            stacks,
            ..self.profile.clone()
        }
    }

    /// Samples and the busiest self frames (leaf functions) per endpoint.
    pub fn per_endpoint(&self, top: usize) -> HashMap<Arc<str>, EndpointCpu> {
        let mut leaf: HashMap<Arc<str>, HashMap<&str, u64>> = HashMap::new();
        for (s, e) in self.profile.stacks.iter().zip(&self.endpoints) {
            if let Some(e) = e {
                let f = s.frames.last().map_or("[unknown]", |f| f.function.as_str());
                *leaf.entry(e.clone()).or_default().entry(f).or_default() += s.samples;
            }
        }
        leaf.into_iter()
            .map(|(e, by)| {
                let total = by.values().sum();
                let mut v: Vec<(String, u64)> =
                    by.into_iter().map(|(f, n)| (f.to_string(), n)).collect();
                v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                v.truncate(top);
                (e, (total, v))
            })
            .collect()
    }

    /// The frames sampled during long polls (an endpoint's: at 99 Hz one
    /// poll of 20 ms often holds no sample, its siblings do): per sample,
    /// the deepest frame of code that is not the standard library, the
    /// runtime or the profiler (a rusqlite or application function), most
    /// sampled first; and the samples.
    pub(super) fn poll_frames(&self, polls: &[LongPoll], top: usize) -> (u64, Vec<String>) {
        let mut by_stack: HashMap<u32, u64> = HashMap::new();
        let mut n = 0;
        for poll in polls {
            let Some(samples) = self.by_thread.get(&poll.tid) else {
                continue;
            };
            let from = samples.partition_point(|s| s.0 < poll.start);
            let to = samples.partition_point(|s| s.0 <= poll.end);
            for s in &samples[from..to] {
                *by_stack.entry(s.1).or_default() += 1;
            }
            n += (to - from) as u64;
        }
        let merged = cpu_stacks::stacks_by(
            by_stack
                .into_iter()
                .map(|(id, c)| ((), self.timed_stacks[id as usize].clone(), c)),
        );
        let mut by_name: HashMap<String, u64> = HashMap::new();
        for (((), frames), c) in merged {
            if let Some(f) = frames.iter().rev().find(|f| is_own_code(&f.function)) {
                *by_name.entry(f.function.clone()).or_default() += c;
            }
        }
        let mut v: Vec<_> = by_name.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        (n, v.into_iter().take(top).map(|(f, _)| f).collect())
    }
}

/// A frame of a crate the user would act on: not the standard library,
/// the async runtime, tracing or profkit's own plumbing.
fn is_own_code(function: &str) -> bool {
    const NOT: &[&str] = &[
        "std::",
        "core::",
        "alloc::",
        "tokio::",
        "tracing::",
        "tracing_core::",
        "tracing_subscriber::",
        "futures_util::",
        "futures_core::",
        "hyper::",
        "tower::",
        "axum::",
        "profkit::service::",
        "hashbrown::",
        "[",
    ];
    let f = function.trim_start_matches('<');
    // `<u64 as core::iter::range::Step>::forward_unchecked`: a primitive's
    // (or a generic's) impl of a trait belongs to the trait's crate.
    let f = match f.split_once(" as ") {
        Some((ty, tr)) if !ty.contains("::") => tr,
        _ => f,
    };
    f.contains("::") && !NOT.iter().any(|p| f.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_code_is_not_the_runtime() {
        assert!(is_own_code("rusqlite::Connection::execute"));
        assert!(is_own_code("<app::Store as app::Repo>::load"));
        assert!(!is_own_code("tokio::runtime::task::harness::poll"));
        assert!(!is_own_code("std::thread::sleep"));
        assert!(!is_own_code("sqlite3VdbeExec"));
        assert!(!is_own_code(
            "<u64 as core::iter::range::Step>::forward_unchecked"
        ));
        assert!(is_own_code("<app::Store as core::ops::drop::Drop>::drop"));
    }
}
