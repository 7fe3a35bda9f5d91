//! Event Hubs at distance: DPL events delivered to one subscription's event
//! hub on the local Event Hubs endpoint (`tools/eventhubs-local`: real
//! HTTP/1.1, SAS checked on every request) through a `faultproxy` that adds
//! a round trip (0, 10, 30, 80 ms), in DPL batches of 1,000 records (the
//! template's `StreamBatchSize`; `--batch` changes it), each event of a
//! batch from its own DSN. Results:
//! `docs/benchmarks.md`, "Customer streams at distance".
//!
//! ```text
//! cargo bench -p stream-eventhubs --bench delivery                     # every round trip
//! cargo bench -p stream-eventhubs --bench delivery -- --rtt 30 --events 10000 --concurrency 64 --batch 500
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it): 1,000 events
//! over 50 DSNs once, with the checks.
//!
//! Per round trip it prints events/s, requests per 1,000 events (counted by
//! the proxy), the proxy's request time p50/p99, and the delivery delay of
//! each event: from the moment its DPL batch was handed to the engine to the
//! moment the endpoint accepted it (the endpoint's sink stamps each message
//! with the wall clock as it is accepted, before the 201 is sent). The
//! events must all arrive, in each DSN's order (`dpl::streams::check`).
//!
//! The engine is built in one place, [`Now`]; everything else is the
//! engine-neutral harness (`tools/delivery-bench`), the same that measured
//! the design before it (`docs/benchmarks.md`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{ensure, Context};
use aws_lambda_events::event::kinesis::KinesisEventRecord;
use delivery_bench::check::{verdict, Arrival};
use delivery_bench::esm::drain;
use delivery_bench::lambda::{dpl_stream, StreamFunction};
use delivery_bench::network::{link, url};
use delivery_bench::report::{load, DistanceRow};
use delivery_bench::workload::{event_number, Workload, BATCH_RECORDS, OEM};
use delivery_bench::{arg, full_run, round_trips};
use dpl::eventhubs::limits::MAX_BATCH_BYTES;
use dpl::streams::archive::NoArchive;
use dpl::streams::engine::{Engine as Delivery, EngineConfig, Ports};
use dpl::streams::eventhubs::{EventHubDestinations, EventHubSending, DEFAULT_CONCURRENCY};
use dpl::streams::queue::InMemoryQueue;
use dpl::streams::reader::InMemoryDplStream;
use dpl::streams::secrets::InMemorySecrets;
use dpl::streams::state::InMemoryState;
use dpl::streams::store::InMemorySubscriptions;
use dpl::streams::{
    Credentials, Destination, Filters, Subscription, SubscriptionId, SubscriptionSpec, Transport,
};
use dpl::Timestamp;
use eventhubs_local::{HubKey, LocalEventHubs};

const NAMESPACE: &str = "benchns";
const HUB: &str = "events";
const KEY: &str = "YmVuY2htYXJrLWtleQ==";
const SECRET_ID: &str = "dpl/streams/bench";

// ---------------------------------------------------------------------------
// The engine: the only part to change when this bench measures another one.
// ---------------------------------------------------------------------------

/// Our engine as the `stream-eventhubs` function runs it: subscriptions,
/// delivery state and secrets in memory; the DPL stream in memory, holding
/// the workload, for the catch-up workers; DSNs in flight at once:
/// `concurrency` (`DESTINATION_CONCURRENCY`).
type Now = StreamFunction<
    InMemorySubscriptions,
    InMemoryState,
    EventHubDestinations<InMemorySecrets>,
    InMemoryDplStream,
    NoArchive,
>;

/// What a run's engine is built with.
#[derive(Clone, Copy, Debug)]
struct Setup {
    batch_records: usize,
    concurrency: usize,
}

/// One subscription taking every event of the bench OEM, to [`HUB`] of
/// [`NAMESPACE`] (whose key is `hub`'s), reached at `endpoint`
/// (`http://{proxy}`; the client appends `/{namespace host}`); the DPL
/// batches the mapping hands over.
fn build(
    hub: &HubKey,
    endpoint: &str,
    setup: Setup,
    workload: &Workload,
) -> (Now, Vec<Vec<KinesisEventRecord>>) {
    let spec = SubscriptionSpec {
        oem_id: OEM.into(),
        name: "bench".into(),
        description: String::new(),
        destination: Destination::EventHubs {
            namespace: NAMESPACE.into(),
            hub: HUB.into(),
        },
        credentials: Credentials::ConnectionStringSecret {
            secret_id: SECRET_ID.into(),
        },
        filters: Filters::all(),
    };
    let subscription = Subscription::new(
        SubscriptionId::generate(),
        spec,
        Timestamp::from_millis(0).expect("epoch"),
    )
    .expect("a valid subscription");
    let connection = hub.connection_string();
    let (reader, batches) = dpl_stream(workload, setup.batch_records);
    let sending = EventHubSending {
        concurrency: setup.concurrency,
        ..EventHubSending::default()
    };
    let ports = Ports {
        subscriptions: InMemorySubscriptions::with([subscription]),
        state: InMemoryState::new(),
        destinations: EventHubDestinations::new(
            InMemorySecrets::with([(SECRET_ID, connection.as_str())]),
            Some(endpoint.to_owned()),
            sending,
        ),
        reader,
        queue: InMemoryQueue::new(),
        archive: NoArchive,
    };
    let engine = Delivery::new(ports, EngineConfig::new(Transport::EventHubs));
    (StreamFunction::new(engine), batches)
}

// ---------------------------------------------------------------------------
// Engine-neutral: endpoint, link, workload, measurement, checks.
// ---------------------------------------------------------------------------

/// Events of a full run (`--events` overrides), over 10,000 DSNs.
const FULL_RUN_EVENTS: usize = 100_000;

/// Messages the endpoint accepted, each stamped as it was accepted.
type Accepted = Arc<Mutex<Vec<(Option<String>, String, SystemTime)>>>;

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

async fn run(
    round_trip: Duration,
    workload: Workload,
    setup: Setup,
) -> anyhow::Result<DistanceRow> {
    let load_before = load();
    let hub = HubKey::new(NAMESPACE, HUB, "send", KEY);
    let accepted: Accepted = Arc::default();
    let sink = accepted.clone();
    let hubs = LocalEventHubs::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        vec![hub.clone()],
        Some(Box::new(move |message| {
            let at = SystemTime::now();
            let mut sink = sink.lock().expect("sink lock");
            sink.push((message.partition_key.clone(), message.body.clone(), at));
        })),
    )
    .await
    .context("local Event Hubs endpoint")?;
    let proxy = link(hubs.addr(), round_trip).await?;
    let (engine, batches) = build(&hub, &url(&proxy), setup, &workload);

    let drained = drain(&engine, &batches).await?;
    let stats = proxy.stats();

    let arrivals = accepted
        .lock()
        .expect("sink lock")
        .iter()
        .map(|(key, body, at)| {
            Ok(Arrival {
                dsn: key.clone().unwrap_or_default(),
                event: event_number(body.as_bytes())?,
                at: *at,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let expected: BTreeMap<u64, String> = (0..workload.events as u64)
        .map(|n| (n, workload.dsn(n)))
        .collect();
    // Nothing lost, nothing reordered; a duplicate is possible by design
    // (at least once: a request abandoned at the budget's end may have been
    // accepted), and counted.
    let verdict = verdict(&expected, &arrivals);
    ensure!(verdict.holds(), "{verdict}");
    let floor = floor(&batches);
    println!(
        "{} ms: {verdict}; {} requests (floor for the DPL batches: {floor}, one DSN per request, 1 MB), {} answers not 201; \
         {} invocations, {} partial failures",
        round_trip.as_millis(),
        stats.requests_forwarded,
        hubs.answers().iter().filter(|s| **s != 201).count(),
        drained.invocations.invocations,
        drained.invocations.partial_failures,
    );
    Ok(DistanceRow::new(
        round_trip,
        workload,
        drained,
        stats,
        &arrivals,
        verdict,
        load_before,
    ))
}

fn main() -> anyhow::Result<()> {
    let runtime = delivery_bench::runtime()?;
    let setup = Setup {
        batch_records: arg::<usize>("--batch")?.unwrap_or(BATCH_RECORDS),
        concurrency: arg::<usize>("--concurrency")?.unwrap_or(DEFAULT_CONCURRENCY),
    };
    if !full_run() {
        let workload = Workload {
            events: 1_000,
            devices: 50,
        };
        let row = runtime.block_on(run(Duration::ZERO, workload, setup))?;
        ensure!(
            row.verdict.holds() && row.verdict.duplicates == 0,
            "{}",
            row.verdict
        );
        // Nothing fell behind at 0 ms: every request carried one DPL
        // batch's events of one DSN, so none can beat the floor.
        let floor = floor(&dpl_stream(&workload, setup.batch_records).1);
        ensure!(
            row.link.requests_forwarded as usize >= floor,
            "fewer requests than the floor {floor}"
        );
        println!("{}\n{}", DistanceRow::HEADER, row.line());
        return Ok(());
    }
    let events = arg::<usize>("--events")?.unwrap_or(FULL_RUN_EVENTS);
    println!(
        "Event Hubs at distance, positions and catch-up, one subscription, DPL batches of {}, \
         {} DSNs in flight",
        setup.batch_records, setup.concurrency
    );
    let mut rows = Vec::new();
    for round_trip in round_trips()? {
        let workload = Workload::ten_per_device(events);
        let row = runtime.block_on(run(round_trip, workload, setup))?;
        println!("{}", row.line());
        rows.push(row.line());
    }
    println!("{}", DistanceRow::HEADER);
    for row in rows {
        println!("{row}");
    }
    Ok(())
}
