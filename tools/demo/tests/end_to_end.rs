//! The demo pipeline end to end on the AWS emulator (moto server), on a
//! small fleet: twin changes -> twin-events -> DPL stream -> event-store,
//! stream-kinesis, stream-eventhubs -> hourly-export; then the invariants:
//!
//! 1. every twin change produced exactly its events, per DSN in write
//!    order, and nothing else (writes that change nothing reported produce
//!    nothing);
//! 2. every event is in exactly one CSV row, in the file of its OEM, type
//!    and hour, and the files hold nothing else; every row's dates lie in
//!    its file's hour;
//! 3. each subscription received exactly its OEM's events that pass its
//!    filters, per DSN in stream order, as the customer payload;
//! 4. the report prints a record of the customer's stream as its bytes
//!    are, laid out in their own key order: the seed's decoded example's;
//! 5. the report ends with where the run left its files, and they are
//!    there: the export tree as on S3, the streams' records, the logs.
//!
//! Needs `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`, which `make
//! test` uses); fails, rather than skips, without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::types::Record;
use demo::customers::{self, customer_kinesis, role_arn};
use demo::fleet::Expected;
use demo::output::{self, OnDisk};
use demo::pipeline::{self, Options, Outcome, Quiet};
use demo::pretty::pretty;
use demo::stack::Stack;
use dpl::export::{ObjectStore, Partition};
use dpl::streams::Subscription;
use dpl::{CustomerPayload, DplRecord, EventType, Timestamp};

fn prefix() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("e2e-{}-{secs}", std::process::id())
}

/// A run as `demo` makes it, its files left under `root` (prepared, with
/// the functions' log).
async fn run(root: &Path) -> Outcome {
    let options = Options {
        devices: 8,
        hours: 1,
        seed: 2020,
        prefix: prefix(),
    };
    output::log_functions(root).unwrap();
    pipeline::run(&options, &Quiet)
        .await
        .expect("the demo pipeline runs")
}

/// The customer payloads `subscription` must receive, by DSN, in order.
fn expected_deliveries(
    records: &[DplRecord],
    subscription: &Subscription,
) -> BTreeMap<String, Vec<String>> {
    let mut by_dsn: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in records {
        let event = &record.dpl_event;
        if event.oem_id() == subscription.oem_id && subscription.filters.matches(event) {
            by_dsn
                .entry(event.dsn().to_owned())
                .or_default()
                .push(String::from_utf8(CustomerPayload(event).to_json()).unwrap());
        }
    }
    by_dsn
}

/// Runs `test` on a runtime whose threads have the main thread's stack
/// size: the unoptimized SDK and handler futures outgrow the 2 MiB of
/// test threads.
fn with_big_stacks<F: std::future::Future<Output = ()> + 'static>(test: fn() -> F) {
    const STACK: usize = 16 * 1024 * 1024;
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(STACK)
                .enable_all()
                .build()
                .unwrap()
                .block_on(test())
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn every_change_reaches_the_stream_the_export_and_each_subscription_exactly_once() {
    with_big_stacks(every_change_reaches_everything_once);
}

async fn every_change_reaches_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = output::prepare(&dir.path().join("demo")).unwrap();
    let outcome = run(&root).await;
    let records = &outcome.dpl_records;
    assert!(
        outcome.fleet.expected_count() > 20,
        "a fleet that does something"
    );
    for (name, stats) in &outcome.mappings {
        assert_eq!(stats.given_up, 0, "{name}: {stats:?}");
    }
    assert_eq!(outcome.dead_letters, 0);

    // 1. The DPL stream holds exactly the events of the twin changes.
    let mut observed: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    for record in records {
        let event = Expected::of(&record.dpl_event);
        assert_eq!(record.partition_key(), event.dsn);
        observed.entry(event.dsn.clone()).or_default().push(event);
    }
    assert_eq!(observed, outcome.fleet.expected_by_dsn());
    let ids: std::collections::BTreeSet<_> = records.iter().map(|r| r.event_id).collect();
    assert_eq!(ids.len(), records.len(), "event ids are unique");

    // 2. One CSV row per event, in the file of its OEM, type and hour.
    let mut expected_files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in records {
        let event = &record.dpl_event;
        let partition = Partition {
            hour: event.time().hour_start(),
            oem_id: event.oem_id().to_owned(),
            event_type: event.event_type(),
        };
        expected_files
            .entry(outcome.layout.export_key(&partition))
            .or_default()
            .push(dpl::csv::row(event));
    }
    let store = outcome.store();
    let listed = store
        .list(&format!("{}/", outcome.layout.exports))
        .await
        .unwrap();
    // Beside the CSV files, one customer manifest each (docs/export.md).
    let every_key: Vec<String> = listed.iter().map(|o| o.key.clone()).collect();
    let (csv_files, others): (Vec<_>, Vec<_>) =
        listed.into_iter().partition(|o| o.key.ends_with(".csv"));
    assert_eq!(others.len(), csv_files.len());
    assert!(others.iter().all(|o| o.key.contains("/_manifests/")));
    let mut actual_files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for object in csv_files {
        let bytes = store.get(&object.key).await.unwrap().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let rows = text.split_inclusive('\n').map(str::to_owned).collect();
        actual_files.insert(object.key, rows);
    }
    for rows in expected_files.values_mut().chain(actual_files.values_mut()) {
        rows.sort();
    }
    assert_eq!(
        actual_files.keys().collect::<Vec<_>>(),
        expected_files.keys().collect::<Vec<_>>()
    );
    assert_eq!(actual_files, expected_files);
    for (key, rows) in &actual_files {
        every_row_is_dated_in_its_hour(key, rows);
    }

    // 3. Each subscription: exactly its filtered events, per DSN in order.
    let customers = &outcome.customers;
    let client = customer_kinesis(&outcome.aws, &role_arn()).await.unwrap();
    let customer_records: Vec<Record> = customers::read_stream(&client, &customers.stream_name)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, record)| record)
        .collect();
    let mut kinesis: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in &customer_records {
        kinesis
            .entry(record.partition_key().unwrap().to_owned())
            .or_default()
            .push(String::from_utf8(record.data().as_ref().to_vec()).unwrap());
    }
    let expected = expected_deliveries(records, &customers.kinesis);
    assert!(!expected.is_empty());
    assert_eq!(kinesis, expected);

    let mut hub: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in customers.hubs.messages() {
        hub.entry(message.partition_key.clone().unwrap())
            .or_default()
            .push(message.body.clone());
    }
    let expected = expected_deliveries(records, &customers.eventhubs);
    assert!(!expected.is_empty());
    assert_eq!(hub, expected);

    // 4. The customer record in the report.
    // scripts/with-moto.sh names the emulator's log.
    let moto_log = std::env::var_os("MOTO_LOG").map(PathBuf::from);
    let on_disk = output::save(&outcome, &root, moto_log.as_deref())
        .await
        .unwrap();
    let report = demo::report::render(&outcome, &on_disk).await.unwrap();
    the_record_is_printed_as_on_the_stream(&report, &customer_records);

    // 5. What the run left on disk, named at the end of the report.
    the_report_ends_with_the_files_left(&report, &on_disk);
    let exported: BTreeMap<String, Vec<u8>> = files_under(&root.join("exports"))
        .into_iter()
        .map(|path| {
            let key = path.strip_prefix(&root).unwrap().display().to_string();
            (key, std::fs::read(&path).unwrap())
        })
        .collect();
    let mut on_s3 = BTreeMap::new();
    for key in &every_key {
        on_s3.insert(key.clone(), store.get(key).await.unwrap().unwrap());
    }
    assert_eq!(exported, on_s3, "the export tree on disk is the one on S3");
    let hub_bodies: Vec<Vec<u8>> = customers
        .hubs
        .messages()
        .into_iter()
        .map(|m| m.body.into_bytes())
        .collect();
    let kinesis_data: Vec<Vec<u8>> = customer_records
        .iter()
        .map(|r| r.data().as_ref().to_vec())
        .collect();
    for (name, records) in [
        ("streams/dpl.jsonl", &outcome.dpl_data),
        ("streams/customer-kinesis.jsonl", &kinesis_data),
        ("streams/customer-eventhub.jsonl", &hub_bodies),
    ] {
        let text = std::fs::read(root.join(name)).unwrap();
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        assert_eq!(lines.last(), Some(&&b""[..]), "{name} ends its last line");
        assert_eq!(&lines[..lines.len() - 1], records, "{name}");
        assert!(!records.is_empty(), "{name}");
    }
    let log = std::fs::read_to_string(root.join(output::FUNCTIONS_LOG)).unwrap();
    assert!(
        log.contains("INFO"),
        "the functions logged to {}",
        output::FUNCTIONS_LOG
    );
}

/// The report's last section names the export tree, every file the run
/// left, and one CSV file to open; each is there.
fn the_report_ends_with_the_files_left(report: &str, on_disk: &OnDisk) {
    let last = report.rsplit("\n== ").next().unwrap();
    assert!(
        last.starts_with("Left on disk until the next run"),
        "{last}"
    );
    let named: Vec<PathBuf> = last
        .lines()
        .skip(1)
        .filter_map(|line| {
            let line = line.trim_start();
            let path = line.strip_prefix("e.g. less ").unwrap_or(line);
            path.split("  ").next().map(PathBuf::from)
        })
        .collect();
    let mut expected = vec![on_disk.exports.clone()];
    expected.extend(on_disk.files.iter().map(|f| f.path.clone()));
    expected.push(on_disk.csv_files[0].clone());
    assert_eq!(named, expected);
    for path in &named {
        assert!(path.exists(), "{} is not there", path.display());
    }
    assert!(named[1..].iter().all(|p| p.starts_with(&on_disk.root)));
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

const HOUR_MS: i64 = 3_600_000;
/// The stream stamps a record with the second of its write, floored; the
/// item's times were taken before the write, also floored to the second: a
/// row's date can be the last second of the hour before its event's.
const STAMP_SLACK_MS: i64 = 1_000;

/// Every date of every row of the file at `key` (`.../{type}/{hour}/...`)
/// lies in the file's hour, or in the one second before it (at an hour's
/// edge, see [`STAMP_SLACK_MS`]): the fleet's times agree with the
/// stream's clock. In a registration row, the date of the device's other
/// state (an unregistration's `registered_at`, a re-registration's
/// `unregistered_at`) tells of an earlier change: it is only never later
/// than the row's own date.
fn every_row_is_dated_in_its_hour(key: &str, rows: &[String]) {
    let folders: Vec<&str> = key.rsplit('/').collect();
    let (hour, event_type) = (folders[1], folders[2]);
    let hour_start = Timestamp::parse(&format!("{}T{}Z", &hour[..10], &hour[11..]))
        .unwrap_or_else(|e| panic!("{key}: hour folder {hour}: {e}"));
    let in_hour = (hour_start.millis() - STAMP_SLACK_MS)..(hour_start.millis() + HOUR_MS);
    for row in rows {
        let cells: Vec<String> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(row.as_bytes())
            .records()
            .next()
            .unwrap()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let mut dates: Vec<Option<Timestamp>> = cells.iter().map(|c| java_date(c)).collect();
        if event_type == dpl::csv::export_name(EventType::Registration) {
            // unregistered_at, registered_at; registered is column 4.
            let (own, other) = if cells[4] == "true" { (7, 6) } else { (6, 7) };
            if let (Some(own), Some(other)) = (dates[own], dates[other].take()) {
                assert!(other <= own, "{key}: {row}");
            }
        }
        let dates: Vec<Timestamp> = dates.into_iter().flatten().collect();
        assert!(!dates.is_empty(), "{key}: a row without a date: {row}");
        for date in dates {
            assert!(
                in_hour.contains(&date.millis()),
                "{key}: {date} is outside the hour {hour}: {row}"
            );
        }
    }
}

/// A CSV date cell (`Tue Dec 01 09:04:36 UTC 2026`), or `None`.
fn java_date(cell: &str) -> Option<Timestamp> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let [_, month, day, time, "UTC", year] = cell.split(' ').collect::<Vec<_>>()[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    Timestamp::parse(&format!("{year}-{month:02}-{day}T{time}Z")).ok()
}

/// The report's customer record is the bytes of the record it names, laid
/// out, and its keys are the seed's decoded example's, in its order.
fn the_record_is_printed_as_on_the_stream(report: &str, customer_records: &[Record]) {
    let (sequence_number, printed) = printed_record(report);
    let record = customer_records
        .iter()
        .find(|r| r.sequence_number() == sequence_number)
        .unwrap_or_else(|| panic!("the report names record {sequence_number} of the stream"));
    let data = std::str::from_utf8(record.data().as_ref()).unwrap();
    assert_eq!(printed, pretty(data).unwrap());
    let seed = std::fs::read_to_string(
        Stack::repo_root().join("tests/fixtures/seed/kinesis_decoded.json"),
    )
    .unwrap();
    // Two levels: the datapoint's own `metadata` holds what the app sent.
    let two_levels = |json: &str| {
        keys(json)
            .into_iter()
            .filter(|(depth, _)| *depth <= 2)
            .map(|(depth, key)| format!("{depth} {key}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(two_levels(&printed), two_levels(&seed));
}

/// The record the report decodes: its sequence number and its JSON.
fn printed_record(report: &str) -> (String, String) {
    let section = report
        .split("\n== ")
        .find(|s| s.starts_with("One record of Acme's stream"))
        .expect("the report shows a customer record");
    let sequence_number = section
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("\"SequenceNumber\": \"")?
                .strip_suffix("\",")
        })
        .expect("the record's sequence number");
    let (_, json) = section
        .split_once("Data, base64-decoded:\n")
        .expect("the decoded data");
    let json: Vec<&str> = json
        .trim_end()
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect();
    (sequence_number.to_owned(), json.join("\n"))
}

/// The keys of pretty-printed JSON (two spaces a level) with their depth,
/// in order.
fn keys(json: &str) -> Vec<(usize, &str)> {
    json.lines()
        .filter_map(|line| {
            let text = line.trim_start();
            let key = text.strip_prefix('"')?.split_once("\": ")?.0;
            Some(((line.len() - text.len()) / 2, key))
        })
        .collect()
}
