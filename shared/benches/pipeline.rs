//! Derivation plus DPL serialization, and CSV encoding, on a realistic
//! 10,000-record DynamoDB Streams batch read from the raw Lambda event JSON.
//!
//! The floor, in the same run: merely parsing that batch JSON into a
//! `serde_json::Value`. Goal (issue 2): the whole path within 2x of it.
//! Figures and the machine go into `docs/benchmarks.md`.

use std::hint::black_box;
use std::path::PathBuf;

use aws_lambda_events::event::dynamodb::Event;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dpl::twin::derive_events;
use dpl::{DeviceEvent, DplRecord};
use serde_json::{json, Value};

const BATCH_RECORDS: usize = 10_000;
const DEVICES: usize = 500;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/twin")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).expect("twin fixture")).expect("fixture JSON")
}

/// A batch as Lambda delivers it: mostly new datapoints of a few property
/// types, some acks, connectivity / location / registration changes, and
/// the odd first activation, over `DEVICES` devices.
fn lambda_batch() -> Vec<u8> {
    let templates = [
        fixture("property_modify.json"),
        fixture("device_modify.json"),
        fixture("reservation_modify.json"),
    ];
    let properties = [
        ("Blue_LED", "boolean", json!({"N": "1"})),
        ("temperature", "decimal", json!({"N": "21.5"})),
        (
            "log",
            "string",
            json!({"S": "CMD_1 from the mobile app, retried"}),
        ),
        ("fan_speed", "integer", json!({"N": "3"})),
    ];
    let records: Vec<Value> = (0..BATCH_RECORDS)
        .map(|i| {
            let dsn = format!("AC000W{:09}", i % DEVICES);
            let second = 1_598_607_000 + i as i64;
            let mut record = match i % 20 {
                0..=15 => {
                    let mut r = templates[0].clone();
                    let (name, base_type, value) = &properties[i % properties.len()];
                    for image in ["NewImage", "OldImage"] {
                        let item = &mut r["dynamodb"][image];
                        item["property_name"] = json!({"S": name});
                        item["display_name"] = json!({"S": name});
                        item["base_type"] = json!({"S": base_type});
                        item["datapoint"]["M"]["value"] = value.clone();
                    }
                    let new = &mut r["dynamodb"]["NewImage"];
                    new["datapoint"]["M"]["id"] = json!({"S": format!("dp-{i:08}")});
                    if i % 20 != 15 {
                        new.as_object_mut().unwrap().remove("ack");
                    } else {
                        new["ack"]["M"]["id"] = json!({"S": format!("dp-{i:08}")});
                    }
                    r
                }
                16..=18 => templates[1].clone(),
                _ => templates[2].clone(),
            };
            record["eventID"] = json!(format!("{i:032x}"));
            let change = &mut record["dynamodb"];
            change["ApproximateCreationDateTime"] = json!(second);
            change["SequenceNumber"] =
                json!(format!("{}", 4_421_584_500_000_000_000_000u128 + i as u128));
            for image in ["NewImage", "OldImage", "Keys"] {
                if change[image].is_object() {
                    change[image]["pk"] = json!({"S": format!("DEVICE#{dsn}")});
                    if image != "Keys" {
                        change[image]["dsn"] = json!({"S": dsn});
                    }
                }
            }
            record
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).expect("batch JSON")
}

/// Parse the Lambda event, derive, and write every DPL record as it would
/// go on the stream. Returns the number of events.
fn whole_path(batch: &[u8], out: &mut Vec<u8>) -> usize {
    let event: Event = serde_json::from_slice(batch).expect("batch parses");
    let mut events = 0;
    for record in &event.records {
        for dpl in derive_events(record).expect("benchmark records are valid") {
            out.clear();
            dpl.write_json(out);
            events += 1;
        }
    }
    events
}

fn derived_events(batch: &[u8]) -> Vec<DeviceEvent> {
    let event: Event = serde_json::from_slice(batch).expect("batch parses");
    event
        .records
        .iter()
        .flat_map(|r| derive_events(r).expect("valid"))
        .map(|r: DplRecord| r.dpl_event)
        .collect()
}

fn pipeline(c: &mut Criterion) {
    let batch = lambda_batch();
    let events = derived_events(&batch);
    eprintln!(
        "batch: {BATCH_RECORDS} records, {} bytes of Lambda event JSON, {} events",
        batch.len(),
        events.len()
    );

    let mut group = c.benchmark_group("twin_batch_10k");
    group.throughput(Throughput::Elements(BATCH_RECORDS as u64));
    group.sample_size(20);
    group.bench_function("floor_parse_to_serde_json_value", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&batch)).unwrap()))
    });
    group.bench_function("parse_derive_serialize_dpl", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| black_box(whole_path(black_box(&batch), &mut out)))
    });
    group.finish();

    let mut group = c.benchmark_group("csv_encode");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("rows_of_the_batch_events", |b| {
        b.iter_batched_ref(
            || Vec::with_capacity(4 << 20),
            |out| {
                for event in &events {
                    dpl::csv::write_row(event, out);
                }
                black_box(out.len())
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
