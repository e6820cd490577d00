//! A budget as `profkit.toml` text, in the units a person writes.

use std::fmt::Write as _;

use crate::analyze::budget::{Budget, Limit, Metric, Unit};

/// A value in the file's units: `350us`, `64MiB`, `1.5k`, `1%`, `2.1`.
pub fn toml_value(metric: Metric, v: f64) -> String {
    // Three significant digits: a budget is a judgement, not a measurement.
    let num = |x: f64| {
        let s = match x.abs() {
            a if a >= 100.0 => format!("{x:.0}"),
            a if a >= 10.0 => format!("{x:.1}"),
            _ => format!("{x:.2}"),
        };
        match s.contains('.') {
            true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
            false => s,
        }
    };
    match metric.unit() {
        Unit::Nanos => {
            let (d, u) = match v {
                v if v >= 1e9 => (1e9, "s"),
                v if v >= 1e6 => (1e6, "ms"),
                v if v >= 1e3 => (1e3, "us"),
                _ => (1.0, "ns"),
            };
            format!("\"{}{u}\"", num(v / d))
        }
        Unit::Bytes | Unit::BytesPerOp => {
            let (d, u) = match v {
                v if v >= 1024.0 * 1024.0 * 1024.0 => (1024.0 * 1024.0 * 1024.0, "GiB"),
                v if v >= 1024.0 * 1024.0 => (1024.0 * 1024.0, "MiB"),
                v if v >= 1024.0 => (1024.0, "KiB"),
                _ => (1.0, "B"),
            };
            format!("\"{}{u}\"", num(v / d))
        }
        Unit::PerSec if v >= 1e3 => format!("\"{}k\"", num(v / 1e3)),
        Unit::Fraction => format!("\"{}%\"", num(v * 100.0)),
        Unit::PerSec | Unit::Count => num(v),
    }
}

fn limit_line(metric: Metric, l: &Limit) -> String {
    let parts: Vec<String> = [("target", l.target), ("critical", l.critical)]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} = {}", toml_value(metric, v))))
        .collect();
    format!("{} = {{ {} }}", metric.name(), parts.join(", "))
}

/// The budget as TOML, after a comment `header` (one `# ` line per line).
pub fn budget_toml(budget: &Budget, header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    if budget.timings_optimised_only {
        let _ = writeln!(
            out,
            "\n{} = true",
            crate::analyze::budget::TIMINGS_OPTIMISED_ONLY
        );
    }
    let mut section = |name: &str, limits: &std::collections::BTreeMap<Metric, Limit>| {
        if limits.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n[{}]", toml_key(name));
        for (m, l) in limits {
            let _ = writeln!(out, "{}", limit_line(*m, l));
        }
    };
    section("default", &budget.default);
    for (w, limits) in &budget.workloads {
        section(w, limits);
    }
    out
}

/// A table name: bare when it can be, else quoted.
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_string()
    } else {
        let escaped: String = name
            .chars()
            .flat_map(|c| match c {
                '"' => vec!['\\', '"'],
                '\\' => vec!['\\', '\\'],
                c if c.is_control() => vec![' '],
                c => vec![c],
            })
            .collect();
        format!("\"{escaped}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::budget::Budget;

    #[test]
    fn written_budgets_parse_back_to_the_same_limits() {
        let mut b = Budget::default();
        let mut l = std::collections::BTreeMap::new();
        for (m, t, c) in [
            (Metric::P95, 350_000.0, 1_400_000.0),
            (Metric::Throughput, 1500.0, 375.0),
            (
                Metric::AllocPerOp,
                3.0 * 1024.0 * 1024.0,
                6.0 * 1024.0 * 1024.0,
            ),
            (Metric::ErrorRate, 0.0, 0.01),
            (Metric::SqlPerOp, 2.1, 2.6),
            (
                Metric::PeakHeap,
                1.5 * 1024.0 * 1024.0,
                3.0 * 1024.0 * 1024.0,
            ),
        ] {
            l.insert(
                m,
                Limit {
                    target: Some(t),
                    critical: Some(c),
                },
            );
        }
        b.workloads.insert("point-read".into(), l.clone());
        b.workloads.insert("odd \"name\"".into(), l);
        let text = budget_toml(&b, "calibrated\non a test");
        assert!(text.starts_with("# calibrated\n# on a test\n"), "{text}");
        assert!(
            text.contains("p95 = { target = \"350us\", critical = \"1.4ms\" }"),
            "{text}"
        );
        assert_eq!(Budget::parse(&text).unwrap(), b, "{text}");
    }
}
