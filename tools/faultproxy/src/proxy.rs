//! The proxy itself: the listener, the settings every connection follows,
//! and the handle tests and benchmarks drive it with.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, warn};

use crate::address::{ensure_loopback, NotLoopback};
use crate::faults::{Faults, FaultsError, FaultsPatch, HttpBurst};
use crate::stats::{Stats, StatsRecorder};
use crate::{burst, connection, control};

/// How long the accept loop backs off after a failed accept (out of file
/// descriptors, typically), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the proxy understands of the bytes it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Any TCP stream, forwarded as it comes.
    #[default]
    Tcp,
    /// HTTP/1.1: requests and responses are framed, so HTTP bursts and
    /// request times work; a connection that is not HTTP/1.1 the proxy can
    /// follow falls back to [`Mode::Tcp`].
    Http,
}

/// Where the proxy listens and what it forwards to.
#[derive(Debug, Clone, Copy)]
pub struct ProxyOptions {
    /// A loopback address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// A loopback address.
    pub upstream: SocketAddr,
    pub mode: Mode,
}

impl ProxyOptions {
    /// TCP mode, listening on a free port of 127.0.0.1.
    pub fn new(upstream: SocketAddr) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            mode: Mode::Tcp,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    NotLoopback(#[from] NotLoopback),
    #[error("fault settings: {0}")]
    Faults(#[from] FaultsError),
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// What every connection task shares with the handle.
pub(crate) struct Shared {
    pub(crate) upstream: SocketAddr,
    pub(crate) mode: Mode,
    pub(crate) faults: watch::Sender<Faults>,
    /// Bumped to reset every open connection.
    pub(crate) resets: watch::Sender<u64>,
    /// Set once, when the proxy shuts down.
    pub(crate) closing: watch::Sender<bool>,
    pub(crate) stats: StatsRecorder,
}

impl Shared {
    pub(crate) fn new(upstream: SocketAddr, mode: Mode, faults: Faults) -> Self {
        Self {
            upstream,
            mode,
            faults: watch::Sender::new(faults),
            resets: watch::Sender::new(0),
            closing: watch::Sender::new(false),
            stats: StatsRecorder::default(),
        }
    }

    pub(crate) fn faults(&self) -> Faults {
        self.faults.borrow().clone()
    }

    /// Applies `change` atomically if it succeeds and the result is valid;
    /// otherwise nothing changes.
    pub(crate) fn set(
        &self,
        change: impl FnOnce(&mut Faults) -> Result<(), FaultsError>,
    ) -> Result<Faults, FaultsError> {
        let mut outcome = None;
        self.faults.send_if_modified(|current| {
            let mut next = current.clone();
            if let Err(error) = change(&mut next).and_then(|()| next.validate()) {
                outcome = Some(Err(error));
                return false;
            }
            let changed = next != *current;
            *current = next;
            outcome = Some(Ok(current.clone()));
            changed
        });
        // send_if_modified always runs the closure; the fallback is never used.
        let outcome = outcome.unwrap_or_else(|| Ok(self.faults()));
        if let Ok(faults) = &outcome {
            info!(
                latency_ms = faults.latency.as_millis() as u64,
                jitter_ms = faults.jitter.as_millis() as u64,
                bandwidth = ?faults.bandwidth,
                refuse = faults.refuse,
                stall = faults.stall,
                http_burst = ?faults.http_burst.as_ref().map(|b| (b.status, b.mode)),
                "faults set"
            );
        }
        outcome
    }

    pub(crate) fn patch(&self, patch: FaultsPatch) -> Result<Faults, FaultsError> {
        self.set(|faults| faults.apply(patch))
    }

    /// Resets every open connection; returns how many were open.
    pub(crate) fn reset_connections(&self) -> u64 {
        let open = self.stats.open_now();
        self.resets.send_modify(|generation| *generation += 1);
        info!(open, "resetting open connections");
        open
    }

    /// Whether this request gets an HTTP burst answer (and which).
    pub(crate) fn take_burst(&self) -> Option<HttpBurst> {
        // Most requests meet no burst: check under the read lock first.
        let burst_set = self.faults.borrow().http_burst.is_some();
        if !burst_set {
            return None;
        }
        let roll = fastrand::f64();
        let mut answer = None;
        self.faults.send_if_modified(|faults| {
            let (burst, changed) = burst::decide(faults, roll);
            answer = burst;
            changed
        });
        answer
    }
}

/// A running proxy. Dropping it stops it too, without waiting.
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl FaultProxy {
    /// A TCP-mode proxy to `upstream` on a free port of 127.0.0.1.
    pub async fn start(upstream: SocketAddr, faults: Faults) -> Result<Self, ProxyError> {
        Self::start_with(ProxyOptions::new(upstream), faults).await
    }

    /// An HTTP-mode proxy to `upstream` on a free port of 127.0.0.1.
    pub async fn start_http(upstream: SocketAddr, faults: Faults) -> Result<Self, ProxyError> {
        let options = ProxyOptions {
            mode: Mode::Http,
            ..ProxyOptions::new(upstream)
        };
        Self::start_with(options, faults).await
    }

    /// A proxy as `options` say, starting with `faults`.
    pub async fn start_with(options: ProxyOptions, faults: Faults) -> Result<Self, ProxyError> {
        let upstream = ensure_loopback("upstream", options.upstream)?;
        let listen = ensure_loopback("listen", options.listen)?;
        faults.validate()?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: listen,
            source,
        })?;
        let shared = Arc::new(Shared::new(upstream, options.mode, faults));
        let accepting = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Ok(Self {
            shared,
            addr,
            tasks: Mutex::new(vec![accepting]),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The settings now.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Changes the settings while running (`proxy.set(|f| f.stall = true)`);
    /// invalid results are refused and nothing changes. Chunks already
    /// queued keep the delay they were given.
    pub fn set(&self, change: impl FnOnce(&mut Faults)) -> Result<Faults, FaultsError> {
        self.shared.set(|faults| {
            change(faults);
            Ok(())
        })
    }

    /// Resets (RST) every open connection now; returns how many were open.
    pub fn reset_connections(&self) -> u64 {
        self.shared.reset_connections()
    }

    /// Counters and request-time percentiles since start or [`Self::reset_stats`].
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// Zeroes the counters and forgets request times (open connections stay
    /// counted).
    pub fn reset_stats(&self) {
        self.shared.stats.clear();
    }

    /// Serves the control API on `127.0.0.1:port` (0 picks a free port)
    /// until the proxy shuts down; returns its address.
    pub async fn start_control(&self, port: u16) -> Result<SocketAddr, ProxyError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let bind_error = |source| ProxyError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        let task = tokio::spawn(control::serve(listener, Arc::clone(&self.shared)));
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        Ok(bound)
    }

    /// Stops listening, resets open connections and waits until every
    /// connection task has ended.
    pub async fn shutdown(self) {
        self.shared.closing.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            // A task that panicked has nothing left to clean up.
            let _ = task.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.closing.send_replace(true);
    }
}

/// Accepts connections until the proxy shuts down, then resets the open
/// ones and waits for them.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut closing = shared.closing.subscribe();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = closed(&mut closing) => break,
            accepted = listener.accept() => match accepted {
                Ok((client, _peer)) => {
                    if shared.faults.borrow().refuse {
                        shared.stats.refused();
                        refuse(client);
                        continue;
                    }
                    let resets = shared.resets.subscribe();
                    connections.spawn(connection::serve(client, Arc::clone(&shared), resets));
                }
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    shared.resets.send_modify(|generation| *generation += 1);
    while connections.join_next().await.is_some() {}
}

/// Resolves once the proxy is shutting down.
pub(crate) async fn closed(closing: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await (it is not
    // `Send`), so it is dropped here. An error means the proxy is gone.
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Closes a just-accepted connection with a reset.
fn refuse(client: TcpStream) {
    connection::abort(&client);
}
