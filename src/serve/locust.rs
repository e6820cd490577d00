//! `profkit serve` as the server `profkit load --locust` loads: the pass
//! ([`crate::passes::load_locust`]) drives Locust and writes the run
//! folder; this starts the server on a free loopback port and lends it
//! the server's request count and SQL window.

use std::sync::Arc;

use super::state::AppState;
use super::{ServeOptions, Server};
use crate::analyze::sql::SqlReport;
use crate::passes::load_locust::{LoadedServer, Started};

struct Loaded(Arc<AppState>);

impl LoadedServer for Loaded {
    fn requests(&self) -> u64 {
        self.0.requests()
    }

    fn open_sql_window(&self) {
        self.0.open_window();
    }

    fn close_sql_window(&self) -> Option<SqlReport> {
        self.0
            .close_window()
            .map(|w| super::debug::window_report(&self.0, w))
    }
}

/// `profkit serve` with `rows` emails on a free loopback port, in a thread
/// of this process.
pub fn start(rows: u64) -> anyhow::Result<Started> {
    let server = Server::bind(&ServeOptions {
        addr: "127.0.0.1:0".parse()?,
        rows,
        ..ServeOptions::default()
    })?;
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let state = server.state.clone();
    let serving = std::thread::Builder::new()
        .name("profkit-serve".into())
        .spawn(move || server.run())?;
    Ok(Started {
        url: format!("http://{addr}"),
        server: Arc::new(Loaded(state)),
        stop: Box::new(move || {
            stop.shutdown();
            let served = serving
                .join()
                .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
            Ok(served.requests)
        }),
        seed: super::defaults::SEED,
    })
}
