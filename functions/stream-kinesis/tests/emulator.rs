//! Customer Kinesis streams on the AWS emulator (moto server): subscriptions
//! and delivery state in DynamoDB, credentials from STS (assumed role) and
//! Secrets Manager, customer streams in two regions, the DPL stream in
//! Kinesis (the catch-up worker reads it), catch-up requests on SQS. The
//! records are read back as a customer would: `GetShardIterator`,
//! `GetRecords`, and the `Data` blob (base64 on the wire, decoded by the SDK).
//!
//! Needs `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`, which `make
//! test` uses); fails, rather than skips, without it.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_kinesis::types::ShardIteratorType;
use dpl::examples::small_fleet as fleet;
use dpl::streams::archive::NoArchive;
use dpl::streams::build::{destinations, AnyDestinations, DestinationSettings};
use dpl::streams::check::check_delivery;
use dpl::streams::cursor::CursorState;
use dpl::streams::engine::{Engine, EngineConfig, Ports};
use dpl::streams::function::{StreamRequest, StreamResponse};
use dpl::streams::local::LocalDpl;
use dpl::streams::queue::SqsQueue;
use dpl::streams::reader::KinesisReader;
use dpl::streams::secrets::{AccessKeys, SecretStore, SecretsManager};
use dpl::streams::state::dynamo::create_table;
use dpl::streams::state::item::TABLE_KEYS;
use dpl::streams::state::{DeliveryState, DynamoState};
use dpl::streams::store::{attr, DynamoSubscriptions, SubscriptionStore};
use dpl::streams::{
    Credentials, Destination, Filters, Selection, Subscription, SubscriptionId, SubscriptionSpec,
    Transport,
};
use dpl::{CustomerPayload, DeviceEvent, DplRecord, EventId, EventType, Timestamp};
use tokio::time::Instant;

const ACCOUNT: &str = "123456789012";

type KinesisEngine =
    Engine<DynamoSubscriptions, DynamoState, AnyDestinations, KinesisReader, SqsQueue, NoArchive>;

async fn aws() -> SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at a local moto server (got {endpoint:?}): \
         run these tests through `make test` or `scripts/with-moto.sh cargo test`"
    );
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

fn kinesis_in(aws: &SdkConfig, region: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::config::Builder::from(aws)
        .region(Region::new(region.to_owned()))
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// A test's own tables, streams and queue, named after it.
struct Stack {
    aws: SdkConfig,
    prefix: String,
    subscriptions_table: String,
    state_table: String,
    queue_url: String,
    /// The DPL stream, read as the event source mapping reads it.
    dpl: LocalDpl,
}

impl Stack {
    async fn new(prefix: &str) -> Self {
        let aws = aws().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        let subscriptions_table = format!("{prefix}-subscriptions");
        let state_table = format!("{prefix}-state");
        create_table(&dynamodb, &subscriptions_table, &[attr::ID])
            .await
            .unwrap();
        create_table(&dynamodb, &state_table, &TABLE_KEYS)
            .await
            .unwrap();
        let dpl = LocalDpl::create(aws_sdk_kinesis::Client::new(&aws), &format!("{prefix}-dpl"))
            .await
            .unwrap();
        let queue_url = aws_sdk_sqs::Client::new(&aws)
            .create_queue()
            .queue_name(format!("{prefix}-catch-up"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Self {
            subscriptions_table,
            state_table,
            queue_url,
            dpl,
            prefix: prefix.to_owned(),
            aws,
        }
    }

    fn store(&self) -> DynamoSubscriptions {
        DynamoSubscriptions::from_sdk_config(&self.aws, &self.subscriptions_table)
    }

    fn state(&self) -> DynamoState {
        DynamoState::new(aws_sdk_dynamodb::Client::new(&self.aws), &self.state_table)
    }

    /// The stream function's engine, as `stream-kinesis` builds it.
    fn engine(&self) -> KinesisEngine {
        let mut config = EngineConfig::new(Transport::Kinesis);
        config.cache_ttl = Duration::ZERO;
        Engine::new(
            Ports {
                subscriptions: self.store(),
                state: self.state(),
                destinations: destinations(
                    Transport::Kinesis,
                    &self.aws,
                    &DestinationSettings::default(),
                ),
                reader: KinesisReader::new(
                    aws_sdk_kinesis::Client::new(&self.aws),
                    self.dpl.stream(),
                ),
                queue: SqsQueue::new(aws_sdk_sqs::Client::new(&self.aws), &self.queue_url),
                archive: NoArchive,
            },
            config,
        )
    }

    /// The catch-up requests waiting on the queue, as Lambda's SQS event
    /// source delivers them.
    async fn queued(&self) -> SqsEvent {
        let output = aws_sdk_sqs::Client::new(&self.aws)
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let records: Vec<serde_json::Value> = output
            .messages()
            .iter()
            .map(|m| {
                serde_json::json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "eventSource": "aws:sqs",
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    fn stream_arn(&self, region: &str, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{region}:{ACCOUNT}:stream/{}-{name}",
            self.prefix
        )
    }

    async fn create_stream(&self, region: &str, name: &str) {
        let kinesis = kinesis_in(&self.aws, region);
        let name = format!("{}-{name}", self.prefix);
        kinesis
            .create_stream()
            .stream_name(&name)
            .shard_count(1)
            .send()
            .await
            .unwrap();
    }

    async fn subscribe(
        &self,
        oem: &str,
        name: &str,
        region: &str,
        credentials: Credentials,
        filters: Filters,
    ) -> Subscription {
        let spec = SubscriptionSpec {
            oem_id: oem.into(),
            name: name.into(),
            description: String::new(),
            destination: Destination::Kinesis {
                stream_arn: self.stream_arn(region, name).parse().unwrap(),
            },
            credentials,
            filters,
        };
        let subscription = Subscription::new(
            SubscriptionId::generate(),
            spec,
            Timestamp::parse("2020-08-28T00:00:00Z").unwrap(),
        )
        .unwrap();
        self.store().create(&subscription).await.unwrap();
        subscription
    }

    /// A role in the customer's account (moto's STS accepts any).
    fn role(&self) -> Credentials {
        Credentials::AssumeRole {
            role_arn: format!("arn:aws:iam::{ACCOUNT}:role/{}-writer", self.prefix),
            external_id: Some("dpl-external-id-42".into()),
        }
    }

    /// An access key pair kept in Secrets Manager.
    async fn stored_keys(&self, name: &str) -> Credentials {
        let secrets = SecretsManager::from_sdk_config(&self.aws);
        let keys = AccessKeys::new(
            "AKIAEXAMPLEEXAMPLE01",
            dpl::streams::secrets::SecretString::new("example/secret/key/value"),
        )
        .unwrap();
        let secret_id = secrets
            .put(
                &format!("dpl/streams/{}-{name}", self.prefix),
                &keys.to_secret(),
            )
            .await
            .unwrap();
        Credentials::AccessKeySecret { secret_id }
    }

    /// Puts `records` on the DPL stream (as twin-events does), then reads
    /// them back as the event source mapping hands them to the function.
    async fn batch(&mut self, records: &[DplRecord]) -> StreamRequest {
        StreamRequest::Batch(self.dpl.batch(records).await.unwrap())
    }

    /// (partition key, data) of every record of a customer stream, in order.
    async fn read(&self, region: &str, name: &str) -> Vec<(String, Vec<u8>)> {
        let kinesis = kinesis_in(&self.aws, region);
        let stream = format!("{}-{name}", self.prefix);
        let shards = kinesis
            .list_shards()
            .stream_name(&stream)
            .send()
            .await
            .unwrap();
        let mut out = Vec::new();
        for shard in shards.shards() {
            let mut iterator = kinesis
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(shard.shard_id())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap()
                .shard_iterator
                .unwrap();
            loop {
                let page = kinesis
                    .get_records()
                    .shard_iterator(&iterator)
                    .send()
                    .await
                    .unwrap();
                for record in page.records() {
                    out.push((
                        record.partition_key().unwrap_or_default().to_owned(),
                        record.data().as_ref().to_vec(),
                    ));
                }
                match page.next_shard_iterator {
                    Some(next) if !page.records().is_empty() => iterator = next,
                    _ => break,
                }
            }
        }
        out
    }
}

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/seed/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

fn property(record: &DplRecord) -> Option<&str> {
    record.dpl_event.key().property_name
}

/// The customer records `records` should become, grouped by DSN, in order.
fn expected<'a>(
    records: impl IntoIterator<Item = &'a DplRecord>,
) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut by_dsn: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for record in records {
        by_dsn
            .entry(record.partition_key().to_owned())
            .or_default()
            .push(CustomerPayload(&record.dpl_event).to_json());
    }
    by_dsn
}

fn by_dsn(read: Vec<(String, Vec<u8>)>) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut by_dsn: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (key, data) in read {
        by_dsn.entry(key).or_default().push(data);
    }
    by_dsn
}

fn in_a_minute() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn no_failures(response: StreamResponse) {
    match response {
        StreamResponse::Batch(batch) => assert!(
            batch.batch_item_failures.is_empty(),
            "{:?}",
            batch.batch_item_failures
        ),
        other => panic!("not a batch answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_subscription_receives_exactly_its_filtered_events_in_dsn_order() {
    let mut stack = Stack::new("filters").await;
    for (region, name) in [
        ("eu-west-1", "a-all"),
        ("eu-west-1", "a-blue"),
        ("eu-west-1", "a-plug"),
        ("us-east-1", "b-devices"),
        ("us-east-1", "b-off"),
    ] {
        stack.create_stream(region, name).await;
    }
    let role = stack.role();
    let keys = stack.stored_keys("b").await;
    stack
        .subscribe(
            "oema0001",
            "a-all",
            "eu-west-1",
            role.clone(),
            Filters::all(),
        )
        .await;
    stack
        .subscribe(
            "oema0001",
            "a-blue",
            "eu-west-1",
            keys.clone(),
            Filters {
                event_types: Selection::only([EventType::Datapoint, EventType::DatapointAck]),
                properties: Selection::only(["Blue_LED".to_owned()]),
                ..Filters::all()
            },
        )
        .await;
    stack
        .subscribe(
            "oema0001",
            "a-plug",
            "eu-west-1",
            role.clone(),
            Filters {
                models: Selection::only(["plug".to_owned()]),
                dsns: Selection::only(["AC000W000000003".to_owned()]),
                ..Filters::all()
            },
        )
        .await;
    stack
        .subscribe(
            "oemb0002",
            "b-devices",
            "us-east-1",
            keys.clone(),
            Filters {
                event_types: Selection::only([EventType::Connectivity, EventType::Location]),
                dsns: Selection::only(["AC000W000000001".to_owned(), "AC000W000000002".to_owned()]),
                ..Filters::all()
            },
        )
        .await;
    let off = stack
        .subscribe("oemb0002", "b-off", "us-east-1", keys, Filters::all())
        .await;
    stack
        .store()
        .set_status(&off.id, dpl::streams::Status::Disabled)
        .await
        .unwrap();

    let records = fleet();
    let engine = stack.engine();
    let request = stack.batch(&records).await;
    no_failures(engine.handle(&request, in_a_minute()).await.unwrap());

    let oem = |o: &'static str| move |r: &&DplRecord| r.dpl_event.oem_id() == o;
    let a_all = expected(records.iter().filter(oem("oema0001")));
    let a_blue = expected(records.iter().filter(oem("oema0001")).filter(|r| {
        property(r) == Some("Blue_LED")
            && matches!(
                r.dpl_event.event_type(),
                EventType::Datapoint | EventType::DatapointAck
            )
    }));
    let a_plug = expected(
        records
            .iter()
            .filter(oem("oema0001"))
            .filter(|r| r.dpl_event.dsn() == "AC000W000000003"),
    );
    let b_devices = expected(records.iter().filter(oem("oemb0002")).filter(|r| {
        r.dpl_event.dsn() != "AC000W000000003"
            && matches!(
                r.dpl_event.event_type(),
                EventType::Connectivity | EventType::Location
            )
    }));
    assert_eq!(a_all.values().map(Vec::len).sum::<usize>(), 36);
    assert_eq!(a_blue.values().map(Vec::len).sum::<usize>(), 6);
    assert_eq!(a_plug.values().map(Vec::len).sum::<usize>(), 12);
    assert_eq!(b_devices.values().map(Vec::len).sum::<usize>(), 8);
    assert_eq!(by_dsn(stack.read("eu-west-1", "a-all").await), a_all);
    assert_eq!(by_dsn(stack.read("eu-west-1", "a-blue").await), a_blue);
    assert_eq!(by_dsn(stack.read("eu-west-1", "a-plug").await), a_plug);
    assert_eq!(
        by_dsn(stack.read("us-east-1", "b-devices").await),
        b_devices
    );
    assert!(stack.read("us-east-1", "b-off").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_customer_record_is_the_seeds_decoded_kinesis_example() {
    let mut stack = Stack::new("seed").await;
    stack.create_stream("us-west-2", "customer").await;
    let role = stack.role();
    stack
        .subscribe("abcd1234", "customer", "us-west-2", role, Filters::all())
        .await;
    let documented = fixture("kinesis_decoded.json");
    let record = DplRecord {
        dpl_event: DeviceEvent::from_customer_json(documented.as_bytes()).unwrap(),
        event_id: EventId::derive("seed", EventType::Datapoint),
        stream_order: None,
    };
    let request = stack.batch(&[record]).await;
    no_failures(
        stack
            .engine()
            .handle(&request, in_a_minute())
            .await
            .unwrap(),
    );

    let read = stack.read("us-west-2", "customer").await;
    assert_eq!(read.len(), 1);
    let (partition_key, data) = &read[0];
    assert_eq!(partition_key, "AC000W000000001");
    let data: serde_json::Value = serde_json::from_slice(data).unwrap();
    let documented: serde_json::Value = serde_json::from_str(&documented).unwrap();
    assert_eq!(data, documented);
}

/// A subscription that opted in gets `"event_id"` as the last field of
/// each record's data (the flag kept in its DynamoDB item); the other, on
/// the same events, the vendor's payload byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn an_opted_in_subscription_gets_the_event_id_as_the_datas_last_field() {
    let mut stack = Stack::new("event-id").await;
    stack.create_stream("eu-west-1", "plain").await;
    stack.create_stream("eu-west-1", "with-id").await;
    let role = stack.role();
    stack
        .subscribe(
            "oema0001",
            "plain",
            "eu-west-1",
            role.clone(),
            Filters::all(),
        )
        .await;
    let mut opted = stack
        .subscribe("oema0001", "with-id", "eu-west-1", role, Filters::all())
        .await;
    opted.event_id_in_payload = true;
    stack.store().delete(&opted.id).await.unwrap();
    stack.store().create(&opted).await.unwrap();
    let records = distinct_events(6);
    let request = stack.batch(&records).await;
    no_failures(
        stack
            .engine()
            .handle(&request, in_a_minute())
            .await
            .unwrap(),
    );

    assert_eq!(
        by_dsn(stack.read("eu-west-1", "plain").await),
        expected(&records)
    );
    let mut with_id: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for record in &records {
        let payload = CustomerPayload(&record.dpl_event).to_json();
        let data = format!(
            "{},\"event_id\":\"{}\"}}",
            std::str::from_utf8(&payload[..payload.len() - 1]).unwrap(),
            record.event_id
        );
        with_id
            .entry(record.partition_key().to_owned())
            .or_default()
            .push(data.into_bytes());
    }
    assert_eq!(by_dsn(stack.read("eu-west-1", "with-id").await), with_id);
}

/// The stream function's paths that handle credentials (an access key
/// secret created and read, events delivered with it, a missing stream
/// refusing them, a stored role without external id refused, a redrive),
/// every log line captured at TRACE (the SDK's too): the secret access key
/// and the secret's text appear in no line.
#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_any_log_line_at_any_level() {
    let logs = delivery_bench::logs::capture_logs();
    let mut stack = Stack::new("secrets").await;
    stack.create_stream("eu-west-1", "keys").await;
    let keys = stack.stored_keys("keys").await;
    let good = stack
        .subscribe(
            "oema0001",
            "keys",
            "eu-west-1",
            keys.clone(),
            Filters::all(),
        )
        .await;
    // No such stream: every PutRecords is refused.
    let missing = stack
        .subscribe("oema0001", "missing", "eu-west-1", keys, Filters::all())
        .await;
    // A role stored without its external id (an item from before it was
    // required): refused, never assumed.
    let legacy = stack
        .subscribe(
            "oema0001",
            "legacy",
            "eu-west-1",
            stack.role(),
            Filters::all(),
        )
        .await;
    let mut item = dpl::streams::store::item::to_item(&legacy);
    item.remove(attr::EXTERNAL_ID);
    aws_sdk_dynamodb::Client::new(&stack.aws)
        .put_item()
        .table_name(&stack.subscriptions_table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();

    let records = distinct_events(5);
    let request = stack.batch(&records).await;
    let engine = stack.engine();
    let _ = engine.handle(&request, in_a_minute()).await.unwrap();
    assert_eq!(stack.read("eu-west-1", "keys").await.len(), 5, "delivered");
    let health = stack
        .store()
        .get(&missing.id)
        .await
        .unwrap()
        .unwrap()
        .health;
    assert!(health.last_error.is_some(), "the missing stream refused");
    let redrive: StreamRequest =
        serde_json::from_value(serde_json::json!({"redrive": good.id.to_string()})).unwrap();
    engine.handle(&redrive, in_a_minute()).await.unwrap();

    logs.assert_holds(&[
        " TRACE ",
        " DEBUG ",
        " INFO ",
        "external_id is required",
        legacy.id.as_str(),
    ]);
    let secret = "example/secret/key/value";
    let secrets = [
        secret.to_owned(),
        delivery_bench::logs::percent_encoded(secret),
        // The secret's whole text, as Secrets Manager holds it.
        AccessKeys::new(
            "AKIAEXAMPLEEXAMPLE01",
            dpl::streams::secrets::SecretString::new(secret),
        )
        .unwrap()
        .to_secret()
        .expose()
        .to_owned(),
    ];
    if let Some(line) = logs.line_with_any(&secrets) {
        panic!("a secret is logged: {line}");
    }
}

/// Events of one OEM, each with its own payload (the Kinesis payload
/// carries no id), over five devices.
fn distinct_events(count: u64) -> Vec<DplRecord> {
    (0..count)
        .map(|n| {
            let dsn = format!("AC000W00000000{}", n % 5);
            dpl::examples::seed_record(
                EventType::Datapoint,
                "oema0001",
                "ledevb",
                &dsn,
                &format!("p{n}"),
                n,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_puts_one_subscription_behind_and_it_catches_up_from_the_dpl_stream() {
    let mut stack = Stack::new("outage").await;
    stack.create_stream("eu-west-1", "healthy").await;
    // The "broken" stream does not exist yet: PutRecords answers
    // ResourceNotFoundException, which no retry fixes.
    let role = stack.role();
    let healthy = stack
        .subscribe(
            "oema0001",
            "healthy",
            "eu-west-1",
            role.clone(),
            Filters::all(),
        )
        .await;
    let broken = stack
        .subscribe("oema0001", "broken", "eu-west-1", role, Filters::all())
        .await;
    let records = distinct_events(40);
    let (first, rest) = records.split_at(20);
    let (second, rest) = rest.split_at(8);
    let (third, fourth) = rest.split_at(6);
    let engine = stack.engine();

    let request = stack.batch(first).await;
    no_failures(engine.handle(&request, in_a_minute()).await.unwrap());
    assert_eq!(
        by_dsn(stack.read("eu-west-1", "healthy").await),
        expected(first)
    );
    let store = stack.store();
    let health = store.get(&broken.id).await.unwrap().unwrap().health;
    let error = health.last_error.expect("the outage is in the health");
    assert!(
        error.message.contains("ResourceNotFound"),
        "{}",
        error.message
    );
    let state = stack.state();
    let cursors = state.cursors_of(&broken.id).await.unwrap();
    assert_eq!(cursors.len(), 1, "one cursor, not one item per event");
    assert_eq!(cursors[0].state, CursorState::Behind);
    assert!(store
        .get(&healthy.id)
        .await
        .unwrap()
        .unwrap()
        .health
        .last_success
        .is_some());

    // Still down, then back up: the live path skips the subscription while
    // it is behind (no request to its stream, one write per batch).
    let request = stack.batch(second).await;
    no_failures(engine.handle(&request, in_a_minute()).await.unwrap());
    stack.create_stream("eu-west-1", "broken").await;
    let request = stack.batch(third).await;
    no_failures(engine.handle(&request, in_a_minute()).await.unwrap());
    assert!(stack.read("eu-west-1", "broken").await.is_empty());

    // The catch-up request waits on the queue; the worker it starts reads
    // the DPL stream from the cursor and hands back.
    let queued = stack.queued().await;
    assert!(!queued.records.is_empty(), "catch-up was asked for");
    match engine
        .handle(&StreamRequest::Queue(queued), in_a_minute())
        .await
        .unwrap()
    {
        StreamResponse::Queue(response) => assert!(response.batch_item_failures.is_empty()),
        other => panic!("not a queue answer: {other:?}"),
    }
    assert_eq!(
        state.cursors_of(&broken.id).await.unwrap()[0].state,
        CursorState::HandedBack
    );

    // The live path takes over, and the subscription is live again.
    let request = stack.batch(fourth).await;
    no_failures(engine.handle(&request, in_a_minute()).await.unwrap());
    assert!(state.cursors_of(&broken.id).await.unwrap().is_empty());
    let want: Vec<(String, Vec<u8>)> = records
        .iter()
        .map(|r| {
            (
                r.partition_key().to_owned(),
                CustomerPayload(&r.dpl_event).to_json(),
            )
        })
        .collect();
    for name in ["healthy", "broken"] {
        let got: Vec<Vec<u8>> = stack
            .read("eu-west-1", name)
            .await
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        let check = check_delivery(&want, &got);
        assert!(check.holds(), "{name}: {check}");
        assert_eq!(check.duplicates, 0, "{name}: {check}");
    }
    let health = store.get(&broken.id).await.unwrap().unwrap().health;
    assert!(health.last_success.is_some());
}
