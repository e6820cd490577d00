//! Folded stacks as data: `stack → weight`, root first, frames joined by
//! `;` — the one model and the one strict parser every reader uses
//! (`profkit flamegraph`, comparisons, reports).

use std::collections::BTreeMap;

/// A folded-stacks profile: stack (frames joined by `;`, root first) →
/// weight (samples, bytes, µs). Sorted, so output from it is deterministic.
pub type Folded = BTreeMap<String, u64>;

/// A line of folded text that is not `frame;frame;… COUNT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct FoldedError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

/// Parses folded text, checking every line. Repeated stacks are summed;
/// blank lines are skipped. Empty text gives an empty profile (the caller
/// decides whether that is an error).
pub fn parse_folded(text: &str) -> Result<Folded, FoldedError> {
    let mut lines = Folded::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| FoldedError { line: i + 1, why };
        let (stack, count) = line.rsplit_once(' ').ok_or_else(|| {
            bad("expected 'frame;frame;... COUNT' (no space before a count)".into())
        })?;
        let count: u64 = count
            .parse()
            .map_err(|_| bad(format!("'{}' is not a sample count", shorten(count))))?;
        let stack = stack.trim();
        if stack.is_empty() {
            return Err(bad("empty stack before the count".into()));
        }
        if stack.split(';').any(|f| f.is_empty()) {
            return Err(bad(
                "empty frame name (';;' or a leading/trailing ';')".into()
            ));
        }
        let total = lines.entry(stack.to_string()).or_default();
        *total = total
            .checked_add(count)
            .ok_or_else(|| bad("the counts of this stack overflow 64 bits".into()))?;
    }
    Ok(lines)
}

/// Total weight; `None` when it does not fit in 64 bits.
pub fn total(folded: &Folded) -> Option<u64> {
    folded.values().try_fold(0u64, |acc, &n| acc.checked_add(n))
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
        let ok = parse_folded("a;b 3\na;b 2\n\nc 1\n").unwrap();
        assert_eq!(ok["a;b"], 5);
        assert_eq!(ok["c"], 1);
        let e = parse_folded("a;b 3\na;b three\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.why.contains("three"), "{e}");
        assert!(parse_folded("a;;b 1\n").is_err());
        assert!(parse_folded("nocount\n").is_err());
        assert!(parse_folded(" 5\n").is_err());
        assert!(parse_folded("\n\n").unwrap().is_empty());
        assert!(parse_folded(&format!("a {}\na {}\n", u64::MAX, 1)).is_err());
    }

    #[test]
    fn totals_do_not_wrap() {
        let f: Folded = [("a".to_string(), u64::MAX), ("b".to_string(), 1)].into();
        assert_eq!(total(&f), None);
        let f: Folded = [("a".to_string(), 2), ("b".to_string(), 1)].into();
        assert_eq!(total(&f), Some(3));
    }
}
