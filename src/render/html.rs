//! Self-contained HTML reports: one file with inline styles, tables,
//! findings, flamegraphs and plots; no external scripts, styles, fonts or
//! network references, so it opens offline.
//!
//! Flamegraphs are inferno SVGs with their own script and fixed element ids
//! (`frames`, `details`, `search`, …) and globals; several on one page would
//! collide. Each is therefore embedded in its own
//! `<iframe sandbox="allow-scripts allow-modals" srcdoc="…">`: a separate
//! document (ids and globals apart) in an opaque origin (it cannot reach the
//! report page), where search (its prompt needs `allow-modals`) and zoom
//! keep working. Plots are embedded the same way without `allow-scripts`.
//!
//! Network references: inside HTML, an inline `<svg>` is put in the SVG
//! namespace by the parser, so the `xmlns` attributes (whose values are
//! `http://` namespace identifiers, not links), the XML prolog, the DOCTYPE
//! with its DTD URL and inferno's comment with links are dropped when an
//! SVG is embedded, and `://` in inferno's script (a comment and an
//! assertion message mention URLs) is written `:\/\/`, the same string in
//! JavaScript. The report therefore contains no `http://` or `https://` at
//! all, unless a profiled name itself contains such text (then it is
//! escaped text, never a reference).
//!
//! A test hook: `profkitSelftest()` (run on load when the URL ends in
//! `#profkit-selftest`) asks every flamegraph to search for and zoom into
//! its first frame, and resolves to (and writes into
//! `<pre id="profkit-selftest">`) what each answered.

use std::fmt::Write as _;

use super::diffgraph;
use super::report::{
    format_change, format_ci, format_opt, verdict_word, ReportInput, SUMMARY_METRICS,
};
use crate::analyze::budget::{Metric, Status};
use crate::analyze::compare::{Verdict, WorkloadComparison};
use crate::analyze::rundata::{LoadedRun, RunSet};

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An SVG document made fit to sit inside HTML: no XML prolog, DOCTYPE,
/// comments or `xmlns` attributes (see the module docs).
pub fn inline_svg(svg: &str) -> String {
    let body = match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    };
    // Comments: inferno's credits (with links). Escaped names cannot form
    // a comment opener, so this only removes real comments.
    let mut s = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = rest.find("<!--") {
        s.push_str(&rest[..i]);
        match rest[i..].find("-->") {
            Some(j) => rest = &rest[i + j + 3..],
            None => {
                rest = "";
                break;
            }
        }
    }
    s.push_str(rest);
    // xmlns and xmlns:prefix attributes of the root element.
    if let Some(end) = s.find('>') {
        let (head, tail) = s.split_at(end);
        let mut h = String::with_capacity(head.len());
        let mut r = head;
        while let Some(i) = r.find(" xmlns") {
            h.push_str(&r[..i]);
            let after = &r[i..];
            let q1 = after.find('"');
            let q2 = q1.and_then(|q| after[q + 1..].find('"').map(|e| q + 1 + e));
            match q2 {
                Some(q2) => r = &after[q2 + 1..],
                None => {
                    h.push_str(after);
                    r = "";
                }
            }
        }
        h.push_str(r);
        s = h + tail;
    }
    // inferno's script mentions URLs in a comment and an assertion message:
    // `:\/\/` means the same in JS strings and comments and is no URL.
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find("<script") {
        let Some(j) = rest[i..].find("</script>").map(|j| i + j) else {
            break;
        };
        out.push_str(&rest[..i]);
        out.push_str(&rest[i..j].replace("://", ":\\/\\/"));
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

/// The script each flamegraph frame gets before inferno's: history calls
/// are no-ops (an embedded graph has no URL of its own to keep state in),
/// and the self-test listener.
const FRAME_SHIM: &str = r##"<script>
try { history.replaceState = function () {}; } catch (e) {}
var profkitAlerts = 0;
window.alert = function () { profkitAlerts++; };
window.addEventListener("message", function (ev) {
  if (!ev.data || ev.data.profkit !== "selftest") return;
  var r = { id: ev.data.id, ok: false };
  try {
    var g = document.querySelector("#frames g");
    var name = g.querySelector("title").textContent.replace(/ \([^()]*\)$/, "");
    search(name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    r.term = name;
    r.matched = document.getElementById("matched").textContent;
    r.highlighted = document.querySelectorAll("#frames rect[fill='rgb(230,0,230)'], #frames rect[fill='#e600e6']").length;
    zoom(g);
    r.zoomed = !document.getElementById("unzoom").classList.contains("hide");
    unzoom();
    reset_search();
    r.ok = r.zoomed && r.matched.length > 0;
    r.alerts = profkitAlerts;
    r.imgs = document.getElementsByTagName("img").length;
    r.scripts = document.getElementsByTagName("script").length;
  } catch (e) { r.error = String(e); }
  ev.source.postMessage(r, "*");
});
</script>"##;

/// The report page's own script: the self-test driver,
/// `profkitSelftest()`, a promise of every flamegraph's answer.
const PAGE_SCRIPT: &str = r##"<script>
window.profkitSelftest = function () {
  return new Promise(function (resolve) {
    var frames = document.querySelectorAll("iframe.flamegraph");
    var results = [];
    var done = function () {
      var out = { frames: frames.length, results: results };
      var pre = document.createElement("pre");
      pre.id = "profkit-selftest";
      pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre);
      resolve(out);
    };
    if (!frames.length) { done(); return; }
    window.addEventListener("message", function (ev) {
      if (!ev.data || ev.data.id === undefined) return;
      results.push(ev.data);
      if (results.length === frames.length) done();
    });
    frames.forEach(function (f, i) {
      f.contentWindow.postMessage({ profkit: "selftest", id: i }, "*");
    });
  });
};
if (location.hash === "#profkit-selftest") {
  window.addEventListener("load", function () { window.profkitSelftest(); });
}
</script>"##;

const STYLE: &str = r#"<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: right; vertical-align: top; }
td:first-child, th:first-child, td.text { text-align: left; } th { background: #f4f4f4; }
.regressed, .fail { background: #fde2e2; } .improved, .ok { background: #e2f5e2; } .warn { background: #fff4d6; }
.critical { color: #a00; font-weight: bold; } .warning { color: #a60; font-weight: bold; }
.meta { color: #555; } code, .sql { font-family: ui-monospace, monospace; font-size: 12px; }
.graphs { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 1em; }
iframe { width: 100%; border: 1px solid #ddd; background: #fff; }
</style>"#;

/// Embeds an SVG in a sandboxed iframe; `interactive` lets its script run.
pub fn embed_svg(svg: &str, interactive: bool, label: &str) -> String {
    let height = svg
        .find("<svg")
        .and_then(|i| {
            let tag = &svg[i..i + svg[i..].find('>')?];
            let h = tag.find(" height=\"")? + " height=\"".len();
            let e = tag[h..].find('"')? + h;
            tag[h..e].trim_end_matches("px").parse::<f64>().ok()
        })
        .unwrap_or(400.0);
    let doc = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>body{{margin:0}}svg{{width:100%;height:auto}}</style>{}</head><body>{}</body></html>",
        if interactive { FRAME_SHIM } else { "" },
        inline_svg(svg)
    );
    format!(
        "<iframe class=\"{}\" title=\"{}\" sandbox=\"{}\" style=\"height:{}px\" srcdoc=\"{}\"></iframe>",
        if interactive { "flamegraph" } else { "plot" },
        escape(label),
        if interactive { "allow-scripts allow-modals" } else { "" },
        height.ceil() as u64 + 8,
        escape(&doc)
    )
}

/// The Html report writer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Html;

impl super::report::Exporter for Html {
    fn render(&self, input: &ReportInput<'_>) -> String {
        render(input)
    }
}

/// Renders a report as one self-contained HTML page.
pub fn render(input: &ReportInput<'_>) -> String {
    let mut h = String::new();
    let title = input.title();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>{STYLE}</head><body>\n<h1>{}</h1>\n<p class=\"meta\">Generated by profkit {}.</p>\n",
        escape(&title),
        escape(&title),
        env!("CARGO_PKG_VERSION")
    );
    match input {
        ReportInput::Runs { set, check } => {
            h.push_str("<table><tr><th>workload</th><th>ops/s</th><th>p50</th><th>p95</th><th>p99</th><th>errors</th><th>budget</th></tr>\n");
            for r in &set.runs {
                let worst = check.map(|c| {
                    c.lines
                        .iter()
                        .filter(|l| l.run_id == r.id)
                        .map(|l| l.status)
                        .max()
                        .unwrap_or(Status::NotMeasured)
                });
                let (class, word) = match worst {
                    Some(Status::Fail) => ("fail", "critical"),
                    Some(Status::Warn) => ("warn", "target missed"),
                    Some(Status::Ok) => ("ok", "met"),
                    _ => ("", "–"),
                };
                let b = &r.bench;
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
                    escape(&r.workload),
                    b.throughput.0,
                    b.latency.p50,
                    b.latency.p95,
                    b.latency.p99,
                    b.errors
                );
            }
            h.push_str("</table>\n");
            provenance(&mut h, "Runs", &set.runs);
            findings(&mut h, &set.runs);
            if let Some(c) = check {
                h.push_str("<h2>Budget</h2><table><tr><th>workload</th><th>metric</th><th>measured</th><th>target</th><th>critical</th><th>verdict</th></tr>\n");
                for l in &c.lines {
                    let class = match l.status {
                        Status::Fail => "fail",
                        Status::Warn => "warn",
                        Status::Ok => "ok",
                        Status::NotMeasured => "",
                    };
                    let m = l.metric;
                    let _ = writeln!(
                        h,
                        "<tr><td>{}</td><td class=\"text\">{m}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
                        escape(&l.workload),
                        escape(&format_opt(m, l.measured)),
                        escape(&format_opt(m, l.limit.target)),
                        escape(&format_opt(m, l.limit.critical)),
                        escape(&l.status.to_string())
                    );
                }
                h.push_str("</table>\n");
            }
            for r in &set.runs {
                run_section(&mut h, r);
            }
        }
        ReportInput::Compare {
            base,
            current,
            comparison: c,
        } => {
            let _ = writeln!(
                h,
                "<p>Noise threshold {:.0} %, {:.0} % bootstrap confidence intervals (latencies resampled per operation).</p>",
                c.noise * 100.0,
                c.confidence * 100.0
            );
            h.push_str("<table><tr><th>workload</th><th>verdict</th>");
            for m in SUMMARY_METRICS {
                let _ = write!(h, "<th>{m}</th>");
            }
            h.push_str("</tr>\n");
            for w in &c.workloads {
                let (class, word) = match w.worst() {
                    Verdict::Regressed => ("regressed", "regressed"),
                    Verdict::Improved => ("improved", "improved"),
                    _ => ("", "no change"),
                };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"{class}\">{word}</td>",
                    workload_name(w)
                );
                for m in SUMMARY_METRICS {
                    if let Some(x) = w.metrics.iter().find(|x| x.metric == m) {
                        let class = verdict_class(x.verdict);
                        let _ = write!(
                            h,
                            "<td class=\"{class}\">{} {}</td>",
                            escape(&format_change(x)),
                            verdict_word(x)
                        );
                    }
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</table>\n");
            for (what, list) in [("base", &c.only_in_base), ("current", &c.only_in_current)] {
                if !list.is_empty() {
                    let names: Vec<_> = list.iter().map(|n| escape(n)).collect();
                    let _ = writeln!(h, "<p>Only in {what}: {}.</p>", names.join(", "));
                }
            }
            provenance(&mut h, "Base", &base.runs);
            provenance(&mut h, "Current", &current.runs);
            findings(&mut h, &current.runs);
            for w in &c.workloads {
                compare_section(&mut h, w, base, current);
            }
        }
    }
    h.push_str(PAGE_SCRIPT);
    h.push_str("\n</body></html>\n");
    h
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Regressed => "regressed",
        Verdict::Improved => "improved",
        _ => "",
    }
}

fn workload_name(w: &WorkloadComparison) -> String {
    if w.base_workload == w.workload {
        escape(&w.workload)
    } else {
        format!("{} → {}", escape(&w.base_workload), escape(&w.workload))
    }
}

fn provenance(h: &mut String, what: &str, runs: &[LoadedRun]) {
    let _ = writeln!(h, "<h3>{what}</h3><table><tr><th>workload</th><th>run</th><th>parameters</th><th>machine</th><th>git</th></tr>");
    for r in runs {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
            escape(&r.workload),
            escape(&r.id),
            escape(&r.parameters()),
            escape(&r.machine().unwrap_or_else(|| "unknown".into())),
            escape(&r.git_revision().unwrap_or_else(|| "unknown".into()))
        );
    }
    h.push_str("</table>\n");
}

fn findings(h: &mut String, runs: &[LoadedRun]) {
    h.push_str("<h2>Findings</h2>\n");
    let all: Vec<_> = runs
        .iter()
        .flat_map(|r| r.findings.iter().map(move |f| (r, f)))
        .collect();
    if all.is_empty() {
        h.push_str("<p>No findings.</p>\n");
        return;
    }
    h.push_str("<ul>\n");
    for (r, f) in all {
        let _ = write!(
            h,
            "<li><span class=\"{}\">{}</span> <b>{}</b>: {}<br><i>{}</i><ul>",
            escape(&f.severity.to_string()),
            escape(&f.severity.to_string()),
            escape(&r.workload),
            escape(&f.title),
            escape(&f.hint)
        );
        for e in &f.evidence {
            let _ = write!(h, "<li>{}</li>", escape(e));
        }
        h.push_str("</ul></li>\n");
    }
    h.push_str("</ul>\n");
}

fn graphs(h: &mut String, items: Vec<String>) {
    if items.is_empty() {
        return;
    }
    h.push_str("<div class=\"graphs\">\n");
    for i in items {
        h.push_str(&i);
        h.push('\n');
    }
    h.push_str("</div>\n");
}

fn run_section(h: &mut String, r: &LoadedRun) {
    let _ = writeln!(
        h,
        "<h2>{}</h2><p class=\"meta\">run {}; {}</p>",
        escape(&r.workload),
        escape(&r.id),
        escape(&r.parameters())
    );
    h.push_str("<table><tr><th>metric</th><th>value</th></tr>");
    for m in Metric::ALL {
        if let Some(v) = m.value(r) {
            let _ = write!(h, "<tr><td>{m}</td><td>{}</td></tr>", escape(&m.format(v)));
        }
    }
    h.push_str("</table>\n");
    if let Some(b) = r.bench.breakdown.as_ref().filter(|b| b.ops > 0) {
        let _ = writeln!(h, "<p>Latency: {}.</p>", escape(&b.summary()));
    }
    let mut items = Vec::new();
    for (folded, what, unit) in [
        (&r.cpu_folded, "CPU", "samples"),
        (&r.heap_folded, "heap (bytes allocated)", "bytes"),
        (&r.sql_folded, "SQL (time per statement)", "ns"),
    ] {
        if let Some(f) = folded {
            let title = format!("{} {what}", r.workload);
            if let Ok(svg) = diffgraph::plain(f, &title, unit, Some(diffgraph::EMBED_WIDTH)) {
                items.push(embed_svg(&svg, true, &title));
            }
        }
    }
    for (name, svg) in &r.plots {
        items.push(embed_svg(svg, false, name));
    }
    graphs(h, items);
    let mut st = r.statements();
    st.sort_by_key(|s| std::cmp::Reverse(s.total));
    if !st.is_empty() {
        h.push_str("<h3>SQL statements</h3><table><tr><th>statement</th><th>executions</th><th>per op</th><th>mean</th><th>total</th></tr>\n");
        for s in st.iter().take(10) {
            let _ = writeln!(
                h,
                "<tr><td class=\"sql\">{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.shape),
                s.executions,
                s.per_op,
                s.mean,
                s.total
            );
        }
        h.push_str("</table>\n");
    }
    if let Some(l) = &r.leaks {
        let _ = writeln!(h, "<p>Leak check: {}</p>", escape(&l.verdict));
    }
}

fn compare_section(h: &mut String, w: &WorkloadComparison, base: &RunSet, current: &RunSet) {
    let _ = writeln!(
        h,
        "<h2>{}</h2><p class=\"meta\">base {} (git {}) → current {} (git {})</p>",
        workload_name(w),
        escape(&w.base_run),
        escape(w.base_git.as_deref().unwrap_or("unknown")),
        escape(&w.current_run),
        escape(w.current_git.as_deref().unwrap_or("unknown"))
    );
    h.push_str("<table><tr><th>metric</th><th>base</th><th>current</th><th>change</th><th>confidence interval</th><th>verdict</th></tr>\n");
    for m in &w.metrics {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            m.metric,
            escape(&format_opt(m.metric, m.base)),
            escape(&format_opt(m.metric, m.current)),
            escape(&format_change(m)),
            escape(&format_ci(m)),
            verdict_class(m.verdict),
            verdict_word(m)
        );
    }
    h.push_str("</table>\n");
    let b = base
        .runs
        .iter()
        .find(|r| r.id == w.base_run)
        .and_then(|r| r.cpu_folded.as_ref());
    let c = current
        .runs
        .iter()
        .find(|r| r.id == w.current_run)
        .and_then(|r| r.cpu_folded.as_ref());
    if let (Some(b), Some(c)) = (b, c) {
        let mut items = Vec::new();
        for negated in [false, true] {
            let title = format!(
                "{} CPU differential{}",
                w.workload,
                if negated { " (negated)" } else { "" }
            );
            if let Ok(svg) =
                diffgraph::differential(b, c, negated, &title, Some(diffgraph::EMBED_WIDTH))
            {
                items.push(embed_svg(&svg, true, &title));
            }
        }
        graphs(h, items);
    }
    if !w.cpu_frames.is_empty() {
        h.push_str("<h3>CPU frames whose share changed most</h3><table><tr><th>frame</th><th>base total</th><th>current total</th><th>base self</th><th>current self</th></tr>\n");
        for f in &w.cpu_frames {
            let _ = writeln!(
                h,
                "<tr><td class=\"sql\">{}</td><td>{:.1} %</td><td>{:.1} %</td><td>{:.1} %</td><td>{:.1} %</td></tr>",
                escape(&f.frame),
                f.base_total,
                f.current_total,
                f.base_self,
                f.current_self
            );
        }
        h.push_str("</table>\n");
    }
    if !w.heap_sites.is_empty() {
        h.push_str("<h3>Allocation sites whose bytes changed most</h3><table><tr><th>site</th><th>base</th><th>current</th></tr>\n");
        for s in &w.heap_sites {
            let _ = writeln!(
                h,
                "<tr><td class=\"sql\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.site),
                crate::units::Bytes(s.base_bytes),
                crate::units::Bytes(s.current_bytes)
            );
        }
        h.push_str("</table>\n");
    }
    if !w.sql_statements.is_empty() {
        h.push_str("<h3>SQL statements whose time or count changed most</h3><table><tr><th>statement</th><th>base per op</th><th>current per op</th><th>base time/op</th><th>current time/op</th></tr>\n");
        for s in &w.sql_statements {
            let _ = writeln!(
                h,
                "<tr><td class=\"sql\">{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.shape),
                s.base_per_op,
                s.current_per_op,
                crate::units::Nanos(s.base_time_per_op.round() as u64),
                crate::units::Nanos(s.current_time_per_op.round() as u64)
            );
        }
        h.push_str("</table>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_prolog_and_namespaces_are_dropped() {
        let f: crate::analyze::stacks::Folded = [("main;work".to_string(), 10u64)].into();
        let svg = diffgraph::plain(&f, "t", "samples", None).unwrap();
        assert!(svg.contains("http://"), "inferno's SVG has namespace URIs");
        let inl = inline_svg(&svg);
        assert!(inl.starts_with("<svg"));
        assert!(
            !inl.contains("http://") && !inl.contains("https://"),
            "{}",
            &inl[..300]
        );
        assert!(inl.contains("fg:x="), "inferno's own attributes stay");
    }

    #[test]
    fn embedded_documents_are_escaped_twice() {
        let f: crate::analyze::stacks::Folded =
            [("main;<script>alert(1)</script>".to_string(), 10u64)].into();
        let svg = diffgraph::plain(&f, "t", "samples", None).unwrap();
        let e = embed_svg(&svg, true, "x");
        assert!(!e.contains("<script>alert"), "no raw script");
        assert!(
            !e.contains("&lt;script&gt;alert"),
            "not merely single-escaped"
        );
        assert!(e.contains("&amp;lt;script&amp;gt;alert(1)"));
        assert_eq!(e.matches("<iframe").count(), 1);
    }
}
