//! What the service layer costs a saturated service: requests per second
//! of an in-process axum app (a root span per request, a handler doing a
//! little work and one `spawn_blocking`), driven through
//! `tower::ServiceExt::oneshot` by 16 tasks on a 2-worker runtime for a
//! fixed time, in one of three modes given as the argument:
//! `none` (the same subscriber without profkit's layer), `idle` (the
//! layer installed, nothing reading), `record` (the layer with a
//! per-endpoint recording open, no CPU profile), `sampler` (a CPU profile
//! without the layer: the sampler's own cost) or `profile` (the layer,
//! with a labelled CPU profile taken for the whole run). One mode per process
//! (a process has one global subscriber); scripts/bench-service.sh
//! alternates them and reports medians and ratios.
//!
//! Two modes alternate inside one process instead, the load running
//! throughout: `alternate` (the layer installed: 1 s windows idle, then
//! while a labelled CPU profile is taken, order turned each pair) and
//! `alternate-none` (no layer: windows without, then with, the sampler);
//! for them the second argument is the number of pairs, and they print
//! each pair's ratio (profiled ÷ not) and the median.
//!
//! A third argument picks the app: `tiny` (the default: the handler
//! above, ~30 µs of CPU a request, most of it the runtime's thread
//! switches) or `shop`, the example's own service
//! (examples/async_service.rs, compiled in) loaded on its clean endpoint
//! `GET /orders/{id}` (one sqlx query on SQLite, 20,000 orders).
//!
//! A sixth mode, `callbacks`, times the layer's own work apart from the
//! runtime's: one thread opens, polls and closes request-shaped spans
//! (a root span with method and route, entered three times, one child
//! span entered once, one sqlx query event as sqlx sends it) under each
//! subscriber in turn, rounds alternating,
//! and prints the thread CPU time per request of each.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower::ServiceExt as _;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// The example's shop, compiled in (its `main` unused here).
#[allow(dead_code)]
#[path = "../examples/async_service.rs"]
mod shop;

async fn request_span(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let span = tracing::info_span!("request", method = %req.method(), route = route.as_deref().unwrap_or("?"));
    next.run(req).instrument(span).await
}

async fn order() -> String {
    let total = profkit::service::spawn_blocking(|| {
        (0..200u64).fold(0u64, |a, i| a.wrapping_mul(31).wrapping_add(i))
    })
    .await
    .unwrap();
    let items: Vec<String> = (0..20).map(|i| format!("item-{i}-{total}")).collect();
    serde_json::to_string(&items).unwrap()
}

/// This thread's CPU time, ns (immune to other processes' load).
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Diagnostic: the process CPU timer armed at `hz` (0: off) with a
/// handler that does nothing: the kernel's side of the sampler alone.
fn arm_timer(hz: i64) {
    extern "C" fn nothing(_: libc::c_int) {}
    let tick = libc::timeval {
        tv_sec: 0,
        tv_usec: if hz == 0 { 0 } else { 1_000_000 / hz },
    };
    let t = libc::itimerval {
        it_interval: tick,
        it_value: tick,
    };
    // SAFETY: a handler that does nothing, and a valid itimerval.
    unsafe {
        libc::signal(
            libc::SIGPROF,
            nothing as extern "C" fn(libc::c_int) as usize,
        );
        libc::setitimer(libc::ITIMER_PROF, &t, std::ptr::null_mut());
    }
}

/// This process's CPU time (user + system), ns, and voluntary context
/// switches so far.
fn process_usage() -> (u64, u64) {
    // SAFETY: getrusage writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    (ns(u.ru_utime) + ns(u.ru_stime), u.ru_nvcsw as u64)
}

/// What sqlx 0.9 does as a query ends (its `QueryLogger`): asks whether
/// its DEBUG event is wanted, and only then builds it (the first four
/// words, a copy of the statement) and sends it.
fn sqlx_query_event() {
    const SQL: &str =
        "SELECT c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer WHERE o.id = ?";
    if tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG) {
        let summary = SQL.split_whitespace().take(4).collect::<Vec<_>>().join(" ") + " …";
        let statement = format!("\n\n{SQL}\n");
        let elapsed = Duration::from_micros(20);
        tracing::debug!(target: "sqlx::query", summary, db.statement = statement, rows_affected = 0u64, rows_returned = 1u64, ?elapsed, elapsed_secs = elapsed.as_secs_f64());
    }
}

/// `n` request-shaped span lifecycles (and one sqlx query event each); thread CPU ns per request.
fn requests(n: u64) -> f64 {
    let start = thread_cpu_ns();
    for i in 0..n {
        let root = tracing::info_span!("request", method = %"GET", route = "/orders/{id}");
        for _ in 0..3 {
            let _g = root.enter();
            std::hint::black_box(i);
        }
        let child = root.in_scope(|| tracing::info_span!("spawn_blocking"));
        child.in_scope(|| std::hint::black_box(i));
        root.in_scope(sqlx_query_event);
        drop(child);
        drop(root);
    }
    (thread_cpu_ns() - start) as f64 / n as f64
}

/// The `callbacks` mode (see the module docs).
fn callbacks(rounds: u64) {
    use tracing::dispatcher::with_default;
    let none = tracing_subscriber::registry();
    let layered = tracing_subscriber::registry().with(profkit::service::layer());
    let layered = tracing::Dispatch::new(layered);
    let none = tracing::Dispatch::new(none);
    let n = 200_000;
    let mut runs: [Vec<f64>; 4] = Default::default();
    let names = ["none", "idle", "profile", "record"];
    // A round thrown away: the first subscriber timed would pay for the
    // warm-up (page faults, the callsites' first registration).
    for d in [&none, &layered] {
        with_default(d, || requests(n));
    }
    for _ in 0..rounds {
        runs[0].push(with_default(&none, || requests(n)));
        runs[1].push(with_default(&layered, || requests(n)));
        let (ns, _) =
            profkit::service::profile_labelled(|| with_default(&layered, || requests(n))).unwrap();
        runs[2].push(ns);
        let rec = profkit::service::record();
        runs[3].push(with_default(&layered, || requests(n)));
        drop(rec);
    }
    for (name, mut v) in names.iter().zip(runs) {
        v.sort_by(f64::total_cmp);
        let runs: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
        println!(
            "callbacks {name:8} median {:6.0} ns/request  runs: {}",
            v[v.len() / 2],
            runs.join(" ")
        );
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "none".into());
    if mode == "callbacks" {
        callbacks(
            std::env::args()
                .nth(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or(5),
        );
        return;
    }
    let secs: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    match mode.as_str() {
        "none" | "sampler" | "timer" | "alternate-none" | "alternate-timer" => {
            tracing::subscriber::set_global_default(tracing_subscriber::registry())
        }
        "idle" | "record" | "profile" | "alternate" => tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(profkit::service::layer()),
        ),
        other => {
            eprintln!("error: mode '{other}' is not one of none, idle, record, sampler, profile");
            std::process::exit(2);
        }
    }
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The app, and how many ids its `/orders/{id}` answers.
    let (app, ids) = match std::env::args().nth(3).as_deref().unwrap_or("tiny") {
        "tiny" => (
            Router::new()
                .route("/orders/{id}", get(order))
                .route_layer(middleware::from_fn(request_span)),
            u64::MAX,
        ),
        "shop" => {
            let app = rt
                .block_on(shop::open_app(&dir.path().join("shop.db"), 20_000, |_| {}))
                .unwrap();
            let ids = app.orders as u64;
            (shop::routes(app), ids)
        }
        other => {
            eprintln!("error: app '{other}' is not one of tiny, shop");
            std::process::exit(2);
        }
    };
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // The load: 16 tasks sending requests until `stop`.
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let (app, done, stop) = (app.clone(), done.clone(), stop.clone());
            rt.spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let req = axum::http::Request::get(format!(
                        "/orders/{}",
                        (t * 1_000_003 + i * 7_919) % ids
                    ))
                    .body(Body::empty())
                    .unwrap();
                    let res = app.clone().oneshot(req).await.unwrap();
                    assert!(res.status().is_success());
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    // One measured window of the running load: requests per second.
    let window = |length: Duration| {
        let start = done.load(Ordering::Relaxed);
        let clock = Instant::now();
        let (cpu0, switches0) = process_usage();
        std::thread::sleep(length);
        let n = done.load(Ordering::Relaxed) - start;
        let elapsed = clock.elapsed();
        let (cpu1, switches1) = process_usage();
        // What the window used: CPUs busy, CPU and voluntary switches
        // per request (apart from warm-up and the profile's processing).
        eprintln!(
            "window: {:.2} CPUs busy, {:.2} µs CPU/request, {:.2} voluntary switches/request",
            (cpu1 - cpu0) as f64 / elapsed.as_nanos() as f64,
            (cpu1 - cpu0) as f64 / 1e3 / n.max(1) as f64,
            (switches1 - switches0) as f64 / n.max(1) as f64,
        );
        n as f64 / elapsed.as_secs_f64()
    };
    let length = Duration::from_secs(secs);
    if mode == "timer" {
        arm_timer(99);
    }
    // Warm-up (the labelled profile, where taken, covers it too).
    let warmed = |length| {
        std::thread::sleep(Duration::from_millis(500));
        window(length)
    };
    let rate = match mode.as_str() {
        "profile" | "sampler" => {
            let (rate, p) = profkit::service::profile_labelled(|| warmed(length)).unwrap();
            eprintln!(
                "{} samples, {} matched to a request",
                p.profile.samples, p.attributed
            );
            rate
        }
        "record" => {
            let recording = profkit::service::record();
            let rate = warmed(length);
            drop(recording);
            rate
        }
        "alternate" | "alternate-none" | "alternate-timer" => {
            // Windows without and with a CPU profile in turn (A B, B A, …)
            // in this one process: the process's own luck (how its
            // threads happen to park and wake, which moves a whole run's
            // req/s by 10-15 % here) is the same for both.
            warmed(Duration::from_millis(500));
            let mut ratios = Vec::new();
            for pair in 0..secs.max(1) {
                let mut rates = [0.0; 2];
                for k in [pair % 2, 1 - pair % 2] {
                    rates[k as usize] = if k == 0 {
                        window(Duration::from_millis(1000))
                    } else if mode == "alternate-timer" {
                        arm_timer(99);
                        let rate = window(Duration::from_millis(1000));
                        arm_timer(0);
                        rate
                    } else {
                        profkit::service::profile_labelled(|| window(Duration::from_millis(1000)))
                            .unwrap()
                            .0
                    };
                    // The profile's processing, then the load settles.
                    std::thread::sleep(Duration::from_millis(200));
                }
                ratios.push(rates[1] / rates[0]);
            }
            ratios.sort_by(f64::total_cmp);
            let list: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
            println!("{mode} pairs: {}", list.join(" "));
            ratios[ratios.len() / 2]
        }
        _ => warmed(length),
    };
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    if mode.starts_with("alternate") {
        println!("{mode} median ratio {rate:.3}");
    } else {
        println!("{mode} {rate:.0}");
    }
}
