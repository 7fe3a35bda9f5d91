//! The handler's core (derive + publish) on a 10,000-record batch against
//! the in-memory Kinesis: records/s, PutRecords calls per 1,000 events, and
//! peak heap (counting allocator) and peak RSS (VmHWM).
//!
//! `cargo bench -p twin-events --bench handler`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dpl::kinesis::{Backoff, InMemoryKinesis};
use serde_dynamo::AttributeValue;
use twin_events::dead_letter::InMemoryDeadLetters;
use twin_events::{Config, Handler};

/// The largest batch a DynamoDB event source mapping delivers.
const BATCH: usize = 10_000;
const DEVICES: usize = 1_000;
const STREAM: &str = "dpl";

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

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
        backoff: Backoff::default(),
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

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let records = batch();

    // Figures for docs/benchmarks.md, measured once outside criterion.
    let input_bytes = CURRENT.load(Ordering::Relaxed);
    PEAK.store(input_bytes, Ordering::Relaxed);
    let started = Instant::now();
    let (events, calls) = run(&runtime, &records);
    let elapsed = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed);
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
    if let Some(hwm) = vm_hwm_kib() {
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
