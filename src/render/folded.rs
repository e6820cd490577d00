//! Folded stacks (`cpu.folded`): one line per unique stack, root first,
//! frames joined by `;`, a space, the sample count — the format of
//! flamegraph.pl, inferno and speedscope.

use std::collections::BTreeMap;
use std::path::Path;

use crate::profile::cpu::CpuProfile;
use crate::render::flamegraph::InputError;

/// The folded line of each unique stack with its count, root first and
/// the thread name as the root frame; stacks that differ only in line
/// numbers are merged. Sorted, so the output is deterministic.
pub fn folded_counts(profile: &CpuProfile) -> BTreeMap<String, u64> {
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
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
    lines_to_text(&folded_counts(profile))
}

/// Folded text from `stack → count`.
pub fn lines_to_text(lines: &BTreeMap<String, u64>) -> String {
    let mut out = String::new();
    for (stack, n) in lines {
        out.push_str(stack);
        out.push(' ');
        out.push_str(&n.to_string());
        out.push('\n');
    }
    out
}

/// Parses folded text, checking every line; the error names `path` and
/// the line. Repeated stacks are summed. Blank lines are skipped.
pub fn parse_folded(text: &str, path: &Path) -> Result<BTreeMap<String, u64>, InputError> {
    let mut lines = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| InputError::Folded {
            path: path.to_path_buf(),
            line: i + 1,
            why: why.to_string(),
        };
        let (stack, count) = line
            .rsplit_once(' ')
            .ok_or_else(|| bad("expected 'frame;frame;... COUNT' (no space before a count)"))?;
        let count: u64 = count
            .parse()
            .map_err(|_| bad(&format!("'{}' is not a sample count", shorten(count))))?;
        let stack = stack.trim();
        if stack.is_empty() {
            return Err(bad("empty stack before the count"));
        }
        if stack.split(';').any(|f| f.is_empty()) {
            return Err(bad("empty frame name (';;' or a leading/trailing ';')"));
        }
        *lines.entry(stack.to_string()).or_default() += count;
    }
    if lines.values().all(|&n| n == 0) {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(lines)
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named() {
        let p = Path::new("x.folded");
        let ok = parse_folded("a;b 3\na;b 2\n\nc 1\n", p).unwrap();
        assert_eq!(ok["a;b"], 5);
        let e = parse_folded("a;b 3\na;b three\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.folded") && e.contains("line 2"), "{e}");
        assert!(parse_folded("a;;b 1\n", p).is_err());
        assert!(parse_folded("nocount\n", p).is_err());
        assert!(parse_folded("\n\n", p)
            .unwrap_err()
            .to_string()
            .contains("no samples"));
    }
}
