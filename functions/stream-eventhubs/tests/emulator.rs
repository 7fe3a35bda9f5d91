//! Customer event hubs: subscriptions, secrets, delivery state, the DPL
//! stream and the catch-up queue on the AWS emulator (moto server), the hubs
//! on the local Event Hubs endpoint (`tools/eventhubs-local`), which checks
//! the SAS signature, content type, body shape and size as Azure does.
//!
//! Needs `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`, which `make
//! test` uses); fails, rather than skips, without it.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use dpl::examples::small_fleet;
use dpl::streams::archive::NoArchive;
use dpl::streams::build::{destinations, AnyDestinations, DestinationSettings};
use dpl::streams::cursor::CursorState;
use dpl::streams::engine::{Engine, EngineConfig, Ports};
use dpl::streams::function::{StreamRequest, StreamResponse};
use dpl::streams::local::LocalDpl;
use dpl::streams::queue::{CatchUpRequest, SqsQueue};
use dpl::streams::reader::KinesisReader;
use dpl::streams::secrets::{SecretStore, SecretString, SecretsManager};
use dpl::streams::state::dynamo::create_table;
use dpl::streams::state::item::TABLE_KEYS;
use dpl::streams::state::{DeliveryState, DynamoState};
use dpl::streams::store::{attr, DynamoSubscriptions, SubscriptionStore};
use dpl::streams::{
    Credentials, Destination, Filters, Selection, Subscription, SubscriptionId, SubscriptionSpec,
    Transport,
};
use dpl::{CustomerPayload, DplRecord, EventType, Timestamp};
use eventhubs_local::{HubKey, LocalEventHubs};
use tokio::time::Instant;

type HubEngine =
    Engine<DynamoSubscriptions, DynamoState, AnyDestinations, KinesisReader, SqsQueue, NoArchive>;

const KEY: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==";

async fn aws() -> SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at a local moto server (got {endpoint:?}): \
         run these tests through `make test` or `scripts/with-moto.sh cargo test`"
    );
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

struct Stack {
    aws: SdkConfig,
    prefix: String,
    hubs: LocalEventHubs,
    subscriptions_table: String,
    state_table: String,
    queue_url: String,
    dpl: LocalDpl,
}

impl Stack {
    async fn new(prefix: &str, hubs: &[(&str, &str)]) -> Self {
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
        let keys = hubs
            .iter()
            .map(|(namespace, hub)| HubKey::new(namespace, hub, "send", KEY))
            .collect();
        let queue_url = aws_sdk_sqs::Client::new(&aws)
            .create_queue()
            .queue_name(format!("{prefix}-catch-up"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dpl = LocalDpl::create(aws_sdk_kinesis::Client::new(&aws), &format!("{prefix}-dpl"))
            .await
            .unwrap();
        Self {
            aws,
            prefix: prefix.to_owned(),
            hubs: LocalEventHubs::start(keys).await.unwrap(),
            subscriptions_table,
            state_table,
            queue_url,
            dpl,
        }
    }

    fn store(&self) -> DynamoSubscriptions {
        DynamoSubscriptions::from_sdk_config(&self.aws, &self.subscriptions_table)
    }

    fn state(&self) -> DynamoState {
        DynamoState::new(aws_sdk_dynamodb::Client::new(&self.aws), &self.state_table)
    }

    /// The stream function's engine, as `stream-eventhubs` builds it, the
    /// local endpoint standing in for Azure.
    fn engine(&self, budget: Duration) -> HubEngine {
        let mut config = EngineConfig::new(Transport::EventHubs);
        config.cache_ttl = Duration::ZERO;
        config.budget = budget;
        let settings = DestinationSettings {
            eventhubs_endpoint_url: Some(format!("http://{}", self.hubs.addr())),
            concurrency: None,
        };
        Engine::new(
            Ports {
                subscriptions: self.store(),
                state: self.state(),
                destinations: destinations(Transport::EventHubs, &self.aws, &settings),
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

    /// Runs the catch-up worker of the DPL stream's shard, as a queued
    /// request would.
    async fn catch_up(&self, engine: &HubEngine) {
        let request = StreamRequest::CatchUp(CatchUpRequest::new(self.dpl.shard()));
        match engine.handle(&request, in_a_minute()).await.unwrap() {
            StreamResponse::CatchUp { caught_up } => assert!(caught_up[0].leased, "{caught_up:?}"),
            other => panic!("not a catch-up answer: {other:?}"),
        }
    }

    async fn cursor_state(&self, subscription: &Subscription) -> Option<CursorState> {
        let cursors = self.state().cursors_of(&subscription.id).await.unwrap();
        cursors.first().map(|c| c.state)
    }

    /// A subscription of `oem` to `namespace/hub`, its connection string
    /// (with `key`) in Secrets Manager.
    async fn subscribe(
        &self,
        oem: &str,
        namespace: &str,
        hub: &str,
        key: &str,
        filters: Filters,
    ) -> Subscription {
        let connection = HubKey::new(namespace, hub, "send", key).connection_string();
        let secret_id = SecretsManager::from_sdk_config(&self.aws)
            .put(
                &format!("dpl/streams/{}-{namespace}-{hub}", self.prefix),
                &SecretString::new(connection),
            )
            .await
            .unwrap();
        let spec = SubscriptionSpec {
            oem_id: oem.into(),
            name: format!("{namespace}-{hub}"),
            description: String::new(),
            destination: Destination::EventHubs {
                namespace: namespace.into(),
                hub: hub.into(),
            },
            credentials: Credentials::ConnectionStringSecret { secret_id },
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

    /// Puts `records` on the DPL stream, then reads them back as the event
    /// source mapping hands them to the function.
    async fn batch(&mut self, records: &[DplRecord]) -> StreamRequest {
        StreamRequest::Batch(self.dpl.batch(records).await.unwrap())
    }

    /// Messages accepted by `hub`, grouped by partition key, in order:
    /// (body, event id, event type).
    fn received(&self, hub: &str) -> BTreeMap<String, Vec<(String, String, String)>> {
        let mut by_dsn: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for message in self.hubs.messages().into_iter().filter(|m| m.hub == hub) {
            let property = |name: &str| message.user_properties[name].as_str().unwrap().to_owned();
            by_dsn
                .entry(message.partition_key.clone().unwrap())
                .or_default()
                .push((
                    message.body.clone(),
                    property("event_id"),
                    property("event_type"),
                ));
        }
        by_dsn
    }
}

fn expected<'a>(
    records: impl IntoIterator<Item = &'a DplRecord>,
) -> BTreeMap<String, Vec<(String, String, String)>> {
    let mut by_dsn: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for record in records {
        let body = String::from_utf8(CustomerPayload(&record.dpl_event).to_json()).unwrap();
        by_dsn
            .entry(record.partition_key().to_owned())
            .or_default()
            .push((
                body,
                record.event_id.to_string(),
                record.dpl_event.event_type().to_string(),
            ));
    }
    by_dsn
}

fn in_a_minute() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn no_failures(response: StreamResponse) {
    match response {
        StreamResponse::Batch(batch) => assert!(batch.batch_item_failures.is_empty()),
        other => panic!("not a batch answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_hub_receives_its_oems_filtered_events_with_their_properties() {
    let mut stack = Stack::new("eh-filters", &[("oemans", "devices"), ("oembns", "points")]).await;
    stack
        .subscribe("oema0001", "oemans", "devices", KEY, Filters::all())
        .await;
    stack
        .subscribe(
            "oemb0002",
            "oembns",
            "points",
            KEY,
            Filters {
                event_types: Selection::only([EventType::Datapoint]),
                ..Filters::all()
            },
        )
        .await;
    let records = small_fleet();
    let request = stack.batch(&records).await;
    no_failures(
        stack
            .engine(Duration::from_secs(10))
            .handle(&request, in_a_minute())
            .await
            .unwrap(),
    );

    let of = |oem: &'static str| move |r: &&DplRecord| r.dpl_event.oem_id() == oem;
    assert_eq!(
        stack.received("devices"),
        expected(records.iter().filter(of("oema0001")))
    );
    assert_eq!(
        stack.received("points"),
        expected(
            records
                .iter()
                .filter(of("oemb0002"))
                .filter(|r| r.dpl_event.event_type() == EventType::Datapoint)
        )
    );
    assert!(stack.hubs.answers().iter().all(|status| *status == 201));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_is_not_retried_and_the_health_says_why() {
    let mut stack = Stack::new("eh-401", &[("oemans", "devices")]).await;
    let subscription = stack
        .subscribe(
            "oema0001",
            "oemans",
            "devices",
            "d3Jvbmcta2V5",
            Filters::all(),
        )
        .await;
    let records: Vec<DplRecord> = small_fleet().into_iter().take(6).collect();
    let request = stack.batch(&records).await;
    no_failures(
        stack
            .engine(Duration::from_secs(10))
            .handle(&request, in_a_minute())
            .await
            .unwrap(),
    );

    assert_eq!(stack.hubs.answers(), vec![401], "one request, no retry");
    let health = stack
        .store()
        .get(&subscription.id)
        .await
        .unwrap()
        .unwrap()
        .health;
    assert_eq!(
        stack.cursor_state(&subscription).await,
        Some(CursorState::Behind)
    );
    let error = health.last_error.unwrap().message;
    assert!(error.contains("401"), "{error}");
    assert!(
        !error.contains("d3Jvbmcta2V5"),
        "the key must not leak: {error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusing_hub_does_not_hold_back_the_other_and_catches_up_after_the_fix() {
    let mut stack = Stack::new("eh-outage", &[("oemans", "up"), ("oemans", "down")]).await;
    stack
        .subscribe("oema0001", "oemans", "up", KEY, Filters::all())
        .await;
    // "down" was given a wrong key: every request answers 401.
    let broken = stack
        .subscribe("oema0001", "oemans", "down", "d3Jvbmcta2V5", Filters::all())
        .await;
    let records: Vec<DplRecord> = small_fleet()
        .into_iter()
        .filter(|r| r.dpl_event.oem_id() == "oema0001")
        .collect();
    let (first, second) = records.split_at(20);
    let engine = stack.engine(Duration::from_secs(10));
    for part in [first, second] {
        let request = stack.batch(part).await;
        no_failures(engine.handle(&request, in_a_minute()).await.unwrap());
    }
    assert_eq!(stack.received("up"), expected(&records));
    assert!(stack.received("down").is_empty());
    assert_eq!(stack.cursor_state(&broken).await, Some(CursorState::Behind));

    // The operator stores the right key; the same instance catches up: the
    // refused client is not reused, the secret is read again.
    let Credentials::ConnectionStringSecret { secret_id } = &broken.credentials else {
        unreachable!()
    };
    aws_sdk_secretsmanager::Client::new(&stack.aws)
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(HubKey::new("oemans", "down", "send", KEY).connection_string())
        .send()
        .await
        .unwrap();
    stack.catch_up(&engine).await;
    assert_eq!(stack.received("down"), expected(&records));
    assert_eq!(
        stack.received("up"),
        expected(&records),
        "nothing sent twice"
    );
    assert_eq!(
        stack.cursor_state(&broken).await,
        Some(CursorState::HandedBack)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_hub_is_retried_within_the_budget_then_caught_up_in_order() {
    let mut stack = Stack::new("eh-503", &[("oemans", "devices")]).await;
    let subscription = stack
        .subscribe("oema0001", "oemans", "devices", KEY, Filters::all())
        .await;
    let records: Vec<DplRecord> = small_fleet()
        .into_iter()
        .filter(|r| r.dpl_event.oem_id() == "oema0001")
        .collect();
    let (first, second) = records.split_at(20);
    let engine = stack.engine(Duration::from_millis(1_500));

    stack.hubs.go_down();
    let request = stack.batch(first).await;
    no_failures(engine.handle(&request, in_a_minute()).await.unwrap());
    let answers = stack.hubs.answers();
    assert!(
        answers.len() > 1 && answers.iter().all(|a| *a == 503),
        "{answers:?}"
    );
    let health = stack
        .store()
        .get(&subscription.id)
        .await
        .unwrap()
        .unwrap()
        .health;
    assert_eq!(
        stack.cursor_state(&subscription).await,
        Some(CursorState::Behind)
    );
    assert!(health.last_error.unwrap().message.contains("503"));

    // Back up: new events still wait behind the cursor, for the worker.
    stack.hubs.come_back();
    let request = stack.batch(second).await;
    no_failures(engine.handle(&request, in_a_minute()).await.unwrap());
    assert!(stack.received("devices").is_empty());

    stack.catch_up(&engine).await;
    assert_eq!(stack.received("devices"), expected(&records));
    let health = stack
        .store()
        .get(&subscription.id)
        .await
        .unwrap()
        .unwrap()
        .health;
    assert!(health.last_success.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_the_hub_refuses_for_good_is_dead_lettered_and_holds_nobody() {
    let mut stack = Stack::new("eh-413", &[("oemans", "devices")]).await;
    let subscription = stack
        .subscribe("oema0001", "oemans", "devices", KEY, Filters::all())
        .await;
    let records: Vec<DplRecord> = small_fleet()
        .into_iter()
        .filter(|r| r.dpl_event.oem_id() == "oema0001")
        .collect();
    // The hub cannot take one event of the first DSN (413, every time);
    // and one event is over Event Hubs' 1 MB by itself (never sent), though
    // under the DPL stream's 1 MiB record limit.
    let poison = records[0].event_id.to_string();
    stack.hubs.refuse_event(&poison, 413);
    let mut huge = records[2].clone();
    let dpl::DeviceEvent::Datapoint { datapoint, .. } = &mut huge.dpl_event else {
        panic!("the third event of the fleet is a datapoint");
    };
    datapoint.value = "x".repeat(1_010_000);
    huge.event_id = dpl::EventId::derive("huge", EventType::Datapoint);
    let mut input = records.clone();
    input.push(huge.clone());
    let engine = stack.engine(Duration::from_secs(10));
    let request = stack.batch(&input).await;
    no_failures(engine.handle(&request, in_a_minute()).await.unwrap());

    // Everything else arrived, in order, each DSN's later events too.
    let rest: Vec<&DplRecord> = records
        .iter()
        .filter(|r| r.event_id.to_string() != poison)
        .collect();
    assert_eq!(stack.received("devices"), expected(rest));
    assert_eq!(
        stack.cursor_state(&subscription).await,
        None,
        "nobody is behind"
    );
    let state = stack.state();
    assert_eq!(state.count_dead_letters(&subscription.id).await.unwrap(), 2);
    let letters = state.dead_letters(&subscription.id, 10).await.unwrap();
    let reason = |id: &str| {
        letters
            .iter()
            .find(|l| l.event_id.to_string() == id)
            .map(|l| l.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason(&poison).starts_with("413 Request Entity Too Large"),
        "{letters:?}"
    );
    assert!(
        reason(&huge.event_id.to_string()).contains("over the 1000000-byte batch limit"),
        "{letters:?}"
    );

    // After the fix the dead letter is redriven; the huge one stays.
    stack.hubs.accept_event(&poison);
    let redrive: StreamRequest =
        serde_json::from_value(serde_json::json!({"redrive": subscription.id.to_string()}))
            .unwrap();
    match engine.handle(&redrive, in_a_minute()).await.unwrap() {
        StreamResponse::Redrive { redriven } => {
            assert_eq!(
                (redriven[0].delivered, redriven[0].refused),
                (1, 1),
                "{redriven:?}"
            );
        }
        other => panic!("not a redrive answer: {other:?}"),
    }
    assert_eq!(state.count_dead_letters(&subscription.id).await.unwrap(), 1);
    let delivered = stack.hubs.messages();
    assert_eq!(
        delivered.last().unwrap().user_properties["event_id"],
        poison
    );
}

/// The stream function's paths that handle credentials (a subscription and
/// its secret created, events delivered, a refused key, an event refused
/// for good, a redrive), every log line captured at TRACE (the SDK's too):
/// neither SAS key, nor a connection string, nor a SAS token appears in
/// any line (`docs/streams.md`, "Secrets"; STYLE: never a secret in logs).
#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_any_log_line_at_any_level() {
    const WRONG_KEY: &str = "d3Jvbmcta2V5LW5vdC10aGUtaHVicy1rZXk/Kw==";
    let logs = delivery_bench::logs::capture_logs();
    let mut stack = Stack::new("eh-secrets", &[("oemans", "devices"), ("oembns", "points")]).await;
    // Create: the secrets go to Secrets Manager, the subscriptions to the table.
    let good = stack
        .subscribe("oema0001", "oemans", "devices", KEY, Filters::all())
        .await;
    let refused = stack
        .subscribe("oemb0002", "oembns", "points", WRONG_KEY, Filters::all())
        .await;
    let records = small_fleet();
    let poison = records
        .iter()
        .find(|r| r.dpl_event.oem_id() == "oema0001")
        .unwrap()
        .event_id
        .to_string();
    stack.hubs.refuse_event(&poison, 413);

    // Deliver; refuse: oemb's key is wrong (401), one of oema's events is
    // refused for good (413, a dead letter).
    let engine = stack.engine(Duration::from_secs(10));
    let request = stack.batch(&records).await;
    let _ = engine.handle(&request, in_a_minute()).await.unwrap();
    assert!(
        !stack.received("devices").is_empty(),
        "nothing was delivered"
    );
    let store = stack.store();
    let health = store.get(&refused.id).await.unwrap().unwrap().health;
    assert!(
        health.last_error.unwrap().message.starts_with("401"),
        "the wrong key was refused"
    );
    assert_eq!(stack.state().count_dead_letters(&good.id).await.unwrap(), 1);

    // Redrive after the fix.
    stack.hubs.accept_event(&poison);
    let redrive: StreamRequest =
        serde_json::from_value(serde_json::json!({"redrive": good.id.to_string()})).unwrap();
    match engine.handle(&redrive, in_a_minute()).await.unwrap() {
        StreamResponse::Redrive { redriven } => assert_eq!(redriven[0].delivered, 1),
        other => panic!("not a redrive answer: {other:?}"),
    }

    logs.assert_holds(&[
        " TRACE ",
        " DEBUG ",
        " INFO ",
        " WARN ",
        "event refused for good: dead-lettered",
        good.id.as_str(),
    ]);
    let encoded = delivery_bench::logs::percent_encoded;
    let secrets = [
        KEY.to_owned(),
        WRONG_KEY.to_owned(),
        encoded(KEY),
        encoded(WRONG_KEY),
        HubKey::new("oemans", "devices", "send", KEY).connection_string(),
        HubKey::new("oembns", "points", "send", WRONG_KEY).connection_string(),
        "SharedAccessKey=".to_owned(),
        "SharedAccessSignature".to_owned(),
        "sig=".to_owned(),
    ];
    if let Some(line) = logs.line_with_any(&secrets) {
        panic!("a secret is logged: {line}");
    }
}
