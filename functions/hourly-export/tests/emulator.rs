//! End to end on the AWS emulator (moto server): DPL records -> event-store
//! handler -> staging objects in S3 -> hourly-export handler -> CSV files
//! and manifests, read back through the real S3 client; and the fan-out:
//! scheduled run -> export tasks on an SQS queue -> the same handler fed
//! those messages as an SQS event.
//!
//! Needs `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`, which `make
//! test` uses); fails, rather than skips, without it.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use base64::Engine;
use dpl::event::{Connection, DeviceMetadata};
use dpl::examples::NIL_UUID;
use dpl::export::s3::S3Store;
use dpl::export::{Layout, Manifest, ObjectStore, Partition, Selection};
use dpl::{DeviceEvent, DplRecord, EventId, EventType, Timestamp};
use hourly_export::handler::Summary;
use hourly_export::request::{HourRequest, Request};
use hourly_export::sqs::SqsTaskQueue;
use serde_json::json;

const MIB: usize = 1024 * 1024;

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

async fn aws() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at a local moto server (got {endpoint:?}): \
         run these tests through `make test` or `scripts/with-moto.sh cargo test`"
    );
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

async fn s3() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&aws().await)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn unique(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("export-{test}-{}-{nanos}", std::process::id()).to_lowercase()
}

/// A fresh bucket, the two handlers on it, and helpers to read it back;
/// with a fresh task queue when the stack fans out.
struct Stack {
    client: aws_sdk_s3::Client,
    bucket: String,
    store: event_store::Handler<S3Store>,
    export: hourly_export::Handler<S3Store, SqsTaskQueue>,
    layout: Layout,
    next_sequence: u64,
    sqs: aws_sdk_sqs::Client,
    queue_url: Option<String>,
}

impl Stack {
    async fn new(test: &str, part_size_mib: usize) -> Self {
        Self::build(test, part_size_mib, false).await
    }

    /// A stack whose scheduled runs queue export tasks.
    async fn fanning_out(test: &str) -> Self {
        Self::build(test, 5, true).await
    }

    async fn build(test: &str, part_size_mib: usize, fan_out: bool) -> Self {
        Self::build_with(test, part_size_mib, fan_out, &[]).await
    }

    async fn build_with(
        test: &str,
        part_size_mib: usize,
        fan_out: bool,
        extra: &[(&str, String)],
    ) -> Self {
        let client = s3().await;
        let sqs = aws_sdk_sqs::Client::new(&aws().await);
        let bucket: String = unique(test).chars().take(63).collect();
        client.create_bucket().bucket(&bucket).send().await.unwrap();
        let mut vars = vec![
            ("BUCKET".to_owned(), bucket.clone()),
            ("EXPORT_PART_SIZE_MIB".to_owned(), part_size_mib.to_string()),
            ("EXPORT_GRACE_SECONDS".to_owned(), "600".to_owned()),
            ("EXPORT_LOOKBACK_HOURS".to_owned(), "3".to_owned()),
        ];
        vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        if fan_out {
            let queue: String = unique(&format!("tasks-{test}")).chars().take(80).collect();
            let url = sqs
                .create_queue()
                .queue_name(queue)
                .send()
                .await
                .expect("create the task queue")
                .queue_url
                .unwrap();
            vars.push(("EXPORT_TASK_QUEUE_URL".to_owned(), url));
        }
        let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let store_config = event_store::Config::from_lookup(lookup).unwrap();
        let export_config = hourly_export::Config::from_lookup(lookup).unwrap();
        let s3 = S3Store::new(client.clone(), &bucket);
        // As main.rs wires it.
        let queue = export_config
            .task_queue_url
            .as_deref()
            .map(|url| SqsTaskQueue::new(sqs.clone(), url));
        Self {
            layout: store_config.storage.layout.clone(),
            store: event_store::Handler::new(s3.clone(), &store_config),
            export: hourly_export::Handler::with_queue(s3, queue, &export_config).unwrap(),
            client,
            bucket,
            next_sequence: 1_000,
            queue_url: export_config.task_queue_url,
            sqs,
        }
    }

    /// Kinesis event source records carrying `records`, on shard 0, with
    /// the next sequence numbers.
    fn batch(&mut self, records: &[DplRecord]) -> Vec<KinesisEventRecord> {
        records
            .iter()
            .map(|record| {
                self.next_sequence += 1;
                kinesis_record(&record.to_json(), self.next_sequence)
            })
            .collect()
    }

    async fn stage(&self, batch: &[KinesisEventRecord]) {
        let response = self.store.process(batch).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }

    async fn export_hour(&self, hour: &str) -> Summary {
        let request = Request::Hour(HourRequest {
            hour: hour.into(),
            oem_id: None,
            event_type: None,
            force: false,
            allow_shrink: false,
            range: None,
        });
        self.export
            .process(&request)
            .await
            .unwrap()
            .summary()
            .unwrap()
    }

    async fn scheduled(&self, time: &str) -> Summary {
        let event = json!({
            "version": "0", "id": "1", "detail-type": "Scheduled Event",
            "source": "aws.scheduler", "account": "123456789012", "time": time,
            "region": "us-east-1", "resources": [], "detail": {}
        });
        let request: Request = serde_json::from_value(event).unwrap();
        assert!(matches!(request, Request::Scheduled(_)));
        self.export
            .process(&request)
            .await
            .unwrap()
            .summary()
            .unwrap()
    }

    /// Every message on the task queue, as Lambda's SQS event source
    /// would deliver them.
    async fn queued_tasks(&self) -> Vec<SqsMessage> {
        let url = self.queue_url.as_deref().expect("a fanning-out stack");
        let mut out = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(600)
                .send()
                .await
                .unwrap();
            if received.messages().is_empty() {
                return out;
            }
            out.extend(received.messages().iter().map(|m| {
                serde_json::from_value(json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "md5OfBody": m.md5_of_body(),
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tasks",
                    "awsRegion": "us-east-1"
                }))
                .unwrap()
            }));
        }
    }

    /// Runs `messages` as one SQS event, parsed as Lambda delivers it.
    async fn run_tasks(&self, messages: &[SqsMessage]) -> SqsBatchResponse {
        let event = json!({ "Records": messages });
        let request: Request = serde_json::from_value(event).unwrap();
        assert!(matches!(request, Request::Tasks(_)));
        self.export
            .process(&request)
            .await
            .unwrap()
            .tasks()
            .unwrap()
    }

    /// Every object under `prefix`, with its bytes.
    async fn objects(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for key in self.keys(prefix).await {
            let bytes = self.read(&key).await;
            out.push((key, bytes));
        }
        out
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let store = S3Store::new(self.client.clone(), &self.bucket);
        store
            .list(prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect()
    }

    async fn read(&self, key: &str) -> Vec<u8> {
        let store = S3Store::new(self.client.clone(), &self.bucket);
        store
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no object {key}"))
    }

    async fn csv(&self, oem: &str, event_type: EventType, hour: &str) -> String {
        let key = self.layout.export_key(&partition(oem, event_type, hour));
        String::from_utf8(self.read(&key).await).unwrap()
    }

    async fn manifest(&self, oem: &str, event_type: EventType, hour: &str) -> Vec<u8> {
        self.read(&self.layout.manifest_key(&partition(oem, event_type, hour)))
            .await
    }
}

fn partition(oem: &str, event_type: EventType, hour: &str) -> Partition {
    Partition {
        hour: dpl::export::keys::parse_hour(hour).unwrap(),
        oem_id: oem.into(),
        event_type,
    }
}

fn kinesis_record(data: &[u8], sequence: u64) -> KinesisEventRecord {
    serde_json::from_value(json!({
        "eventID": format!("shardId-000000000000:{sequence}"),
        "eventSource": "aws:kinesis",
        "eventName": "aws:kinesis:record",
        "eventVersion": "1.0",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/dpl",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/event-store",
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "AC000W000000001",
            "sequenceNumber": sequence.to_string(),
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "approximateArrivalTimestamp": 1598607936.0
        }
    }))
    .unwrap()
}

fn dpl(event: DeviceEvent, n: u64) -> DplRecord {
    let event_type = event.event_type();
    DplRecord {
        dpl_event: event,
        event_id: EventId::derive(&format!("stream-event-{n}"), event_type),
        stream_order: None,
    }
}

fn device(oem: &str, event_type: EventType) -> DeviceMetadata {
    DeviceMetadata {
        oem_id: oem.into(),
        oem_model: "ledevb".into(),
        dsn: "AC000W000000001".into(),
        event_type,
    }
}

/// A connectivity event of `oem` at `time`; its row names the status.
fn connectivity(oem: &str, time: Timestamp, status: &str) -> DeviceEvent {
    DeviceEvent::Connectivity {
        metadata: device(oem, EventType::Connectivity),
        timestamp: time,
        connection: Connection {
            event_time: time,
            user_uuid: Some(NIL_UUID.into()),
            status: status.into(),
            metadata: device(oem, EventType::Connectivity),
        },
    }
}

fn seed_fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/seed/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The seed's JSON example of a type, as a device event.
fn seed_event(name: &str) -> DeviceEvent {
    let value: serde_json::Value = serde_json::from_str(&seed_fixture(name)).unwrap();
    serde_json::from_value(value["dpl_event"].clone()).unwrap()
}

/// Events holding the values of the seed's four CSV examples
/// (`dpl::examples`), each with its hour (`YYYY-MM-DDTHH`) and expected row.
fn seed_csv_examples() -> Vec<(DeviceEvent, String, String)> {
    dpl::examples::seed_csv_examples()
        .into_iter()
        .map(|(name, event)| {
            let hour = event.time().dpl().to_string()[..13].to_owned();
            (event, hour, seed_fixture(&format!("{name}.csv")))
        })
        .collect()
}

#[tokio::test]
async fn all_six_types_are_exported_byte_for_byte() {
    let mut stack = Stack::new("six", 5).await;
    let mut cases = seed_csv_examples();
    for name in ["activation.json", "datapointack.json"] {
        let event = seed_event(name);
        let hour = event.time().dpl().to_string()[..13].to_owned();
        let row = dpl::csv::row(&event);
        cases.push((event, hour, row));
    }
    let records: Vec<DplRecord> = cases
        .iter()
        .enumerate()
        .map(|(n, (event, _, _))| dpl(event.clone(), n as u64))
        .collect();
    let batch = stack.batch(&records);
    stack.stage(&batch).await;
    let mut types = BTreeSet::new();
    for (event, hour, row) in &cases {
        stack.export_hour(hour).await;
        let oem = event.oem_id().to_owned();
        assert_eq!(
            stack.csv(&oem, event.event_type(), hour).await,
            *row,
            "{hour}"
        );
        types.insert(event.event_type());
    }
    assert_eq!(types.len(), 6);
    let activation = stack
        .keys("exports/1234abcd/activation/2020-08-28-09:00:00/")
        .await;
    assert_eq!(
        activation,
        ["exports/1234abcd/activation/2020-08-28-09:00:00/activation.csv"]
    );
}

/// `count` connectivity events of `oem` in the hour of 09:00, one second apart.
fn hour_of_events(oem: &str, first: u64, count: u64) -> Vec<DplRecord> {
    let start = at("2020-08-28T09:00:00Z").millis();
    (first..first + count)
        .map(|n| {
            let time = Timestamp::from_millis(start + (n as i64 % 3_600) * 1_000).unwrap();
            dpl(connectivity(oem, time, &format!("status-{n}")), n)
        })
        .collect()
}

fn expected_csv(records: &[DplRecord]) -> String {
    let mut sorted = records.to_vec();
    dpl::export::staging::sort_rows(&mut sorted);
    sorted.iter().map(|r| dpl::csv::row(&r.dpl_event)).collect()
}

#[tokio::test]
async fn a_batch_delivered_twice_gives_each_row_once() {
    let mut stack = Stack::new("twice", 5).await;
    let records = hour_of_events("abcd1234", 0, 50);
    let batch = stack.batch(&records);
    stack.stage(&batch).await;
    stack.stage(&batch).await;
    // A later batch repeating some records (a bisected retry).
    let again = stack.batch(&records[10..20]);
    stack.stage(&again).await;
    assert_eq!(stack.keys("staging/").await.len(), 2);
    stack.export_hour("2020-08-28T09").await;
    let csv = stack
        .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
        .await;
    assert_eq!(csv, expected_csv(&records));
}

#[tokio::test]
async fn a_late_object_makes_the_scheduled_run_rewrite_the_hour() {
    let mut stack = Stack::new("late", 5).await;
    let early = hour_of_events("abcd1234", 0, 20);
    let batch = stack.batch(&early);
    stack.stage(&batch).await;
    let first = stack.scheduled("2020-08-28T10:15:00Z").await;
    assert_eq!((first.exported, first.rows), (1, 20));
    let manifest_before = stack
        .manifest("abcd1234", EventType::Connectivity, "2020-08-28T09")
        .await;

    let late = hour_of_events("abcd1234", 20, 5);
    let batch = stack.batch(&late);
    stack.stage(&batch).await;
    let second = stack.scheduled("2020-08-28T11:15:00Z").await;
    assert_eq!((second.exported, second.rows), (1, 25), "{second:?}");
    let all: Vec<DplRecord> = early.iter().chain(&late).cloned().collect();
    let csv = stack
        .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
        .await;
    assert_eq!(csv, expected_csv(&all));
    let manifest_after = stack
        .manifest("abcd1234", EventType::Connectivity, "2020-08-28T09")
        .await;
    assert_ne!(manifest_before, manifest_after);

    // Nothing changed since: the next run exports nothing.
    let third = stack.scheduled("2020-08-28T12:15:00Z").await;
    assert_eq!((third.exported, third.up_to_date), (0, 1), "{third:?}");
}

#[tokio::test]
async fn a_rerun_writes_identical_bytes_and_manifest() {
    let mut stack = Stack::new("rerun", 5).await;
    let records = hour_of_events("abcd1234", 0, 30);
    let batch = stack.batch(&records);
    stack.stage(&batch).await;
    stack.export_hour("2020-08-28T09").await;
    let csv = stack
        .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
        .await;
    let manifest = stack
        .manifest("abcd1234", EventType::Connectivity, "2020-08-28T09")
        .await;
    let forced = Request::Hour(HourRequest {
        hour: "2020-08-28T09".into(),
        oem_id: None,
        event_type: None,
        force: true,
        allow_shrink: false,
        range: None,
    });
    let summary = stack
        .export
        .process(&forced)
        .await
        .unwrap()
        .summary()
        .unwrap();
    assert_eq!(summary.exported, 1);
    assert_eq!(
        stack
            .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
            .await,
        csv
    );
    assert_eq!(
        stack
            .manifest("abcd1234", EventType::Connectivity, "2020-08-28T09")
            .await,
        manifest
    );
    let parsed = Manifest::from_json("m", &manifest).unwrap();
    assert_eq!((parsed.rows, parsed.bytes), (30, csv.len() as u64));
}

#[tokio::test]
async fn an_empty_hour_makes_no_folder() {
    let mut stack = Stack::new("empty", 5).await;
    let batch = stack.batch(&hour_of_events("abcd1234", 0, 3));
    stack.stage(&batch).await;
    let summary = stack.export_hour("2020-08-28T07").await;
    assert_eq!(summary.exported, 0);
    assert!(stack.keys("exports/").await.is_empty());
    assert!(stack.keys("manifests/").await.is_empty());
}

#[tokio::test]
async fn a_large_hour_is_uploaded_in_several_parts() {
    let mut stack = Stack::new("large", 5).await;
    // About 110 bytes a row: 120,000 rows make three 5 MiB parts.
    let total = 120_000u64;
    let mut expected_bytes = 0;
    let mut all = Vec::new();
    for chunk in 0..12 {
        let records = hour_of_events("abcd1234", chunk * 10_000, 10_000);
        all.extend(records.iter().cloned());
        expected_bytes += records
            .iter()
            .map(|r| dpl::csv::row(&r.dpl_event).len())
            .sum::<usize>();
        let batch = stack.batch(&records);
        stack.stage(&batch).await;
    }
    assert!(expected_bytes > 2 * 5 * MIB, "only {expected_bytes} bytes");
    let exported = stack
        .export
        .exporter()
        .run(
            &[at("2020-08-28T09:00:00Z")],
            &Selection::default(),
            &mut (),
        )
        .await
        .unwrap();
    let [dpl::export::PartitionOutcome::Exported(e)] = &exported[..] else {
        panic!("{exported:?}");
    };
    assert!(e.parts >= 3, "{e:?}");
    assert_eq!((e.csv.rows, e.csv.bytes), (total, expected_bytes as u64));
    let csv = stack
        .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
        .await;
    assert_eq!(csv, expected_csv(&all));
}

#[tokio::test]
async fn two_oems_never_see_each_others_rows() {
    let mut stack = Stack::new("oems", 5).await;
    let a = hour_of_events("oem-a", 0, 10);
    let b = hour_of_events("oem-b", 100, 10);
    let mixed: Vec<DplRecord> = a
        .iter()
        .zip(&b)
        .flat_map(|(x, y)| [x.clone(), y.clone()])
        .collect();
    let batch = stack.batch(&mixed);
    stack.stage(&batch).await;
    stack.export_hour("2020-08-28T09").await;
    assert_eq!(
        stack
            .csv("oem-a", EventType::Connectivity, "2020-08-28T09")
            .await,
        expected_csv(&a)
    );
    assert_eq!(
        stack
            .csv("oem-b", EventType::Connectivity, "2020-08-28T09")
            .await,
        expected_csv(&b)
    );
    for key in stack.keys("exports/oem-a/").await {
        assert!(!stack.read(&key).await.windows(5).any(|w| w == b"oem-b"));
    }
}

#[tokio::test]
async fn a_malformed_record_is_quarantined_and_its_neighbours_staged() {
    let mut stack = Stack::new("malformed", 5).await;
    let good = hour_of_events("abcd1234", 0, 2);
    let mut batch = stack.batch(&good);
    stack.next_sequence += 1;
    batch.insert(
        1,
        kinesis_record(b"{\"dpl_event\": 1}", stack.next_sequence),
    );
    stack.stage(&batch).await;
    let quarantined = stack.keys("quarantine/").await;
    assert_eq!(quarantined.len(), 1);
    let body: serde_json::Value =
        serde_json::from_slice(&stack.read(&quarantined[0]).await).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not a DPL record"),
        "{body}"
    );
    stack.export_hour("2020-08-28T09").await;
    assert_eq!(
        stack
            .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
            .await,
        expected_csv(&good)
    );
}

/// Records of several partitions: five types of OEM 1234abcd (the seed's
/// examples) and connectivity of two other OEMs in the hour of 09:00, and
/// connectivity of oem-a in the hour of 08:00.
fn several_partitions() -> (Vec<DplRecord>, BTreeSet<Partition>) {
    let mut records: Vec<DplRecord> = [
        "activation.json",
        "connectivity.json",
        "datapoint.json",
        "datapointack.json",
        "location.json",
    ]
    .into_iter()
    .enumerate()
    .map(|(n, name)| dpl(seed_event(name), 10_000 + n as u64))
    .collect();
    records.extend(hour_of_events("oem-a", 0, 20));
    records.extend(hour_of_events("oem-b", 100, 20));
    let eight = at("2020-08-28T08:30:00Z");
    records.push(dpl(connectivity("oem-a", eight, "early"), 500));
    let partitions = records
        .iter()
        .map(|r| Partition {
            hour: r.dpl_event.time().hour_start(),
            oem_id: r.dpl_event.oem_id().to_owned(),
            event_type: r.dpl_event.event_type(),
        })
        .collect();
    (records, partitions)
}

/// The partition a task message names.
fn task_partition(message: &SqsMessage) -> Partition {
    HourRequest::from_body(message.body.as_deref().unwrap())
        .unwrap()
        .partition()
        .unwrap()
        .expect("a task names one partition")
}

#[tokio::test]
async fn a_fanned_out_schedule_queues_one_task_per_partition_and_exports_nothing() {
    let mut stack = Stack::fanning_out("fan-plan").await;
    let (records, partitions) = several_partitions();
    assert_eq!(partitions.len(), 8);
    let batch = stack.batch(&records);
    stack.stage(&batch).await;

    let summary = stack.scheduled("2020-08-28T10:15:00Z").await;
    assert_eq!((summary.queued, summary.exported), (8, 0), "{summary:?}");
    assert!(stack.keys("exports/").await.is_empty());
    assert!(stack.keys("manifests/").await.is_empty());
    let tasks = stack.queued_tasks().await;
    let queued: Vec<Partition> = tasks.iter().map(task_partition).collect();
    let distinct: BTreeSet<Partition> = queued.iter().cloned().collect();
    assert_eq!(queued.len(), distinct.len(), "one task per partition");
    assert_eq!(distinct, partitions);

    // Once the tasks ran, the next firing finds every partition up to date.
    let answer = stack.run_tasks(&tasks).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    let again = stack.scheduled("2020-08-28T10:15:00Z").await;
    assert_eq!((again.queued, again.up_to_date), (0, 8), "{again:?}");
    assert!(stack.queued_tasks().await.is_empty());
}

#[tokio::test]
async fn tasks_fed_back_export_the_same_bytes_as_the_in_process_run() {
    let (records, _) = several_partitions();
    let mut here = Stack::new("fan-here", 5).await;
    let batch = here.batch(&records);
    here.stage(&batch).await;
    let in_process = here.scheduled("2020-08-28T10:15:00Z").await;
    assert_eq!(in_process.exported, 8);

    let mut fanned = Stack::fanning_out("fan-tasks").await;
    let batch = fanned.batch(&records);
    fanned.stage(&batch).await;
    assert_eq!(fanned.scheduled("2020-08-28T10:15:00Z").await.queued, 8);
    let answer = fanned.run_tasks(&fanned.queued_tasks().await).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");

    // Eight CSV files and their customer manifests; eight manifests.
    for (prefix, count) in [("exports/", 16), ("manifests/", 8)] {
        let want = here.objects(prefix).await;
        assert_eq!(want.len(), count, "{prefix}");
        assert_eq!(fanned.objects(prefix).await, want, "{prefix}");
    }
}

#[tokio::test]
async fn a_malformed_task_is_reported_and_its_neighbours_exported() {
    let mut stack = Stack::fanning_out("fan-malformed").await;
    let a = hour_of_events("oem-a", 0, 10);
    let b = hour_of_events("oem-b", 100, 10);
    let all: Vec<DplRecord> = a.iter().chain(&b).cloned().collect();
    let batch = stack.batch(&all);
    stack.stage(&batch).await;
    assert_eq!(stack.scheduled("2020-08-28T10:15:00Z").await.queued, 2);
    let mut tasks = stack.queued_tasks().await;
    let mut malformed = tasks[0].clone();
    malformed.message_id = Some("malformed-1".into());
    malformed.body = Some(r#"{"hour": "2020-08-28T09", "oem": "oem-a"}"#.into());
    tasks.insert(1, malformed);

    let answer = stack.run_tasks(&tasks).await;
    let failed: Vec<&str> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["malformed-1"]);
    for (oem, records) in [("oem-a", &a), ("oem-b", &b)] {
        assert_eq!(
            stack
                .csv(oem, EventType::Connectivity, "2020-08-28T09")
                .await,
            expected_csv(records),
            "{oem}"
        );
    }
}

/// A twin stream record made from the sample `events/twin-events/{sample}`,
/// with its own `eventID` and `SequenceNumber`, made at `seconds`, and the
/// changes `edit` applies to its images.
fn twin_record(
    sample: &str,
    event_id: &str,
    sequence: u64,
    seconds: i64,
    edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
) -> aws_lambda_events::event::dynamodb::EventRecord {
    let path = format!(
        "{}/../../events/twin-events/{sample}",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut record = event["Records"][0].clone();
    record["eventID"] = json!(event_id);
    let change = &mut record["dynamodb"];
    change["ApproximateCreationDateTime"] = json!(seconds);
    change["SequenceNumber"] = json!(format!("44215845{sequence:020}"));
    let (mut old, mut new) = (change["OldImage"].take(), change["NewImage"].take());
    edit(&mut old, &mut new);
    change["OldImage"] = old;
    change["NewImage"] = new;
    serde_json::from_value(record).unwrap()
}

/// The DPL records of twin stream records, in stream order.
fn derived(records: &[aws_lambda_events::event::dynamodb::EventRecord]) -> Vec<DplRecord> {
    records
        .iter()
        .flat_map(|r| dpl::twin::derive_events(r).unwrap())
        .collect()
}

/// A flap Online -> Offline -> Online within one second, as three twin
/// stream records.
fn flap_in_one_second(second: i64) -> Vec<DplRecord> {
    let statuses = ["Offline", "Online", "Offline", "Online"];
    let records: Vec<_> = (0..3)
        .map(|n| {
            twin_record(
                "connectivity.json",
                &format!("flap-{n}"),
                10 + n as u64,
                second,
                |old, new| {
                    old["connection_status"] = json!({"S": statuses[n]});
                    new["connection_status"] = json!({"S": statuses[n + 1]});
                    // The body's own time has whole seconds as well.
                    new["connection_changed_at"] = json!({"S": "2020-08-28T09:45:36Z"});
                    new["connection_user_uuid"] =
                        json!({"S": format!("00000000-0000-0000-0000-00000000000{n}")});
                },
            )
        })
        .collect();
    derived(&records)
}

/// Ten datapoints of one property within one second.
fn ten_datapoints_in_one_second(second: i64) -> Vec<DplRecord> {
    let records: Vec<_> = (0..10)
        .map(|n| {
            twin_record(
                "datapoint.json",
                &format!("burst-{n}"),
                100 + n as u64,
                second,
                |old, new| {
                    for (image, value) in [(old, n), (new, n + 1)] {
                        image["base_type"] = json!({"S": "integer"});
                        image["datapoint"]["M"]["id"] = json!({"S": format!("datapoint-{value}")});
                        image["datapoint"]["M"]["value"] = json!({"N": value.to_string()});
                        image["datapoint"]["M"]["created_at"] =
                            json!({"S": "2020-08-28T09:45:36Z"});
                    }
                },
            )
        })
        .collect();
    derived(&records)
}

fn csv_of(records: &[DplRecord]) -> String {
    records
        .iter()
        .map(|r| dpl::csv::row(&r.dpl_event))
        .collect()
}

/// Rows in the order the event ids alone would give: what the export wrote
/// before it knew the stream order.
fn in_event_id_order(records: &[DplRecord]) -> Vec<DplRecord> {
    let mut by_id = records.to_vec();
    by_id.sort_by_key(|r| r.event_id);
    by_id
}

#[tokio::test]
async fn a_devices_events_of_one_second_keep_their_stream_order_in_the_csv_and_in_replay() {
    let mut stack = Stack::new("order", 5).await;
    let second = at("2020-08-28T09:45:36Z").millis() / 1_000;
    let flap = flap_in_one_second(second);
    let burst = ten_datapoints_in_one_second(second);
    assert_eq!((flap.len(), burst.len()), (3, 10));
    for events in [&flap, &burst] {
        assert!(events
            .iter()
            .all(|r| r.dpl_event.time().millis() == second * 1_000));
        // Without the stream order these rows would come out otherwise.
        assert_ne!(csv_of(&in_event_id_order(events)), csv_of(events));
    }

    // Several staging objects, each event in more than one of them: the
    // burst in three batches, the flap's middle event in its own, and the
    // whole flap batch delivered again (a retried batch writes the same
    // keys) and once more in a later batch (a bisected retry).
    for chunk in [&burst[6..], &burst[..3], &burst[3..6]] {
        let batch = stack.batch(chunk);
        stack.stage(&batch).await;
    }
    let flap_batch = stack.batch(&[flap[2].clone(), flap[0].clone()]);
    stack.stage(&flap_batch).await;
    stack.stage(&flap_batch).await;
    let middle = stack.batch(&flap[1..2]);
    stack.stage(&middle).await;
    let again = stack.batch(&flap);
    stack.stage(&again).await;
    assert_eq!(stack.keys("staging/").await.len(), 6);

    stack.export_hour("2020-08-28T09").await;
    assert_eq!(
        stack
            .csv("1234abcd", EventType::Connectivity, "2020-08-28T09")
            .await,
        csv_of(&flap)
    );
    assert_eq!(
        stack
            .csv("1234abcd", EventType::Datapoint, "2020-08-28T09")
            .await,
        csv_of(&burst)
    );

    // Replay (and a catch-up past the stream's retention) reads the same
    // staging objects through the archive.
    use dpl::streams::archive::{Archive, StagingArchive};
    let work = tempfile::tempdir().unwrap();
    let archive = StagingArchive::new(
        S3Store::new(stack.client.clone(), &stack.bucket),
        stack.layout.clone(),
        work.path(),
    );
    let hour = at("2020-08-28T09:00:00Z");
    let replayed: Vec<DplRecord> = archive
        .hour(
            "1234abcd",
            hour,
            &dpl::streams::subscription::Selection::All,
        )
        .await
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let of_dsn = |dsn: &str| -> Vec<EventId> {
        replayed
            .iter()
            .filter(|r| r.dpl_event.dsn() == dsn)
            .map(|r| r.event_id)
            .collect()
    };
    let ids =
        |records: &[DplRecord]| -> Vec<EventId> { records.iter().map(|r| r.event_id).collect() };
    assert_eq!(of_dsn(flap[0].dpl_event.dsn()), ids(&flap));
    assert_eq!(of_dsn(burst[0].dpl_event.dsn()), ids(&burst));
}

/// An hour request for 09:00 of 2020-08-28 with the given switches.
fn request_09(force: bool, allow_shrink: bool) -> Request {
    Request::Hour(HourRequest {
        hour: "2020-08-28T09".into(),
        oem_id: None,
        event_type: None,
        force,
        allow_shrink,
        range: None,
    })
}

/// The hour of 09:00 exported from two staging objects, then the first of
/// them deleted (as staging expiry would): the stack, both halves of the
/// rows, and the deleted key.
async fn exported_then_expired(test: &str) -> (Stack, Vec<DplRecord>, Vec<DplRecord>, String) {
    let mut stack = Stack::new(test, 5).await;
    let (early, late) = (
        hour_of_events("abcd1234", 0, 20),
        hour_of_events("abcd1234", 20, 10),
    );
    for records in [&early, &late] {
        let batch = stack.batch(records);
        stack.stage(&batch).await;
    }
    let first = stack.export_hour("2020-08-28T09").await;
    assert_eq!((first.exported, first.rows), (1, 30));
    let staged = stack.keys("staging/").await;
    assert_eq!(staged.len(), 2);
    let expired = staged[0].clone();
    stack
        .client
        .delete_object()
        .bucket(&stack.bucket)
        .key(&expired)
        .send()
        .await
        .unwrap();
    (stack, early, late, expired)
}

#[tokio::test]
async fn a_file_is_never_replaced_from_fewer_staging_objects_than_it_was_made_from() {
    let (stack, early, late, expired) = exported_then_expired("shrink").await;
    let all: Vec<DplRecord> = early.iter().chain(&late).cloned().collect();
    let (csv, manifest) = (
        stack
            .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
            .await,
        stack
            .manifest("abcd1234", EventType::Connectivity, "2020-08-28T09")
            .await,
    );
    assert_eq!(csv, expected_csv(&all));

    // The schedule keeps the hour (and says so in its summary).
    let scheduled = stack.scheduled("2020-08-28T10:15:00Z").await;
    assert_eq!(
        (scheduled.exported, scheduled.kept, scheduled.up_to_date),
        (0, 1, 0),
        "{scheduled:?}"
    );

    // An operator's hour request, forced or not, is refused with an error
    // that names the missing object and the way out.
    for force in [false, true] {
        let error = stack
            .export
            .process(&request_09(force, false))
            .await
            .unwrap_err();
        let text = error.to_string();
        for needle in [expired.as_str(), "30 rows", "allow_shrink", "left as it is"] {
            assert!(
                text.contains(needle),
                "force {force}: {needle:?} not in {text}"
            );
        }
    }
    assert_eq!(
        stack
            .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
            .await,
        csv
    );
    assert_eq!(
        stack
            .manifest("abcd1234", EventType::Connectivity, "2020-08-28T09")
            .await,
        manifest
    );

    // The override replaces the file with what is left, and the new
    // manifest names only that.
    let allowed = stack
        .export
        .process(&request_09(false, true))
        .await
        .unwrap()
        .summary()
        .unwrap();
    assert_eq!((allowed.exported, allowed.rows), (1, 10), "{allowed:?}");
    assert_eq!(
        stack
            .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
            .await,
        expected_csv(&late)
    );
    let after: Manifest = serde_json::from_slice(
        &stack
            .manifest("abcd1234", EventType::Connectivity, "2020-08-28T09")
            .await,
    )
    .unwrap();
    assert_eq!(after.rows, 10);
    assert!(after.staging.iter().all(|o| o.key != expired));
}

#[tokio::test]
async fn a_fanned_out_schedule_queues_no_task_for_a_partition_whose_staging_is_gone() {
    let mut stack = Stack::fanning_out("shrink-fan").await;
    let records = hour_of_events("abcd1234", 0, 20);
    for half in [&records[..10], &records[10..]] {
        let batch = stack.batch(half);
        stack.stage(&batch).await;
    }
    let summary = stack.scheduled("2020-08-28T10:15:00Z").await;
    assert_eq!(summary.queued, 1);
    let tasks = stack.queued_tasks().await;
    assert!(stack.run_tasks(&tasks).await.batch_item_failures.is_empty());
    let csv = stack
        .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
        .await;

    let staged = stack.keys("staging/").await;
    stack
        .client
        .delete_object()
        .bucket(&stack.bucket)
        .key(&staged[0])
        .send()
        .await
        .unwrap();
    let again = stack.scheduled("2020-08-28T11:15:00Z").await;
    assert_eq!((again.queued, again.kept), (0, 1), "{again:?}");
    assert!(stack.queued_tasks().await.is_empty());
    // A task queued before the objects went (a retried message) keeps the
    // file too, and is not failed back to the queue.
    assert!(stack.run_tasks(&tasks).await.batch_item_failures.is_empty());
    assert_eq!(
        stack
            .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
            .await,
        csv
    );
}

#[tokio::test]
async fn each_file_has_a_customer_manifest_beside_the_hour_folders_with_its_columns() {
    use sha2::Digest;
    let mut stack = Stack::new("customer-manifest", 5).await;
    let records = hour_of_events("abcd1234", 0, 25);
    let batch = stack.batch(&records);
    stack.stage(&batch).await;
    stack.export_hour("2020-08-28T09").await;

    let partition = partition("abcd1234", EventType::Connectivity, "2020-08-28T09");
    let key = stack.layout.customer_manifest_key(&partition);
    assert_eq!(
        key,
        "exports/abcd1234/_manifests/connection/2020-08-28-09:00:00.json"
    );
    let csv = stack
        .csv("abcd1234", EventType::Connectivity, "2020-08-28T09")
        .await;
    let copy: serde_json::Value = serde_json::from_slice(&stack.read(&key).await).unwrap();
    assert_eq!(copy["file"], json!(stack.layout.export_key(&partition)));
    assert_eq!(copy["rows"], json!(25));
    assert_eq!(copy["bytes"], json!(csv.len()));
    assert_eq!(
        copy["sha256"],
        json!(format!("{:x}", sha2::Sha256::digest(csv.as_bytes())))
    );
    assert_eq!(
        copy["schema"],
        json!({
            "name": "dpl-export/connection",
            "version": 1,
            "header_row": false,
            "columns": dpl::csv::columns(EventType::Connectivity),
        })
    );
    // Our staging keys stay ours.
    assert!(copy.get("staging").is_none());
    // The hour folder still holds the CSV file alone.
    assert_eq!(
        stack
            .keys("exports/abcd1234/connection/2020-08-28-09:00:00/")
            .await,
        ["exports/abcd1234/connection/2020-08-28-09:00:00/connection.csv"]
    );
}

/// Staging objects of a partition too large for one task at a small
/// threshold: `count` connectivity rows of abcd1234 over the hour of 09:00
/// (over 5 MiB of CSV in each third), in six objects, one in ten of the
/// first object's rows staged again in the last. Keys and bytes.
fn large_staging(count: u64) -> Vec<(String, Vec<u8>)> {
    let layout = Layout::default();
    let partition = partition("abcd1234", EventType::Connectivity, "2020-08-28T09");
    let records = hour_of_events("abcd1234", 0, count);
    (0..6u64)
        .map(|object| {
            let mut rows: Vec<DplRecord> = records
                .iter()
                .enumerate()
                .filter(|(n, _)| *n as u64 % 6 == object || (object == 5 && n % 60 == 0))
                .map(|(_, r)| r.clone())
                .collect();
            dpl::export::staging::sort_rows(&mut rows);
            let sequence = (object + 1).to_string();
            let range = dpl::export::BatchRange {
                shard_id: "shardId-000000000000",
                first_sequence: &sequence,
                last_sequence: &sequence,
            };
            let key = layout.staging_key(&partition, &range).unwrap();
            (key, dpl::export::staging::encode(&rows))
        })
        .collect()
}

impl Stack {
    async fn put_all(&self, objects: &[(String, Vec<u8>)]) {
        let store = S3Store::new(self.client.clone(), &self.bucket);
        for (key, bytes) in objects {
            store
                .put(key, bytes.clone(), "application/gzip")
                .await
                .unwrap();
        }
    }

    /// Every object of the bucket but staging and the split records, with
    /// its ETag and bytes.
    async fn outputs(&self) -> Vec<(String, String, Vec<u8>)> {
        let store = S3Store::new(self.client.clone(), &self.bucket);
        let mut out = Vec::new();
        for object in store.list("").await.unwrap() {
            if object.key.starts_with("staging/") || object.key.contains("/_splits/") {
                continue;
            }
            let bytes = self.read(&object.key).await;
            out.push((object.key, object.etag, bytes));
        }
        out
    }
}

#[tokio::test]
async fn a_partition_too_large_for_one_task_is_exported_by_range_tasks_into_one_file() {
    // About 110 bytes a row: 160,000 rows are over 5 MiB in each third.
    let staging = large_staging(160_000);
    let staged: usize = staging.iter().map(|(_, b)| b.len()).sum();
    let hour = "2020-08-28T09";
    let p = partition("abcd1234", EventType::Connectivity, hour);

    // The reference: one task exports the partition whole.
    let whole = Stack::new("split-whole", 5).await;
    whole.put_all(&staging).await;
    let summary = whole.export_hour(hour).await;
    assert_eq!(summary.exported, 1);
    let csv = whole.read(&whole.layout.export_key(&p)).await;
    let manifest = Manifest::from_json(
        "m",
        &whole
            .manifest("abcd1234", EventType::Connectivity, hour)
            .await,
    )
    .unwrap();
    let customer = whole.read(&whole.layout.customer_manifest_key(&p)).await;
    assert_eq!(manifest.rows, 160_000);

    // Split at a third of the staging (plus a byte): three range tasks.
    let threshold = (staged / 3 + 1).to_string();
    let split = Stack::build_with(
        "split-ranges",
        5,
        true,
        &[("EXPORT_SPLIT_BYTES", threshold)],
    )
    .await;
    split.put_all(&staging).await;
    let planned = split.scheduled("2020-08-28T10:15:00Z").await;
    assert_eq!(planned.queued, 3, "{planned:?}");
    let tasks = split.queued_tasks().await;
    let mut ranges: Vec<(u32, u32)> = tasks
        .iter()
        .map(|m| {
            let task = HourRequest::from_body(m.body.as_deref().unwrap()).unwrap();
            assert_eq!(task.partition().unwrap(), Some(p.clone()));
            let range = task.range.expect("a range task");
            (range.index, range.of)
        })
        .collect();
    ranges.sort();
    assert_eq!(ranges, [(0, 3), (1, 3), (2, 3)]);
    let task = |index: u32| {
        tasks
            .iter()
            .find(|m| {
                m.body
                    .as_deref()
                    .unwrap()
                    .contains(&format!("\"index\":{index},"))
            })
            .unwrap()
            .clone()
    };

    // Ranges 0 and 2, then 0 again (redelivered): no file yet.
    let answer = split.run_tasks(&[task(0), task(2)]).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    let answer = split.run_tasks(&[task(0)]).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert!(split.keys("exports/").await.is_empty());
    // The last range completes the upload.
    let answer = split.run_tasks(&[task(1)]).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");

    assert_eq!(
        split.keys("exports/abcd1234/connection/").await,
        [split.layout.export_key(&p)],
        "exactly one file in the folder"
    );
    let split_csv = split.read(&split.layout.export_key(&p)).await;
    assert!(
        split_csv == csv,
        "the split file differs from the whole one"
    );
    let split_manifest = Manifest::from_json(
        "m",
        &split
            .manifest("abcd1234", EventType::Connectivity, hour)
            .await,
    )
    .unwrap();
    assert_eq!(
        (
            &split_manifest.sha256,
            split_manifest.rows,
            split_manifest.bytes,
            split_manifest.duplicates_dropped
        ),
        (
            &manifest.sha256,
            manifest.rows,
            manifest.bytes,
            manifest.duplicates_dropped
        )
    );
    assert_eq!(split_manifest.staging, manifest.staging);
    assert_eq!(
        split.read(&split.layout.customer_manifest_key(&p)).await,
        customer
    );
    let head = split
        .export
        .exporter()
        .store()
        .head(&split.layout.export_key(&p))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(split_manifest.export_etag, head.etag);
    assert!(head.etag.ends_with("-3\""), "three parts: {}", head.etag);

    // A task retried after the completion, and a second completion,
    // change nothing.
    let before = split.outputs().await;
    let answer = split.run_tasks(&[task(1), task(2)]).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    let body = HourRequest::from_body(task(1).body.as_deref().unwrap()).unwrap();
    let id = body.range.unwrap().split;
    let exporter = split.export.exporter();
    let plan = exporter.split_plan(&p, &id).await.unwrap();
    let again = exporter.finish_split(&p, &id, &plan).await.unwrap();
    assert!(
        matches!(
            again,
            dpl::export::RangeOutcome::Completed {
                in_one_piece: false,
                ..
            }
        ),
        "{again:?}"
    );
    assert_eq!(split.outputs().await, before);
    // The partition is up to date for the next firing.
    let next = split.scheduled("2020-08-28T11:15:00Z").await;
    assert_eq!((next.queued, next.up_to_date), (0, 1), "{next:?}");

    // In-process (an hour request, forced): the same ranges run here, and
    // write the same bytes.
    let forced = Request::Hour(HourRequest {
        hour: hour.into(),
        oem_id: None,
        event_type: None,
        force: true,
        allow_shrink: false,
        range: None,
    });
    let summary = split
        .export
        .process(&forced)
        .await
        .unwrap()
        .summary()
        .unwrap();
    assert_eq!((summary.exported, summary.rows), (1, 160_000));
    assert!(split.read(&split.layout.export_key(&p)).await == csv);
    assert_eq!(
        split.read(&split.layout.customer_manifest_key(&p)).await,
        customer
    );
}
