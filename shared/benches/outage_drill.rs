//! Outage drill, simulated: two Kinesis subscriptions of one OEM on a DPL
//! stream of 4 shards at 1,000 events/s over 10,000 devices; the first
//! subscription's endpoint is down for 60 minutes, then up. Reports whether
//! and when it caught up, whether every event arrived in per-DSN order, the
//! second subscription's delivery delays, and the storage requests the
//! outage cost per shard-minute.
//!
//! `cargo bench -p dpl --features streams,aws --bench outage_drill [-- --rtt-ms 30
//! --outage-min 60 --after-min 60 --rate 1000]`; `-- --quick` runs a
//! 5-minute outage at 100 events/s. Without `--bench` (as `cargo test
//! --all-targets` runs it) it runs the quick drill.
//!
//! Simulated time (tokio's paused clock): the endpoints answer after the
//! round trip the fault proxy measured in front of the local endpoints
//! (`docs/benchmarks.md`), DynamoDB after 4 ms.

#[path = "drill/world.rs"]
mod world;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_lambda_events::event::streams::KinesisEventResponse;
use dpl::position::HashRange;
use dpl::streams::archive::NoArchive;
use dpl::streams::cursor::Resume;
use dpl::streams::destination::{DestinationCache, Destinations};
use dpl::streams::engine::{Engine, EngineConfig, Ports};
use dpl::streams::kinesis::{KinesisDestination, KinesisSending};
use dpl::streams::queue::InMemoryQueue;
use dpl::streams::reader::{Page, ReadError, ShardReader, StreamRecord};
use dpl::streams::state::InMemoryState;
use dpl::streams::store::InMemorySubscriptions;
use dpl::streams::{
    Credentials, Destination, Filters, Subscription, SubscriptionId, SubscriptionSpec, Transport,
};
use dpl::Timestamp;
use tokio::time::{sleep, Instant};
use world::{
    caught_up_at, check_delivery, delays, other_reader, percentile_ms, poll_shard, produce,
    DplStream, Endpoint, Engine as Engine_, Scenario, Storage, OEM,
};

/// The function's timeout in the template, less the deadline margin.
const INVOCATION: Duration = Duration::from_secs(58);
/// A catch-up worker's run: the function's timeout (300 s) less the margin.
const CATCH_UP_RUN: Duration = Duration::from_secs(295);
/// `CatchUpSweepSchedule`'s default.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How soon the queue's event source hands a catch-up request over.
const QUEUE_POLL: Duration = Duration::from_millis(500);

/// Each subscription's endpoint, by name.
struct SimDestinations {
    endpoints: HashMap<String, Arc<Endpoint>>,
    cache: DestinationCache<KinesisDestination<Arc<Endpoint>>>,
}

impl Destinations for SimDestinations {
    type Destination = KinesisDestination<Arc<Endpoint>>;

    async fn destination(
        &self,
        subscription: &Subscription,
    ) -> Result<Arc<Self::Destination>, String> {
        let endpoint = self.endpoints[&subscription.name].clone();
        let arn = subscription.destination.target();
        self.cache
            .get_or_build(subscription, async move {
                Ok(KinesisDestination::new(
                    endpoint,
                    arn,
                    KinesisSending::default(),
                ))
            })
            .await
    }
}

type DrillEngine =
    Engine<InMemorySubscriptions, InMemoryState, SimDestinations, Reader, InMemoryQueue, NoArchive>;

/// The DPL stream as the catch-up worker reads it.
struct Reader(Arc<DplStream>);

impl ShardReader for Reader {
    async fn iterator(&self, shard: &str, from: &Resume) -> Result<String, ReadError> {
        Ok(self.0.iterator(shard, from))
    }

    async fn read(&self, iterator: &str, limit: usize) -> Result<Page, ReadError> {
        self.0.read_page(iterator, limit, Instant::now())
    }

    /// The drill's outage is far shorter than the stream's retention.
    async fn first_retained(&self, _shard: &str) -> Result<Option<StreamRecord>, ReadError> {
        Ok(None)
    }

    async fn hash_range(&self, _shard: &str) -> Result<HashRange, ReadError> {
        Ok(HashRange::ALL)
    }
}

/// The design under test: a subscription that misses events keeps a cursor
/// per shard; a worker per shard catches it up from the stream, asked for
/// through the queue and by the sweep.
struct CatchUp {
    engine: Arc<DrillEngine>,
    end: Instant,
}

impl Engine_ for CatchUp {
    async fn on_batch(
        &self,
        _shard: usize,
        records: Vec<KinesisEventRecord>,
    ) -> KinesisEventResponse {
        self.engine
            .dispatch(&records, Instant::now() + INVOCATION)
            .await
            .expect("subscriptions are in memory")
    }

    async fn background(&self) {
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        while Instant::now() < self.end {
            sleep(QUEUE_POLL).await;
            if Instant::now() >= next_sweep {
                let _ = self.engine.sweep().await;
                next_sweep += SWEEP_EVERY;
            }
            for shard in self.engine.ports().queue.take() {
                let engine = self.engine.clone();
                let until = (Instant::now() + CATCH_UP_RUN).min(self.end);
                tokio::spawn(async move {
                    let _ = engine.catch_up(&shard, until).await;
                });
            }
        }
    }

    fn storage(&self) -> Storage {
        let usage = self.engine.ports().state.usage();
        Storage {
            requests: usage.requests,
            items_written: usage.items_written,
        }
    }
}

fn subscription(n: u64, name: &str) -> Subscription {
    let spec = SubscriptionSpec {
        oem_id: OEM.into(),
        name: name.into(),
        description: String::new(),
        destination: Destination::Kinesis {
            stream_arn: format!("arn:aws:kinesis:eu-west-1:123456789012:stream/{name}")
                .parse()
                .expect("an ARN"),
        },
        credentials: Credentials::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/writer".into(),
            external_id: Some("drill".into()),
        },
        filters: Filters::all(),
    };
    Subscription::new(
        SubscriptionId::from_bits(n),
        spec,
        Timestamp::from_millis(0).unwrap(),
    )
    .expect("a subscription")
}

fn scenario(args: &[String]) -> Scenario {
    let value = |flag: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{flag} takes a number"))
            })
    };
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let minutes = |m: u64| Duration::from_secs(m * 60);
    Scenario {
        shards: 4,
        devices: 10_000,
        events_per_s: value("--rate", if quick { 100 } else { 1_000 }),
        // The template's `StreamBatchSize`.
        batch_size: 1_000,
        rtt: Duration::from_millis(value("--rtt-ms", 30)),
        storage_latency: Duration::from_millis(4),
        outage_start: minutes(value("--start-min", if quick { 2 } else { 5 })),
        outage: minutes(value("--outage-min", if quick { 5 } else { 60 })),
        after: minutes(value("--after-min", if quick { 15 } else { 60 })),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scenario = scenario(&args);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(drill(scenario));
}

async fn drill(scenario: Scenario) {
    let start = Instant::now();
    let stream = Arc::new(DplStream::new(scenario.shards, scenario.devices, start));
    let down = Arc::new(Endpoint::new(scenario.rtt, stream.clone()));
    let up = Arc::new(Endpoint::new(scenario.rtt, stream.clone()));
    let outage_from = start + scenario.outage_start;
    let recovery = outage_from + scenario.outage;
    let end = recovery + scenario.after;
    down.down_between(outage_from, recovery);
    let subscriptions = vec![subscription(1, "down"), subscription(2, "up")];
    let engine = Arc::new(CatchUp {
        engine: Arc::new(Engine::new(
            Ports {
                subscriptions: InMemorySubscriptions::with(subscriptions),
                state: InMemoryState::new().with_latency(scenario.storage_latency),
                destinations: SimDestinations {
                    endpoints: HashMap::from([
                        ("down".into(), down.clone()),
                        ("up".into(), up.clone()),
                    ]),
                    cache: DestinationCache::default(),
                },
                reader: Reader(stream.clone()),
                queue: InMemoryQueue::new(),
                archive: NoArchive,
            },
            EngineConfig::new(Transport::Kinesis),
        )),
        end,
    });
    println!(
        "outage drill (cursors + catch-up from the DPL stream, sweep every {} s): {} shards, \
         {} devices, {} events/s, RTT {} ms, outage {} min from minute {}",
        SWEEP_EVERY.as_secs(),
        scenario.shards,
        scenario.devices,
        scenario.events_per_s,
        scenario.rtt.as_millis(),
        scenario.outage.as_secs() / 60,
        scenario.outage_start.as_secs() / 60
    );
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    // The last events arrive a little before the end, so that a healthy
    // endpoint has them all.
    let produce_until = end - Duration::from_secs(30);
    tasks.spawn(produce(
        stream.clone(),
        scenario.events_per_s,
        produce_until,
        arrivals.clone(),
    ));
    for shard in 0..stream.shard_count() {
        tasks.spawn(poll_shard(
            engine.clone(),
            stream.clone(),
            shard,
            scenario.batch_size,
            end,
        ));
        for _ in 0..world::OTHER_READERS {
            tasks.spawn(other_reader(stream.clone(), shard, end));
        }
    }
    {
        let engine = engine.clone();
        tasks.spawn(async move { engine.background().await });
    }
    let storage_at = Arc::new(Mutex::new(Vec::new()));
    {
        let (engine, storage_at) = (engine.clone(), storage_at.clone());
        tasks.spawn(async move {
            for at in [outage_from, recovery] {
                tokio::time::sleep_until(at).await;
                storage_at.lock().unwrap().push(engine.storage());
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    report(
        &scenario,
        &stream,
        &arrivals.lock().unwrap(),
        &down,
        &up,
        &storage_at.lock().unwrap(),
        engine.storage(),
        start,
    );
}

#[allow(clippy::too_many_arguments)]
fn report(
    scenario: &Scenario,
    stream: &DplStream,
    arrivals: &[Instant],
    down: &Endpoint,
    up: &Endpoint,
    storage_at: &[Storage],
    storage_end: Storage,
    start: Instant,
) {
    let outage_from = start + scenario.outage_start;
    let recovery = outage_from + scenario.outage;
    let settled = start + Duration::from_secs(60);
    let all = 0..arrivals.len() as u32;
    let (down_received, up_received) = (down.received(), up.received());
    let line = |name: &str, mut d: Vec<Duration>| {
        let p99 = percentile_ms(&mut d, 0.99);
        println!(
            "  {name}: p50 {:.0} ms, p99 {p99:.0} ms ({} events)",
            percentile_ms(&mut d, 0.50),
            d.len()
        );
        p99
    };
    println!("delivery delay, DPL arrival to acceptance:");
    let steady_p99 = line("both, steady state before the outage", {
        let mut d = delays(arrivals, &up_received, settled, outage_from);
        d.extend(delays(arrivals, &down_received, settled, outage_from));
        d
    });
    let outage_p99 = line(
        "second subscription during the outage",
        delays(arrivals, &up_received, outage_from, recovery),
    );
    line(
        "second subscription, 15 min after recovery",
        delays(
            arrivals,
            &up_received,
            recovery,
            recovery + Duration::from_secs(900),
        ),
    );
    let caught_up = caught_up_at(arrivals, &down_received, recovery, Duration::from_secs(10));
    match caught_up {
        Some(at) => println!(
            "first subscription caught up {:.1} min after recovery",
            at.duration_since(recovery).as_secs_f64() / 60.0
        ),
        None => {
            let accepted: std::collections::HashSet<u32> =
                down_received.iter().map(|(n, _)| *n).collect();
            let missing = arrivals.len() - accepted.len();
            println!(
                "first subscription NOT caught up {} min after recovery: {missing} events not delivered",
                scenario.after.as_secs() / 60
            );
        }
    }
    let mut checks = Vec::new();
    for (name, received) in [("first", &down_received), ("second", &up_received)] {
        let check = check_delivery(stream, all.clone(), received);
        println!("{name} subscription: {check}");
        checks.push(check);
    }
    if let [at_outage, at_recovery] = storage_at {
        let shard_minutes = (scenario.shards as f64) * scenario.outage.as_secs_f64() / 60.0;
        println!(
            "storage during the outage: {:.0} requests and {:.0} items written per shard-minute \
             ({} requests in all by the end of the run)",
            (at_recovery.requests - at_outage.requests) as f64 / shard_minutes,
            (at_recovery.items_written - at_outage.items_written) as f64 / shard_minutes,
            storage_end.requests
        );
    }
    println!(
        "customer requests: first {}, second {}; throttled DPL reads: {}",
        down.requests(),
        up.requests(),
        stream.throttled_reads()
    );
    // The goals (issue 11): everything delivered in order, caught up within
    // 15 minutes of recovery, the other subscription's p99 kept.
    for check in &checks {
        assert!(check.holds(), "{check}");
    }
    let within = caught_up.map(|at| at.duration_since(recovery));
    assert!(
        within.is_some_and(|d| d <= Duration::from_secs(900)),
        "not caught up within 15 minutes: {within:?}"
    );
    assert!(
        outage_p99 <= steady_p99 * 1.5,
        "the second subscription's p99 went from {steady_p99} to {outage_p99} ms"
    );
}
