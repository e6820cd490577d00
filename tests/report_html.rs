//! The HTML report as a web page: self-contained, escaped, and working in a
//! real headless browser (Debian's chromium, driven over the DevTools
//! protocol on a pipe): it renders, several embedded flamegraphs keep search
//! and zoom working side by side, and the console shows no errors.

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cdp::Cdp;
use common::profkit;
use serde_json::{json, Value};

const EVIL: &str = "<script>alert(1)</script>";
const EVIL2: &str = "\"><img src=x onerror=alert(1)>";

/// A run folder from `profkit sql` (bench, sql.json, sql.folded, findings).
fn sql_run(dir: &Path, workload: &str, ops: &str) -> PathBuf {
    common::sql_run(dir, &[workload, "--rows", "2000", "--ops", ops])
}

/// Writes a CPU profile with hostile frame names; `grow` samples in `grown`.
fn write_cpu(run: &Path, grown: u64) {
    let lines = [
        format!("main;db::query;sqlite3_step {}", 100),
        format!("main;db::query;{EVIL} {}", 20),
        format!("main;render;{EVIL2} {}", 10),
        format!("main;grown_frame {grown}"),
    ];
    std::fs::write(run.join("cpu.folded"), lines.join("\n") + "\n").unwrap();
    let heap = [
        format!("main;alloc_here {}", grown * 100),
        format!("main;{EVIL} 64"),
    ];
    std::fs::write(run.join("heap.folded"), heap.join("\n") + "\n").unwrap();
}

fn html_report(dir: &Path) -> (PathBuf, String) {
    let base = sql_run(dir, "random-emails", "100");
    let cur = sql_run(dir, "random-emails-naive", "10");
    write_cpu(&base, 10);
    write_cpu(&cur, 400);
    let out = dir.join("report.html");
    profkit(dir)
        .arg("report")
        .arg(format!("{}..{}", base.display(), cur.display()))
        .args(["--format", "html", "-o"])
        .arg(&out)
        .assert()
        .success();
    let text = std::fs::read_to_string(&out).unwrap();
    (out, text)
}

#[test]
fn html_report_is_self_contained_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let (_, html) = html_report(dir.path());
    // Rule: no http:// or https:// anywhere (namespace URIs are dropped when
    // SVGs are inlined; see render::html).
    assert!(!html.contains("http://"), "http:// in the report");
    assert!(!html.contains("https://"), "https:// in the report");
    for banned in ["<link", " src=\"", "@import", "@font-face"] {
        assert!(!html.contains(banned), "{banned} in the report");
    }
    // url(...) only for local fragments (inferno's gradient: url(#background)).
    for (i, _) in html.match_indices("url(") {
        assert!(html[i + 4..].starts_with('#'), "{}", &html[i..i + 40]);
    }
    // Hostile names appear only escaped (twice inside srcdoc documents).
    assert!(!html.contains(EVIL), "raw <script> from a profile");
    assert!(!html.contains("<img"), "raw <img> from a profile");
    // Flamegraphs are packed documents (gzip, base64) in data-svgz; inside
    // each, hostile names appear only escaped once (it is parsed as HTML).
    assert!(html.matches("<iframe class=\"flamegraph\"").count() >= 2);
    let docs: Vec<String> = html
        .split(" data-svgz=\"")
        .skip(1)
        .map(|p| profkit::render::html::unpack(&p[..p.find('"').unwrap()]).expect("packed"))
        .collect();
    assert_eq!(
        docs.len(),
        html.matches("<iframe class=\"flamegraph\"").count()
    );
    assert!(docs
        .iter()
        .any(|d| d.contains("&lt;script&gt;alert(1)&lt;/script&gt;")));
    for d in &docs {
        assert!(
            !d.contains(EVIL) && !d.contains("<img"),
            "raw name in a frame"
        );
        assert!(!d.contains("http://") && !d.contains("https://"));
    }
    // The picture comes first: the overview figure before any table or frame.
    let fig = html
        .find("<figure id=\"overview\">")
        .expect("an overview figure");
    assert!(fig < html.find("<table").unwrap() && fig < html.find("<iframe").unwrap());
    assert!(html.contains("random-emails → random-emails-naive"));
}

/// The issue's case: a `findings.json` holding "memcpy holds 33 % of CPU
/// samples" from a profile of 2 samples (written before the floor). The
/// reports withhold it and say so.
#[test]
fn reports_withhold_cpu_findings_that_few_samples_do_not_support() {
    let dir = tempfile::tempdir().unwrap();
    let run = sql_run(dir.path(), "point-read", "300");
    std::fs::write(run.join("cpu.folded"), "main;memcpy 1\nmain;work 1\n").unwrap();
    let path = run.join("findings.json");
    let mut findings: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    findings["findings"].as_array_mut().unwrap().push(json!({
        "kind": "cpu-hotspot",
        "severity": "warning",
        "score": 0.5,
        "workload": "point-read",
        "title": "memcpy holds 50 % of CPU samples (self time)",
        "evidence": ["1 of 2 samples"],
        "hint": "copy less"
    }));
    std::fs::write(&path, serde_json::to_vec(&findings).unwrap()).unwrap();
    for format in ["md", "html"] {
        let out = dir.path().join(format!("report.{format}"));
        profkit(dir.path())
            .arg("report")
            .arg(&run)
            .args(["--format", format, "-o"])
            .arg(&out)
            .assert()
            .success();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            !text.contains("memcpy holds"),
            "{format}: warning from 2 samples shown"
        );
        assert!(
            text.contains("1 CPU finding(s) withheld: fewer than 100 CPU samples"),
            "{format}: the withheld finding is not mentioned"
        );
    }
}

/// A reader's view of one flamegraph frame: its DOM (through an isolated
/// world, so nothing of the page's own script is used) and where it sits on
/// the screen, to click it with the mouse.
struct Reader {
    context: u64,
    left: f64,
    top: f64,
}

impl Reader {
    fn new(cdp: &mut Cdp, s: Option<&str>, frame: &str) -> Reader {
        let owner = cdp.call(s, "DOM.getFrameOwner", json!({"frameId": frame}));
        let node = cdp.call(
            s,
            "DOM.resolveNode",
            json!({"backendNodeId": owner["backendNodeId"]}),
        );
        let at = cdp.call(
            s,
            "Runtime.callFunctionOn",
            json!({
                "objectId": node["object"]["objectId"],
                "functionDeclaration": "function () { this.scrollIntoView(); const r = this.getBoundingClientRect(); return [r.x + this.clientLeft, r.y + this.clientTop]; }",
                "returnByValue": true
            }),
        );
        let at = &at["result"]["value"];
        let world = cdp.call(
            s,
            "Page.createIsolatedWorld",
            json!({"frameId": frame, "worldName": "reader"}),
        );
        Reader {
            context: world["executionContextId"].as_u64().unwrap(),
            left: at[0].as_f64().unwrap(),
            top: at[1].as_f64().unwrap(),
        }
    }

    fn eval(&self, cdp: &mut Cdp, s: Option<&str>, expression: &str) -> Value {
        let r = cdp.call(
            s,
            "Runtime.evaluate",
            json!({"expression": expression, "contextId": self.context, "returnByValue": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{r}");
        r["result"]["value"].clone()
    }

    fn mouse(&self, kind: &str, x: f64, y: f64) -> Value {
        json!({"type": kind, "x": self.left + x, "y": self.top + y, "button": "left", "clickCount": 1})
    }

    /// Moves to (x, y) in the frame and presses the button there.
    fn press(&self, cdp: &mut Cdp, s: Option<&str>, x: f64, y: f64) {
        let mut moved = self.mouse("mouseMoved", x, y);
        moved["button"] = json!("none");
        cdp.call(s, "Input.dispatchMouseEvent", moved);
        cdp.call(
            s,
            "Input.dispatchMouseEvent",
            self.mouse("mousePressed", x, y),
        );
    }

    /// Releases the button: the click. Its answer waits for any dialog
    /// the click opens, so it is not awaited here.
    fn release(&self, cdp: &mut Cdp, s: Option<&str>, x: f64, y: f64) -> u64 {
        cdp.send(
            s,
            "Input.dispatchMouseEvent",
            self.mouse("mouseReleased", x, y),
        )
    }

    fn click(&self, cdp: &mut Cdp, s: Option<&str>, x: f64, y: f64) {
        self.press(cdp, s, x, y);
        let id = self.release(cdp, s, x, y);
        cdp.result(id, "Input.dispatchMouseEvent");
    }
}

#[test]
fn html_report_works_in_a_real_browser() {
    let chromium = Path::new("/usr/bin/chromium");
    if !common::tool_available(
        "/usr/bin/chromium",
        chromium.exists(),
        "apt-get install chromium",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = html_report(dir.path());
    let mut cdp = Cdp::start(chromium, &dir.path().join("chromium-profile"));
    let target = cdp.call(None, "Target.createTarget", json!({"url": "about:blank"}));
    let target_id = target["targetId"].as_str().unwrap().to_string();
    let attached = cdp.call(
        None,
        "Target.attachToTarget",
        json!({"targetId": target_id, "flatten": true}),
    );
    let session = attached["sessionId"].as_str().unwrap().to_string();
    let s = Some(session.as_str());
    for domain in ["Runtime.enable", "Log.enable", "Page.enable", "DOM.enable"] {
        cdp.call(s, domain, json!({}));
    }
    let url = format!("file://{}", path.display());
    cdp.call(s, "Page.navigate", json!({"url": url}));
    cdp.wait_event("Page.loadEventFired");
    // The page unpacks its flamegraphs after loading: wait until every
    // frame has its graph and inferno's script (it marks them data-ready).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = cdp.call(
            s,
            "Runtime.evaluate",
            json!({"expression": "[document.querySelectorAll('iframe.flamegraph').length, document.querySelectorAll('iframe.flamegraph[data-ready]').length]", "returnByValue": true}),
        );
        let v = &r["result"]["value"];
        if v[0].as_u64() >= Some(2) && v[0] == v[1] {
            break;
        }
        assert!(Instant::now() < deadline, "flamegraphs not unpacked: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // It opens on a picture: the overview figure is the first thing after
    // the title, drawn at the top of the first screen, one row per compared
    // workload with its base and current bars and its top finding.
    let fig = cdp.call(
        s,
        "Runtime.evaluate",
        json!({"expression": "(() => { const fig = document.querySelector('figure#overview');
            if (!fig) return null;
            const kids = [...document.body.children].filter(e => e.tagName !== 'H1' && e.tagName !== 'SCRIPT' && !e.classList.contains('meta'));
            const r = fig.querySelector('svg').getBoundingClientRect();
            return { first: kids[0] === fig, top: r.top, bottom: r.bottom, width: r.width, screen: innerHeight,
                     parts: [...fig.querySelectorAll('rect.part')].map(p => p.getBoundingClientRect().width).filter(w => w > 0).length,
                     names: [...fig.querySelectorAll('text.wl')].map(t => t.lastChild.textContent),
                     findings: [...fig.querySelectorAll('text.finding')].map(t => t.lastChild.textContent) }; })()",
               "returnByValue": true}),
    );
    let fig = &fig["result"]["value"];
    assert_eq!(
        fig["first"], true,
        "the picture is not the first thing: {fig}"
    );
    assert!(fig["top"].as_f64().unwrap() < 200.0, "{fig}");
    assert!(
        fig["bottom"].as_f64().unwrap() < fig["screen"].as_f64().unwrap(),
        "{fig}"
    );
    assert!(fig["width"].as_f64().unwrap() > 500.0, "{fig}");
    assert_eq!(
        fig["names"],
        json!(["random-emails → random-emails-naive"]),
        "{fig}"
    );
    assert!(
        fig["parts"].as_u64().unwrap() >= 2,
        "base and current bars drawn: {fig}"
    );
    assert!(
        fig["findings"][0].as_str().unwrap().contains("SCAN emails"),
        "the current run's top finding: {fig}"
    );
    // It rendered: the title and the tables are there.
    let title = cdp.call(
        s,
        "Runtime.evaluate",
        json!({"expression": "document.title + '|' + document.querySelectorAll('table').length", "returnByValue": true}),
    );
    let title = title["result"]["value"].as_str().unwrap().to_string();
    assert!(title.starts_with("profkit comparison"), "{title}");
    // A reader zooms and searches in every flamegraph with the mouse (no
    // hook of the report's own): click a frame, and it fills the width and
    // "Reset Zoom" appears; click "Search", type a name into the prompt,
    // and the matches are highlighted and counted.
    let tree = cdp.call(s, "Page.getFrameTree", json!({}));
    let frames: Vec<String> = tree["frameTree"]["childFrames"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|f| f["frame"]["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        frames.len() >= 2,
        "several flamegraphs side by side: {tree}"
    );
    let mut scripts = None;
    for frame in &frames {
        let reader = Reader::new(&mut cdp, s, frame);
        let g = reader.eval(
            &mut cdp,
            s,
            // The widest frame below the root: what a reader would click.
            "(() => { const gs = [...document.querySelectorAll('#frames g')]
                .filter(g => !g.querySelector('title').textContent.startsWith('all '));
              gs.sort((a, b) => b.getBoundingClientRect().width - a.getBoundingClientRect().width);
              const g = gs.find(g => g.getBoundingClientRect().width < document.querySelector('#frames').getBoundingClientRect().width * 0.95) || gs[0];
              g.setAttribute('data-reader', '1');
              const r = g.querySelector('rect').getBoundingClientRect();
              const t = document.getElementById('search').getBoundingClientRect();
              return { x: r.x + Math.min(r.width / 2, 5), y: r.y + r.height / 2, width: r.width,
                       full: document.querySelector('#frames').getBoundingClientRect().width,
                       name: g.querySelector('title').textContent.replace(/ \\([^()]*\\)$/, ''),
                       sx: t.x + t.width / 2, sy: t.y + t.height / 2,
                       imgs: document.getElementsByTagName('img').length,
                       scripts: document.getElementsByTagName('script').length }; })()",
        );
        assert_eq!(g["imgs"], 0, "an img element came from a frame name: {g}");
        // The same scripts in every frame (the shim's, inferno's): none
        // came from the hostile names some frames hold.
        let first = *scripts.get_or_insert(g["scripts"].as_u64().unwrap());
        assert_eq!(g["scripts"].as_u64(), Some(first), "{g}");
        assert!(
            g["width"].as_f64().unwrap() < 0.95 * g["full"].as_f64().unwrap(),
            "{g}"
        );
        reader.click(
            &mut cdp,
            s,
            g["x"].as_f64().unwrap(),
            g["y"].as_f64().unwrap(),
        );
        let zoomed = reader.eval(
            &mut cdp,
            s,
            "(() => { const r = document.querySelector('g[data-reader] rect').getBoundingClientRect();
              return { width: r.width, full: document.querySelector('#frames').getBoundingClientRect().width,
                       reset: !document.getElementById('unzoom').classList.contains('hide') }; })()",
        );
        assert_eq!(
            zoomed["reset"], true,
            "no Reset Zoom after a click: {zoomed}"
        );
        assert!(
            zoomed["width"].as_f64().unwrap() > 0.9 * zoomed["full"].as_f64().unwrap(),
            "the clicked frame does not fill the width: {g} -> {zoomed}"
        );
        // Search: the button opens a prompt; the reader types the name.
        let name = g["name"].as_str().unwrap();
        let term: String = name
            .chars()
            .flat_map(|c| {
                let special = ".*+?^${}()|[]\\".contains(c);
                special.then_some('\\').into_iter().chain([c])
            })
            .collect();
        let (sx, sy) = (g["sx"].as_f64().unwrap(), g["sy"].as_f64().unwrap());
        reader.press(&mut cdp, s, sx, sy);
        let click = reader.release(&mut cdp, s, sx, sy);
        cdp.wait_event("Page.javascriptDialogOpening");
        cdp.events
            .retain(|e| e["method"] != "Page.javascriptDialogOpening");
        cdp.call(
            s,
            "Page.handleJavaScriptDialog",
            json!({"accept": true, "promptText": term}),
        );
        cdp.result(click, "Input.dispatchMouseEvent");
        let found = reader.eval(
            &mut cdp,
            s,
            "(() => ({ matched: document.getElementById('matched').textContent,
                       highlighted: [...document.querySelectorAll('#frames rect')]
                         .filter(r => ['rgb(230,0,230)', '#e600e6', 'rgb(230, 0, 230)'].includes(r.getAttribute('fill'))).length }))()",
        );
        assert!(
            found["matched"].as_str().unwrap().starts_with("Matched:"),
            "searching {name:?} matched nothing: {found}"
        );
        assert!(found["highlighted"].as_u64().unwrap() >= 1, "{found}");
    }
    let imgs = cdp.call(
        s,
        "Runtime.evaluate",
        json!({"expression": "document.images.length + document.scripts.length * 1000", "returnByValue": true}),
    );
    assert_eq!(
        imgs["result"]["value"], 1000,
        "one script (the report's own), no images"
    );
    // Nothing alerted, in the page or any frame (hostile names included).
    assert!(
        !cdp.events
            .iter()
            .any(|e| e["method"] == "Page.javascriptDialogOpening"),
        "a dialog opened that the reader did not ask for"
    );
    // Late errors too: a second's grace after the last interaction.
    std::thread::sleep(Duration::from_millis(1500));
    // No console errors or uncaught exceptions (in the page or its frames).
    while let Ok(v) = cdp.from.try_recv() {
        cdp.events.push(v);
    }
    let errors: Vec<&Value> = cdp
        .events
        .iter()
        .filter(|e| {
            e["method"] == "Runtime.exceptionThrown"
                || (e["method"] == "Runtime.consoleAPICalled" && e["params"]["type"] == "error")
                || (e["method"] == "Log.entryAdded" && e["params"]["entry"]["level"] == "error")
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let _ = cdp.child.kill();
    let mut stderr = String::new();
    if let Some(mut e) = cdp.child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let console_errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("Uncaught") || l.contains("ERROR:CONSOLE"))
        .collect();
    assert!(console_errors.is_empty(), "{console_errors:?}");
}
