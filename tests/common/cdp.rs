//! A headless Chromium driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`): the browser tests' one client.

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The DevTools protocol over `--remote-debugging-pipe` (fds 3 and 4).
pub struct Cdp {
    /// The browser.
    pub child: Child,
    to: std::fs::File,
    /// Messages from the browser not read yet.
    pub from: mpsc::Receiver<Value>,
    next: u64,
    /// Events (and answers) read but not consumed.
    pub events: Vec<Value>,
}

impl Cdp {
    pub fn start(chromium: &Path, profile: &Path) -> Cdp {
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
            // The flamegraphs' sandboxed frames stay in the page's process,
            // where the reader's isolated worlds can see them.
            "--disable-features=IsolateSandboxedIframes",
            "--disable-site-isolation-trials",
            "--window-size=1400,3000",
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

    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.send(session, method, params);
        self.result(id, method)
    }

    /// Sends a command without waiting for its answer (a click that opens
    /// a dialog is answered only once the dialog is handled).
    pub fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        id
    }

    /// The answer to command `id`, whether it came already or comes now.
    pub fn result(&mut self, id: u64, method: &str) -> Value {
        let answer = |v: Value| {
            assert!(v.get("error").is_none(), "{method} failed: {v}");
            v["result"].clone()
        };
        if let Some(i) = self
            .events
            .iter()
            .position(|e| e["id"].as_u64() == Some(id))
        {
            return answer(self.events.remove(i));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            if v["id"].as_u64() == Some(id) {
                return answer(v);
            }
            self.events.push(v);
        }
    }

    pub fn wait_event(&mut self, method: &str) {
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
