//! The handler's core (derive + publish) on a 10,000-record batch against
//! the in-memory Kinesis: records/s, PutRecords calls per 1,000 events, and
//! peak heap (counting allocator) and peak RSS (VmHWM).
//!
//! `cargo bench -p twin-events --bench handler`

use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dpl::kinesis::retry::DEFAULT_BACKOFF;
use dpl::kinesis::InMemoryKinesis;
use dpl::measure::{self, Counting};
use serde_dynamo::AttributeValue;
use twin_events::dead_letter::InMemoryDeadLetters;
use twin_events::{Config, Handler};

/// The largest batch a DynamoDB event source mapping delivers.
const BATCH: usize = 10_000;
const DEVICES: usize = 1_000;
const STREAM: &str = "dpl";

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// 10,000 records cycling through the six single-event samples, spread
/// over 1,000 devices, each with its own eventID and sequence number.
fn batch() -> Vec<EventRecord> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/twin-events/");
    let samples: Vec<EventRecord> = [
        "activation",
        "connectivity",
        "location",
        "registration",
        "datapoint",
        "datapointack",
    ]
    .iter()
    .flat_map(|name| {
        let bytes = std::fs::read(format!("{dir}{name}.json")).expect("sample event");
        serde_json::from_slice::<Event>(&bytes)
            .expect("sample event")
            .records
    })
    .collect();
    (0..BATCH)
        .map(|i| {
            let mut record = samples[i % samples.len()].clone();
            let dsn = format!("AC{:013}", i % DEVICES);
            record.event_id = format!("{i:032x}");
            record.change.sequence_number = Some(format!("{}", 10u128.pow(20) + i as u128));
            for image in [&mut record.change.new_image, &mut record.change.old_image] {
                if image.contains_key("dsn") {
                    image.insert("dsn".into(), AttributeValue::S(dsn.clone()));
                }
            }
            record
        })
        .collect()
}

fn handler() -> Handler<InMemoryKinesis, InMemoryDeadLetters> {
    let config = Config {
        stream_name: STREAM.into(),
        dead_letter_queue_url: "memory".into(),
        deadline_margin: Duration::ZERO,
        backoff: DEFAULT_BACKOFF,
    };
    Handler::new(InMemoryKinesis::new(), InMemoryDeadLetters::new(), &config)
}

fn run(runtime: &tokio::runtime::Runtime, records: &[EventRecord]) -> (usize, usize) {
    let handler = handler();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let response = runtime
        .block_on(handler.process(records, deadline))
        .expect("handled");
    assert!(response.batch_item_failures.is_empty());
    (
        handler.kinesis().records(STREAM).len(),
        handler.kinesis().calls(),
    )
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let records = batch();

    // Figures for docs/benchmarks.md, measured once outside criterion.
    let input_bytes = measure::start_peak();
    let started = Instant::now();
    let (events, calls) = run(&runtime, &records);
    let elapsed = started.elapsed();
    let peak = measure::peak_bytes();
    println!("twin-events core, {BATCH} records -> {events} events, {calls} PutRecords calls");
    println!(
        "  single run: {:.1} ms, {:.0} records/s",
        elapsed.as_secs_f64() * 1e3,
        BATCH as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  PutRecords calls per 1,000 events: {:.2} (floor 2: 500 records per call)",
        calls as f64 * 1_000.0 / events as f64
    );
    println!(
        "  heap: input batch {:.1} MiB, peak during the run {:.1} MiB (+{:.1} MiB, incl. the in-memory stream's copy)",
        input_bytes as f64 / 1_048_576.0,
        peak as f64 / 1_048_576.0,
        (peak - input_bytes) as f64 / 1_048_576.0
    );
    if let Some(hwm) = measure::vm_hwm_kib() {
        println!("  process peak RSS (VmHWM): {:.1} MiB", hwm as f64 / 1024.0);
    }

    let mut group = c.benchmark_group("twin-events");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("derive+publish 10k records", |b| {
        b.iter(|| run(&runtime, &records))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
