//! `eventhubs-local`: run the local Event Hubs endpoint.
//!
//! ```text
//! eventhubs-local --port 5000 --hub myns/events/send/c2VjcmV0 [--out messages.ndjson]
//! ```
//!
//! Prints `listening on http://127.0.0.1:{port}` and, per hub, the base URL
//! to give the client; writes each accepted message as one JSON line to
//! `--out` (default: stdout).

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use clap::Parser;
use eventhubs_local::{HubKey, LocalEventHubs};

#[derive(Parser)]
#[command(about = "A local Azure Event Hubs REST endpoint (send batch events)")]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// An event hub and its key: namespace/hub/keyname/key (repeatable).
    #[arg(long = "hub", required = true)]
    hubs: Vec<HubKey>,
    /// Where to write accepted messages as NDJSON (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let out: Box<dyn Write + Send> = match &args.out {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(io::stdout()),
    };
    let out = Mutex::new(out);
    let sink = Box::new(move |message: &eventhubs_local::ReceivedMessage| {
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        // A full disk or closed pipe is reported once per message, not fatal.
        if let Err(error) = writeln!(out, "{}", message.to_json_line()).and_then(|()| out.flush()) {
            eprintln!("eventhubs-local: writing a message: {error}");
        }
    });
    let hubs = args.hubs.clone();
    let server = LocalEventHubs::bind(
        SocketAddr::from(([127, 0, 0, 1], args.port)),
        hubs,
        Some(sink),
    )
    .await
    .context("binding the listener")?;
    eprintln!("listening on http://{}", server.addr());
    for hub in &args.hubs {
        eprintln!(
            "  hub {}/{} (key name {}): base URL {}",
            hub.namespace,
            hub.hub,
            hub.key_name,
            server.base_url(&hub.namespace)
        );
    }
    // Machine-readable address on stdout only when messages go to a file.
    if args.out.is_some() {
        println!("http://{}", server.addr());
    }
    std::future::pending::<()>().await;
    Ok(())
}
