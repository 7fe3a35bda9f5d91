//! One proxied connection: connect to the upstream, run both directions,
//! and end with a reset when told to or when either side fails.
//!
//! The four halves (a reader and a writer per direction) run as concurrent
//! futures of the connection's one task rather than as separate tasks, so
//! the task keeps ownership of both sockets: a reset command or an error
//! drops the halves, sets `SO_LINGER` to 0 and closes, which sends RST.

use std::io;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::http_conn::{forward_requests, forward_responses, Exchanges};
use crate::pipe::{forward_raw, pipe};
use crate::proxy::{Mode, Shared};
use crate::stats::Direction;

/// Makes closing `stream` send RST instead of FIN.
pub(crate) fn abort(stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        debug!(%error, "setting SO_LINGER 0");
    }
}

/// Serves one accepted client until either side closes, fails, or `resets`
/// changes.
pub(crate) async fn serve(
    mut client: TcpStream,
    shared: Arc<Shared>,
    mut resets: watch::Receiver<u64>,
) {
    let _open = shared.stats.accepted();
    let connected = tokio::select! {
        connected = TcpStream::connect(shared.upstream) => connected,
        _ = resets.changed() => {
            shared.stats.reset();
            abort(&client);
            return;
        }
    };
    let mut upstream = match connected {
        Ok(upstream) => upstream,
        Err(error) => {
            warn!(%error, upstream = %shared.upstream, "upstream unreachable; resetting the client");
            shared.stats.upstream_failed();
            abort(&client);
            return;
        }
    };
    // Nagle's algorithm would hold small writes for up to a round trip and
    // blur the latency the proxy adds.
    for stream in [&client, &upstream] {
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%error, "setting TCP_NODELAY");
        }
    }
    let outcome = tokio::select! {
        forwarded = forward(&mut client, &mut upstream, &shared) => Some(forwarded),
        _ = resets.changed() => None,
    };
    match outcome {
        Some(Ok(())) => return,
        Some(Err(error)) => debug!(%error, "connection failed; resetting both sides"),
        None => shared.stats.reset(),
    }
    abort(&client);
    abort(&upstream);
}

/// Runs both directions until both have ended.
async fn forward(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    shared: &Shared,
) -> io::Result<()> {
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let (up, up_out) = pipe(shared.faults.subscribe());
    let (down, down_out) = pipe(shared.faults.subscribe());
    let stats = &shared.stats;
    let deliver_up = up_out.deliver(&mut upstream_write, stats, Direction::Up);
    let deliver_down = down_out.deliver(&mut client_write, stats, Direction::Down);
    match shared.mode {
        Mode::Tcp => {
            tokio::try_join!(
                forward_raw(&mut client_read, up),
                forward_raw(&mut upstream_read, down),
                deliver_up,
                deliver_down,
            )?;
        }
        Mode::Http => {
            let exchanges = Exchanges::default();
            tokio::try_join!(
                forward_requests(&mut client_read, up, down.clone(), &exchanges, shared),
                forward_responses(&mut upstream_read, down, &exchanges),
                deliver_up,
                deliver_down,
            )?;
        }
    }
    Ok(())
}
