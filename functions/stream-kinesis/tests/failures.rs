//! Customer-stream failures moto cannot produce, through the real SDK
//! client (aws-smithy-mocks): entries throttled inside an answer, and whole
//! calls throttled until the subscription's budget runs out (it falls
//! behind, and catches up from the DPL stream once the throttling ends).
//! Subscriptions, delivery state and the DPL stream in memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::error::ErrorMetadata;
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsInput, PutRecordsOutput};
use aws_sdk_kinesis::types::error::ProvisionedThroughputExceededException;
use aws_sdk_kinesis::types::PutRecordsResultEntry;
use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use dpl::examples::small_fleet;
use dpl::kinesis::Backoff;
use dpl::streams::archive::NoArchive;
use dpl::streams::check::check_delivery;
use dpl::streams::cursor::CursorState;
use dpl::streams::destination::Destinations;
use dpl::streams::engine::{Engine, EngineConfig, Ports};
use dpl::streams::kinesis::{KinesisDestination, KinesisSending};
use dpl::streams::queue::InMemoryQueue;
use dpl::streams::reader::InMemoryDplStream;
use dpl::streams::state::{DeliveryState, InMemoryState};
use dpl::streams::store::InMemorySubscriptions;
use dpl::streams::{
    Credentials, Destination, Filters, Subscription, SubscriptionId, SubscriptionSpec, Transport,
};
use dpl::{CustomerPayload, DeviceEvent, DplRecord, Timestamp};
use tokio::time::Instant;

const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/customer";
const THROTTLED: &str = "ProvisionedThroughputExceededException";

/// How call number n is answered.
#[derive(Clone, Copy)]
enum Answer {
    /// Throttle the entries at odd positions of the request.
    ThrottleOdd,
    /// Throttle the whole call.
    ThrottleCall,
    AcceptAll,
}

/// What the customer stream accepted, as (partition key, payload), in order,
/// and how many entries were sent in all.
#[derive(Default)]
struct Seen {
    accepted: Vec<(String, Vec<u8>)>,
    sent: usize,
}

/// A mocked customer stream answering `script`, then `then` while
/// `throttling` is set, then accepting everything.
fn mocked(
    script: Vec<Answer>,
    then: Answer,
    throttling: Arc<AtomicBool>,
) -> (Client, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let calls = Arc::new(Mutex::new(0usize));
    let log = seen.clone();
    let rule = mock!(Client::put_records).then_compute_response(move |input: &PutRecordsInput| {
        assert_eq!(
            input.stream_arn(),
            Some(ARN),
            "customer streams are named by ARN"
        );
        let mut call = calls.lock().unwrap();
        let after = if throttling.load(Ordering::Relaxed) {
            then
        } else {
            Answer::AcceptAll
        };
        let answer = script.get(*call).copied().unwrap_or(after);
        *call += 1;
        let mut seen = log.lock().unwrap();
        seen.sent += input.records().len();
        if let Answer::ThrottleCall = answer {
            return MockResponse::Error(PutRecordsError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("Rate exceeded for stream customer")
                    .meta(ErrorMetadata::builder().code(THROTTLED).build())
                    .build(),
            ));
        }
        let mut output = PutRecordsOutput::builder();
        for (position, entry) in input.records().iter().enumerate() {
            let result = if matches!(answer, Answer::ThrottleOdd) && position % 2 == 1 {
                PutRecordsResultEntry::builder()
                    .error_code(THROTTLED)
                    .error_message("Rate exceeded for shard shardId-000000000000")
            } else {
                seen.accepted.push((
                    entry.partition_key().unwrap_or_default().to_owned(),
                    entry.data().as_ref().to_vec(),
                ));
                PutRecordsResultEntry::builder()
                    .sequence_number(seen.accepted.len().to_string())
                    .shard_id("shardId-000000000000")
            };
            output = output.records(result.build());
        }
        MockResponse::Output(output.build().unwrap())
    });
    let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, &[&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    (client, seen)
}

/// Every subscription gets the one mocked stream.
struct Fixed(Arc<KinesisDestination>);

impl Destinations for Fixed {
    type Destination = KinesisDestination;

    async fn destination(&self, _: &Subscription) -> Result<Arc<KinesisDestination>, String> {
        Ok(self.0.clone())
    }
}

type TestEngine = Engine<
    InMemorySubscriptions,
    InMemoryState,
    Fixed,
    InMemoryDplStream,
    InMemoryQueue,
    NoArchive,
>;

fn engine(client: Client, budget: Duration) -> (TestEngine, Subscription) {
    let spec = SubscriptionSpec {
        oem_id: "oema0001".into(),
        name: "customer".into(),
        description: String::new(),
        destination: Destination::Kinesis {
            stream_arn: ARN.parse().unwrap(),
        },
        credentials: Credentials::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/writer".into(),
            external_id: Some("dpl-test".into()),
        },
        filters: Filters::all(),
    };
    let subscription = Subscription::new(
        SubscriptionId::from_bits(7),
        spec,
        Timestamp::from_millis(0).unwrap(),
    )
    .unwrap();
    let backoff = Backoff {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
    };
    let mut config = EngineConfig::new(Transport::Kinesis);
    config.budget = budget;
    let sending = KinesisSending {
        backoff,
        in_flight: 4,
    };
    let engine = Engine::new(
        Ports {
            subscriptions: InMemorySubscriptions::with([subscription.clone()]),
            state: InMemoryState::new(),
            destinations: Fixed(Arc::new(KinesisDestination::new(
                client,
                ARN.into(),
                sending,
            ))),
            reader: InMemoryDplStream::new(),
            queue: InMemoryQueue::new(),
            archive: NoArchive,
        },
        config,
    );
    (engine, subscription)
}

fn oem_a() -> Vec<DplRecord> {
    small_fleet()
        .into_iter()
        .filter(|r| r.dpl_event.oem_id() == "oema0001")
        .collect()
}

const SHARD: &str = "shardId-000000000000";

/// Writes `records` to the engine's DPL stream; returns them as the event
/// source delivers them.
fn batch(engine: &TestEngine, records: &[DplRecord]) -> Vec<KinesisEventRecord> {
    let stream = &engine.ports().reader;
    let first = stream.records(SHARD).len();
    for record in records {
        stream.append(SHARD, record.to_json(), Timestamp::now());
    }
    stream.records(SHARD)[first..]
        .iter()
        .map(|r| r.lambda_record())
        .collect()
}

/// Per DSN, the payloads in order.
fn per_dsn(
    pairs: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> std::collections::BTreeMap<String, Vec<Vec<u8>>> {
    let mut map = std::collections::BTreeMap::<String, Vec<Vec<u8>>>::new();
    for (dsn, payload) in pairs {
        map.entry(dsn).or_default().push(payload);
    }
    map
}

fn expected(records: &[DplRecord]) -> std::collections::BTreeMap<String, Vec<Vec<u8>>> {
    per_dsn(records.iter().map(|r| {
        (
            r.partition_key().to_owned(),
            CustomerPayload(&r.dpl_event).to_json(),
        )
    }))
}

#[tokio::test]
async fn throttled_entries_alone_are_resent_and_each_dsn_keeps_its_order() {
    let (client, seen) = mocked(
        vec![Answer::ThrottleOdd, Answer::ThrottleOdd],
        Answer::AcceptAll,
        Arc::new(AtomicBool::new(false)),
    );
    let (engine, subscription) = engine(client, Duration::from_secs(10));
    let records = oem_a();
    let response = engine
        .dispatch(
            &batch(&engine, &records),
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let state = &engine.ports().state;
    assert!(
        state.cursors_of(&subscription.id).await.unwrap().is_empty(),
        "nobody behind"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.accepted.len(),
        records.len(),
        "each event accepted once"
    );
    assert!(seen.sent > records.len(), "throttled entries were resent");
    assert_eq!(per_dsn(seen.accepted.clone()), expected(&records));
    let decoded: Vec<DeviceEvent> = seen
        .accepted
        .iter()
        .map(|(_, data)| DeviceEvent::from_customer_json(data).unwrap())
        .collect();
    assert_eq!(decoded.len(), records.len());
}

#[tokio::test(start_paused = true)]
async fn a_stream_throttled_past_the_budget_falls_behind_and_catches_up_in_order() {
    // Half an answer, then nothing but throttled calls until it ends.
    let throttling = Arc::new(AtomicBool::new(true));
    let (client, seen) = mocked(
        vec![Answer::ThrottleOdd],
        Answer::ThrottleCall,
        throttling.clone(),
    );
    let (engine, subscription) = engine(client, Duration::from_secs(2));
    // Events with distinct payloads (the customer payload carries no id).
    let records: Vec<DplRecord> = (0..40u64)
        .map(|n| {
            let dsn = format!("AC000W00000000{}", n % 5);
            let property = format!("p{n}");
            dpl::examples::seed_record(
                dpl::EventType::Datapoint,
                "oema0001",
                "ledevb",
                &dsn,
                &property,
                n,
            )
        })
        .collect();
    let (first, second) = records.split_at(20);
    for part in [first, second] {
        let response = engine
            .dispatch(
                &batch(&engine, part),
                Instant::now() + Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(
            response.batch_item_failures.is_empty(),
            "a cursor counts as secured"
        );
    }
    let delivered_live = seen.lock().unwrap().accepted.len();
    assert!(delivered_live > 0 && delivered_live < first.len());
    let state = &engine.ports().state;
    let cursors = state.cursors_of(&subscription.id).await.unwrap();
    assert_eq!(cursors.len(), 1);
    assert_eq!(cursors[0].state, CursorState::Behind);
    let health = dpl::streams::store::SubscriptionStore::get(
        &engine.ports().subscriptions,
        &subscription.id,
    )
    .await
    .unwrap()
    .unwrap()
    .health;
    assert!(health
        .last_error
        .unwrap()
        .message
        .contains("stream did not accept"));
    assert_eq!(engine.ports().queue.take(), [SHARD], "catch-up asked for");

    // The throttling ends: the worker delivers from the cursor, in order,
    // and hands back.
    throttling.store(false, Ordering::Relaxed);
    let report = engine
        .catch_up(SHARD, Instant::now() + Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(report.handed_back, 1);
    // Every event, each DSN in order; what was accepted after the cursor's
    // first missed event is resent at the hand-over (duplicates, counted).
    let want: Vec<(String, Vec<u8>)> = records
        .iter()
        .map(|r| {
            (
                r.partition_key().to_owned(),
                CustomerPayload(&r.dpl_event).to_json(),
            )
        })
        .collect();
    let got: Vec<Vec<u8>> = seen
        .lock()
        .unwrap()
        .accepted
        .iter()
        .map(|(_, p)| p.clone())
        .collect();
    let check = check_delivery(&want, &got);
    assert!(check.holds(), "{check}");
    assert!(check.duplicates < first.len(), "{check}");
    assert_eq!(
        state.cursors_of(&subscription.id).await.unwrap()[0].state,
        CursorState::HandedBack
    );
}
