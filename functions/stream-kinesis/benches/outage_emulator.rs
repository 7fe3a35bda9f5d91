//! Outage drill on the emulator, reduced scale. On moto: the DPL stream
//! (4 shards), and two Kinesis subscriptions of one OEM, each with its own
//! customer stream (8 shards: moto's `PutRecords` costs grow with the
//! records a shard holds) reached through its own `faultproxy` with a
//! 30 ms round trip; the engine's DynamoDB client goes through a third
//! proxy (no latency) that counts the storage requests. DynamoDB runs on a
//! second moto server of the bench's own: in the same Python process it
//! would slow the DPL stream, the producer and the customer streams down
//! with it (and the design before this one queried every parked event's
//! partition). A producer puts 100 events/s over 1,000 DSNs to the DPL
//! stream; a simulated event source mapping per shard polls it every second
//! and invokes the engine; the scheduled work (the catch-up queue's
//! mapping, and the sweep every minute: `delivery_bench::lambda`) runs
//! every second; the catch-up workers read the DPL stream on moto.
//! After 2 minutes the first subscription's link refuses and resets every
//! connection for 5 minutes; production goes on until 15 minutes after
//! recovery, or until the first subscription has been caught up for 2
//! minutes. Then production stops, the mapping drains the stream, the
//! scheduled work runs back to back until the engine holds nothing (at
//! most 15 minutes), and both customer streams are read back and compared
//! with the DPL stream.
//! Results: `docs/benchmarks.md`, "Outage drill".
//!
//! ```text
//! scripts/with-moto.sh cargo bench -p stream-kinesis --bench outage_emulator
//! ```
//!
//! Without `--bench` (as `scripts/with-moto.sh cargo test --all-targets`
//! runs it): about 20 s, a 5 s outage, the scheduled work every 5 s, and
//! the checks.
//!
//! Figures: when the first subscription caught up (the first time `t` after
//! recovery at which every event that arrived on the DPL stream up to
//! `t - 10 s` had been accepted by its customer stream, by the records'
//! `ApproximateArrivalTimestamp`s); whether every event arrived, in each
//! DSN's order (duplicates counted); the second subscription's delivery
//! delay (DPL arrival to customer arrival) before, during and after the
//! outage; the storage requests during the outage per shard-minute.
//!
//! The engine is built in one place, [`Now::build`]; everything else is
//! the engine-neutral harness (`tools/delivery-bench`), the same that
//! measured the design before it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{ensure, Context};
use delivery_bench::check::{first_arrivals, verdict};
use delivery_bench::delays::{between, Spread};
use delivery_bench::esm::{poll_shard, Invocations, ShardMapping};
use delivery_bench::kinesis::{
    arrivals, create_stream, emulator, put, take_emulator_endpoint, ShardReader, StreamRecord, Tail,
};
use delivery_bench::lambda::StreamFunction;
use delivery_bench::moto::MotoServer;
use delivery_bench::network::{link, url};
use delivery_bench::report::{delivery_delays, load};
use delivery_bench::workload::{dpl_event_number, event_number, Workload, OEM};
use delivery_bench::{full_run, Engine};
use dpl::streams::archive::NoArchive;
use dpl::streams::destination::Destinations;
use dpl::streams::engine::{Engine as Delivery, EngineConfig, Ports};
use dpl::streams::kinesis::{KinesisDestination, KinesisDestinations, KinesisSending};
use dpl::streams::queue::InMemoryQueue;
use dpl::streams::reader::KinesisReader;
use dpl::streams::secrets::{AccessKeys, InMemorySecrets, SecretString};
use dpl::streams::state::dynamo::create_table;
use dpl::streams::state::item::TABLE_KEYS;
use dpl::streams::state::DynamoState;
use dpl::streams::store::{attr, DynamoSubscriptions, SubscriptionStore};
use dpl::streams::{
    Credentials, Destination, Filters, Subscription, SubscriptionId, SubscriptionSpec, Transport,
};
use dpl::Timestamp;
use tokio::time::Instant;

const REGION: &str = "us-east-1";
const DPL_STREAM: &str = "dpl";
const DPL_SHARDS: i32 = 4;
const CUSTOMER_SHARDS: i32 = 8;
/// The round trip to each customer stream.
const CUSTOMER_ROUND_TRIP: Duration = Duration::from_millis(30);
/// Events put on the DPL stream per second, in puts every 100 ms.
const EVENTS_PER_SECOND: u64 = 100;
const PUT_EVERY: Duration = Duration::from_millis(100);
/// The fleet (event `n` from DSN `n % 1,000`; produced until the drill stops).
const FLEET: Workload = Workload {
    events: 0,
    devices: 1_000,
};
/// "Caught up": every event that arrived on the DPL stream up to this long
/// ago has been accepted by the customer stream.
const CATCH_UP_SLACK: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The engine: the only part to change when this bench measures another one.
// ---------------------------------------------------------------------------

/// Per-attempt limit of one AWS call, as `functions/stream-kinesis/src/main.rs`.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

const SUBSCRIPTIONS_TABLE: &str = "drill-subscriptions";
const STATE_TABLE: &str = "drill-delivery-state";

/// How often the scheduled work runs: the catch-up queue's mapping hands a
/// request to a worker within about a second.
const SCHEDULE: Duration = Duration::from_secs(1);

/// Our engine as the `stream-kinesis` function runs it: subscriptions and
/// delivery state in DynamoDB, the DPL stream read on moto by the catch-up
/// workers (`KinesisReader`), each customer stream behind its own link.
struct Now;

type Function = StreamFunction<DynamoSubscriptions, DynamoState, Routed, KinesisReader, NoArchive>;

/// The function builds every customer client from one SDK configuration;
/// here each customer stream sits behind its own link (its own endpoint),
/// so each subscription gets its own `KinesisDestinations`.
struct Routed(HashMap<SubscriptionId, KinesisDestinations<InMemorySecrets>>);

impl Destinations for Routed {
    type Destination = KinesisDestination;

    async fn destination(
        &self,
        subscription: &Subscription,
    ) -> Result<Arc<KinesisDestination>, String> {
        match self.0.get(&subscription.id) {
            Some(destinations) => destinations.destination(subscription).await,
            None => Err(format!("no link for {}", subscription.id)),
        }
    }
}

impl Now {
    /// Creates the two tables and one subscription (every event of the
    /// bench OEM, an access key as its secret: no STS call) per customer
    /// stream, each reached at its link; DynamoDB is reached at `storage`,
    /// the DPL stream at `dpl` (moto).
    async fn build(
        customers: &[CustomerLink],
        storage: &str,
        dpl: &str,
    ) -> anyhow::Result<Function> {
        let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
        let at = |endpoint: &str| aws.to_builder().endpoint_url(endpoint).build();
        let dynamodb = aws_sdk_dynamodb::Client::new(&at(storage));
        create_table(&dynamodb, SUBSCRIPTIONS_TABLE, &[attr::ID]).await?;
        create_table(&dynamodb, STATE_TABLE, &TABLE_KEYS).await?;
        let subscriptions = DynamoSubscriptions::new(dynamodb.clone(), SUBSCRIPTIONS_TABLE);
        let secret_id = "dpl/streams/drill";
        let keys = AccessKeys::new(
            "AKIAEXAMPLEDRILL0001",
            SecretString::new("drill/secret/key/value"),
        )?
        .to_secret();
        let mut routes = HashMap::new();
        for customer in customers {
            let spec = SubscriptionSpec {
                oem_id: OEM.into(),
                name: customer.name.clone(),
                description: String::new(),
                destination: Destination::Kinesis {
                    stream_arn: customer.stream_arn.parse()?,
                },
                credentials: Credentials::AccessKeySecret {
                    secret_id: secret_id.into(),
                },
                filters: Filters::all(),
            };
            let subscription =
                Subscription::new(SubscriptionId::generate(), spec, Timestamp::now())?;
            subscriptions.create(&subscription).await?;
            routes.insert(
                subscription.id,
                KinesisDestinations::new(
                    at(&customer.endpoint),
                    InMemorySecrets::with([(secret_id, keys.expose())]),
                    KinesisSending::default(),
                ),
            );
        }
        let ports = Ports {
            subscriptions,
            state: DynamoState::new(dynamodb, STATE_TABLE),
            destinations: Routed(routes),
            reader: KinesisReader::new(aws_sdk_kinesis::Client::new(&at(dpl)), DPL_STREAM),
            queue: InMemoryQueue::new(),
            archive: NoArchive,
        };
        let engine = Delivery::new(ports, EngineConfig::new(Transport::Kinesis));
        Ok(StreamFunction::new(engine))
    }
}

// ---------------------------------------------------------------------------
// Engine-neutral: streams, links, producer, mapping, schedule, analysis.
// ---------------------------------------------------------------------------

/// A customer stream and the endpoint its subscription reaches it at.
struct CustomerLink {
    name: String,
    stream_arn: String,
    endpoint: String,
}

/// The drill's phases.
#[derive(Clone, Copy, Debug)]
struct Timeline {
    warm_up: Duration,
    outage: Duration,
    /// Longest production after recovery.
    after: Duration,
    /// Production stops early once the first subscription has been caught
    /// up this long.
    settled: Duration,
    /// The scheduled work's period ([`SCHEDULE`]; the design before ran its
    /// redrive every `RedriveSchedule`, 5 minutes).
    schedule: Duration,
    /// How often the customer streams are read during the drill.
    check_every: Duration,
    /// Longest back-to-back run of the scheduled work after the drill.
    drain: Duration,
    /// Whether a loss or a reordering fails the run (the short run's
    /// checks); the full run reports them.
    strict: bool,
}

const FULL: Timeline = Timeline {
    warm_up: Duration::from_secs(120),
    outage: Duration::from_secs(300),
    after: Duration::from_secs(900),
    settled: Duration::from_secs(120),
    schedule: SCHEDULE,
    check_every: Duration::from_secs(5),
    drain: Duration::from_secs(900),
    strict: true,
};

const QUICK: Timeline = Timeline {
    warm_up: Duration::from_secs(5),
    outage: Duration::from_secs(5),
    after: Duration::from_secs(10),
    settled: Duration::from_secs(4),
    schedule: SCHEDULE,
    check_every: Duration::from_secs(1),
    drain: Duration::from_secs(60),
    strict: true,
};

/// Wall-clock moments of the drill.
#[derive(Clone, Copy, Debug)]
struct Moments {
    outage: SystemTime,
    recovery: SystemTime,
    stopped: SystemTime,
}

/// Puts [`EVENTS_PER_SECOND`] events a second until `stop`.
async fn produce(
    kinesis: &aws_sdk_kinesis::Client,
    stop: &AtomicBool,
    produced: &AtomicU64,
) -> anyhow::Result<()> {
    let per_put = EVENTS_PER_SECOND * PUT_EVERY.as_millis() as u64 / 1_000;
    let mut ticks = tokio::time::interval(PUT_EVERY);
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let entries: Vec<(String, Vec<u8>)> = (next..next + per_put)
            .map(|n| {
                let record = FLEET.record(n);
                (record.partition_key().to_owned(), record.to_json())
            })
            .collect();
        put(kinesis, DPL_STREAM, &entries).await?;
        next += per_put;
        produced.store(next, Ordering::Relaxed);
    }
    Ok(())
}

/// Runs the scheduled work every `period` until `stop`; logs each run.
async fn schedule<E: Engine>(
    engine: &E,
    period: Duration,
    start: Instant,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<String>> {
    let mut runs = Vec::new();
    let mut next = start + period;
    loop {
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                return Ok(runs);
            }
            tokio::time::sleep_until(next.min(Instant::now() + Duration::from_secs(1))).await;
        }
        let began = Instant::now();
        let remaining = engine.scheduled().await?;
        // Runs that found nothing to do are not worth a line.
        if remaining || began.elapsed() >= Duration::from_secs(1) {
            runs.push(format!(
                "scheduled run at {:.1} min: {:.1} s, events still held: {remaining}",
                (began - start).as_secs_f64() / 60.0,
                began.elapsed().as_secs_f64()
            ));
            eprintln!("{}", runs.last().expect("just pushed"));
        }
        next = (next + period).max(Instant::now());
    }
}

/// What the DPL stream and a customer stream hold, as read so far.
#[derive(Default)]
struct Watch {
    /// Event, its DSN, its DPL arrival.
    dpl: Vec<(u64, String, SystemTime)>,
    first: Vec<StreamRecord>,
    second: Vec<StreamRecord>,
}

impl Watch {
    /// Whether every event on the DPL stream up to `at - CATCH_UP_SLACK`
    /// is on the first customer stream (as read so far).
    fn first_caught_up(&self, at: SystemTime, accepted: &HashSet<u64>) -> bool {
        let cutoff = at - CATCH_UP_SLACK;
        self.dpl
            .iter()
            .filter(|(_, _, arrived)| *arrived <= cutoff)
            .all(|(n, _, _)| accepted.contains(n))
    }
}

/// Reads the three streams' new records.
async fn read_new(tails: &mut [Tail; 3], watch: &mut Watch) -> anyhow::Result<()> {
    for record in tails[0].poll().await? {
        let n = dpl_event_number(&record.data)?;
        watch.dpl.push((n, record.partition_key, record.arrival));
    }
    watch.first.extend(tails[1].poll().await?);
    watch.second.extend(tails[2].poll().await?);
    Ok(())
}

/// What the conductor of the drill works with.
struct Stage<'a> {
    timeline: Timeline,
    start: Instant,
    first_link: &'a faultproxy::FaultProxy,
    storage_link: &'a faultproxy::FaultProxy,
    /// Set to end production.
    stop: &'a AtomicBool,
    produced: &'a AtomicU64,
}

/// The outage and the end of production; reads the streams as it goes.
/// Returns the drill's moments and the storage requests counted during the
/// outage.
async fn conduct(
    stage: Stage<'_>,
    tails: &mut [Tail; 3],
    watch: &mut Watch,
) -> anyhow::Result<(Moments, u64)> {
    let Stage {
        timeline,
        start,
        first_link,
        storage_link,
        stop,
        produced,
    } = stage;
    tokio::time::sleep_until(start + timeline.warm_up).await;
    let outage = SystemTime::now();
    let storage_before = storage_link.stats().requests_forwarded;
    first_link.set(|f| f.refuse = true)?;
    let reset = first_link.reset_connections();
    eprintln!("outage: the first link refuses new connections; {reset} open ones reset");
    tokio::time::sleep_until(start + timeline.warm_up + timeline.outage).await;
    first_link.set(|f| f.refuse = false)?;
    let recovery = SystemTime::now();
    let storage_during = storage_link.stats().requests_forwarded - storage_before;
    eprintln!("recovery: the first link accepts again");

    let mut caught_up_since: Option<SystemTime> = None;
    let end = start + timeline.warm_up + timeline.outage + timeline.after;
    let mut accepted = HashSet::new();
    let mut first_read = 0;
    while Instant::now() < end {
        tokio::time::sleep(timeline.check_every).await;
        read_new(tails, watch).await?;
        for record in &watch.first[first_read..] {
            accepted.insert(event_number(&record.data)?);
        }
        first_read = watch.first.len();
        let now = SystemTime::now();
        if watch.first_caught_up(now, &accepted) {
            let since = *caught_up_since.get_or_insert(now);
            if between(since, now) >= timeline.settled {
                eprintln!("the first subscription has been caught up since {since:?}");
                break;
            }
        } else {
            caught_up_since = None;
        }
        eprintln!(
            "{:.1} min: produced {}, first {}, second {}, load {}",
            start.elapsed().as_secs_f64() / 60.0,
            produced.load(Ordering::Relaxed),
            watch.first.len(),
            watch.second.len(),
            load()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let moments = Moments {
        outage,
        recovery,
        stopped: SystemTime::now(),
    };
    Ok((moments, storage_during))
}

/// The first `t` at or after `from` (in steps of a second, up to `until`)
/// at which every event that arrived on the DPL stream up to `t - slack`
/// had arrived at the customer: `first` maps events to their first
/// customer arrival.
fn caught_up_at(
    dpl: &[(u64, String, SystemTime)],
    first: &HashMap<u64, SystemTime>,
    from: SystemTime,
    until: SystemTime,
) -> Option<SystemTime> {
    // Each DPL arrival with its customer arrival (`None`: never arrived).
    let mut by_arrival: Vec<(SystemTime, Option<SystemTime>)> = dpl
        .iter()
        .map(|(n, _, arrived)| (*arrived, first.get(n).copied()))
        .collect();
    by_arrival.sort();
    // The latest customer arrival among the first k DPL arrivals (`None`
    // once one of them never arrived).
    let latest: Vec<Option<SystemTime>> = by_arrival
        .iter()
        .scan(Some(SystemTime::UNIX_EPOCH), |latest, (_, accepted)| {
            *latest = latest.zip(*accepted).map(|(a, b)| a.max(b));
            Some(*latest)
        })
        .collect();
    let mut t = from;
    while t <= until {
        let cutoff = t - CATCH_UP_SLACK;
        let k = by_arrival.partition_point(|(arrived, _)| *arrived <= cutoff);
        if k == 0 || latest[k - 1].is_some_and(|latest| latest <= t) {
            return Some(t);
        }
        t += Duration::from_secs(1);
    }
    None
}

/// Delivery delays (DPL arrival to customer arrival) of the events that
/// arrived on the DPL stream in `[from, to)`.
fn delays_between(
    dpl: &[(u64, String, SystemTime)],
    arrived: &HashMap<u64, SystemTime>,
    from: SystemTime,
    to: SystemTime,
) -> Spread {
    Spread::of(
        dpl.iter()
            .filter(|(_, _, at)| *at >= from && *at < to)
            .filter_map(|(n, _, at)| arrived.get(n).map(|accepted| between(*at, *accepted)))
            .collect(),
    )
}

fn minutes(duration: Duration) -> f64 {
    duration.as_secs_f64() / 60.0
}

fn spread_cell(spread: &Spread) -> String {
    format!(
        "{:.2} / {:.2} s ({} events)",
        spread.p50.as_secs_f64(),
        spread.p99.as_secs_f64(),
        spread.count
    )
}

async fn drill(timeline: Timeline) -> anyhow::Result<()> {
    let load_before = load();
    let (aws, moto) = emulator().await?;
    let kinesis = aws_sdk_kinesis::Client::new(&aws);
    let dpl_arn = create_stream(&kinesis, DPL_STREAM, DPL_SHARDS).await?;
    let first_link = link(moto, CUSTOMER_ROUND_TRIP).await?;
    let second_link = link(moto, CUSTOMER_ROUND_TRIP).await?;
    let storage = MotoServer::start()?;
    let storage_link = link(storage.addr(), Duration::ZERO).await?;
    let mut customers = Vec::new();
    for (name, proxy) in [("first", &first_link), ("second", &second_link)] {
        let stream = format!("customer-{name}");
        customers.push(CustomerLink {
            stream_arn: create_stream(&kinesis, &stream, CUSTOMER_SHARDS).await?,
            name: stream,
            endpoint: url(proxy),
        });
    }
    let engine = Now::build(&customers, &url(&storage_link), &format!("http://{moto}")).await?;
    let mut tails = [
        Tail::open(&kinesis, DPL_STREAM).await?,
        Tail::open(&kinesis, &customers[0].name).await?,
        Tail::open(&kinesis, &customers[1].name).await?,
    ];

    let stop = AtomicBool::new(false);
    let produced = AtomicU64::new(0);
    let handed_over = RefCell::new(HashMap::new());
    let mut watch = Watch::default();
    let start = Instant::now();
    let mappings = ShardReader::every_shard(&kinesis, DPL_STREAM)
        .await?
        .into_iter()
        .map(|reader| {
            poll_shard(
                &engine,
                ShardMapping {
                    reader,
                    stream_arn: &dpl_arn,
                    region: REGION,
                    stop: &stop,
                    handed_over: &handed_over,
                },
            )
        });
    let (produced_ok, mapped, runs, conducted) = tokio::join!(
        produce(&kinesis, &stop, &produced),
        futures_util::future::try_join_all(mappings),
        schedule(&engine, timeline.schedule, start, &stop),
        conduct(
            Stage {
                timeline,
                start,
                first_link: &first_link,
                storage_link: &storage_link,
                stop: &stop,
                produced: &produced,
            },
            &mut tails,
            &mut watch,
        ),
    );
    produced_ok?;
    let (moments, storage_during) = conducted?;
    let invocations = mapped?
        .into_iter()
        .fold(Invocations::default(), |sum, shard| sum + shard);
    let mut runs = runs?;

    // What was still held when production stopped, delivered back to back.
    let drain_started = Instant::now();
    let mut drain_runs = 1;
    let mut held = engine.scheduled().await?;
    while held && drain_started.elapsed() < timeline.drain {
        drain_runs += 1;
        held = engine.scheduled().await?;
    }
    runs.push(format!(
        "after the drill: {drain_runs} back-to-back scheduled runs, {:.1} s; events still held: {held}",
        drain_started.elapsed().as_secs_f64()
    ));
    read_new(&mut tails, &mut watch).await?;

    let expected: BTreeMap<u64, String> = watch
        .dpl
        .iter()
        .map(|(n, dsn, _)| (*n, dsn.clone()))
        .collect();
    let first = arrivals(&watch.first)?;
    let second = arrivals(&watch.second)?;
    let first_verdict = verdict(&expected, &first);
    let second_verdict = verdict(&expected, &second);
    let first_at = first_arrivals(&first);
    let second_at = first_arrivals(&second);
    let caught_up = caught_up_at(&watch.dpl, &first_at, moments.recovery, moments.stopped);
    let during_outage_minutes = minutes(between(moments.outage, moments.recovery));
    let handed = handed_over.borrow();
    let handoff_delays = delivery_delays(&handed, &second);
    let produced_before_stop = watch
        .dpl
        .iter()
        .filter(|(_, _, at)| *at <= moments.stopped)
        .count();
    let first_by_stop = first_at
        .values()
        .filter(|at| **at <= moments.stopped)
        .count();

    println!(
        "Outage drill, positions and catch-up (load at start {load_before}, at end {})",
        load()
    );
    for run in &runs {
        println!("  {run}");
    }
    println!(
        "  mapping: {} invocations, {} partial batch responses, {} function errors, {} records given up",
        invocations.invocations, invocations.partial_failures, invocations.errors, invocations.given_up
    );
    println!("| figure | value |\n|---|---|");
    println!(
        "| drill length (production) | {:.1} min; outage {:.1} min from {:.1} min |",
        minutes(between(moments.outage, moments.stopped)) + minutes(timeline.warm_up),
        during_outage_minutes,
        minutes(timeline.warm_up)
    );
    println!("| events produced | {} |", watch.dpl.len());
    println!(
        "| first subscription caught up | {} |",
        match caught_up {
            Some(at) => format!("{:.1} min after recovery", minutes(between(moments.recovery, at))),
            None => format!(
                "no: when production stopped ({:.1} min after recovery) it had {} of the {} events produced until then",
                minutes(between(moments.recovery, moments.stopped)),
                first_by_stop,
                produced_before_stop
            ),
        }
    );
    println!("| first subscription, read back | {first_verdict} |");
    println!("| second subscription, read back | {second_verdict} |");
    println!(
        "| second: delay before the outage (DPL arrival → customer arrival, p50 / p99) | {} |",
        spread_cell(&delays_between(
            &watch.dpl,
            &second_at,
            SystemTime::UNIX_EPOCH,
            moments.outage
        ))
    );
    println!(
        "| second: delay during the outage | {} |",
        spread_cell(&delays_between(
            &watch.dpl,
            &second_at,
            moments.outage,
            moments.recovery
        ))
    );
    println!(
        "| second: delay after recovery | {} |",
        spread_cell(&delays_between(
            &watch.dpl,
            &second_at,
            moments.recovery,
            SystemTime::now()
        ))
    );
    println!(
        "| second: delay, batch handed to the engine → customer arrival, whole drill | {} |",
        spread_cell(&handoff_delays)
    );
    println!(
        "| first: delay after recovery | {} |",
        spread_cell(&delays_between(
            &watch.dpl,
            &first_at,
            moments.recovery,
            SystemTime::now()
        ))
    );
    println!(
        "| storage requests during the outage | {storage_during} in {during_outage_minutes:.2} min: {:.1} per shard-minute ({DPL_SHARDS} shards) |",
        storage_during as f64 / (f64::from(DPL_SHARDS) * during_outage_minutes)
    );
    let first_stats = first_link.stats();
    println!(
        "| first link | {} requests, {} connections refused, {} reset |",
        first_stats.requests_forwarded,
        first_stats.connections_refused,
        first_stats.connections_reset
    );
    println!(
        "| storage link, whole drill | {} requests, p50 {:.1} ms, p99 {:.1} ms |",
        storage_link.stats().requests_forwarded,
        storage_link.stats().request_times.p50.as_secs_f64() * 1_000.0,
        storage_link.stats().request_times.p99.as_secs_f64() * 1_000.0
    );
    ensure!(!expected.is_empty(), "nothing was produced");
    if timeline.strict {
        ensure!(first_verdict.holds(), "first: {first_verdict}");
        ensure!(second_verdict.holds(), "second: {second_verdict}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    take_emulator_endpoint();
    let runtime = delivery_bench::runtime()?;
    let timeline = if full_run() { FULL } else { QUICK };
    runtime
        .block_on(drill(timeline))
        .context("the outage drill")
}
