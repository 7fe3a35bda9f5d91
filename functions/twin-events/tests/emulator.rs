//! End to end on the AWS emulator (moto server): twin items written to a
//! real DynamoDB table, its stream records read back through the DynamoDB
//! Streams API, turned into the Lambda event, handled with the real SDK
//! clients, and the DPL stream and dead-letter queue read back.
//!
//! Needs `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`, which `make
//! test` uses); fails, rather than skips, without it.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_kinesis::types::ShardIteratorType as KinesisIterator;
use dpl::{DplRecord, EventType};
use serde_json::{json, Value};
use tokio::time::Instant;
use twin_events::dead_letter::SqsDeadLetters;
use twin_events::Handler;

type Item = HashMap<String, Av>;

async fn aws() -> SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at a local moto server (got {endpoint:?}): \
         run these tests through `make test` or `scripts/with-moto.sh cargo test`"
    );
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The emulated resources of one test.
struct Stack {
    aws: SdkConfig,
    table: String,
    stream: String,
    queue_url: String,
}

impl Stack {
    async fn create(test: &str) -> Self {
        let aws = aws().await;
        let (table, stream) = (
            unique(&format!("twins-{test}")),
            unique(&format!("dpl-{test}")),
        );
        let key = |name: &str, kind| {
            (
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .unwrap(),
            )
        };
        let (pk, pk_schema) = key("pk", KeyType::Hash);
        let (sk, sk_schema) = key("sk", KeyType::Range);
        aws_sdk_dynamodb::Client::new(&aws)
            .create_table()
            .table_name(&table)
            .attribute_definitions(pk)
            .attribute_definitions(sk)
            .key_schema(pk_schema)
            .key_schema(sk_schema)
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create the twins table");
        aws_sdk_kinesis::Client::new(&aws)
            .create_stream()
            .stream_name(&stream)
            .shard_count(1)
            .send()
            .await
            .expect("create the DPL stream");
        let queue_url = aws_sdk_sqs::Client::new(&aws)
            .create_queue()
            .queue_name(unique(&format!("dlq-{test}")))
            .send()
            .await
            .expect("create the dead-letter queue")
            .queue_url
            .unwrap();
        Self {
            aws,
            table,
            stream,
            queue_url,
        }
    }

    fn handler(&self) -> Handler<aws_sdk_kinesis::Client, SqsDeadLetters> {
        Handler::new(
            aws_sdk_kinesis::Client::new(&self.aws),
            SqsDeadLetters::new(aws_sdk_sqs::Client::new(&self.aws), &self.queue_url),
            &common::config(&self.stream, &self.queue_url),
        )
    }

    async fn put(&self, item: Item) {
        aws_sdk_dynamodb::Client::new(&self.aws)
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .expect("put a twin item");
    }

    /// The table's stream records, as Lambda would deliver them.
    async fn stream_records(&self) -> Vec<EventRecord> {
        let table = aws_sdk_dynamodb::Client::new(&self.aws)
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .unwrap();
        let arn = table.table.unwrap().latest_stream_arn.unwrap();
        let streams = aws_sdk_dynamodbstreams::Client::new(&self.aws);
        let description = streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap()
            .stream_description
            .unwrap();
        let mut records = Vec::new();
        for shard in description.shards() {
            let iterator = streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard.shard_id().unwrap())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap()
                .shard_iterator
                .unwrap();
            let page = streams
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .unwrap();
            records.extend(page.records().iter().map(|r| lambda_record(r, &arn)));
        }
        let event: Event = serde_json::from_value(json!({ "Records": records })).unwrap();
        event.records
    }

    /// Everything on the DPL stream: (partition key, record).
    async fn dpl_stream(&self) -> Vec<(String, DplRecord)> {
        let kinesis = aws_sdk_kinesis::Client::new(&self.aws);
        let shards = kinesis
            .list_shards()
            .stream_name(&self.stream)
            .send()
            .await
            .unwrap();
        let mut out = Vec::new();
        for shard in shards.shards() {
            let iterator = kinesis
                .get_shard_iterator()
                .stream_name(&self.stream)
                .shard_id(shard.shard_id())
                .shard_iterator_type(KinesisIterator::TrimHorizon)
                .send()
                .await
                .unwrap()
                .shard_iterator
                .unwrap();
            let page = kinesis
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .unwrap();
            out.extend(page.records().iter().map(|r| {
                (
                    r.partition_key().unwrap_or_default().to_owned(),
                    DplRecord::from_json(r.data().as_ref()).unwrap(),
                )
            }));
        }
        out
    }

    async fn dead_letters(&self) -> Vec<Value> {
        let messages = aws_sdk_sqs::Client::new(&self.aws)
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        messages
            .messages()
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }
}

/// A DynamoDB Streams API record in the shape of a Lambda event record:
/// same field names, plus `eventSourceARN` and `awsRegion`.
fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let change = record.dynamodb().unwrap();
    let image = |item: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        item.map(|item| serde_json::to_value(serde_dynamo::Item::from(item.clone())).unwrap())
    };
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change.approximate_creation_date_time().unwrap().secs(),
        "Keys": image(change.keys.as_ref()),
        "SequenceNumber": change.sequence_number(),
        "SizeBytes": change.size_bytes(),
        "StreamViewType": change.stream_view_type().map(|v| v.as_str()),
    });
    for (name, item) in [
        ("NewImage", image(change.new_image.as_ref())),
        ("OldImage", image(change.old_image.as_ref())),
    ] {
        if let Some(item) = item {
            dynamodb[name] = item;
        }
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": record.event_source(),
        "awsRegion": record.aws_region().unwrap_or("us-east-1"),
        "eventSourceARN": stream_arn,
        "dynamodb": dynamodb,
    })
}

fn s(v: &str) -> Av {
    Av::S(v.into())
}

fn n(v: &str) -> Av {
    Av::N(v.into())
}

fn item(pairs: &[(&str, Av)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn device(dsn: &str, status: Av, lat: &str, registered: bool) -> Item {
    item(&[
        ("pk", s(&format!("DEVICE#{dsn}"))),
        ("sk", s("DEVICE")),
        ("dsn", s(dsn)),
        ("oem_id", s("1234abcd")),
        ("oem_model", s("ledevb")),
        ("connection_status", status),
        ("connection_changed_at", s("2020-08-28T09:45:36Z")),
        ("lat", n(lat)),
        ("lng", n("-64.1234")),
        ("ip", s("22.22.22.22")),
        ("location_provider", s("user-based")),
        ("location_changed_at", s("2020-08-28T09:11:11Z")),
        ("registered", Av::Bool(registered)),
        ("registration_type", s("Same-LAN")),
    ])
}

fn reservation(dsn: &str, activated_at: Option<&str>) -> Item {
    let mut item = item(&[
        ("pk", s(&format!("DEVICE#{dsn}"))),
        ("sk", s("RESERVATION")),
        ("dsn", s(dsn)),
        ("oem_id", s("1234abcd")),
        ("oem_model", s("generic")),
        ("device_type", s("Wifi")),
        ("activation_id", s("5f0c2a9e-8d1b-4c3e-9a7f-2b6d4e8c1a90")),
    ]);
    if let Some(at) = activated_at {
        item.insert("activated_at".into(), s(at));
    }
    item
}

fn property(dsn: &str, datapoint_id: &str, acked: bool) -> Item {
    let datapoint = item(&[
        ("id", s(datapoint_id)),
        ("value", n("1")),
        ("created_at", s("2020-08-28T09:45:30Z")),
        ("updated_at", s("2020-08-28T09:45:30Z")),
        ("echo", Av::Bool(false)),
        ("closed", Av::Bool(false)),
        ("discarded", Av::Bool(false)),
        ("scope", s("user")),
        ("metadata", Av::M(HashMap::new())),
    ]);
    let mut item = item(&[
        ("pk", s(&format!("DEVICE#{dsn}"))),
        ("sk", s("PROPERTY#Blue_LED")),
        ("dsn", s(dsn)),
        ("oem_id", s("1234abcd")),
        ("oem_model", s("linuxevb")),
        ("property_name", s("Blue_LED")),
        ("display_name", s("Blue LED")),
        ("base_type", s("boolean")),
        ("direction", s("input")),
        ("datapoint", Av::M(datapoint)),
    ]);
    if acked {
        let ack = self::item(&[
            ("id", s(datapoint_id)),
            ("ack_id", s("c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f")),
            ("ack_status", n("200")),
            ("ack_message", n("0")),
            ("acked_at", s("2020-08-28T09:45:35Z")),
        ]);
        item.insert("ack".into(), Av::M(ack));
    }
    item
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_changes_reach_the_dpl_stream_as_all_six_event_types() {
    let stack = Stack::create("six").await;
    let (a, b) = ("AC000W000000001", "AC000W000000002");
    stack.put(reservation(a, None)).await;
    stack
        .put(reservation(a, Some("2020-08-28T09:45:36Z")))
        .await; // activation
    stack.put(device(a, s("Offline"), "44.7871", false)).await; // connectivity + location
    stack.put(device(a, s("Online"), "44.7871", false)).await; // connectivity
    stack.put(device(a, s("Online"), "45", false)).await; // location
    stack.put(device(a, s("Online"), "45", true)).await; // registration
    stack
        .put(property(b, "9a4f3c2e-7b1d-4e8a-b6c5-d3e2f1a0b9c8", false))
        .await; // datapoint
    stack
        .put(property(b, "9a4f3c2e-7b1d-4e8a-b6c5-d3e2f1a0b9c8", true))
        .await; // datapointack

    let records = stack.stream_records().await;
    assert_eq!(records.len(), 8, "one stream record per write");
    let response = stack.handler().process(&records, soon()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());

    // Order is promised per DSN (one request carries one entry per DSN, so
    // another device's events may come first): compare device by device.
    let per_dsn = |records: &[DplRecord]| {
        let mut records = records.to_vec();
        records.sort_by(|a, b| a.dpl_event.dsn().cmp(b.dpl_event.dsn()));
        records
    };
    let expected = common::expected_records(&records);
    let published = stack.dpl_stream().await;
    let got: Vec<DplRecord> = published.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(per_dsn(&got), per_dsn(&expected));
    for (key, record) in &published {
        assert_eq!(key, record.dpl_event.dsn());
    }
    let mut types: Vec<EventType> = got.iter().map(|r| r.dpl_event.event_type()).collect();
    types.dedup();
    let mut all = types.clone();
    all.sort();
    all.dedup();
    assert_eq!(
        all,
        EventType::ALL.to_vec(),
        "all six event types: {types:?}"
    );
    assert_eq!(got.len(), 8);
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_record_is_dead_lettered_and_its_neighbours_are_published() {
    let stack = Stack::create("malformed").await;
    let (a, b) = ("AC000W000000011", "AC000W000000012");
    stack.put(device(a, s("Offline"), "44.7871", false)).await; // good: 2 events
    stack.put(device(b, n("1"), "44.7871", false)).await; // connection_status is N
    stack.put(device(a, s("Online"), "44.7871", false)).await; // good: 1 event

    let records = stack.stream_records().await;
    assert_eq!(records.len(), 3);
    let response = stack.handler().process(&records, soon()).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "never blocks the shard"
    );

    let published = stack.dpl_stream().await;
    assert_eq!(published.len(), 3);
    assert!(published.iter().all(|(key, _)| key == a));

    let letters = stack.dead_letters().await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter["reason"], "malformed_record");
    assert_eq!(letter["stream_event_id"], records[1].event_id.as_str());
    assert_eq!(letter["attribute"], "NewImage.connection_status");
    assert_eq!(
        letter["sequence_number"].as_str(),
        records[1].change.sequence_number.as_deref()
    );
    let error = letter["error"].as_str().unwrap();
    assert!(error.contains(&records[1].event_id), "{error}");
    assert!(error.contains("expected S, found N"), "{error}");
    assert_eq!(
        letter["record"]["dynamodb"]["Keys"]["pk"]["S"],
        format!("DEVICE#{b}")
    );
}
