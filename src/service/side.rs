//! The routes on a side port, for apps that are not axum (Go's
//! `localhost:6060` habit): a thread of its own with a small tokio runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::access::Access;

/// Errors of starting the side server: bad input.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A non-loopback address without the opt-in.
    #[error("{addr} is not a loopback address: the debug routes hand out stacks and SQL; set SpawnOptions::allow_remote (and an Access token) to serve other hosts")]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Another process listens there.
    #[error("cannot listen on {addr}: the address is already in use")]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Any other failure to start.
    #[error("cannot serve the debug routes on {addr}: {source}")]
    Io {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How to serve the side port.
#[derive(Clone, Debug, Default)]
pub struct SpawnOptions {
    /// Who may read (default: loopback peers only).
    pub access: Access,
    /// Allow a non-loopback address (default off).
    pub allow_remote: bool,
}

/// The side server, running until [`SideServer::shutdown`] or drop.
pub struct SideServer {
    addr: SocketAddr,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<JoinHandle<()>>,
}

impl SideServer {
    /// The address it listens on (the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SideServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Serves [`super::router`] on `addr` (loopback only) from a thread of its
/// own.
pub fn spawn(addr: SocketAddr) -> Result<SideServer, ServiceError> {
    spawn_with(addr, SpawnOptions::default())
}

/// [`spawn`] with access rules and the remote opt-in.
pub fn spawn_with(addr: SocketAddr, options: SpawnOptions) -> Result<SideServer, ServiceError> {
    if !addr.ip().is_loopback() && !options.allow_remote {
        return Err(ServiceError::NotLoopback { addr });
    }
    let listener = std::net::TcpListener::bind(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServiceError::AddrInUse { addr }
        } else {
            ServiceError::Io { addr, source }
        }
    })?;
    let io = |source| ServiceError::Io { addr, source };
    listener.set_nonblocking(true).map_err(io)?;
    let local = listener.local_addr().map_err(io)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("profkit-debug")
        .enable_all()
        .build()
        .map_err(io)?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let app = super::router_with(options.access);
    let thread = std::thread::Builder::new()
        .name("profkit-debug".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { stopped.notified().await })
                .await;
            });
            runtime.shutdown_background();
        })
        .map_err(io)?;
    Ok(SideServer {
        addr: local,
        stop,
        thread: Some(thread),
    })
}
