//! Embedding SVGs in the HTML report (see [`super::html`]): inline SVG
//! clean-up, sandboxed iframes, and one shared copy of inferno's script.
//!
//! Every inferno flamegraph carries the same ~16 KB script. An embedded
//! graph goes without it (and without its `onload`); the report page holds
//! the script once, as a string, and hands it to each sandboxed frame by
//! `postMessage` when the page has loaded; the frame runs it as a script
//! of its own and calls inferno's `init`.

use super::html::escape;

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
/// are no-ops (an embedded graph has no URL of its own to keep state in);
/// it runs inferno's script when the page hands it over and answers
/// `ready` (the page marks the frame `data-ready`).
pub(super) const FRAME_SHIM: &str = r##"<script>
try { history.replaceState = function () {}; } catch (e) {}
window.addEventListener("message", function (ev) {
  if (!ev.data || ev.data.profkit !== "inferno" || typeof init === "function") return;
  var s = document.createElement("script");
  // As in inferno's own SVG, its variables come first, so its "use strict"
  // is no directive (the script relies on sloppy mode's implicit globals).
  s.textContent = "void 0;\n" + ev.data.code;
  document.head.appendChild(s);
  init();
  ev.source.postMessage({ profkit: "ready" }, "*");
});
</script>"##;

/// The report page's own script: unpacks each flamegraph's document
/// (base64 of gzip, in `data-svgz`) into its frame's `srcdoc` with the
/// browser's `DecompressionStream`, hands inferno's script to the frame
/// once it has loaded, and marks the frame `data-ready` when it answers.
const PAGE_SCRIPT: &str = r##"
function profkitUnpack(packed) {
  var bin = atob(packed), bytes = new Uint8Array(bin.length);
  for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).text();
}
window.addEventListener("message", function (ev) {
  if (!ev.data || ev.data.profkit !== "ready") return;
  document.querySelectorAll("iframe.flamegraph").forEach(function (f) {
    if (f.contentWindow === ev.source) f.setAttribute("data-ready", "");
  });
});
window.addEventListener("load", function () {
  document.querySelectorAll("iframe.flamegraph[data-svgz]").forEach(function (f) {
    if (typeof DecompressionStream !== "function") {
      f.srcdoc = "<p style=\"font:13px system-ui\">This browser cannot unpack the flamegraph (no DecompressionStream): open its SVG in the flamegraphs folder.<\/p>";
      return;
    }
    f.addEventListener("load", function () {
      f.contentWindow.postMessage({ profkit: "inferno", code: profkitInfernoScript }, "*");
    });
    profkitUnpack(f.getAttribute("data-svgz")).then(function (doc) { f.srcdoc = doc; });
  });
});
</script>"##;

/// inferno's flamegraph script, as every SVG it draws carries it (the
/// second CDATA section of its `<script>`; the first sets the graph's
/// own variables).
pub(super) fn inferno_script() -> &'static str {
    static SCRIPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| {
        let mut o = inferno::flamegraph::Options::default();
        let mut svg = Vec::new();
        if inferno::flamegraph::from_lines(&mut o, ["a 1"], &mut svg).is_err() {
            return String::new();
        }
        let svg = String::from_utf8_lossy(&svg);
        let script = svg
            .find("<script")
            .and_then(|i| Some((i, svg[i..].find("</script>")? + i)))
            .map(|(i, j)| &svg[i..j]);
        script
            .and_then(|s| {
                s.match_indices("<![CDATA[")
                    .nth(1)
                    .map(|(k, _)| &s[k + 9..])
            })
            .and_then(|s| s.find("]]>").map(|e| s[..e].to_string()))
            .unwrap_or_default()
    })
}

/// The report page's script: inferno's script once (a JSON string, with
/// `</` and `://` written so that neither ends the element nor reads as a
/// URL), handed to the frames, and the unpacking of the frames.
pub(super) fn page_script() -> String {
    let code = serde_json::to_string(inferno_script())
        .unwrap_or_else(|_| "\"\"".into())
        .replace("</", "<\\/")
        .replace("://", ":\\/\\/");
    format!("<script>\nvar profkitInfernoScript = {code};{PAGE_SCRIPT}")
}

/// `svg` without inferno's script and the `onload` that calls it, when it
/// carries them: the page supplies the script (see the module docs).
fn without_inferno_script(svg: &str) -> Option<String> {
    let js = inferno_script();
    if js.is_empty() {
        return None;
    }
    let section = format!("<![CDATA[{js}]]>");
    let onload = " onload=\"init(evt)\"";
    (svg.contains(&section) && svg.contains(onload))
        .then(|| svg.replacen(&section, "", 1).replacen(onload, "", 1))
}

pub(super) const STYLE: &str = r#"<style>
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

/// What a flamegraph frame shows until the page has unpacked its graph
/// (and for good, with scripts off).
const PACKED_PLACEHOLDER: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body style=\"font:13px system-ui,sans-serif;color:#555\"><p>A flamegraph, packed in the report: showing it needs JavaScript. Every flamegraph of the run is also an SVG file in the flamegraphs folder.</p></body></html>";

/// Embeds an SVG in a sandboxed iframe; `interactive` lets its script run.
///
/// An interactive graph (a flamegraph) is packed: its document, gzipped
/// and base64-encoded, sits in the frame's `data-svgz` attribute and the
/// page's script unpacks it into `srcdoc`. A flamegraph's SVG is
/// thousands of near-identical `<g>` elements; packed it is about a tenth
/// of its `srcdoc` form (where every quote is also written `&quot;`).
/// Plots (no script) stay plain `srcdoc`: small, and shown without script.
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
    let shared = interactive.then(|| without_inferno_script(svg)).flatten();
    let doc = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>body{{margin:0}}svg{{width:100%;height:auto}}</style>{}</head><body>{}</body></html>",
        if interactive { FRAME_SHIM } else { "" },
        inline_svg(shared.as_deref().unwrap_or(svg))
    );
    let (srcdoc, packed) = if interactive {
        (PACKED_PLACEHOLDER, format!(" data-svgz=\"{}\"", pack(&doc)))
    } else {
        (doc.as_str(), String::new())
    };
    format!(
        "<iframe class=\"{}\" title=\"{}\" sandbox=\"{}\" style=\"height:{}px\"{packed} srcdoc=\"{}\"></iframe>",
        if interactive { "flamegraph" } else { "plot" },
        escape(label),
        if interactive { "allow-scripts allow-modals" } else { "" },
        height.ceil() as u64 + 8,
        escape(srcdoc)
    )
}

/// `text` gzipped (best compression) and base64-encoded: only letters,
/// digits, `+`, `/` and `=`, safe in an attribute value unescaped.
pub fn pack(text: &str) -> String {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(text.as_bytes());
    let bytes = z.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The document [`pack`] packed, if `packed` is such a string.
pub fn unpack(packed: &str) -> Option<String> {
    use base64::Engine as _;
    use std::io::Read as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(packed)
        .ok()?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}
