//! `faultproxy`: a TCP proxy on loopback that reproduces production network
//! conditions in front of local emulators (moto, the local Event Hubs
//! endpoint): latency and jitter, a bandwidth cap, refused and reset
//! connections, stalls, and in HTTP mode bursts of error answers and
//! request-time percentiles. Every fault can be changed while it runs,
//! in-process ([`FaultProxy::set`]) or over its control API ([`FaultProxy::start_control`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use faultproxy::{FaultProxy, Faults, HttpBurst};
//!
//! let upstream = "127.0.0.1:5000".parse()?;
//! let proxy = FaultProxy::start_http(upstream, Faults {
//!     latency: Duration::from_millis(30),
//!     ..Faults::default()
//! }).await?;
//! // point the client at proxy.addr() ...
//! proxy.set(|f| f.http_burst = Some(HttpBurst::count(503, 5)))?;
//! let stats = proxy.stats();
//! println!("p99 {:?} over {} requests", stats.request_times.p99, stats.request_times.count);
//! proxy.shutdown().await;
//! # Ok(()) }
//! ```

mod address;
mod bucket;
mod burst;
mod connection;
mod control;
mod faults;
mod http;
mod http_conn;
mod pipe;
mod proxy;
mod stats;
mod units;

pub use address::{ensure_loopback, NotLoopback};
pub use bucket::BURST;
pub use faults::{
    BurstMode, Faults, FaultsError, FaultsPatch, HttpBurst, HttpBurstJson, MAX_BURST_BODY_BYTES,
    MAX_DELAY,
};
pub use http::{MAX_HEAD_BYTES, MAX_LINE_BYTES};
pub use pipe::{READ_BUFFER_BYTES, WINDOW_BYTES};
pub use proxy::{FaultProxy, Mode, ProxyError, ProxyOptions};
pub use stats::{RequestTimes, Stats, MAX_REQUEST_TIME_SAMPLES};
pub use units::{parse_bytes, parse_duration, UnitError};
