//! `dplctl status` and `dplctl streams replay` end to end on the AWS
//! emulator (moto server): the built binary against a fresh subscriptions
//! table, export bucket and Kinesis stream.
//!
//! Needs `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`); fails, rather
//! than skips, without it.

use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use dpl::export::{BatchRange, Layout, Manifest, Partition};
use dpl::position::{Position, SequenceNumber};
use dpl::streams::cursor::Cursor;
use dpl::streams::dead_letter::DeadLetter;
use dpl::streams::delivery::Delivery;
use dpl::streams::state::{DeliveryState, DynamoState};
use dpl::{DplRecord, EventType, Timestamp};
use serde_json::Value;

mod common;
use common::{create_state_table, create_table, kinesis_eu, nanos, sdk, stream_records, ROLE_ARN};

const HOUR_MS: i64 = 3_600_000;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn dplctl(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_dplctl"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("SUBSCRIPTIONS_TABLE")
        .env_remove("BUCKET")
        .output()
        .expect("dplctl runs");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn ok(args: &[&str]) -> String {
    let run = dplctl(args);
    assert!(run.ok, "{args:?} failed: {}{}", run.stdout, run.stderr);
    run.stdout
}

fn json(args: &[&str]) -> Value {
    let stdout = ok(args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn s3(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
}

/// Creates a Kinesis subscription of `oem` with the CLI; returns its id.
fn create_subscription(table: &str, oem: &str, stream: &str, extra: &[&str]) -> String {
    let arn = format!("arn:aws:kinesis:eu-west-1:123456789012:stream/{stream}");
    let mut args = vec![
        "streams",
        "--table",
        table,
        "create",
        "--oem",
        oem,
        "--name",
        stream,
        "--transport",
        "kinesis",
        "--stream-arn",
        &arn,
        "--role-arn",
        ROLE_ARN,
        "--external-id",
        "dpl-test",
        "--json",
    ];
    args.extend_from_slice(extra);
    json(&args)["id"].as_str().unwrap().to_owned()
}

fn manifest(oem: &str, event_type: &str, hour: Timestamp, rows: u64, bytes: u64) -> Manifest {
    Manifest {
        format_version: 1,
        oem_id: oem.into(),
        event_type: event_type.into(),
        hour: hour.folder_name().to_string(),
        export_key: format!("exports/{oem}/{event_type}/{}/x.csv", hour.folder_name()),
        export_etag: "\"e\"".into(),
        rows,
        bytes,
        sha256: "0".repeat(64),
        duplicates_dropped: 0,
        staging: Vec::new(),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn status_shows_subscription_health_and_manifest_counts_per_hour() {
    use dpl::streams::store::{DynamoSubscriptions, SubscriptionStore};

    let aws = sdk().await;
    let n = nanos();
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let table = format!("status-{n}");
    let state_table = format!("status-state-{n}");
    create_table(&dynamo, &table).await;
    create_state_table(&dynamo, &state_table).await;
    let bucket = format!("status-{n}");
    let s3 = s3(&aws);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();

    let (oem_a, oem_b) = (format!("a{n}"), format!("b{n}"));
    let healthy = create_subscription(&table, &oem_a, "healthy", &[]);
    let failing = create_subscription(&table, &oem_b, "failing", &["--disabled"]);
    let store = DynamoSubscriptions::new(dynamo.clone(), &table);
    let now = Timestamp::now();
    let five_min_ago = Timestamp::from_millis(now.millis() - 300_000).unwrap();
    store
        .record_success(&healthy.parse().unwrap(), five_min_ago)
        .await
        .unwrap();
    let failing_id = failing.parse().unwrap();
    store
        .record_error(&failing_id, five_min_ago, "AccessDenied: not allowed")
        .await
        .unwrap();
    // The failing one is behind on a shard since five minutes, with dead
    // letters: its delivery state, read from the state table.
    let state = DynamoState::new(dynamo, &state_table);
    let seq = SequenceNumber::parse("7").unwrap();
    let cursor = Cursor::behind(
        failing_id.clone(),
        "shardId-000000000000",
        &seq,
        five_min_ago,
        &seq,
        now,
    );
    state.create(&cursor).await.unwrap();
    for n in 0..7u64 {
        let record =
            dpl::examples::seed_record(EventType::Location, &oem_b, "m", "AC000W000000009", "p", n);
        let delivery = Delivery::new(
            Position::new("shardId-000000000000", &n.to_string()).unwrap(),
            now,
            &record,
        );
        state
            .add_dead_letters(&failing_id, &[DeadLetter::new(&delivery, "413", now)])
            .await
            .unwrap();
    }

    // Manifests: the last two ended hours, and one 30 hours ago.
    let hour =
        |back: i64| Timestamp::from_millis(now.hour_start().millis() - back * HOUR_MS).unwrap();
    let layout = Layout::default();
    let manifests = [
        manifest(&oem_a, "datapoint", hour(1), 10, 1000),
        manifest(&oem_a, "location", hour(1), 2, 100),
        manifest(&oem_b, "datapoint", hour(1), 5, 500),
        manifest(&oem_a, "connection", hour(2), 3, 30),
        manifest(&oem_a, "datapoint", hour(30), 99, 9999),
    ];
    for m in &manifests {
        let event_type = EventType::ALL
            .into_iter()
            .find(|t| dpl::csv::export_name(*t) == m.event_type)
            .unwrap();
        let key = layout.manifest_key(&Partition {
            hour: Timestamp::parse(&format!("{}T{}:00:00Z", &m.hour[..10], &m.hour[11..13]))
                .unwrap(),
            oem_id: m.oem_id.clone(),
            event_type,
        });
        put(&s3, &bucket, &key, m.to_json()).await;
    }

    let report = json(&[
        "status",
        "--table",
        &table,
        "--state-table",
        &state_table,
        "--bucket",
        &bucket,
        "--hours",
        "3",
        "--json",
    ]);
    let subscriptions = report["subscriptions"].as_array().unwrap();
    assert_eq!(subscriptions.len(), 2, "{report:#}");
    let by_id = |id: &str| {
        subscriptions
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {report:#}"))
    };
    let a = by_id(&healthy);
    assert_eq!(a["state"], "enabled");
    assert_eq!(
        (&a["delivery"], &a["lag_seconds"]),
        (&Value::from("live"), &Value::Null)
    );
    assert!(a["last_delivery"].is_string(), "{a}");
    assert_eq!(a["dead_letters"], 0);
    assert_eq!(a["last_error"], Value::Null);
    let b = by_id(&failing);
    assert_eq!(b["state"], "disabled");
    assert_eq!(b["last_delivery"], Value::Null);
    assert_eq!(b["behind_shards"], 1);
    let lag = b["lag_seconds"].as_i64().unwrap();
    assert!((300..400).contains(&lag), "{b}");
    assert_eq!(b["dead_letters"], 7);
    assert_eq!(b["last_error"], "AccessDenied: not allowed");

    let exports = report["exports"].as_array().unwrap();
    let counts: Vec<(String, u64, u64, u64)> = exports
        .iter()
        .map(|h| {
            (
                h["hour"].as_str().unwrap().to_owned(),
                h["files"].as_u64().unwrap(),
                h["rows"].as_u64().unwrap(),
                h["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    let name = |back| hour(back).folder_name().to_string();
    assert_eq!(
        counts,
        [
            (name(1), 3, 17, 1600),
            (name(2), 1, 3, 30),
            (name(3), 0, 0, 0)
        ]
    );

    // One OEM, as a table.
    let text = ok(&[
        "status",
        "--table",
        &table,
        "--state-table",
        &state_table,
        "--bucket",
        &bucket,
        "--hours",
        "2",
        "--oem",
        &oem_b,
    ]);
    assert!(
        text.contains(&failing) && !text.contains(&healthy),
        "{text}"
    );
    let hour_line = text
        .lines()
        .find(|l| l.starts_with(&name(1)))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = hour_line.split_whitespace().collect();
    assert_eq!(cells, [name(1).as_str(), "1", "5", "500"], "{text}");
    assert!(
        text.contains("DELIVERY") && text.contains("behind on 1 shard for 5m "),
        "{text}"
    );

    let run = dplctl(&["status", "--table", &table, "--state-table", &state_table]);
    assert!(!run.ok && run.stderr.contains("pass --bucket or set BUCKET"));
}

/// A staged record of `oem`: the seed event of `event_type`, moved to
/// `time`, with an id from `n`.
fn record(event_type: EventType, oem: &str, dsn: &str, time: Timestamp, n: u64) -> DplRecord {
    let seed = dpl::examples::seed_record(event_type, oem, "ledevb", dsn, "temp", n);
    let mut value: Value = serde_json::from_slice(&seed.to_json()).unwrap();
    value["dpl_event"]["timestamp"] = Value::from(time.iso_seconds().to_string());
    let moved = DplRecord::from_json(&serde_json::to_vec(&value).unwrap()).unwrap();
    assert_eq!(moved.dpl_event.time(), time);
    moved
}

#[tokio::test(flavor = "current_thread")]
async fn replay_sends_exactly_the_matching_staged_events_in_order() {
    let aws = sdk().await;
    let n = nanos();
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let table = format!("replay-{n}");
    create_table(&dynamo, &table).await;
    let bucket = format!("replay-{n}");
    let s3 = s3(&aws);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let stream = format!("replay-{n}");
    kinesis_eu(&aws)
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .unwrap();

    let (oem_a, oem_b) = ("oemaaaa1", "oembbbb2");
    let h = |text: &str| Timestamp::parse(text).unwrap();
    // Three hours of events of both OEMs, four types; replay the first two.
    let times = [
        "2020-08-28T09:00:05Z",
        "2020-08-28T09:10:00Z",
        "2020-08-28T09:59:50Z",
        "2020-08-28T10:00:00Z",
        "2020-08-28T10:30:00Z",
        "2020-08-28T11:00:01Z",
    ];
    let types = [
        EventType::Datapoint,
        EventType::Location,
        EventType::Connectivity,
        EventType::DatapointAck,
    ];
    let mut all = Vec::new();
    let mut id = 0;
    for time in times {
        for event_type in types {
            for oem in [oem_a, oem_b] {
                for dsn in ["AC000W000000001", "AC000W000000002"] {
                    id += 1;
                    // Stagger by type so that a time is never shared.
                    let millis = h(time).millis()
                        + types.iter().position(|x| *x == event_type).unwrap() as i64 * 1000;
                    all.push(record(
                        event_type,
                        oem,
                        dsn,
                        Timestamp::from_millis(millis).unwrap(),
                        id,
                    ));
                }
            }
        }
    }
    // Stage per (hour, OEM, type) in two objects (two batches of two
    // shards), every other record in each, plus one record in both: the
    // merge must interleave them and drop the copy.
    let layout = Layout::default();
    let mut partitions: std::collections::BTreeMap<Partition, Vec<DplRecord>> = Default::default();
    for r in &all {
        partitions
            .entry(Partition {
                hour: r.dpl_event.time().hour_start(),
                oem_id: r.dpl_event.oem_id().to_owned(),
                event_type: r.dpl_event.event_type(),
            })
            .or_default()
            .push(r.clone());
    }
    for (partition, mut records) in partitions {
        dpl::export::staging::sort_rows(&mut records);
        let mut first: Vec<DplRecord> = records.iter().step_by(2).cloned().collect();
        let second: Vec<DplRecord> = records.iter().skip(1).step_by(2).cloned().collect();
        first.push(second[0].clone());
        dpl::export::staging::sort_rows(&mut first);
        for (shard, rows) in [
            ("shardId-000000000000", first),
            ("shardId-000000000001", second),
        ] {
            let key = layout
                .staging_key(
                    &partition,
                    &BatchRange {
                        shard_id: shard,
                        first_sequence: "1",
                        last_sequence: "9",
                    },
                )
                .unwrap();
            put(&s3, &bucket, &key, dpl::export::staging::encode(&rows)).await;
        }
    }

    let sub = create_subscription(
        &table,
        oem_a,
        &stream,
        &[
            "--event-types",
            "datapoint,location,connectivity",
            "--dsns",
            "AC000W000000001",
        ],
    );
    let expected: Vec<&DplRecord> = {
        let mut matching: Vec<&DplRecord> = all
            .iter()
            .filter(|r| {
                let e = &r.dpl_event;
                e.oem_id() == oem_a
                    && e.event_type() != EventType::DatapointAck
                    && r.partition_key() == "AC000W000000001"
                    && e.time() < h("2020-08-28T11:00:00Z")
            })
            .collect();
        matching.sort_by_key(|r| r.sort_key());
        matching
    };
    assert_eq!(expected.len(), 5 * 3);
    let replay = |extra: &[&str]| {
        let mut args = vec![
            "streams",
            "--table",
            &table,
            "replay",
            "--subscription",
            &sub,
            "--from",
            "2020-08-28T09",
            "--to",
            "2020-08-28T10",
            "--bucket",
            &bucket,
        ];
        args.extend_from_slice(extra);
        ok(&args)
    };

    let dry = replay(&["--dry-run"]);
    assert!(
        dry.contains("15 would be sent (dry run: nothing sent)"),
        "{dry}"
    );
    for (event_type, count) in [("connectivity", 5), ("datapoint", 5), ("location", 5)] {
        assert!(
            dry.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == [event_type, &count.to_string()]),
            "{event_type} {count} not in {dry}"
        );
    }
    assert!(!dry.contains("datapointack"), "{dry}");
    assert!(
        stream_records(&aws, &stream).await.is_empty(),
        "a dry run sent"
    );

    let out = replay(&[]);
    assert!(out.contains("read, 15 sent"), "{out}");
    let records = stream_records(&aws, &stream).await;
    let want: Vec<Vec<u8>> = expected
        .iter()
        .map(|r| Delivery::new(Position::new("t", "1").unwrap(), Timestamp::now(), r).payload)
        .collect();
    assert_eq!(records.len(), want.len());
    assert!(
        records == want,
        "records differ from the matching events in order"
    );

    // Refusals: a backwards range, a disabled subscription.
    let run = dplctl(&[
        "streams",
        "--table",
        &table,
        "replay",
        "--subscription",
        &sub,
        "--from",
        "2020-08-28T10",
        "--to",
        "2020-08-28T09",
        "--bucket",
        &bucket,
    ]);
    assert!(
        !run.ok && run.stderr.contains("--to 2020-08-28T09 is before --from"),
        "{}",
        run.stderr
    );
    ok(&["streams", "--table", &table, "disable", &sub]);
    let run = dplctl(&[
        "streams",
        "--table",
        &table,
        "replay",
        "--subscription",
        &sub,
        "--from",
        "2020-08-28T09",
        "--to",
        "2020-08-28T09",
        "--bucket",
        &bucket,
    ]);
    assert!(
        !run.ok && run.stderr.contains("is disabled"),
        "{}",
        run.stderr
    );
}
