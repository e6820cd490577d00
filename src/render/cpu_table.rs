//! The printed CPU report: summary, top frames by self and total samples,
//! and the layer breakdown.

use comfy_table::Cell;

use super::table::{new_table as table, right};
use crate::analyze::cpu::{CpuReport, FrameShare};

/// Function names longer than this are cut in the middle.
const NAME_WIDTH: usize = 90;

fn short(name: &str) -> String {
    let n = name.chars().count();
    if n <= NAME_WIDTH {
        return name.to_string();
    }
    let head: String = name.chars().take(NAME_WIDTH / 2 - 1).collect();
    let tail: String = name.chars().skip(n - (NAME_WIDTH / 2 - 1)).collect();
    format!("{head}…{tail}")
}

fn frames_table(title: &str, frames: &[FrameShare]) -> String {
    let mut t = table();
    t.set_header(vec![
        Cell::new(title),
        right("samples"),
        right("%"),
        right("CPU"),
    ]);
    for f in frames {
        t.add_row(vec![
            Cell::new(short(&f.function)),
            right(f.samples.to_string()),
            right(format!("{:.1}", f.percent)),
            right(f.cpu_time.to_string()),
        ]);
    }
    t.to_string()
}

/// The whole report as text.
pub fn cpu_report_text(r: &CpuReport) -> String {
    let mut out = format!(
        "CPU profile of {}: {} samples, {:.0} Hz effective ({} Hz asked of the {} sampler, \
         {:.0} % captured), {} CPU in {} wall, 1 sample = {}\n",
        r.workload,
        r.samples,
        r.effective_rate,
        r.frequency,
        r.sampler,
        100.0 * r.capture,
        r.cpu_time,
        r.wall_time,
        r.sample_period
    );
    let mut layers = table();
    layers.set_header(vec![
        Cell::new("layer (leaf frame)"),
        right("samples"),
        right("%"),
    ]);
    for l in &r.layers {
        layers.add_row(vec![
            Cell::new(l.layer.label()),
            right(l.samples.to_string()),
            right(format!("{:.1}", l.percent)),
        ]);
    }
    out.push_str(&layers.to_string());
    out.push('\n');
    out.push_str(&frames_table("top frames by self samples", &r.top_self));
    out.push('\n');
    out.push_str(&frames_table("top frames by total samples", &r.top_total));
    out.push('\n');
    for w in &r.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// The one line `profkit profile` prints after a workload's CPU pass:
/// samples, rate, hottest frame, and the warnings `show` keeps.
pub fn summary_line(r: &CpuReport, show: impl FnMut(&&String) -> bool) -> String {
    let top = r
        .top_self
        .first()
        .map(|f| format!("; hottest: {} ({:.0} %)", f.function, f.percent))
        .unwrap_or_default();
    let mut s = format!(
        "cpu: {} samples at {:.0} Hz effective{top}",
        r.samples, r.effective_rate
    );
    for w in r.warnings.iter().filter(show) {
        s.push_str(&format!("\n  warning: {w}"));
    }
    s
}
