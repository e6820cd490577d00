//! `profkit export`: speedscope files pass the checks of the `speedscope`
//! npm package's file-format schema (in node; skipped locally without
//! node or the package, a failure under `CI`), Firefox Profiler files have
//! the processed format's shape; a run with no SQL exports; a run without
//! CPU data says what is missing, exit 2. speedscope files also load
//! through speedscope's own importer: its app, in headless Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use common::cdp::Cdp;
use serde_json::{json, Value};

fn cpu_run(dir: &Path) -> PathBuf {
    common::profkit(dir)
        .args([
            "cpu",
            "point-read",
            "--rows",
            "500",
            "--ops",
            "40000",
            "-t",
            "2",
            "--out",
        ])
        .arg(dir.join("profiles"))
        .assert()
        .success();
    std::fs::read_dir(dir.join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap()
}

fn export(dir: &Path, run: &Path, format: &str, out: &str) -> PathBuf {
    let path = dir.join(out);
    common::profkit(dir)
        .arg("export")
        .arg(run)
        .args(["--format", format, "-o"])
        .arg(&path)
        .assert()
        .success();
    path
}

/// The speedscope package's schema, where `npm install -g speedscope` put it.
fn speedscope_schema() -> Option<PathBuf> {
    let root = Std::new("npm").args(["root", "-g"]).output().ok()?;
    let root = String::from_utf8(root.stdout).ok()?;
    let p = Path::new(root.trim()).join("speedscope/dist/release/file-format-schema.json");
    p.is_file().then_some(p)
}

#[test]
fn speedscope_file_passes_the_speedscope_package_checks() {
    let schema = speedscope_schema();
    let present = common::runs("node") && schema.is_some();
    if !common::tool_available(
        "node and the speedscope npm package",
        present,
        "npm install -g speedscope@1.25.0",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = cpu_run(dir.path());
    let file = export(dir.path(), &run, "speedscope", "p.speedscope.json");
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/export/speedscope-check.js");
    let out = Std::new("node")
        .arg(&check)
        .arg(schema.unwrap())
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let names: Vec<&str> = v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("pk-worker")),
        "one profile per worker thread: {names:?}"
    );
    // A broken file is refused by the same check (it checks something).
    std::fs::write(&file, r#"{"profiles":[],"shared":{"frames":[]}}"#).unwrap();
    let out = Std::new("node")
        .arg(&check)
        .arg(speedscope_schema().unwrap())
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// A speedscope time as its views print it (`225.29ms`, `3.10s`,
/// `812.00µs`), in nanoseconds.
fn speedscope_time(text: &str) -> Option<f64> {
    let text = text.trim();
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let x: f64 = text[..end].parse().ok()?;
    let scale = match text[end..].split_whitespace().next()? {
        "ns" => 1.0,
        "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "min" => 60e9,
        _ => return None,
    };
    Some(x * scale)
}

/// speedscope's own importer, in headless Chromium: the app the npm
/// package ships (`dist/release/index.html`, opened from disk) loads the
/// exported file as a user does (Browse, then the file chooser), names the
/// profile and its threads, and its Sandwich view lists first the
/// function with the most self time in the file, with that time.
#[test]
fn speedscope_loads_the_file_through_its_own_importer() {
    let chromium = Path::new("/usr/bin/chromium");
    let app = speedscope_schema()
        .map(|p| p.with_file_name("index.html"))
        .filter(|p| p.is_file());
    if !common::tool_available(
        "chromium and the speedscope npm package",
        chromium.exists() && app.is_some(),
        "apt-get install chromium; npm install -g speedscope@1.25.0",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = cpu_run(dir.path());
    let file = export(dir.path(), &run, "speedscope", "p.speedscope.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // What the file says: the active profile's top self-time function.
    let profiles = v["profiles"].as_array().unwrap();
    let active = v["activeProfileIndex"].as_u64().unwrap_or(0) as usize;
    let p = &profiles[active];
    assert_eq!(p["unit"], "nanoseconds");
    let frames = v["shared"]["frames"].as_array().unwrap();
    let mut self_time: std::collections::HashMap<&str, f64> = Default::default();
    for (s, w) in p["samples"]
        .as_array()
        .unwrap()
        .iter()
        .zip(p["weights"].as_array().unwrap())
    {
        let leaf = s.as_array().unwrap().last().unwrap().as_u64().unwrap() as usize;
        *self_time
            .entry(frames[leaf]["name"].as_str().unwrap())
            .or_default() += w.as_f64().unwrap();
    }
    let top = self_time.values().cloned().fold(0.0, f64::max);
    assert!(top > 0.0, "{file:?}: no self time");
    // What the run says (cpu.folded, thread first): that thread's leaf
    // frames with the most samples, and their share.
    let thread = p["name"].as_str().unwrap();
    let mut leaves: std::collections::HashMap<String, u64> = Default::default();
    let mut samples = 0;
    for line in std::fs::read_to_string(run.join("cpu.folded"))
        .unwrap()
        .lines()
    {
        let Some((stack, n)) = line.rsplit_once(' ') else {
            continue;
        };
        let n: u64 = n.parse().unwrap();
        let mut frames = stack.split(';');
        if frames.next() != Some(thread) {
            continue;
        }
        samples += n;
        *leaves
            .entry(stack.rsplit(';').next().unwrap().to_string())
            .or_default() += n;
    }
    let most = leaves.values().copied().max().unwrap();
    let top_leaves: Vec<&String> = leaves
        .iter()
        .filter(|(_, n)| **n == most)
        .map(|(l, _)| l)
        .collect();
    let top_share = 100.0 * most as f64 / samples as f64;

    let mut cdp = Cdp::start(chromium, &dir.path().join("chromium-profile"));
    let target = cdp.call(None, "Target.createTarget", json!({"url": "about:blank"}));
    let attached = cdp.call(
        None,
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    let session = attached["sessionId"].as_str().unwrap().to_string();
    let s = Some(session.as_str());
    for domain in ["Runtime.enable", "Log.enable", "Page.enable", "DOM.enable"] {
        cdp.call(s, domain, json!({}));
    }
    cdp.call(
        s,
        "Page.setInterceptFileChooserDialog",
        json!({"enabled": true}),
    );
    let url = format!("file://{}", app.unwrap().display());
    cdp.call(s, "Page.navigate", json!({"url": url}));
    cdp.wait_event("Page.loadEventFired");
    let eval = |cdp: &mut Cdp, e: &str| {
        let r = cdp.call(
            s,
            "Runtime.evaluate",
            json!({"expression": e, "returnByValue": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{r}");
        r["result"]["value"].clone()
    };
    // The welcome screen's Browse button, clicked with the mouse (a file
    // chooser needs a user's gesture).
    let at = eval(
        &mut cdp,
        "(() => { const b = [...document.querySelectorAll('div,a,button')].filter(e => e.textContent.trim() === 'Browse').pop();
                  if (!b) return null; const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()",
    );
    assert!(at.is_array(), "no Browse button: speedscope did not start");
    for kind in ["mousePressed", "mouseReleased"] {
        cdp.call(
            s,
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": at[0], "y": at[1], "button": "left", "clickCount": 1}),
        );
    }
    cdp.wait_event("Page.fileChooserOpened");
    let chooser = cdp
        .events
        .iter()
        .find(|e| e["method"] == "Page.fileChooserOpened")
        .unwrap()["params"]
        .clone();
    cdp.call(
        s,
        "DOM.setFileInputFiles",
        json!({"files": [file.display().to_string()], "backendNodeId": chooser["backendNodeId"]}),
    );
    // Imported: the title names the profile, the toolbar the thread.
    let want_title = format!("{} - speedscope", v["name"].as_str().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let t = eval(&mut cdp, "document.title");
        if t == json!(want_title) {
            break;
        }
        let dialog = cdp
            .events
            .iter()
            .find(|e| e["method"] == "Page.javascriptDialogOpening");
        assert!(dialog.is_none(), "speedscope refused the file: {dialog:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "not imported: title {t}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let text = eval(&mut cdp, "document.body.innerText");
    let thread = format!(
        "{} ({}/{})",
        p["name"].as_str().unwrap(),
        active + 1,
        profiles.len()
    );
    assert!(
        text.as_str().unwrap().contains(&thread),
        "{thread} not in {text}"
    );
    // The Sandwich view (key 3): functions by self time, read as text.
    for kind in ["keyDown", "keyUp"] {
        cdp.call(
            s,
            "Input.dispatchKeyEvent",
            json!({"type": kind, "key": "3", "text": "3", "code": "Digit3", "windowsVirtualKeyCode": 51}),
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let rows: Vec<String> = loop {
        let text = eval(&mut cdp, "document.body.innerText");
        let text = text.as_str().unwrap();
        let rows: Vec<String> = text
            .find("Symbol Name")
            .map(|i| {
                text[i..]
                    .lines()
                    .skip(1)
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .take(3)
                    .collect()
            })
            .unwrap_or_default();
        if rows.len() == 3 {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Sandwich view: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // Rows: total, self, name.
    let name = rows[2].as_str();
    let shown = speedscope_time(&rows[1]).unwrap_or_else(|| panic!("{rows:?}"));
    assert!(
        top_leaves.iter().any(|l| l.as_str() == name),
        "speedscope's top self-time function {name:?} is not the run's {top_leaves:?}: {rows:?}"
    );
    assert_eq!(
        self_time.get(name).copied(),
        Some(top),
        "speedscope's top self-time function {name:?} is not the file's: {rows:?}"
    );
    // Its share, as speedscope prints it (`225.29ms (15%)`).
    let share: f64 = rows[1]
        .rsplit_once('(')
        .and_then(|(_, p)| p.trim_end_matches("%)").parse().ok())
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(
        (share - top_share).abs() <= 0.05 * top_share,
        "{rows:?} vs {top_share:.2} % of {samples} samples in cpu.folded"
    );
    assert!((shown - top).abs() <= 0.01 * top, "{rows:?} vs {top} ns");
    // No errors on the way.
    while let Ok(e) = cdp.from.try_recv() {
        cdp.events.push(e);
    }
    let errors: Vec<&Value> = cdp
        .events
        .iter()
        .filter(|e| {
            e["method"] == "Runtime.exceptionThrown"
                || e["method"] == "Page.javascriptDialogOpening"
                || (e["method"] == "Runtime.consoleAPICalled" && e["params"]["type"] == "error")
        })
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn firefox_file_has_the_processed_format_shape() {
    let dir = tempfile::tempdir().unwrap();
    let run = cpu_run(dir.path());
    let file = export(dir.path(), &run, "firefox", "p.firefox.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        v["meta"]["version"].as_u64().unwrap() >= 24,
        "{}",
        v["meta"]
    );
    assert!(v["meta"]["interval"].as_f64().unwrap() > 0.0);
    let threads = v["threads"].as_array().unwrap();
    assert!(threads
        .iter()
        .any(|t| t["name"].as_str().unwrap().starts_with("pk-worker")));
    let mut samples = 0;
    for t in threads {
        let stacks = t["stackTable"]["length"].as_u64().unwrap();
        let frames = t["frameTable"]["length"].as_u64().unwrap();
        let s = &t["samples"];
        let n = s["length"].as_u64().unwrap();
        samples += n;
        assert_eq!(s["stack"].as_array().unwrap().len() as u64, n);
        assert_eq!(
            s["time"].as_array().map(Vec::len).unwrap_or(0) as u64
                + s["timeDeltas"].as_array().map(Vec::len).unwrap_or(0) as u64,
            n
        );
        for st in s["stack"].as_array().unwrap() {
            assert!(st.as_u64().is_none_or(|i| i < stacks), "{st} of {stacks}");
        }
        for f in t["stackTable"]["frame"].as_array().unwrap() {
            assert!(f.as_u64().unwrap() < frames);
        }
    }
    assert!(samples > 0);
    // The stored names survive: a full `<… as …>::operation` frame.
    assert!(String::from_utf8_lossy(&std::fs::read(&file).unwrap())
        .contains(" as profkit::workload::Workload>::operation"));
}

#[test]
fn a_run_without_cpu_data_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    common::profkit(dir.path())
        .args(["run", "point-read", "--rows", "200", "--ops", "50", "--out"])
        .arg(dir.path().join("profiles"))
        .assert()
        .success();
    let run = std::fs::read_dir(dir.path().join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let out = common::profkit(dir.path())
        .arg("export")
        .arg(&run)
        .args(["--format", "firefox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no CPU data") && err.contains("cpu.pb.gz") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!run.join("cpu.firefox.json").exists());
}
