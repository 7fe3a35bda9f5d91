//! `faultproxy`: run the proxy in front of a local emulator.
//!
//! ```text
//! faultproxy --upstream 127.0.0.1:5000 [--listen 127.0.0.1:0] [--latency 30ms] [--jitter 2ms]
//!            [--bandwidth 1MB] [--refuse] [--stall] [--http] [--burst-status 503 --burst-count 5]
//!            [--control-port 0]
//! ```
//!
//! Prints `listening on ADDR` (and `control on ADDR`) on stdout, logs on
//! stderr, and stops on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use faultproxy::{
    ensure_loopback, parse_bytes, parse_duration, FaultProxy, Faults, HttpBurst, HttpBurstJson,
    Mode, ProxyOptions, MAX_DELAY,
};
use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

#[derive(Parser)]
#[command(
    about = "A loopback TCP/HTTP proxy that injects network faults, changeable while it runs"
)]
struct Args {
    /// Where to forward to (loopback only), e.g. 127.0.0.1:5000.
    #[arg(long, value_name = "IP:PORT", value_parser = loopback_addr("upstream"))]
    upstream: SocketAddr,
    /// Where to listen (loopback only); port 0 picks a free one.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0", value_parser = loopback_addr("listen"))]
    listen: SocketAddr,
    /// Added round trip, half each way: 30ms, 0.2s.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = delay)]
    latency: Duration,
    /// Each chunk's one-way delay varies uniformly within ±this.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = delay)]
    jitter: Duration,
    /// Bytes per second per direction per connection: 1000, 500KB, 2MB,
    /// 1MiB (default: unlimited).
    #[arg(long, value_name = "BYTES", value_parser = bandwidth)]
    bandwidth: Option<u64>,
    /// Accept new connections and reset them at once.
    #[arg(long)]
    refuse: bool,
    /// Hold all bytes on all connections (until un-stalled over the control port).
    #[arg(long)]
    stall: bool,
    /// Follow HTTP/1.1 requests and responses (bursts, request times).
    #[arg(long)]
    http: bool,
    /// Answer requests with this status instead of forwarding (needs --http
    /// and --burst-count or --burst-probability).
    #[arg(long, value_name = "STATUS", requires = "http", requires = "burst_mode",
          value_parser = clap::value_parser!(u16).range(400..=599))]
    burst_status: Option<u16>,
    /// Answer the next N requests with --burst-status.
    #[arg(
        long,
        value_name = "N",
        group = "burst_mode",
        requires = "burst_status"
    )]
    burst_count: Option<u64>,
    /// Answer each request with --burst-status with this probability (0-1).
    #[arg(long, value_name = "P", group = "burst_mode", requires = "burst_status", value_parser = probability)]
    burst_probability: Option<f64>,
    /// Body of the burst answers, e.g. '<Error><Code>ServerBusy</Code></Error>'.
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "",
        requires = "burst_status"
    )]
    burst_body: String,
    /// Content type of the burst answers.
    #[arg(
        long,
        value_name = "TYPE",
        default_value = "text/plain; charset=utf-8",
        requires = "burst_status"
    )]
    burst_content_type: String,
    /// Serve the control API on 127.0.0.1:PORT (0 picks a free one).
    #[arg(long, value_name = "PORT")]
    control_port: Option<u16>,
    /// Log every connection's errors too.
    #[arg(long, short)]
    verbose: bool,
}

/// Reads a loopback `IP:PORT` for the flag named `role`.
fn loopback_addr(role: &'static str) -> impl Fn(&str) -> Result<SocketAddr, String> + Clone {
    move |value| {
        let addr = value.parse().map_err(|e| format!("{e} (want IP:PORT)"))?;
        ensure_loopback(role, addr).map_err(|e| e.to_string())
    }
}

fn delay(value: &str) -> Result<Duration, String> {
    let delay = parse_duration(value).map_err(|e| e.to_string())?;
    if delay > MAX_DELAY {
        return Err(format!("at most {MAX_DELAY:?}"));
    }
    Ok(delay)
}

fn bandwidth(value: &str) -> Result<u64, String> {
    match parse_bytes(value).map_err(|e| e.to_string())? {
        0 => Err("must be at least 1 byte per second".into()),
        rate => Ok(rate),
    }
}

fn probability(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err("must be a number from 0 to 1".into()),
    }
}

impl Args {
    fn faults(&self) -> anyhow::Result<Faults> {
        let http_burst = match self.burst_status {
            None => None,
            Some(status) => Some(
                HttpBurst::try_from(HttpBurstJson {
                    status,
                    count: self.burst_count,
                    probability: self.burst_probability,
                    body: self.burst_body.clone(),
                    content_type: self.burst_content_type.clone(),
                })
                .context("--burst-status")?,
            ),
        };
        let faults = Faults {
            latency: self.latency,
            jitter: self.jitter,
            bandwidth: self.bandwidth,
            refuse: self.refuse,
            stall: self.stall,
            http_burst,
        };
        faults.validate().context("fault flags")?;
        Ok(faults)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(if args.verbose {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        })
        .init();
    let options = ProxyOptions {
        listen: args.listen,
        upstream: args.upstream,
        mode: if args.http { Mode::Http } else { Mode::Tcp },
    };
    let proxy = FaultProxy::start_with(options, args.faults()?)
        .await
        .context("starting the proxy")?;
    println!("listening on {}", proxy.addr());
    if let Some(port) = args.control_port {
        let control = proxy.start_control(port).await.context("--control-port")?;
        println!("control on {control}");
    }
    info!(upstream = %proxy.upstream(), mode = ?options.mode, "forwarding");
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    info!("shutting down");
    proxy.shutdown().await;
    Ok(())
}
