//! Hourly export benchmark (run by hand, release build):
//!   cargo run --release -p dplctl --example export_bench -- 1000000 [JOBS [RANGES]|profile]
//! (JOBS: partitions exported at once, or with RANGES the range tasks run
//! at once; default one per CPU). With RANGES, only the connection
//! partition is exported, split into RANGES time-range tasks (the split
//! export of `docs/export.md`, "Partitions of any size"; 1: in one piece);
//! `profile` times one core's steps instead. Generates N staged events of
//! the six types (the seed's examples with varied devices, ids, users,
//! values, texts and times, and stream orders) once under
//! target/export-bench/N/, then exports the hour through the same driver as
//! the Lambda (local directory store)
//! and prints rows/s, MB/s, the process's peak memory (VmHWM) and the peak
//! of live heap bytes (a counting allocator), which tells the memory the
//! export holds from what the allocator keeps mapped.

use std::path::PathBuf;
use std::time::Instant;

use dpl::export::staging::{sort_rows, StagingWriter};
use dpl::export::{BatchRange, DirStore, ExportOptions, Exporter, Layout, Partition, Selection};
use dpl::measure::{self, Counting};
use dpl::record::{StreamOrder, StreamSequence};
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

/// Devices of the generated fleet.
const DEVICES: u64 = 100_000;
const PROPERTIES: [&str; 5] = [
    "Blue_LED",
    "Green_LED",
    "fan_speed",
    "temp_set",
    "status_msg",
];
const MODELS: [&str; 3] = ["ledevb", "linuxevb", "airpurifier"];

/// Event `i` of `template`'s type: its own device, ids, user, values and
/// texts (not the seed's example cycled: values vary as a fleet's do, so
/// compression, parsing and encoding see realistic data).
fn vary(template: &DeviceEvent, i: u64) -> DeviceEvent {
    fn walk(value: &mut serde_json::Value, i: u64) {
        use serde_json::Value;
        let Value::Object(map) = value else { return };
        for (name, field) in map.iter_mut() {
            let uuid = |salt: u64| {
                let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
                format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    x >> 32,
                    x & 0xffff,
                    (x >> 16) & 0xfff,
                    (x >> 40) & 0xfff,
                    x.rotate_left(17) & 0xffff_ffff_ffff
                )
            };
            match (name.as_str(), &*field) {
                ("dsn", _) => *field = Value::from(format!("AC000W{:09}", i % DEVICES)),
                ("oem_model", _) => *field = Value::from(MODELS[(i % 3) as usize]),
                ("property_name" | "display_name", _) => {
                    *field = Value::from(PROPERTIES[(i % 5) as usize])
                }
                ("id", _) => *field = Value::from(uuid(1)),
                ("ack_id", _) => *field = Value::from(uuid(2)),
                ("user_uuid", Value::String(_)) => *field = Value::from(uuid(3)),
                ("status", Value::String(_)) => {
                    *field = Value::from(if i.is_multiple_of(2) {
                        "Online"
                    } else {
                        "Offline"
                    })
                }
                ("value", Value::String(_)) => *field = Value::from((i % 2).to_string()),
                ("value", Value::Number(_)) => *field = Value::from(i % 2),
                ("ack_status", _) => {
                    *field = Value::from(if i.is_multiple_of(7) { 400 } else { 200 })
                }
                ("ack_message", _) => *field = Value::from(i % 5),
                ("ip", _) => {
                    *field = Value::from(format!("10.{}.{}.{}", i % 250, (i / 250) % 250, i % 199))
                }
                ("lat", _) => {
                    *field = Value::from(format!("{:>10.6}", (i % 180_000) as f64 / 1_000.0 - 90.0))
                }
                ("long", _) => {
                    *field = Value::from(format!("{:.6}", (i % 360_000) as f64 / 1_000.0 - 180.0))
                }
                ("registration_type", _) => {
                    *field = Value::from(["Same-LAN", "AP-Mode", "Dsn"][(i % 3) as usize])
                }
                _ => walk(field, i),
            }
        }
    }
    let mut value = serde_json::to_value(template).unwrap();
    walk(&mut value, i);
    serde_json::from_value(value).expect("a varied event is an event")
}

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
                        &vary(template, i),
                        Timestamp::from_millis(hour.millis() + (i as i64 * 7919) % 3_600 * 1_000)
                            .unwrap(),
                    ),
                    event_id: EventId::derive(&format!("{t}-{i}"), template.event_type()),
                    // A twin stream record's sequence number (21 to 40 digits).
                    stream_order: Some(StreamOrder {
                        sequence_number: StreamSequence::from(
                            44_215_845_000_000_000_017_450_439_091_u128 + u128::from(i),
                        ),
                        index: 0,
                    }),
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

/// Rows of `rows`, each read whole (an error stops the bench).
fn rows_read<T, E: std::fmt::Debug>(rows: impl Iterator<Item = Result<T, E>>) -> u64 {
    rows.map(|row| {
        row.unwrap();
        1
    })
    .sum()
}

/// Where one core's time goes on the whole hour: each stage run alone over
/// every staging file, single-threaded, each adding one step to the one
/// before (so a stage's cost is its time minus the previous one's).
fn profile(root: &std::path::Path) {
    use std::io::Read;

    use dpl::export::encode::CsvParts;
    use dpl::export::local::open_all;
    use dpl::export::merge::Merge;
    use dpl::export::staging::gzip_reader;

    let mut partitions: Vec<Vec<PathBuf>> = Vec::new();
    for oem in std::fs::read_dir(root.join("staging/2020-08-28-09")).unwrap() {
        for kind in std::fs::read_dir(oem.unwrap().path()).unwrap() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(kind.unwrap().path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            partitions.push(files);
        }
    }
    let files: Vec<&PathBuf> = partitions.iter().flatten().collect();
    let stage = |name: &str, run: &dyn Fn() -> u64, previous: f64| -> f64 {
        let started = Instant::now();
        let count = run();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "profile {name:<32} {seconds:>7.2} s cumulative, {:>6.2} s for this step ({count})",
            seconds - previous
        );
        seconds
    };
    let read = stage(
        "read files",
        &|| {
            files
                .iter()
                .map(|f| std::fs::read(f).unwrap().len() as u64)
                .sum()
        },
        0.0,
    );
    let gunzip = stage(
        "+ gunzip",
        &|| {
            files
                .iter()
                .map(|f| {
                    let mut out = Vec::new();
                    flate2::read::MultiGzDecoder::new(std::fs::File::open(f).unwrap())
                        .read_to_end(&mut out)
                        .unwrap();
                    out.len() as u64
                })
                .sum()
        },
        read,
    );
    let parse = stage(
        "+ parse JSON records",
        &|| {
            files
                .iter()
                .map(|f| {
                    rows_read(gzip_reader(std::io::BufReader::new(
                        std::fs::File::open(f).unwrap(),
                    )))
                })
                .sum()
        },
        gunzip,
    );
    let merge = stage(
        "+ k-way merge per partition",
        &|| {
            partitions
                .iter()
                .map(|files| rows_read(Merge::new(open_all(files).unwrap())))
                .sum()
        },
        parse,
    );
    stage(
        "+ CSV encode and checksum",
        &|| {
            partitions
                .iter()
                .map(|files| {
                    let rows = Merge::new(open_all(files).unwrap());
                    let mut csv = CsvParts::new(rows, 16 * 1024 * 1024);
                    let mut bytes = 0;
                    while let Some(part) = csv.next_part().unwrap() {
                        bytes += part.len() as u64;
                    }
                    bytes
                })
                .sum()
        },
        merge,
    );
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
    if std::env::args().nth(2).as_deref() == Some("profile") {
        return profile(&root);
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
    let cpu_before = measure::cpu_seconds();
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
    let cpu = measure::cpu_seconds() - cpu_before;
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
        "dpl export jobs={jobs}: {rows} rows, {:.1} MB CSV in {seconds:.2} s ({cpu:.2} CPU s, {:.0} rows per CPU s): {:.0} rows/s, {:.1} MB/s, VmHWM {} MiB, peak heap {:.1} MiB",
        bytes as f64 / 1e6,
        rows as f64 / cpu,
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
