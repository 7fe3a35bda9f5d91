//! The network between an engine and a customer endpoint: one `faultproxy`
//! per link, in HTTP mode so that it times every request.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use faultproxy::{FaultProxy, Faults};

/// The added round trips measured: same region, a neighbouring region,
/// another continent's near side, and far away.
pub const ROUND_TRIPS: [Duration; 4] = [
    Duration::from_millis(0),
    Duration::from_millis(10),
    Duration::from_millis(30),
    Duration::from_millis(80),
];

/// A link to `upstream` that adds `round_trip` to every request (half
/// each way), without capping throughput.
pub async fn link(upstream: SocketAddr, round_trip: Duration) -> anyhow::Result<FaultProxy> {
    let faults = Faults {
        latency: round_trip,
        ..Faults::default()
    };
    FaultProxy::start_http(upstream, faults)
        .await
        .with_context(|| format!("a faultproxy to {upstream}"))
}

/// `http://{the proxy}`: where a client of the link connects.
pub fn url(proxy: &FaultProxy) -> String {
    format!("http://{}", proxy.addr())
}

/// The address of an `http://IP:PORT` URL (an emulator's endpoint).
pub fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let authority = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?} is not http://IP:PORT"))?
        .trim_end_matches('/');
    let authority = authority.replace("localhost", "127.0.0.1");
    authority
        .parse()
        .with_context(|| format!("{url:?} is not http://IP:PORT"))
}
