//! Hourly export benchmark (run by hand, release build):
//!   cargo run --release -p dplctl --example export_bench -- 1000000 [JOBS [RANGES]]
//! (JOBS: partitions exported at once, or with RANGES the range tasks run
//! at once; default one per CPU). With RANGES, only the connection
//! partition is exported, split into RANGES time-range tasks (the split
//! export of `docs/export.md`, "Partitions of any size"; 1: in one piece). Generates N staged events of the six types (the seed's examples with
//! varied ids and times) once under target/export-bench/N/, then exports
//! the hour through the same driver as the Lambda (local directory store)
//! and prints rows/s, MB/s, the process's peak memory (VmHWM) and the peak
//! of live heap bytes (a counting allocator), which tells the memory the
//! export holds from what the allocator keeps mapped.

use std::path::PathBuf;
use std::time::Instant;

use dpl::export::staging::{sort_rows, StagingWriter};
use dpl::export::{BatchRange, DirStore, ExportOptions, Exporter, Layout, Partition, Selection};
use dpl::measure::{self, Counting};
use dpl::{DeviceEvent, DplRecord, EventId, Timestamp};

/// Staging objects per partition (one per simulated event-store batch).
const OBJECTS_PER_PARTITION: u64 = 120;

fn seed(name: &str) -> DeviceEvent {
    let path = format!(
        "{}/../../tests/fixtures/seed/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    serde_json::from_value(value["dpl_event"].clone()).unwrap()
}

fn at(event: &DeviceEvent, time: Timestamp) -> DeviceEvent {
    let mut event = event.clone();
    match &mut event {
        DeviceEvent::Activation { activation, .. } => activation.event_time = time,
        DeviceEvent::Connectivity { timestamp, .. }
        | DeviceEvent::Datapoint { timestamp, .. }
        | DeviceEvent::DatapointAck { timestamp, .. }
        | DeviceEvent::Location { timestamp, .. }
        | DeviceEvent::Registration { timestamp, .. } => *timestamp = time,
    }
    event
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn generate(root: &std::path::Path, n: u64, hour: Timestamp) {
    let layout = Layout::default();
    let seeds: Vec<DeviceEvent> = [
        "activation",
        "connectivity",
        "datapoint",
        "datapointack",
        "location",
        "registration",
    ]
    .iter()
    .map(|s| seed(s))
    .collect();
    for (t, template) in seeds.iter().enumerate() {
        let partition = Partition {
            hour,
            oem_id: template.oem_id().to_owned(),
            event_type: template.event_type(),
        };
        let per_type = n / 6;
        for object in 0..OBJECTS_PER_PARTITION {
            let mut rows: Vec<DplRecord> = (object..per_type)
                .step_by(OBJECTS_PER_PARTITION as usize)
                .map(|i| DplRecord {
                    dpl_event: at(
                        template,
                        Timestamp::from_millis(hour.millis() + (i as i64 * 7919) % 3_600 * 1_000)
                            .unwrap(),
                    ),
                    event_id: EventId::derive(&format!("{t}-{i}"), template.event_type()),
                    stream_order: None,
                })
                .collect();
            sort_rows(&mut rows);
            let (first, last) = (object.to_string(), (object + 1).to_string());
            let key = layout
                .staging_key(
                    &partition,
                    &BatchRange {
                        shard_id: "shardId-000000000000",
                        first_sequence: &first,
                        last_sequence: &last,
                    },
                )
                .unwrap();
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut writer = StagingWriter::new(std::io::BufWriter::new(
                std::fs::File::create(path).unwrap(),
            ));
            for row in &rows {
                writer.write(row).unwrap();
            }
            writer.finish().unwrap();
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    dpl::export::alloc::map_parts_separately();
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let hour = Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../target/export-bench/{n}"));
    if !root.join("staging").exists() {
        eprintln!("generating {n} staged events under {}", root.display());
        generate(&root, n, hour);
    }
    let _ = std::fs::remove_dir_all(root.join("exports"));
    let _ = std::fs::remove_dir_all(root.join("manifests"));
    let mut options = ExportOptions::default();
    if let Some(jobs) = std::env::args().nth(2).and_then(|a| a.parse().ok()) {
        options.concurrency = jobs;
    }
    let jobs = options.concurrency;
    if let Some(ranges) = std::env::args().nth(3).and_then(|a| a.parse::<u64>().ok()) {
        split(&root, hour, options, ranges).await;
        return;
    }
    let exporter = Exporter::new(DirStore::new(&root), Layout::default(), options).unwrap();
    measure::start_peak();
    let started = Instant::now();
    let outcomes = exporter
        .run(
            &[hour],
            &Selection {
                oem_id: None,
                force: true,
                allow_shrink: false,
            },
            &mut (),
        )
        .await
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let (mut rows, mut bytes) = (0, 0);
    for outcome in outcomes {
        match outcome {
            dpl::export::PartitionOutcome::Exported(e) => {
                rows += e.csv.rows;
                bytes += e.csv.bytes;
            }
            other => panic!("{other:?}"),
        }
    }
    println!(
        "dpl export jobs={jobs}: {rows} rows, {:.1} MB CSV in {seconds:.2} s: {:.0} rows/s, {:.1} MB/s, VmHWM {} MiB, peak heap {:.1} MiB",
        bytes as f64 / 1e6,
        rows as f64 / seconds,
        bytes as f64 / 1e6 / seconds,
        measure::vm_hwm_kib().unwrap_or(0) / 1024,
        measure::peak_bytes() as f64 / (1024.0 * 1024.0)
    );
}

/// Exports the connection partition in `ranges` range tasks,
/// `options.concurrency` at a time, and prints rows/s.
async fn split(root: &std::path::Path, hour: Timestamp, mut options: ExportOptions, ranges: u64) {
    let partition = Partition {
        hour,
        oem_id: seed("connectivity").oem_id().to_owned(),
        event_type: dpl::EventType::Connectivity,
    };
    let listing = Exporter::new(DirStore::new(root), Layout::default(), options.clone())
        .unwrap()
        .staged_partition(&partition)
        .await
        .unwrap();
    let staged: u64 = listing.iter().map(|o| o.size).sum();
    options.split_bytes = if ranges <= 1 { 0 } else { staged / ranges + 1 };
    let jobs = options.concurrency;
    let exporter = Exporter::new(DirStore::new(root), Layout::default(), options).unwrap();
    assert_eq!(u64::from(exporter.ranges_for(&listing)), ranges.max(1));
    measure::start_peak();
    let started = Instant::now();
    let e = exporter
        .export(&partition, &listing, dpl::export::Reason::Forced)
        .await
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "dpl export {partition} ranges={ranges} jobs={jobs}: {} rows, staging {:.1} MB, {:.1} MB CSV in {} parts in {seconds:.2} s: {:.0} rows/s, VmHWM {} MiB, peak heap {:.1} MiB",
        e.csv.rows,
        staged as f64 / 1e6,
        e.csv.bytes as f64 / 1e6,
        e.parts,
        e.csv.rows as f64 / seconds,
        measure::vm_hwm_kib().unwrap_or(0) / 1024,
        measure::peak_bytes() as f64 / (1024.0 * 1024.0)
    );
}
