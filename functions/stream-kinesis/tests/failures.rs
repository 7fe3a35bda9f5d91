//! Customer-stream failures moto cannot produce, through the real SDK
//! client (aws-smithy-mocks): entries throttled inside an answer, and whole
//! calls throttled until the subscription's budget runs out. Subscriptions
//! and parking in memory.

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
use dpl::examples::{kinesis_event_record, small_fleet};
use dpl::kinesis::Backoff;
use dpl::streams::destination::Destinations;
use dpl::streams::dispatch::{DispatchConfig, Dispatcher};
use dpl::streams::dynamo::InMemorySubscriptions;
use dpl::streams::kinesis::KinesisDestination;
use dpl::streams::parking::InMemoryParking;
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

fn mocked(script: Vec<Answer>, then: Answer) -> (Client, Arc<Mutex<Seen>>) {
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
        let answer = script.get(*call).copied().unwrap_or(then);
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

fn dispatcher(
    client: Client,
    budget: Duration,
) -> (
    Dispatcher<InMemorySubscriptions, InMemoryParking, Fixed>,
    Subscription,
) {
    let spec = SubscriptionSpec {
        oem_id: "oema0001".into(),
        name: "customer".into(),
        description: String::new(),
        destination: Destination::Kinesis {
            stream_arn: ARN.parse().unwrap(),
        },
        credentials: Credentials::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/writer".into(),
            external_id: None,
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
    let mut config = DispatchConfig::new(Transport::Kinesis);
    config.budget = budget;
    let dispatcher = Dispatcher::new(
        InMemorySubscriptions::with([subscription.clone()]),
        InMemoryParking::new(),
        Fixed(Arc::new(KinesisDestination::new(
            client,
            ARN.into(),
            backoff,
        ))),
        config,
    );
    (dispatcher, subscription)
}

fn oem_a() -> Vec<DplRecord> {
    small_fleet()
        .into_iter()
        .filter(|r| r.dpl_event.oem_id() == "oema0001")
        .collect()
}

fn batch(records: &[DplRecord]) -> Vec<KinesisEventRecord> {
    records
        .iter()
        .enumerate()
        .map(|(n, r)| kinesis_event_record(r.partition_key(), &r.to_json(), 100 + n as u64))
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
    );
    let (dispatcher, subscription) = dispatcher(client, Duration::from_secs(10));
    let records = oem_a();
    let response = dispatcher
        .dispatch(&batch(&records), Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.accepted.len(),
        records.len(),
        "each event accepted once"
    );
    assert!(seen.sent > records.len(), "throttled entries were resent");
    assert_eq!(per_dsn(seen.accepted.clone()), expected(&records));
    assert!(dispatcher.parking().parked(&subscription.id).is_empty());
    let decoded: Vec<DeviceEvent> = seen
        .accepted
        .iter()
        .map(|(_, data)| DeviceEvent::from_customer_json(data).unwrap())
        .collect();
    assert_eq!(decoded.len(), records.len());
}

#[tokio::test(start_paused = true)]
async fn a_stream_throttled_past_the_budget_parks_the_rest_in_order_for_the_redrive() {
    // Half an answer, then nothing but throttled calls.
    let (client, seen) = mocked(vec![Answer::ThrottleOdd], Answer::ThrottleCall);
    let (dispatcher, subscription) = dispatcher(client, Duration::from_secs(2));
    let records = oem_a();
    let response = dispatcher
        .dispatch(&batch(&records), Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "parked counts as secured"
    );
    let delivered = seen.lock().unwrap().accepted.clone();
    let parked = dispatcher.parking().parked(&subscription.id);
    assert!(!delivered.is_empty() && !parked.is_empty());
    assert_eq!(delivered.len() + parked.len(), records.len());
    // Delivered then parked, per DSN, is the input order.
    let mut together = delivered.clone();
    together.extend(parked.iter().map(|d| (d.dsn.clone(), d.payload.clone())));
    assert_eq!(per_dsn(together), expected(&records));
    let health = dispatcher.subscription_store();
    let health = dpl::streams::dynamo::SubscriptionStore::get(health, &subscription.id)
        .await
        .unwrap()
        .unwrap()
        .health;
    assert_eq!(health.parked, parked.len() as u64);
    assert!(health
        .last_error
        .unwrap()
        .message
        .contains("stream did not accept"));
}
