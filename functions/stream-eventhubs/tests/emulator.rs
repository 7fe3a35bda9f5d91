//! Customer event hubs: subscriptions, secrets and parking on the AWS
//! emulator (moto server), the hubs on the local Event Hubs endpoint
//! (`tools/eventhubs-local`), which checks the SAS signature, content type,
//! body shape and size as Azure does.
//!
//! Needs `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`, which `make
//! test` uses); fails, rather than skips, without it.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_lambda_events::event::kinesis::KinesisEvent;
use dpl::eventhubs::retry::Backoff;
use dpl::examples::{kinesis_event_record, small_fleet};
use dpl::streams::dispatch::{DispatchConfig, Dispatcher};
use dpl::streams::dynamo::{attr, DynamoSubscriptions, SubscriptionStore};
use dpl::streams::eventhubs::EventHubDestinations;
use dpl::streams::function::{StreamRequest, StreamResponse};
use dpl::streams::parking_dynamo::{create_table, DynamoParking, PARKED_TABLE_KEYS};
use dpl::streams::secrets::{SecretStore, SecretString, SecretsManager};
use dpl::streams::{
    Credentials, Destination, Filters, Selection, Subscription, SubscriptionId, SubscriptionSpec,
    Transport,
};
use dpl::{CustomerPayload, DplRecord, EventType, Timestamp};
use eventhubs_local::{HubKey, LocalEventHubs};
use tokio::time::Instant;

type HubDispatcher =
    Dispatcher<DynamoSubscriptions, DynamoParking, EventHubDestinations<SecretsManager>>;

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
    parked_table: String,
    next_sequence: u64,
}

impl Stack {
    async fn new(prefix: &str, hubs: &[(&str, &str)]) -> Self {
        let aws = aws().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        let subscriptions_table = format!("{prefix}-subscriptions");
        let parked_table = format!("{prefix}-parked");
        create_table(&dynamodb, &subscriptions_table, &[attr::ID])
            .await
            .unwrap();
        create_table(&dynamodb, &parked_table, &PARKED_TABLE_KEYS)
            .await
            .unwrap();
        let keys = hubs
            .iter()
            .map(|(namespace, hub)| HubKey::new(namespace, hub, "send", KEY))
            .collect();
        Self {
            aws,
            prefix: prefix.to_owned(),
            hubs: LocalEventHubs::start(keys).await.unwrap(),
            subscriptions_table,
            parked_table,
            next_sequence: 1_000,
        }
    }

    fn store(&self) -> DynamoSubscriptions {
        DynamoSubscriptions::from_sdk_config(&self.aws, &self.subscriptions_table)
    }

    fn dispatcher(&self, budget: Duration) -> HubDispatcher {
        let mut config = DispatchConfig::new(Transport::EventHubs);
        config.cache_ttl = Duration::ZERO;
        config.budget = budget;
        Dispatcher::new(
            self.store(),
            DynamoParking::new(aws_sdk_dynamodb::Client::new(&self.aws), &self.parked_table),
            EventHubDestinations::new(
                SecretsManager::from_sdk_config(&self.aws),
                Some(format!("http://{}", self.hubs.addr())),
                Backoff {
                    base: Duration::from_millis(10),
                    cap: Duration::from_millis(100),
                },
            ),
            config,
        )
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

    fn batch(&mut self, records: &[DplRecord]) -> StreamRequest {
        let mut event = KinesisEvent::default();
        for record in records {
            self.next_sequence += 1;
            event.records.push(kinesis_event_record(
                record.partition_key(),
                &record.to_json(),
                self.next_sequence,
            ));
        }
        StreamRequest::Batch(event)
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
    let request = stack.batch(&records);
    no_failures(
        stack
            .dispatcher(Duration::from_secs(10))
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
    let request = stack.batch(&records);
    no_failures(
        stack
            .dispatcher(Duration::from_secs(10))
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
    assert_eq!(health.parked, 6);
    let error = health.last_error.unwrap().message;
    assert!(error.contains("401"), "{error}");
    assert!(
        !error.contains("d3Jvbmcta2V5"),
        "the key must not leak: {error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusing_hub_does_not_hold_back_the_other_and_redrive_delivers_after_the_fix() {
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
    let dispatcher = stack.dispatcher(Duration::from_secs(10));
    for part in [first, second] {
        let request = stack.batch(part);
        no_failures(dispatcher.handle(&request, in_a_minute()).await.unwrap());
    }
    assert_eq!(stack.received("up"), expected(&records));
    assert!(stack.received("down").is_empty());
    let health = stack.store().get(&broken.id).await.unwrap().unwrap().health;
    assert_eq!(health.parked, records.len() as u64);

    // The operator stores the right key; the same instance redrives: the
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
    let redrive: StreamRequest =
        serde_json::from_value(serde_json::json!({"redrive": broken.id.to_string()})).unwrap();
    match dispatcher.handle(&redrive, in_a_minute()).await.unwrap() {
        StreamResponse::Redrive { redriven } => {
            assert_eq!(redriven.len(), 1);
            assert_eq!(redriven[0].delivered, records.len());
            assert!(!redriven[0].remaining && redriven[0].error.is_none());
        }
        other => panic!("not a redrive answer: {other:?}"),
    }
    assert_eq!(stack.received("down"), expected(&records));
    assert_eq!(
        stack.received("up"),
        expected(&records),
        "nothing sent twice"
    );
    let health = stack.store().get(&broken.id).await.unwrap().unwrap().health;
    assert_eq!(health.parked, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_hub_is_retried_within_the_budget_then_parked_until_redrive() {
    let mut stack = Stack::new("eh-503", &[("oemans", "devices")]).await;
    let subscription = stack
        .subscribe("oema0001", "oemans", "devices", KEY, Filters::all())
        .await;
    let records: Vec<DplRecord> = small_fleet()
        .into_iter()
        .filter(|r| r.dpl_event.oem_id() == "oema0001")
        .collect();
    let (first, second) = records.split_at(20);
    let dispatcher = stack.dispatcher(Duration::from_millis(1_500));

    stack.hubs.go_down();
    let request = stack.batch(first);
    no_failures(dispatcher.handle(&request, in_a_minute()).await.unwrap());
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
    assert_eq!(health.parked, first.len() as u64);
    assert!(health.last_error.unwrap().message.contains("503"));

    // Back up: new events still queue behind the parked ones.
    stack.hubs.come_back();
    let request = stack.batch(second);
    no_failures(dispatcher.handle(&request, in_a_minute()).await.unwrap());
    assert!(stack.received("devices").is_empty());

    let redrive: StreamRequest =
        serde_json::from_value(serde_json::json!({"redrive": "*"})).unwrap();
    dispatcher.handle(&redrive, in_a_minute()).await.unwrap();
    assert_eq!(stack.received("devices"), expected(&records));
    let health = stack
        .store()
        .get(&subscription.id)
        .await
        .unwrap()
        .unwrap()
        .health;
    assert_eq!(health.parked, 0);
}
