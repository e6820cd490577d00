//! `profkit serve` in process: real HTTP requests to a server on a free
//! loopback port, over a small real database.

#![cfg(feature = "service")]

use std::io::Read as _;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use profkit::render::pprof::Profile;
use profkit::serve::{ServeOptions, ServeSummary, Server, ShutdownHandle};
use prost::Message as _;
use serde_json::Value;

struct Running {
    addr: SocketAddr,
    stop: ShutdownHandle,
    thread: Option<JoinHandle<anyhow::Result<ServeSummary>>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn stop(mut self) -> ServeSummary {
        self.stop.shutdown();
        self.thread.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.shutdown();
    }
}

fn start(rows: u64) -> Running {
    let server = Server::bind(&ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        rows,
        ..ServeOptions::default()
    })
    .expect("the server binds and opens its database");
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let thread = Some(std::thread::spawn(move || server.run()));
    Running { addr, stop, thread }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// (status, body) of a GET.
fn get(url: &str) -> (u16, Vec<u8>) {
    let mut r = agent().get(url).call().expect("the server answers");
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_vec().expect("a body");
    (status, body)
}

fn get_json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("JSON")
}

/// A valid (tenant, id) pair from /api/info.
fn some_email(s: &Running) -> (i64, i64) {
    let info = get_json(&s.url("/api/info"));
    let ids = info["ids_by_tenant"].as_array().unwrap();
    let (t, list) = ids
        .iter()
        .enumerate()
        .find(|(_, l)| !l.as_array().unwrap().is_empty())
        .expect("some tenant has emails");
    (t as i64 + 1, list[0].as_i64().unwrap())
}

/// Requests on a few routes from another thread until told to stop.
fn traffic(s: &Running, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> JoinHandle<u64> {
    let (t, id) = some_email(s);
    let urls = [
        s.url(&format!("/api/tenants/{t}/emails/{id}")),
        s.url(&format!("/api/tenants/{t}/search/like?q=ref00001")),
        s.url(&format!("/api/tenants/{t}/recent/n-plus-one?limit=20")),
    ];
    std::thread::spawn(move || {
        let mut n = 0;
        // Bounded: at most 100,000 requests.
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 100_000 {
            assert_eq!(get(&urls[n as usize % urls.len()]).0, 200);
            n += 1;
        }
        n
    })
}

#[test]
fn every_api_route_answers_within_its_tenant() {
    let s = start(600);
    let info = get_json(&s.url("/api/info"));
    assert_eq!(info["rows"].as_u64(), Some(600));
    let tenants = info["tenants"].as_i64().unwrap();
    let (t, id) = some_email(&s);
    let email = get_json(&s.url(&format!("/api/tenants/{t}/emails/{id}")));
    assert_eq!(email["id"].as_i64(), Some(id));
    assert_eq!(email["tenant_id"].as_i64(), Some(t));
    // The same id under another tenant is not found: the scope holds.
    let other = t % tenants + 1;
    assert_eq!(
        get(&s.url(&format!("/api/tenants/{other}/emails/{id}"))).0,
        404
    );
    assert_eq!(
        get(&s.url(&format!("/api/tenants/{}/emails/1", tenants + 1))).0,
        404
    );
    assert_eq!(get(&s.url("/api/random-emails?k=5")).0, 200);
    assert_eq!(
        get_json(&s.url("/api/random-emails?k=5"))
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(get(&s.url("/api/random-emails?k=0")).0, 400);

    let sender = email["sender"].as_str().unwrap();
    let by_sender = get_json(&s.url(&format!("/api/tenants/{t}/search/sender?q={sender}")));
    let by_sender = by_sender.as_array().unwrap();
    assert!(!by_sender.is_empty());
    assert!(by_sender
        .iter()
        .all(|e| e["sender"].as_str() == Some(sender) && e["tenant_id"].as_i64() == Some(t)));
    // The like and full-text searches find the same ids.
    let code = (0..1000)
        .map(|n| format!("ref{n:05}"))
        .find(|c| {
            !get_json(&s.url(&format!("/api/tenants/{t}/search/fts?q={c}")))
                .as_array()
                .unwrap()
                .is_empty()
        })
        .expect("some reference code is in tenant mail");
    let mut fts: Vec<i64> = serde_json::from_value(get_json(
        &s.url(&format!("/api/tenants/{t}/search/fts?q={code}")),
    ))
    .unwrap();
    let mut like: Vec<i64> = serde_json::from_value(get_json(
        &s.url(&format!("/api/tenants/{t}/search/like?q={code}")),
    ))
    .unwrap();
    fts.sort();
    like.sort();
    assert_eq!(fts, like);
    assert!(!fts.is_empty());
    for id in &fts {
        // Every id a search returns is the tenant's own.
        let found = get_json(&s.url(&format!("/api/tenants/{t}/emails/{id}")));
        assert_eq!(found["tenant_id"].as_i64(), Some(t), "search hit {id}");
    }
    assert_eq!(get(&s.url(&format!("/api/tenants/{t}/search/fts"))).0, 400);

    let top = get_json(&s.url(&format!("/api/tenants/{t}/senders/top?limit=3")));
    let top = top.as_array().unwrap();
    assert!(!top.is_empty() && top.len() <= 3);
    for row in top {
        // A sender's count is of the tenant's mail only: the same as the
        // tenant-scoped search for that sender finds.
        let sender = row["sender"].as_str().unwrap();
        let mail = get_json(&s.url(&format!(
            "/api/tenants/{t}/search/sender?q={sender}&limit=100"
        )));
        assert_eq!(
            row["emails"].as_u64(),
            Some(mail.as_array().unwrap().len() as u64),
            "{sender}"
        );
    }
    let slow = get_json(&s.url(&format!("/api/tenants/{t}/recent/n-plus-one?limit=10")));
    let fast = get_json(&s.url(&format!("/api/tenants/{t}/recent/batched?limit=10")));
    assert_eq!(
        slow, fast,
        "the N+1 and batched forms return the same emails"
    );
    assert!(!slow.as_array().unwrap().is_empty());
    assert!(slow
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["tenant_id"].as_i64() == Some(t)));

    let mut r = agent()
        .post(&s.url(&format!("/api/tenants/{t}/emails")))
        .send_empty()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap();
    let new_id = created["id"].as_i64().unwrap();
    assert!(new_id > 600);
    let back = get_json(&s.url(&format!("/api/tenants/{t}/emails/{new_id}")));
    assert_eq!(back["tenant_id"].as_i64(), Some(t));
    assert_eq!(
        get(&s.url(&format!("/api/tenants/{other}/emails/{new_id}"))).0,
        404,
        "an inserted email is not another tenant's"
    );
    assert!(s.stop().requests >= 14);
}

#[test]
fn metrics_count_routes_statements_and_pool() {
    let s = start(300);
    let (t, id) = some_email(&s);
    for _ in 0..5 {
        get_json(&s.url(&format!("/api/tenants/{t}/emails/{id}")));
    }
    get(&s.url("/api/tenants/99/emails/1"));
    let (status, body) = get(&s.url("/metrics"));
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    // Every sample line is `name{labels} value` with a number for value.
    let mut samples = std::collections::HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line.rsplit_once(' ').expect("name and value");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        samples.insert(key.to_string(), v);
    }
    let count = |prefix: &str, needle: &str| -> f64 {
        samples
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && k.contains(needle))
            .map(|(_, v)| *v)
            .sum()
    };
    let route = "route=\"/api/tenants/{tenant}/emails/{id}\"";
    assert!(
        count("profkit_http_requests_total{", route) >= 6.0,
        "{text}"
    );
    assert!(count("profkit_http_requests_total{", "status=\"404\"") >= 1.0);
    assert!(count("profkit_http_request_duration_seconds_count{", route) >= 6.0);
    assert!(text.contains("profkit_http_request_duration_seconds_bucket{"));
    assert!(count("profkit_sql_statements_total{", "operation=\"read-email\"") >= 5.0);
    assert!(count("profkit_pool_acquires_total", "") >= 5.0);
    assert!(text.contains("# TYPE profkit_http_requests_total counter"));
    assert!(text.contains("# TYPE profkit_pool_acquires_total counter"));
    assert!(count("profkit_sql_seconds{", "operation=\"read-email\"") > 0.0);
    // No request failed, yet the error counter is there, at 0, per route.
    let errors = format!("profkit_http_errors_total{{{route}}}");
    assert_eq!(samples.get(&errors), Some(&0.0), "{text}");
    s.stop();
}

#[test]
fn pprof_profile_is_gzipped_protobuf_with_server_samples_and_one_at_a_time() {
    let _one = ONE_PROFILE.lock().unwrap_or_else(|p| p.into_inner());
    let s = start(2000);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = traffic(&s, stop.clone());
    let url = s.url("/debug/pprof/profile?seconds=2");
    let first = std::thread::spawn(move || get(&url));
    std::thread::sleep(Duration::from_millis(500));
    let (second, msg) = get(&s.url("/debug/pprof/profile?seconds=1"));
    assert_eq!(second, 409, "{}", String::from_utf8_lossy(&msg));
    let (status, gz) = first.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(load.join().unwrap() > 0);
    assert_eq!(status, 200);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .expect("gzip");
    let profile = Profile::decode(&raw[..]).expect("a pprof protobuf");
    let samples: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    assert!(samples > 0, "no samples");
    let names: Vec<&str> = profile
        .function
        .iter()
        .map(|f| profile.string_table[f.name as usize].as_str())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("serve::")),
        "no handler frame in {names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("sqlite3")),
        "no SQLite frame"
    );
    // The profiler is free again.
    assert_eq!(get(&s.url("/debug/pprof/profile?seconds=0")).0, 400);
    s.stop();
}

#[test]
fn heap_profile_says_why_not_and_sql_window_reports_statements() {
    let s = start(500);
    let (status, body) = get(&s.url("/debug/pprof/heap"));
    assert_eq!(status, 501);
    let reason = String::from_utf8(body).unwrap();
    assert!(
        reason.contains("heap") && !reason.contains('\n'),
        "{reason}"
    );

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = traffic(&s, stop.clone());
    let report = get_json(&s.url("/debug/profkit/sql?seconds=1"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    assert!(report["ops"].as_u64().unwrap() > 0, "{report}");
    let ops: Vec<&str> = report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["operation"].as_str().unwrap_or_default())
        .collect();
    assert!(
        ops.contains(&"read-email") && ops.contains(&"search-like"),
        "{ops:?}"
    );
    // Statements come with their query plans.
    let text = report.to_string();
    assert!(text.contains("USE TEMP B-TREE FOR ORDER BY"), "{text}");
    assert!(text.contains("USING INTEGER PRIMARY KEY"), "{text}");
    s.stop();
}

#[test]
fn shutdown_lets_in_flight_requests_finish() {
    let s = start(200);
    let url = s.url("/debug/profkit/sql?seconds=2");
    let in_flight = std::thread::spawn(move || get(&url));
    std::thread::sleep(Duration::from_millis(500));
    let addr = s.addr;
    let summary = s.stop();
    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(summary.requests >= 1);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

/// The tests that take the process's one CPU profile, one after the other
/// (a second would get 409).
static ONE_PROFILE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn endpoints_report_names_the_n_plus_one_route_only() {
    let _one = ONE_PROFILE.lock().unwrap_or_else(|p| p.into_inner());
    let s = start(500);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = traffic(&s, stop.clone());
    let report = get_json(&s.url("/debug/profkit/endpoints?seconds=2"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    let endpoints = report["endpoints"].as_array().unwrap();
    let find = |route: &str| {
        endpoints
            .iter()
            .find(|e| e["endpoint"].as_str() == Some(route))
            .unwrap_or_else(|| panic!("no {route} in {report}"))
    };
    let n1 = find("GET /api/tenants/{tenant}/recent/n-plus-one");
    let read = find("GET /api/tenants/{tenant}/emails/{id}");
    assert!(n1["requests"].as_u64().unwrap() > 0, "{n1}");
    // The handlers' statements run on the blocking pool, charged to their
    // request through service::spawn_blocking.
    assert!(
        n1["statements_per_request"].as_f64().unwrap() >= 20.0,
        "{n1}"
    );
    let kinds = |e: &Value| -> Vec<String> {
        e["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(kinds(n1).contains(&"n-plus-one".to_string()), "{n1}");
    assert!(!kinds(read).contains(&"n-plus-one".to_string()), "{read}");
    assert!(read["cpu_samples"].as_u64().is_some(), "{read}");
    s.stop();
}
