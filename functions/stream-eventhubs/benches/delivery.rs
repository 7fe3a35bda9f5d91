//! Delivery of 100,000 DPL events to one subscription's event hub on the
//! local Event Hubs endpoint (`tools/eventhubs-local`, real HTTP on
//! loopback, SAS checked on every request), through the same dispatcher
//! the function runs, in DPL batches of 500 records (the template's
//! `StreamBatchSize`). Reports events/s, requests per 1,000 events against
//! the floor the service limits set, and peak RSS (VmHWM).
//!
//! `cargo bench -p stream-eventhubs --bench delivery` (without `--bench`,
//! as `cargo test --all-targets` runs it, it delivers 1,000 events once and
//! checks them).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use dpl::eventhubs::limits::MAX_BATCH_BYTES;
use dpl::examples::{kinesis_event_record, seed_record};
use dpl::measure::{self, Counting};
use dpl::streams::archive::NoArchive;
use dpl::streams::engine::{Engine, EngineConfig, Ports};
use dpl::streams::eventhubs::{EventHubDestinations, EventHubSending};
use dpl::streams::queue::InMemoryQueue;
use dpl::streams::reader::InMemoryDplStream;
use dpl::streams::secrets::InMemorySecrets;
use dpl::streams::state::InMemoryState;
use dpl::streams::store::InMemorySubscriptions;
use dpl::streams::{
    Credentials, Destination, Filters, Subscription, SubscriptionId, SubscriptionSpec, Transport,
};
use dpl::{EventType, Timestamp};
use eventhubs_local::{HubKey, LocalEventHubs};

const BATCH: usize = 500;
const KEY: &str = "YmVuY2htYXJrLWtleQ==";

/// DPL batches of `BATCH` records over `devices` DSNs, all six types.
fn batches(events: usize, devices: usize) -> Vec<Vec<KinesisEventRecord>> {
    let records: Vec<KinesisEventRecord> = (0..events)
        .map(|n| {
            let event_type = EventType::ALL[n % EventType::ALL.len()];
            let dsn = format!("AC000W{:09}", n % devices);
            let record = seed_record(event_type, "oembench", "ledevb", &dsn, "Blue_LED", n as u64);
            kinesis_event_record(&dsn, &record.to_json(), 1_000_000 + n as u64)
        })
        .collect();
    records.chunks(BATCH).map(<[_]>::to_vec).collect()
}

/// The fewest requests the service limits allow: a batch holds one
/// partition key (one DSN) and at most `MAX_BATCH_BYTES`.
fn floor(batches: &[Vec<KinesisEventRecord>]) -> usize {
    batches
        .iter()
        .map(|batch| {
            let mut bytes: HashMap<&str, usize> = HashMap::new();
            for record in batch {
                let dsn = record.kinesis.partition_key.as_str();
                *bytes.entry(dsn).or_default() += record.kinesis.data.len();
            }
            bytes
                .values()
                .map(|b| b.div_ceil(MAX_BATCH_BYTES))
                .sum::<usize>()
        })
        .sum()
}

/// Counts live heap bytes, to measure what one batch's delivery adds.
#[global_allocator]
static ALLOCATOR: Counting = Counting;

async fn run(events: usize, devices: usize) {
    let hubs = LocalEventHubs::start(vec![HubKey::new("benchns", "events", "send", KEY)])
        .await
        .expect("local endpoint");
    let connection = HubKey::new("benchns", "events", "send", KEY).connection_string();
    let spec = SubscriptionSpec {
        oem_id: "oembench".into(),
        name: "bench".into(),
        description: String::new(),
        destination: Destination::EventHubs {
            namespace: "benchns".into(),
            hub: "events".into(),
        },
        credentials: Credentials::ConnectionStringSecret {
            secret_id: "dpl/streams/bench".into(),
        },
        filters: Filters::all(),
    };
    let subscription = Subscription::new(
        SubscriptionId::generate(),
        spec,
        Timestamp::from_millis(0).unwrap(),
    )
    .unwrap();
    let dispatcher = Engine::new(
        Ports {
            subscriptions: InMemorySubscriptions::with([subscription]),
            state: InMemoryState::new(),
            destinations: EventHubDestinations::new(
                InMemorySecrets::with([("dpl/streams/bench", connection.as_str())]),
                Some(format!("http://{}", hubs.addr())),
                EventHubSending::default(),
            ),
            reader: InMemoryDplStream::new(),
            queue: InMemoryQueue::new(),
            archive: NoArchive,
        },
        EngineConfig::new(Transport::EventHubs),
    );
    let batches = batches(events, devices);
    let started = Instant::now();
    let mut batch_peak = 0;
    for batch in &batches {
        let before = measure::start_peak();
        let mut event = KinesisEvent::default();
        event.records = batch.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let response = dispatcher.dispatch(&event.records, deadline).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        batch_peak = batch_peak.max(measure::peak_bytes() - before);
    }
    let elapsed = started.elapsed();
    let received = hubs.messages();
    assert_eq!(received.len(), events, "every event delivered");
    let ids: BTreeSet<_> = received
        .iter()
        .map(|m| m.user_properties["event_id"].to_string())
        .collect();
    assert_eq!(ids.len(), events, "each event once");
    let requests = hubs.answers().len();
    let floor = floor(&batches);
    println!(
        "delivery to the local event hub: {events} events, {devices} devices, DPL batches of {BATCH}\n  \
         {:.0} events/s ({:.2} s)\n  \
         requests per 1,000 events: {:.1} (floor {:.1}: one DSN per request, 1 MB)\n  \
         peak heap added by one batch's delivery: {:.1} MiB (the endpoint's copy of the batch included)\n  \
         peak RSS (VmHWM): {} MiB (all input batches and the endpoint's copy of every message included)",
        events as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        requests as f64 * 1_000.0 / events as f64,
        floor as f64 * 1_000.0 / events as f64,
        batch_peak as f64 / (1024.0 * 1024.0),
        measure::vm_hwm_kib().unwrap_or(0) / 1024
    );
    assert!(requests >= floor);
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if full {
        runtime.block_on(run(100_000, 10_000));
        runtime.block_on(run(100_000, 100));
    } else {
        runtime.block_on(run(1_000, 50));
    }
}
