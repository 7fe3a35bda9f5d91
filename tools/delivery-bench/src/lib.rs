//! The engine-neutral half of the customer stream delivery benchmarks
//! (`functions/stream-eventhubs/benches/delivery.rs`,
//! `functions/stream-kinesis/benches/delivery.rs`,
//! `functions/stream-kinesis/benches/outage_emulator.rs`; results in
//! `docs/benchmarks.md`, "Customer streams at distance").
//!
//! A benchmark builds its delivery engine in one small struct that
//! implements [`Engine`] (hand it a DPL batch, run its scheduled work);
//! everything here is the same whatever the engine: the events
//! ([`workload`]), the network between the engine and the customer
//! endpoints ([`network`], a `faultproxy` per link), the event source
//! mapping that invokes the engine ([`esm`]), the AWS emulator's streams
//! ([`kinesis`], [`moto`]), a `PutRecords` endpoint that takes everything
//! at once ([`kinesis_sink`]), the checks of what arrived ([`check`]), delays
//! ([`delays`]) and the printed rows ([`report`]). Porting a benchmark to
//! another engine means replacing that one struct.
//!
//! The stream functions' emulator tests share [`logs`] too: every log line
//! captured, to check that no secret is ever logged.

pub mod check;
pub mod delays;
pub mod engine;
pub mod esm;
pub mod kinesis;
pub mod kinesis_sink;
pub mod lambda;
pub mod logs;
pub mod moto;
pub mod network;
pub mod report;
pub mod workload;

pub use engine::Engine;

/// Whether this is the full run (`cargo bench` passes `--bench`); without
/// it, as `cargo test --all-targets` runs a bench, a short run with checks.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `--flag VALUE` of the bench's arguments, if given.
pub fn arg<T: std::str::FromStr>(flag: &str) -> anyhow::Result<Option<T>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a == flag) else {
        return Ok(None);
    };
    let value = args
        .get(at + 1)
        .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
    value
        .parse()
        .map(Some)
        .map_err(|_| anyhow::anyhow!("{flag} {value}: not a valid value"))
}

/// The round trips to measure: `--rtt MS`, or all of
/// [`network::ROUND_TRIPS`].
pub fn round_trips() -> anyhow::Result<Vec<std::time::Duration>> {
    Ok(match arg::<u64>("--rtt")? {
        Some(ms) => vec![std::time::Duration::from_millis(ms)],
        None => network::ROUND_TRIPS.to_vec(),
    })
}

/// The benches' runtime: the engine runs on the main thread (`block_on`),
/// as on the stream function's single thread; proxies, endpoints and the
/// clients' connections run on two workers, as the network would.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
