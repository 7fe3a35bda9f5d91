//! Kinesis at distance: DPL events delivered to one subscription's customer
//! stream through a `faultproxy` that adds a round trip (0, 10, 30, 80 ms)
//! to the customer Kinesis client only, in DPL batches of 1,000 records
//! (the template's `StreamBatchSize`; `--batch` changes it), each event of
//! a batch from its own DSN, to two kinds of customer stream:
//!
//! - **moto** (8 shards): the AWS emulator, read back afterwards
//!   (`TRIM_HORIZON`, `GetRecords` on every shard, not through the proxy);
//!   its Python spends 20-100 ms per `PutRecords` of 500, so it sets the
//!   pace whatever the engine (the bench first measures it alone);
//! - **sink**: `delivery_bench::kinesis_sink`, a `PutRecords` endpoint that
//!   takes every call at once and enforces no shard limit, so what is left
//!   is our client and the distance.
//!
//! Results: `docs/benchmarks.md`, "Customer streams at distance".
//!
//! ```text
//! scripts/with-moto.sh cargo bench -p stream-kinesis --bench delivery                  # both, every round trip
//! scripts/with-moto.sh cargo bench -p stream-kinesis --bench delivery -- --sink --rtt 30 --batch 2000
//! ```
//!
//! Without `--bench` (as `scripts/with-moto.sh cargo test --all-targets`
//! runs it): 1,000 events over 50 DSNs once to each, with the checks.
//!
//! Per round trip it prints events/s, `PutRecords` calls per 1,000 events
//! (the requests through the proxy: the customer client makes no other
//! call), the proxy's request time p50/p99, and the delivery delay of each
//! event: from the moment its DPL batch was handed to the engine to its
//! arrival (moto: the record's `ApproximateArrivalTimestamp`, the same
//! machine's clock; sink: when it answered the call). Every event must
//! arrive, in each DSN's order (`dpl::streams::check`).
//!
//! The engine is built in one place, [`build`]; everything else is the
//! engine-neutral harness (`tools/delivery-bench`), the same that measured
//! the design before it (`docs/benchmarks.md`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::ensure;
use aws_lambda_events::event::kinesis::KinesisEventRecord;
use delivery_bench::check::{verdict, Arrival};
use delivery_bench::delays::{millis, Spread};
use delivery_bench::esm::drain;
use delivery_bench::kinesis::{
    arrivals, create_stream, emulator, put, read_back, take_emulator_endpoint,
};
use delivery_bench::kinesis_sink::KinesisSink;
use delivery_bench::lambda::{dpl_stream, StreamFunction};
use delivery_bench::network::{link, url};
use delivery_bench::report::{load, DistanceRow};
use delivery_bench::workload::{event_number, Workload, BATCH_RECORDS, OEM};
use delivery_bench::{arg, full_run, round_trips};
use dpl::streams::archive::NoArchive;
use dpl::streams::engine::{Engine as Delivery, EngineConfig, Ports};
use dpl::streams::kinesis::{KinesisDestinations, KinesisSending, DEFAULT_IN_FLIGHT};
use dpl::streams::queue::InMemoryQueue;
use dpl::streams::reader::InMemoryDplStream;
use dpl::streams::secrets::{AccessKeys, InMemorySecrets, SecretString};
use dpl::streams::state::InMemoryState;
use dpl::streams::store::InMemorySubscriptions;
use dpl::streams::{
    Credentials, Destination, Filters, Subscription, SubscriptionId, SubscriptionSpec, Transport,
};
use dpl::{CustomerPayload, Timestamp};

/// Shards of the moto customer stream: enough that moto, not a shard's
/// quota, sets the pace (moto enforces none anyway).
const CUSTOMER_SHARDS: i32 = 8;

/// The stream the sink stands for.
const SINK_STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/sink";

// ---------------------------------------------------------------------------
// The engine: the only part to change when this bench measures another one.
// ---------------------------------------------------------------------------

/// Per-attempt limit of one AWS call, as `functions/stream-kinesis/src/main.rs`.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

const SECRET_ID: &str = "dpl/streams/bench";

/// Our engine as the `stream-kinesis` function runs it: subscriptions,
/// delivery state and the access-key secret in memory (no STS call); the
/// DPL stream in memory, holding the workload, for the catch-up workers;
/// `PutRecords` calls in flight: `in_flight` (`DESTINATION_CONCURRENCY`).
type Now = StreamFunction<
    InMemorySubscriptions,
    InMemoryState,
    KinesisDestinations<InMemorySecrets>,
    InMemoryDplStream,
    NoArchive,
>;

/// What a run's engine is built with.
#[derive(Clone, Copy, Debug)]
struct Setup {
    batch_records: usize,
    in_flight: usize,
}

/// One subscription taking every event of the bench OEM, to `stream_arn`,
/// whose Kinesis endpoint is `endpoint` (the link's proxy); the DPL batches
/// the mapping hands over.
async fn build(
    endpoint: &str,
    stream_arn: &str,
    setup: Setup,
    workload: &Workload,
) -> anyhow::Result<(Now, Vec<Vec<KinesisEventRecord>>)> {
    let keys = AccessKeys::new(
        "AKIAEXAMPLEBENCH0001",
        SecretString::new("bench/secret/key/value"),
    )?
    .to_secret();
    let spec = SubscriptionSpec {
        oem_id: OEM.into(),
        name: "bench".into(),
        description: String::new(),
        destination: Destination::Kinesis {
            stream_arn: stream_arn.parse()?,
        },
        credentials: Credentials::AccessKeySecret {
            secret_id: SECRET_ID.into(),
        },
        filters: Filters::all(),
    };
    let subscription =
        Subscription::new(SubscriptionId::generate(), spec, Timestamp::from_millis(0)?)?;
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT)
        .await
        .to_builder()
        .endpoint_url(endpoint)
        .build();
    let (reader, batches) = dpl_stream(workload, setup.batch_records);
    let sending = KinesisSending {
        in_flight: setup.in_flight,
        ..KinesisSending::default()
    };
    let ports = Ports {
        subscriptions: InMemorySubscriptions::with([subscription]),
        state: InMemoryState::new(),
        destinations: KinesisDestinations::new(
            aws,
            InMemorySecrets::with([(SECRET_ID, keys.expose())]),
            sending,
        ),
        reader,
        queue: InMemoryQueue::new(),
        archive: NoArchive,
    };
    let engine = Delivery::new(ports, EngineConfig::new(Transport::Kinesis));
    Ok((StreamFunction::new(engine), batches))
}

// ---------------------------------------------------------------------------
// Engine-neutral: customer stream, link, workload, measurement, checks.
// ---------------------------------------------------------------------------

/// The customer stream a run delivers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Customer {
    Moto,
    Sink,
}

impl Customer {
    fn name(self) -> &'static str {
        match self {
            Customer::Moto => "moto",
            Customer::Sink => "sink",
        }
    }
}

async fn run(
    customer: Customer,
    round_trip: Duration,
    workload: Workload,
    setup: Setup,
    run: usize,
) -> anyhow::Result<DistanceRow> {
    let load_before = load();
    let (drained, stats, arrivals) = match customer {
        Customer::Moto => {
            let (aws, moto) = emulator().await?;
            let kinesis = aws_sdk_kinesis::Client::new(&aws);
            let stream = format!("customer-{}ms-{run}", round_trip.as_millis());
            let stream_arn = create_stream(&kinesis, &stream, CUSTOMER_SHARDS).await?;
            let proxy = link(moto, round_trip).await?;
            let (engine, batches) = build(&url(&proxy), &stream_arn, setup, &workload).await?;
            let drained = drain(&engine, &batches).await?;
            let stats = proxy.stats();
            let arrivals = arrivals(&read_back(&kinesis, &stream).await?)?;
            (drained, stats, arrivals)
        }
        Customer::Sink => {
            let sink = KinesisSink::start().await?;
            let proxy = link(sink.addr(), round_trip).await?;
            let (engine, batches) = build(&url(&proxy), SINK_STREAM_ARN, setup, &workload).await?;
            let drained = drain(&engine, &batches).await?;
            let stats = proxy.stats();
            let arrivals = sink
                .taken()
                .into_iter()
                .map(|taken| {
                    Ok(Arrival {
                        event: event_number(&taken.data)?,
                        dsn: taken.partition_key,
                        at: taken.at,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            (drained, stats, arrivals)
        }
    };
    let expected: BTreeMap<u64, String> = (0..workload.events as u64)
        .map(|n| (n, workload.dsn(n)))
        .collect();
    // Nothing lost, nothing reordered; a duplicate is possible by design
    // (at least once: a call abandoned at the budget's end may have been
    // taken), and counted.
    let verdict = verdict(&expected, &arrivals);
    ensure!(verdict.holds(), "{verdict}");
    println!(
        "{} {} ms: {verdict}; {} PutRecords calls; {} invocations, {} partial failures",
        customer.name(),
        round_trip.as_millis(),
        stats.requests_forwarded,
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

/// Moto's own speed: the workload's customer payloads put to a new stream
/// like the customer's, straight to moto (no proxy, no engine), in
/// `PutRecords` of 500 records (500 distinct DSNs) one after the other. Its
/// `PutRecords` costs grow with the records a shard holds (each record
/// put copies the shard's list of sequence numbers), so it runs the whole
/// workload, as the engine's runs do.
async fn moto_alone(workload: Workload, run: usize) -> anyhow::Result<()> {
    let load_before = load();
    let (aws, _) = emulator().await?;
    let kinesis = aws_sdk_kinesis::Client::new(&aws);
    let stream = format!("moto-alone-{run}");
    create_stream(&kinesis, &stream, CUSTOMER_SHARDS).await?;
    let entries: Vec<(String, Vec<u8>)> = workload
        .records()
        .iter()
        .map(|r| {
            (
                r.partition_key().to_owned(),
                CustomerPayload(&r.dpl_event).to_json(),
            )
        })
        .collect();
    let mut times = Vec::new();
    let started = std::time::Instant::now();
    for chunk in entries.chunks(BATCH_RECORDS) {
        let call = std::time::Instant::now();
        put(&kinesis, &stream, chunk).await?;
        times.push(call.elapsed());
    }
    let elapsed = started.elapsed();
    let spread = Spread::of(times);
    println!(
        "moto alone: {} records in {} PutRecords of {BATCH_RECORDS}, one after the other: \
         p50 {:.1} ms, p99 {:.1} ms per call, {:.0} records/s, {:.1} s (load {load_before} → {})",
        entries.len(),
        spread.count,
        millis(spread.p50),
        millis(spread.p99),
        entries.len() as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        load()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    take_emulator_endpoint();
    let runtime = delivery_bench::runtime()?;
    let setup = Setup {
        batch_records: arg::<usize>("--batch")?.unwrap_or(BATCH_RECORDS),
        in_flight: arg::<usize>("--concurrency")?.unwrap_or(DEFAULT_IN_FLIGHT),
    };
    if !full_run() {
        let workload = Workload {
            events: 1_000,
            devices: 50,
        };
        runtime.block_on(moto_alone(workload, 0))?;
        for customer in [Customer::Moto, Customer::Sink] {
            let row = runtime.block_on(run(customer, Duration::ZERO, workload, setup, 0))?;
            ensure!(row.verdict.duplicates == 0, "{}", row.verdict);
            println!("{}\n{}", DistanceRow::HEADER, row.line());
        }
        return Ok(());
    }
    let customers = if std::env::args().any(|a| a == "--sink") {
        vec![Customer::Sink]
    } else {
        vec![Customer::Moto, Customer::Sink]
    };
    let events = arg::<usize>("--events")?.unwrap_or(100_000);
    if customers.contains(&Customer::Moto) {
        runtime.block_on(moto_alone(Workload::ten_per_device(events), 0))?;
    }
    let mut rows = Vec::new();
    for customer in customers {
        println!(
            "Kinesis at distance ({}), positions and catch-up, one subscription, DPL batches of {}, \
             {} PutRecords in flight",
            customer.name(),
            setup.batch_records,
            setup.in_flight
        );
        for (n, round_trip) in round_trips()?.into_iter().enumerate() {
            let workload = Workload::ten_per_device(events);
            let row = runtime.block_on(run(customer, round_trip, workload, setup, n))?;
            println!("{}", row.line());
            rows.push(format!("{} {}", customer.name(), row.line()));
        }
    }
    println!("{}", DistanceRow::HEADER);
    for row in rows {
        println!("{row}");
    }
    Ok(())
}
