//! Allocation summaries from a dhat file: totals, the top sites by bytes,
//! peak and blocks, short-lived hot spots, and allocation stacks as folded
//! data for flamegraphs.

use serde::{Deserialize, Serialize};

use super::stacks::Folded;
use crate::profile::dhat::{
    frame_location, frame_without_address, is_internal_frame, DhatFile, DhatPp,
};
use crate::profile::runtime;
use crate::units::Bytes;

/// Version of `alloc.json`.
pub const ALLOC_SCHEMA_VERSION: u32 = 1;

/// Defaults of allocation summaries, defined once.
pub mod defaults {
    /// Sites listed in each top list.
    pub const TOP_SITES: usize = 10;
    /// Frames in a short readable stack.
    pub const SHORT_STACK: usize = 4;
    /// A site is a short-lived hot spot when its blocks live this long on
    /// average, or less (µs)…
    pub const SHORT_LIVED_US: f64 = 100.0;
    /// …and it allocates at least this share of all blocks.
    pub const SHORT_LIVED_MIN_SHARE: f64 = 0.01;
}

/// How folded stacks are weighted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weight {
    /// Bytes allocated over the run (`tb`).
    Bytes,
    /// Blocks allocated over the run (`tbk`).
    Blocks,
    /// Bytes still live at the end (`eb`).
    LiveBytes,
}

fn folded_frame(name: &str) -> String {
    // ';' separates frames and a trailing number is the weight: keep both
    // out of names.
    name.replace(';', ":").replace('\n', " ")
}

/// Allocation stacks of a dhat file (root first, `[root]` left out),
/// weighted as asked; sites of zero weight are left out, sites with the
/// same function names are summed. Runtime plumbing frames are folded
/// (see [`crate::profile::runtime`]) unless `keep_runtime`.
pub fn heap_stacks(file: &DhatFile, weight: Weight, keep_runtime: bool) -> Folded {
    let mut out = Folded::new();
    for pp in &file.pps {
        let w = match weight {
            Weight::Bytes => pp.tb,
            Weight::Blocks => pp.tbk,
            Weight::LiveBytes => pp.eb.unwrap_or(0),
        };
        if w == 0 {
            continue;
        }
        let frames: Vec<String> = pp
            .fs
            .iter()
            .rev()
            .map(|&f| file.function(f))
            .filter(|f| *f != "[root]")
            .map(folded_frame)
            .collect();
        let stack = if frames.is_empty() {
            "[unknown]".to_string()
        } else if keep_runtime {
            frames.join(";")
        } else {
            let kept = runtime::keep(&frames);
            let folded: Vec<&str> = frames
                .iter()
                .zip(kept)
                .filter(|(_, k)| *k)
                .map(|(f, _)| f.as_str())
                .collect();
            folded.join(";")
        };
        let total = out.entry(stack).or_default();
        *total = total.saturating_add(w);
    }
    out
}

/// One allocation site in a summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteSummary {
    /// The first frame that is not allocator or std plumbing, with its location.
    pub site: String,
    /// A short readable stack: that frame and its callers.
    pub stack: Vec<String>,
    /// Bytes allocated here.
    pub total_bytes: Bytes,
    /// Blocks allocated here.
    pub total_blocks: u64,
    /// Bytes live from here at the global peak.
    pub peak_bytes: Bytes,
    /// Bytes live from here at the end.
    pub end_bytes: Bytes,
    /// Average block size.
    pub avg_block: f64,
    /// Average block lifetime, µs.
    pub avg_lifetime_us: f64,
}

/// What `alloc.json` holds: totals and the top allocation sites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocSummary {
    /// [`ALLOC_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Bytes allocated over the profiled span.
    pub total_bytes: Bytes,
    /// Blocks allocated.
    pub total_blocks: u64,
    /// Most bytes live at once (t-gmax).
    pub peak_bytes: Bytes,
    /// Blocks live then.
    pub peak_blocks: u64,
    /// When the peak happened, µs after profiling began.
    pub peak_at_us: Option<u64>,
    /// Length of the profiled span, µs.
    pub duration_us: u64,
    /// Bytes still live at the end (t-end).
    pub end_bytes: Bytes,
    /// Blocks still live at the end.
    pub end_blocks: u64,
    /// Bytes allocated by SQLite (sites with a `sqlite3` frame).
    pub sqlite_bytes: Bytes,
    /// Distinct allocation sites (stacks).
    pub sites: usize,
    /// Top sites by bytes allocated.
    pub top_by_bytes: Vec<SiteSummary>,
    /// Top sites by bytes live at the global peak.
    pub top_by_peak: Vec<SiteSummary>,
    /// Workload operations in the profiled span (warm-up included), when known.
    #[serde(default)]
    pub ops: Option<u64>,
    /// Bytes allocated per operation (`total_bytes ÷ ops`), when known.
    #[serde(default)]
    pub bytes_per_op: Option<f64>,
    /// Top sites by blocks allocated.
    pub top_by_blocks: Vec<SiteSummary>,
    /// Many small blocks freed quickly: candidates for reuse.
    pub short_lived: Vec<SiteSummary>,
    /// The figures are estimates from sampled allocations (`profkit heap
    /// --sampled`), not exact counts.
    #[serde(default)]
    pub sampled: bool,
    /// Mean bytes between samples, when sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_interval: Option<u64>,
}

/// The short readable stack of a site: up to `n` frames from the first one
/// that is not plumbing, without addresses.
pub fn short_stack(file: &DhatFile, pp: &DhatPp, n: usize) -> Vec<String> {
    let shown: Vec<String> = pp
        .fs
        .iter()
        .filter(|&&f| !is_internal_frame(&file.ftbl[f]))
        .take(n)
        .map(|&f| short_frame(frame_without_address(&file.ftbl[f])))
        .collect();
    if shown.is_empty() {
        // All plumbing (e.g. a runtime allocation): show the outermost frames.
        pp.fs
            .iter()
            .rev()
            .filter(|&&f| file.function(f) != "[root]")
            .take(n)
            .map(|&f| short_frame(frame_without_address(&file.ftbl[f])))
            .collect()
    } else {
        shown
    }
}

/// Shortens `f (/long/path/src/x.rs:10:5)` to `f (src/x.rs:10)`.
fn short_frame(frame: &str) -> String {
    let Some(i) = frame.rfind(" (") else {
        return without_generic_arguments(frame);
    };
    let (name, loc) = (&frame[..i], &frame[i + 2..frame.len().saturating_sub(1)]);
    let name = without_generic_arguments(name);
    let mut parts: Vec<&str> = loc.split(':').collect();
    if parts.len() == 3 {
        parts.pop(); // column
    }
    let file = parts.first().copied().unwrap_or("");
    let file = file.rsplit('/').take(2).collect::<Vec<_>>();
    let file = file.into_iter().rev().collect::<Vec<_>>().join("/");
    match parts.get(1) {
        Some(line) if !file.is_empty() => format!("{name} ({file}:{line})"),
        _ if !file.is_empty() => format!("{name} ({file})"),
        _ => name.to_string(),
    }
}

/// Generic arguments make lines unreadable: `query_row<P,F>` → `query_row`,
/// `Histogram<T>::new` → `Histogram::new`. A `<…>` right after an
/// identifier is a list of generic arguments and goes; one that opens a path
/// segment (`queries::<impl DatabaseManager>::get_email`, `<T as Into<U>>::into`)
/// names the function and stays (without its own generic arguments).
fn without_generic_arguments(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut skipping = 0usize;
    for c in name.chars() {
        if skipping > 0 {
            match c {
                '<' => skipping += 1,
                '>' => skipping -= 1,
                _ => {}
            }
            continue;
        }
        let after_identifier = out.ends_with(|p: char| p.is_alphanumeric() || p == '_');
        if c == '<' && after_identifier {
            skipping = 1;
        } else {
            out.push(c);
        }
    }
    out
}

fn site_summary(file: &DhatFile, pp: &DhatPp) -> SiteSummary {
    let stack = short_stack(file, pp, defaults::SHORT_STACK);
    SiteSummary {
        site: stack.first().cloned().unwrap_or_else(|| "[unknown]".into()),
        stack,
        total_bytes: Bytes(pp.tb),
        total_blocks: pp.tbk,
        peak_bytes: Bytes(pp.gb.unwrap_or(0)),
        end_bytes: Bytes(pp.eb.unwrap_or(0)),
        avg_block: pp.tb as f64 / pp.tbk.max(1) as f64,
        avg_lifetime_us: pp.tl.unwrap_or(0) as f64 / pp.tbk.max(1) as f64,
    }
}

fn top_by(file: &DhatFile, key: impl Fn(&DhatPp) -> u64) -> Vec<SiteSummary> {
    let mut pps: Vec<&DhatPp> = file.pps.iter().filter(|pp| key(pp) > 0).collect();
    pps.sort_by_key(|pp| std::cmp::Reverse(key(pp)));
    pps.into_iter()
        .take(defaults::TOP_SITES)
        .map(|pp| site_summary(file, pp))
        .collect()
}

/// Totals and top sites of a dhat file.
pub fn summarize(file: &DhatFile) -> AllocSummary {
    let sum = |f: &dyn Fn(&DhatPp) -> u64| file.pps.iter().map(f).sum::<u64>();
    let total_blocks = sum(&|pp| pp.tbk);
    let is_sqlite = |pp: &DhatPp| {
        pp.fs.iter().any(|&f| {
            file.function(f).starts_with("sqlite3")
                || frame_location(&file.ftbl[f]).contains("sqlite3.c")
        })
    };
    let mut short: Vec<&DhatPp> = file
        .pps
        .iter()
        .filter(|pp| {
            pp.tbk > 0
                && pp.tl.is_some()
                && (pp.tbk as f64) >= defaults::SHORT_LIVED_MIN_SHARE * total_blocks as f64
                && pp.tl.unwrap_or(0) as f64 / pp.tbk as f64 <= defaults::SHORT_LIVED_US
        })
        .collect();
    short.sort_by_key(|pp| std::cmp::Reverse(pp.tbk));
    AllocSummary {
        schema_version: ALLOC_SCHEMA_VERSION,
        total_bytes: Bytes(sum(&|pp| pp.tb)),
        total_blocks,
        peak_bytes: Bytes(sum(&|pp| pp.gb.unwrap_or(0))),
        peak_blocks: sum(&|pp| pp.gbk.unwrap_or(0)),
        peak_at_us: file.tg,
        duration_us: file.te,
        end_bytes: Bytes(sum(&|pp| pp.eb.unwrap_or(0))),
        end_blocks: sum(&|pp| pp.ebk.unwrap_or(0)),
        sqlite_bytes: Bytes(sum(&|pp| if is_sqlite(pp) { pp.tb } else { 0 })),
        sites: file.pps.len(),
        top_by_bytes: top_by(file, |pp| pp.tb),
        top_by_peak: top_by(file, |pp| pp.gb.unwrap_or(0)),
        ops: None,
        bytes_per_op: None,
        top_by_blocks: top_by(file, |pp| pp.tbk),
        short_lived: short
            .into_iter()
            .take(defaults::TOP_SITES)
            .map(|pp| site_summary(file, pp))
            .collect(),
        sampled: false,
        sample_interval: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::dhat::tests::sample;

    #[test]
    fn a_site_keeps_its_impl_segment_and_loses_generic_arguments() {
        let cases = [
            (
                "profkit::db::queries::<impl profkit::db::DatabaseManager>::get_email (/r/src/db/queries.rs:254:9)",
                "profkit::db::queries::<impl profkit::db::DatabaseManager>::get_email (db/queries.rs:254)",
            ),
            (
                "rusqlite::Statement::query_row<P,F> (/c/src/statement.rs:381:5)",
                "rusqlite::Statement::query_row (src/statement.rs:381)",
            ),
            (
                "<T as core::convert::Into<U>>::into (/rustc/convert/mod.rs:778:9)",
                "<T as core::convert::Into>::into (convert/mod.rs:778)",
            ),
            ("hdrhistogram::Histogram<T>::new", "hdrhistogram::Histogram::new"),
        ];
        for (frame, short) in cases {
            assert_eq!(short_frame(frame), short, "{frame}");
        }
    }

    #[test]
    fn folds_and_summarises() {
        let f = sample();
        let stacks = heap_stacks(&f, Weight::Bytes, true);
        let lines: Vec<(&str, u64)> = stacks.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_eq!(
            lines,
            vec![
                ("main;a:b", 100),
                (
                    "main;profkit::workload::cache::preview;alloc::alloc::alloc",
                    960
                )
            ]
        );
        assert_eq!(heap_stacks(&f, Weight::LiveBytes, true).len(), 1);
        let s = summarize(&f);
        assert_eq!(s.total_bytes, Bytes(1060));
        assert_eq!(s.end_bytes, Bytes(960));
        assert_eq!(
            s.top_by_bytes[0].site,
            "profkit::workload::cache::preview (workload/cache.rs:71)"
        );
        assert_eq!(s.top_by_blocks[0].total_blocks, 100);
        assert_eq!(s.short_lived.len(), 2);
    }
}
