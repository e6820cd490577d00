//! Exports to the viewers people share profiles in: speedscope's file
//! format (one `sampled` profile per thread, weights in CPU nanoseconds)
//! and the Firefox Profiler's processed format (written with
//! `fxprof-processed-profile`, samply's crate: one thread per worker
//! thread, samples with CPU deltas, SQL statements as markers, heap
//! allocations as allocation samples).
//!
//! profkit keeps CPU stacks aggregated (a count per stack and thread), not
//! a time series: each stack becomes one sample weighted by its count, laid
//! one after the other over the run's duration. Call trees, flame graphs
//! and totals are exact; the timeline's order is not the run's.

#[cfg(feature = "firefox")]
use fxprof_processed_profile::{
    CategoryColor, CategoryHandle, CpuDelta, Frame, FrameFlags, FrameInfo, MarkerFieldFlags,
    MarkerFieldFormat, MarkerTiming, Profile, ReferenceTimestamp, SamplingInterval,
    StaticSchemaMarker, StaticSchemaMarkerField, StringHandle, Timestamp,
};
use serde_json::json;

/// One thread's CPU stacks: frames root first, and samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThreadStacks {
    /// Thread name.
    pub name: String,
    /// (frames root first, samples).
    pub stacks: Vec<(Vec<String>, u64)>,
}

/// A SQL statement as a marker: its text, executions and total time.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlMarker {
    /// Statement text (normalized).
    pub text: String,
    /// Times it ran.
    pub executions: u64,
    /// Total time, ns.
    pub total_ns: u64,
}

/// What an export reads: one run's CPU stacks per thread, and optionally
/// its SQL statements and heap allocation stacks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportInput {
    /// Run id (the profile's name).
    pub name: String,
    /// Nanoseconds of CPU per sample.
    pub sample_period_ns: u64,
    /// Start, ns since the Unix epoch.
    pub start_unix_ns: i64,
    /// Threads (a thread may have no samples).
    pub threads: Vec<ThreadStacks>,
    /// SQL statements.
    pub sql: Vec<SqlMarker>,
    /// Allocation stacks (root first) and bytes.
    pub heap: Vec<(Vec<String>, u64)>,
}

/// speedscope's JSON file format
/// (<https://www.speedscope.app/file-format-schema.json>).
pub fn to_speedscope(input: &ExportInput) -> String {
    let mut frames: Vec<String> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut frame_id = |name: &str| -> usize {
        if let Some(&i) = index.get(name) {
            return i;
        }
        frames.push(name.to_string());
        index.insert(name.to_string(), frames.len() - 1);
        frames.len() - 1
    };
    let mut profiles = Vec::new();
    for t in &input.threads {
        let mut samples = Vec::new();
        let mut weights = Vec::new();
        for (stack, n) in &t.stacks {
            samples.push(stack.iter().map(|f| frame_id(f)).collect::<Vec<_>>());
            weights.push(n * input.sample_period_ns);
        }
        let total: u64 = weights.iter().sum();
        profiles.push(json!({
            "type": "sampled",
            "name": t.name,
            "unit": "nanoseconds",
            "startValue": 0,
            "endValue": total,
            "samples": samples,
            "weights": weights,
        }));
    }
    let frames: Vec<_> = frames.into_iter().map(|n| json!({ "name": n })).collect();
    json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "name": input.name,
        "exporter": format!("profkit {}", env!("CARGO_PKG_VERSION")),
        "activeProfileIndex": 0,
        "shared": { "frames": frames },
        "profiles": profiles,
    })
    .to_string()
}

#[cfg(feature = "firefox")]
/// A SQL statement marker of the Firefox Profiler.
struct SqlStatement {
    name: StringHandle,
    text: StringHandle,
    executions: f64,
    total_ms: f64,
}

#[cfg(feature = "firefox")]
impl StaticSchemaMarker for SqlStatement {
    const UNIQUE_MARKER_TYPE_NAME: &'static str = "profkitSql";
    const DESCRIPTION: Option<&'static str> =
        Some("A SQL statement: executions and total time over the run");
    const CHART_LABEL: Option<&'static str> = Some("{marker.data.text}");
    const TOOLTIP_LABEL: Option<&'static str> = Some("{marker.data.text}");
    const TABLE_LABEL: Option<&'static str> =
        Some("{marker.data.text} ({marker.data.executions} runs)");
    const FIELDS: &'static [StaticSchemaMarkerField] = &[
        StaticSchemaMarkerField {
            key: "text",
            label: "Statement",
            format: MarkerFieldFormat::String,
            flags: MarkerFieldFlags::SEARCHABLE,
        },
        StaticSchemaMarkerField {
            key: "executions",
            label: "Executions",
            format: MarkerFieldFormat::Integer,
            flags: MarkerFieldFlags::empty(),
        },
        StaticSchemaMarkerField {
            key: "total",
            label: "Total time",
            format: MarkerFieldFormat::Milliseconds,
            flags: MarkerFieldFlags::empty(),
        },
    ];

    fn name(&self, _profile: &mut Profile) -> StringHandle {
        self.name
    }

    fn category(&self, _profile: &mut Profile) -> CategoryHandle {
        CategoryHandle::OTHER
    }

    fn string_field_value(&self, _field_index: u32) -> StringHandle {
        self.text
    }

    fn number_field_value(&self, field_index: u32) -> f64 {
        if field_index == 1 {
            self.executions
        } else {
            self.total_ms
        }
    }
}

#[cfg(feature = "firefox")]
/// The Firefox Profiler's processed profile format, as JSON.
pub fn to_firefox(input: &ExportInput) -> String {
    let period = input.sample_period_ns.max(1);
    let start =
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(input.start_unix_ns.max(0) as u64);
    let mut profile = Profile::new(
        &format!("profkit {}", input.name),
        ReferenceTimestamp::from_system_time(start),
        SamplingInterval::from_nanos(period),
    );
    let cpu = profile.add_category("CPU", CategoryColor::Blue);
    let process = profile.add_process(
        "profkit",
        std::process::id(),
        Timestamp::from_nanos_since_reference(0),
    );
    let mut first = None;
    for (i, t) in input.threads.iter().enumerate() {
        let thread = profile.add_thread(
            process,
            i as u32 + 1,
            Timestamp::from_nanos_since_reference(0),
            // A main thread is shown under the process's name: none is.
            false,
        );
        first.get_or_insert(thread);
        profile.set_thread_name(thread, &t.name);
        let mut at = 0u64;
        for (stack, n) in &t.stacks {
            let frames: Vec<FrameInfo> = stack
                .iter()
                .map(|f| FrameInfo {
                    frame: Frame::Label(profile.intern_string(f)),
                    category_pair: cpu.into(),
                    flags: FrameFlags::empty(),
                })
                .collect();
            let handle = profile.intern_stack_frames(thread, frames.into_iter());
            at += n * period;
            profile.add_sample(
                thread,
                Timestamp::from_nanos_since_reference(at),
                handle,
                CpuDelta::from_nanos(n * period),
                (*n).min(i32::MAX as u64) as i32,
            );
        }
    }
    let first = first.unwrap_or_else(|| {
        let t = profile.add_thread(process, 1, Timestamp::from_nanos_since_reference(0), false);
        profile.set_thread_name(t, "main");
        t
    });
    let mut at = 0u64;
    for s in &input.sql {
        let marker = SqlStatement {
            name: profile.intern_string("SQL"),
            text: profile.intern_string(&s.text),
            executions: s.executions as f64,
            total_ms: s.total_ns as f64 / 1e6,
        };
        let timing = MarkerTiming::Interval(
            Timestamp::from_nanos_since_reference(at),
            Timestamp::from_nanos_since_reference(at + s.total_ns),
        );
        at += s.total_ns;
        profile.add_marker(first, timing, marker);
    }
    for (i, (stack, bytes)) in input.heap.iter().enumerate() {
        let frames: Vec<FrameInfo> = stack
            .iter()
            .map(|f| FrameInfo {
                frame: Frame::Label(profile.intern_string(f)),
                category_pair: CategoryHandle::OTHER.into(),
                flags: FrameFlags::empty(),
            })
            .collect();
        let handle = profile.intern_stack_frames(first, frames.into_iter());
        profile.add_allocation_sample(
            first,
            Timestamp::from_nanos_since_reference(i as u64),
            handle,
            i as u64 + 1,
            (*bytes).min(i64::MAX as u64) as i64,
        );
    }
    serde_json::to_string(&profile).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ExportInput {
        ExportInput {
            name: "run".into(),
            sample_period_ns: 1_000_000,
            start_unix_ns: 1,
            threads: vec![
                ThreadStacks {
                    name: "pk-worker-0".into(),
                    stacks: vec![
                        (vec!["main".into(), "work".into()], 3),
                        (vec!["main".into(), "<A as B>::op".into()], 2),
                    ],
                },
                ThreadStacks {
                    name: "idle".into(),
                    stacks: Vec::new(),
                },
            ],
            sql: vec![SqlMarker {
                text: "SELECT 1".into(),
                executions: 4,
                total_ns: 2_000_000,
            }],
            heap: vec![(vec!["main".into(), "alloc_rows".into()], 640)],
        }
    }

    #[test]
    fn speedscope_has_one_sampled_profile_per_thread_weighted_in_cpu_time() {
        let v: serde_json::Value = serde_json::from_str(&to_speedscope(&input())).unwrap();
        let p = v["profiles"].as_array().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0]["type"], "sampled");
        assert_eq!(p[0]["weights"], json!([3_000_000, 2_000_000]));
        assert_eq!(p[0]["endValue"], 5_000_000);
        assert_eq!(p[1]["samples"], json!([]));
        let frames = v["shared"]["frames"].as_array().unwrap();
        let leaf = p[0]["samples"][1][1].as_u64().unwrap() as usize;
        assert_eq!(frames[leaf]["name"], "<A as B>::op");
    }

    #[cfg(feature = "firefox")]
    #[test]
    fn firefox_profile_has_threads_samples_markers_and_allocations() {
        let v: serde_json::Value = serde_json::from_str(&to_firefox(&input())).unwrap();
        let threads = v["threads"].as_array().unwrap();
        assert_eq!(threads.len(), 2);
        let named = |n: &str| threads.iter().find(|t| t["name"] == n).unwrap();
        let (worker, idle) = (named("pk-worker-0"), named("idle"));
        let samples = &worker["samples"];
        assert_eq!(samples["length"], 2);
        assert_eq!(samples["weight"], json!([3, 2]));
        assert_eq!(idle["samples"]["length"], 0);
        assert_eq!(worker["markers"]["length"], 1);
        assert_eq!(worker["nativeAllocations"]["length"], 1);
        assert!(v["meta"]["markerSchema"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "profkitSql"));
        assert!(v["meta"]["version"].as_u64().is_some());
    }
}
