//! Folded stacks writers (`cpu.folded`, `heap.folded`, `sql.folded`): one
//! line per unique stack, root first,
//! frames joined by `;`, a space, the sample count — the format of
//! flamegraph.pl, inferno and speedscope.

use crate::analyze::stacks::Folded;
use crate::profile::cpu::CpuProfile;

/// The folded line of each unique stack with its count, root first and
/// the thread name as the root frame; stacks that differ only in line
/// numbers are merged. Sorted, so the output is deterministic.
pub fn folded_counts(profile: &CpuProfile) -> Folded {
    let mut lines = Folded::new();
    for s in &profile.stacks {
        let mut line = s.thread.clone();
        for f in &s.frames {
            line.push(';');
            line.push_str(&f.function);
        }
        *lines.entry(line).or_default() += s.samples;
    }
    lines
}

/// The profile as folded text.
pub fn to_folded(profile: &CpuProfile) -> String {
    to_text(&folded_counts(profile))
}

/// Folded text from `stack → weight`, one line per stack, sorted.
pub fn to_text(lines: &Folded) -> String {
    let mut out = String::new();
    for (stack, n) in lines {
        out.push_str(stack);
        out.push(' ');
        out.push_str(&n.to_string());
        out.push('\n');
    }
    out
}
