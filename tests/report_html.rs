//! The HTML report as a web page: self-contained, escaped, and working in a
//! real headless browser (Debian's chromium, driven over the DevTools
//! protocol on a pipe): it renders, several embedded flamegraphs keep search
//! and zoom working side by side, and the console shows no errors.

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    assert!(html.contains("&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;"));
    assert!(html.matches("<iframe class=\"flamegraph\"").count() >= 2);
    assert!(html.contains("random-emails → random-emails-naive"));
}

/// The DevTools protocol over `--remote-debugging-pipe` (fds 3 and 4).
struct Cdp {
    child: Child,
    to: std::fs::File,
    from: mpsc::Receiver<Value>,
    next: u64,
    events: Vec<Value>,
}

impl Cdp {
    fn start(chromium: &Path, profile: &Path) -> Cdp {
        let mut fds = [[0i32; 2]; 2];
        for p in &mut fds {
            assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        }
        let (to_chrome_r, to_chrome_w) = (fds[0][0], fds[0][1]);
        let (from_chrome_r, from_chrome_w) = (fds[1][0], fds[1][1]);
        let mut cmd = std::process::Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--remote-debugging-pipe",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(to_chrome_r, 3) < 0 || libc::dup2(from_chrome_w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("chromium starts");
        unsafe {
            libc::close(to_chrome_r);
            libc::close(from_chrome_w);
        }
        use std::os::fd::FromRawFd as _;
        let to = unsafe { std::fs::File::from_raw_fd(to_chrome_w) };
        let mut from_file = unsafe { std::fs::File::from_raw_fd(from_chrome_r) };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let n = match from_file.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(z) = buf.iter().position(|b| *b == 0) {
                    let msg: Vec<u8> = buf.drain(..=z).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Cdp {
            child,
            to,
            from: rx,
            next: 0,
            events: Vec::new(),
        }
    }

    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            if v["id"].as_u64() == Some(id) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    fn wait_event(&mut self, method: &str) {
        if self.events.iter().any(|e| e["method"] == method) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {method} event"));
            let hit = v["method"] == method;
            self.events.push(v);
            if hit {
                return;
            }
        }
    }
}

impl Drop for Cdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
        cdp.call(s, domain, json!({}));
    }
    let url = format!("file://{}", path.display());
    cdp.call(s, "Page.navigate", json!({"url": url}));
    cdp.wait_event("Page.loadEventFired");
    // It rendered: the title and the tables are there.
    let title = cdp.call(
        s,
        "Runtime.evaluate",
        json!({"expression": "document.title + '|' + document.querySelectorAll('table').length", "returnByValue": true}),
    );
    let title = title["result"]["value"].as_str().unwrap().to_string();
    assert!(title.starts_with("profkit comparison"), "{title}");
    // Every flamegraph answers the self-test: search and zoom work in each.
    let r = cdp.call(
        s,
        "Runtime.evaluate",
        json!({"expression": "profkitSelftest()", "awaitPromise": true, "returnByValue": true}),
    );
    let out = &r["result"]["value"];
    let frames = out["frames"].as_u64().unwrap();
    assert!(frames >= 2, "several flamegraphs side by side: {out}");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len() as u64, frames, "{out}");
    for res in results {
        assert_eq!(res["ok"], true, "flamegraph self-test failed: {res}");
        assert_eq!(res["zoomed"], true, "{res}");
        assert!(
            res["matched"].as_str().unwrap().starts_with("Matched:"),
            "{res}"
        );
    }
    // The hostile frame names are text in the flamegraph documents: no
    // img element and no extra script came from them, nothing alerted.
    let scripts = results[0]["scripts"].as_u64().unwrap();
    for res in results {
        assert_eq!(res["imgs"], 0, "{res}");
        assert_eq!(res["alerts"], 0, "{res}");
        assert_eq!(res["scripts"].as_u64(), Some(scripts), "{res}");
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
    // No console errors or uncaught exceptions (in the page or its frames).
    std::thread::sleep(Duration::from_millis(200));
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
