//! `profkit serve`: the [`DatabaseManager`] behind an HTTP/JSON API, with
//! the endpoints that existing tools read by their own conventions:
//! `/metrics` (Prometheus text), `/debug/pprof/profile` (Go's
//! `net/http/pprof`, as `go tool pprof`, Pyroscope and Parca scrape it),
//! `/debug/pprof/heap` (the sampled heap profile since start-up) and
//! `/debug/profkit/sql` (the SQL report over a window).
//!
//! Choices, and why:
//! - **axum on tokio**: the maintained, common Rust server stack. rusqlite
//!   blocks, so every database call runs on tokio's blocking pool
//!   (`spawn_blocking`), never on an async worker.
//! - **Loopback by default**: a profiling endpoint on a public interface
//!   hands out stacks and SQL text; another address needs
//!   [`ServeOptions::allow_remote`] and is announced on start-up.
//! - **Tracing on**: the SQL trace hook is installed on every connection so
//!   that `/metrics` counts statements and `/debug/profkit/sql` can report
//!   a window; it costs a few microseconds per statement.
//! - **Heap sampling on**: a heap profile by sampling (one backtrace per
//!   512 KiB allocated on average) costs little enough to leave on, so a
//!   server can always answer `/debug/pprof/heap`; exact heap profiling
//!   would distort every latency.
//! - **Graceful shutdown**: Ctrl-C or SIGTERM stop accepting connections,
//!   in-flight requests finish, then the pool closes and the WAL is
//!   checkpointed.

mod api;
mod debug;
pub mod locust;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::db::{DatabaseManager, DbConfig};
use crate::profile::sampled::SampledProfiler;
use state::AppState;

/// Defaults of `profkit serve`, defined once (the CLI uses them too).
pub mod defaults {
    /// Address to listen on.
    pub const ADDR: &str = "127.0.0.1:8080";
    /// Emails in the store when none is given.
    pub const ROWS: u64 = 10_000;
    /// Seed of the generated data.
    pub const SEED: u64 = 42;
    /// Length of a CPU profile or SQL window when `seconds` is not given
    /// (Go's `net/http/pprof` default).
    pub const WINDOW_SECONDS: u64 = 30;
    /// Longest CPU profile or SQL window one request may ask for.
    pub const MAX_WINDOW_SECONDS: u64 = 300;
}

/// Errors of starting the server: bad input, exit 2.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another process listens there.
    #[error("cannot listen on {addr}: the address is already in use (choose another with --addr)")]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// A non-loopback address without the flag.
    #[error("--addr {addr} is not a loopback address: pass --allow-remote to serve other hosts")]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Any other bind failure.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to listen on (default [`defaults::ADDR`]; port 0 picks one).
    pub addr: SocketAddr,
    /// Emails to populate a new database with (default [`defaults::ROWS`]).
    pub rows: u64,
    /// Database file (default: a temporary one, removed on exit).
    pub db: Option<PathBuf>,
    /// Allow a non-loopback address (default off).
    pub allow_remote: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: defaults::ADDR.parse().expect("valid default address"),
            rows: defaults::ROWS,
            db: None,
            allow_remote: false,
        }
    }
}

/// What a server did by the time it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeSummary {
    /// Requests answered.
    pub requests: u64,
}

/// Asks a running server to stop gracefully (for embedding and tests).
#[derive(Clone, Debug)]
pub struct ShutdownHandle(Arc<tokio::sync::Notify>);

impl ShutdownHandle {
    /// Stops the server: no new connections, in-flight requests finish.
    pub fn shutdown(&self) {
        self.0.notify_one();
    }
}

/// A bound, ready server.
pub struct Server {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: Arc<tokio::sync::Notify>,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// Binds the address first (so a port in use fails at once), then
    /// opens the database and populates it with `rows` emails if empty.
    pub fn bind(options: &ServeOptions) -> anyhow::Result<Server> {
        let addr = options.addr;
        if !addr.ip().is_loopback() && !options.allow_remote {
            return Err(ServeError::NotLoopback { addr }.into());
        }
        let listener = std::net::TcpListener::bind(addr).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                ServeError::AddrInUse { addr }
            } else {
                ServeError::Bind { addr, source }
            }
        })?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let (path, temp) = match &options.db {
            Some(p) => (p.clone(), None),
            None => {
                let dir = tempfile::Builder::new().prefix("profkit-serve").tempdir()?;
                (dir.path().join("emails.db"), Some(dir))
            }
        };
        let mut config = DbConfig::new(&path);
        config.sql_trace = true;
        let db = DatabaseManager::open(config)?;
        if db.populated()?.is_none() || db.count_emails()? == 0 {
            db.populate(options.rows, defaults::SEED)
                .with_context(|| format!("populating '{}'", path.display()))?;
        }
        Ok(Server {
            listener,
            addr: local,
            state: Arc::new(AppState::new(db)?),
            stop: Arc::new(tokio::sync::Notify::new()),
            _temp: temp,
        })
    }

    /// The address it listens on (the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.stop.clone())
    }

    /// Serves until Ctrl-C, SIGTERM or the [`ShutdownHandle`], then waits
    /// for in-flight requests and closes the database.
    pub fn run(self) -> anyhow::Result<ServeSummary> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("profkit-serve")
            .build()?;
        let stop = self.stop.clone();
        let state = self.state.clone();
        let std_listener = self.listener;
        // The process samples its heap (`profkit serve` switches it on):
        // record from now until the server stops, for `/debug/pprof/heap`.
        let _heap = if crate::alloc::sampled_heap_profiling_enabled() {
            Some(SampledProfiler::start()?)
        } else {
            None
        };
        // Requests become spans the service layer follows (unless the
        // embedding process installed a subscriber of its own).
        {
            use tracing_subscriber::layer::SubscriberExt as _;
            let _ = tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(crate::service::layer()),
            );
        }
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            let app = api::router(state.clone());
            // ConnectInfo: the debug routes answer loopback peers only.
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop_signal(stop))
            .await?;
            anyhow::Ok(())
        })?;
        // In-flight blocking calls are done; the database goes last.
        runtime.shutdown_timeout(Duration::from_secs(5));
        self.state.close();
        Ok(ServeSummary {
            requests: self.state.requests(),
        })
    }
}

/// Ctrl-C (through the CLI's handler, or tokio's), SIGTERM, or the handle.
async fn stop_signal(stop: Arc<tokio::sync::Notify>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let interrupted = async {
        // The CLI's Ctrl-C handler sets this flag; poll it (bounded by
        // the server's life, 10 times a second).
        while !crate::measure::interrupted() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let terminated = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = stop.notified() => {}
        _ = interrupted => {}
        _ = terminated => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
