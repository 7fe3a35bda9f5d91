//! Failures moto cannot produce, through the real SDK client: partial and
//! total throttling (aws-smithy-mocks), a dropped connection and a hung
//! call (a scripted HTTP client).

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::ErrorMetadata;
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsInput, PutRecordsOutput};
use aws_sdk_kinesis::types::error::ProvisionedThroughputExceededException;
use aws_sdk_kinesis::types::PutRecordsResultEntry;
use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use dpl::DplRecord;
use tokio::time::Instant;
use twin_events::dead_letter::InMemoryDeadLetters;
use twin_events::Handler;

const STREAM: &str = "dpl";
const THROTTLED: &str = "ProvisionedThroughputExceededException";

/// What the mocked stream saw: every request (as DPL records), and the
/// records it accepted, in order.
#[derive(Default)]
struct Seen {
    requests: Vec<Vec<DplRecord>>,
    /// Per request, which of its entries were accepted.
    answers: Vec<Vec<bool>>,
    accepted: Vec<DplRecord>,
}

type Answer = Box<dyn Fn(usize, &DplRecord) -> bool + Send + Sync>;

/// A Kinesis client whose `PutRecords` call number `n` accepts the entries
/// for which `answers[n]` says true (throttling the others), or fails as a
/// whole with a throttling error where `answers[n]` is `None`; calls past
/// the script accept everything.
fn mocked_kinesis(answers: Vec<Option<Answer>>) -> (Client, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let calls = Arc::new(Mutex::new(0usize));
    let record = seen.clone();
    let rule = mock!(Client::put_records).then_compute_response(move |input: &PutRecordsInput| {
        let sent: Vec<DplRecord> = input
            .records()
            .iter()
            .map(|r| DplRecord::from_json(r.data().as_ref()).unwrap())
            .collect();
        let mut call = calls.lock().unwrap();
        let answer = answers.get(*call);
        *call += 1;
        let mut seen = record.lock().unwrap();
        seen.requests.push(sent.clone());
        let accept: &dyn Fn(usize, &DplRecord) -> bool = match answer {
            Some(Some(accept)) => accept.as_ref(),
            Some(None) => {
                seen.answers.push(vec![false; sent.len()]);
                return MockResponse::Error(
                    PutRecordsError::ProvisionedThroughputExceededException(
                        ProvisionedThroughputExceededException::builder()
                            .message("Rate exceeded for stream dpl")
                            .meta(ErrorMetadata::builder().code(THROTTLED).build())
                            .build(),
                    ),
                );
            }
            None => &|_, _| true,
        };
        let mut output = PutRecordsOutput::builder();
        let answers: Vec<bool> = sent
            .iter()
            .enumerate()
            .map(|(position, dpl_record)| accept(position, dpl_record))
            .collect();
        seen.answers.push(answers.clone());
        for (dpl_record, accepted) in sent.iter().zip(answers) {
            let entry = if accepted {
                seen.accepted.push(dpl_record.clone());
                PutRecordsResultEntry::builder()
                    .sequence_number(seen.accepted.len().to_string())
                    .shard_id("shardId-000000000000")
            } else {
                PutRecordsResultEntry::builder()
                    .error_code(THROTTLED)
                    .error_message("Rate exceeded for shard shardId-000000000000")
            };
            output = output.records(entry.build());
        }
        MockResponse::Output(output.build().unwrap())
    });
    let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, &[&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    (client, seen)
}

/// Runs the handler with `client` as its Kinesis.
async fn handle(
    client: Client,
    records: &[EventRecord],
    deadline: Instant,
) -> DynamoDbEventResponse {
    Handler::new(
        client,
        InMemoryDeadLetters::new(),
        &common::config(STREAM, "-"),
    )
    .process(records, deadline)
    .await
    .unwrap()
}

fn dsn_is(dsn: &'static str) -> impl Fn(usize, &DplRecord) -> bool {
    move |_, record| record.dpl_event.dsn() == dsn
}

fn first_failure(
    response: &aws_lambda_events::event::streams::DynamoDbEventResponse,
) -> Option<&str> {
    assert!(response.batch_item_failures.len() <= 1);
    response
        .batch_item_failures
        .first()
        .and_then(|f| f.item_identifier.as_deref())
}

fn sequence_number(record: &EventRecord) -> &str {
    record.change.sequence_number.as_deref().unwrap()
}

fn dsns(records: &[DplRecord]) -> Vec<&str> {
    records.iter().map(|r| r.dpl_event.dsn()).collect()
}

/// The promises of one invocation, whatever the request shapes: every
/// event accepted exactly once, per DSN in the original order; no request
/// carries an entry accepted before (only failed entries are resent) nor
/// two entries of one DSN (so none can overtake another inside a request).
fn assert_delivered_once_in_dsn_order(seen: &Seen, expected: &[DplRecord]) {
    let id = |r: &DplRecord| r.event_id;
    let mut accepted: Vec<_> = seen.accepted.iter().map(id).collect();
    let mut all: Vec<_> = expected.iter().map(id).collect();
    accepted.sort();
    all.sort();
    assert_eq!(accepted, all, "every event accepted exactly once");
    for dsn in ["AC000W000000001", "AC000W000000002", "AC000W000000003"] {
        let of = |list: &[DplRecord]| -> Vec<DplRecord> {
            list.iter()
                .filter(|r| r.dpl_event.dsn() == dsn)
                .cloned()
                .collect()
        };
        assert_eq!(of(&seen.accepted), of(expected), "order of {dsn}");
    }
    let mut accepted_before = std::collections::HashSet::new();
    for (request, answers) in seen.requests.iter().zip(&seen.answers) {
        let mut keys: Vec<&str> = dsns(request);
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), request.len(), "one entry per DSN per request");
        assert!(
            request
                .iter()
                .all(|r| !accepted_before.contains(&r.event_id)),
            "an accepted entry was sent again"
        );
        accepted_before.extend(
            request
                .iter()
                .zip(answers)
                .filter(|(_, accepted)| **accepted)
                .map(|(r, _)| r.event_id),
        );
    }
}

#[tokio::test]
async fn throttled_entries_alone_are_resent_in_order_until_accepted() {
    let records = common::sample("mixed-batch.json");
    let expected = common::expected_records(&records);
    // Call 0: only DSN ...003's event gets in (the shards of the other two
    // DSNs are over quota). Call 1: everything throttled, entry by entry.
    // Call 2: the whole call throttled. Then accepted.
    let (client, seen) = mocked_kinesis(vec![
        Some(Box::new(dsn_is("AC000W000000003"))),
        Some(Box::new(|_, _| false)),
        None,
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let response = handle(client, &records, deadline).await;
    assert_eq!(first_failure(&response), None);

    let seen = seen.lock().unwrap();
    assert_delivered_once_in_dsn_order(&seen, &expected);
    let first = dsns(&seen.requests[0]);
    assert_eq!(first.len(), 3, "first call: the first event of each DSN");
    assert_eq!(
        dsns(&seen.requests[1]),
        vec!["AC000W000000003"],
        "then ...003 goes on alone while the failed DSNs wait for the next round"
    );
    assert!(seen.requests.len() > 4, "throttled calls were retried");
}

#[tokio::test]
async fn a_dsn_that_failed_waits_while_other_dsns_go_on() {
    let records = common::sample("mixed-batch.json");
    let expected = common::expected_records(&records);
    // Call 0 throttles DSN ...001 only.
    let (client, seen) = mocked_kinesis(vec![Some(Box::new(|_, r: &DplRecord| {
        r.dpl_event.dsn() != "AC000W000000001"
    }))]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let response = handle(client, &records, deadline).await;
    assert_eq!(first_failure(&response), None);
    let seen = seen.lock().unwrap();
    assert_delivered_once_in_dsn_order(&seen, &expected);
    // Until ...001's failed event is resent, the other DSNs go on without it.
    let resent = seen
        .requests
        .iter()
        .skip(1)
        .position(|r| dsns(r).contains(&"AC000W000000001"))
        .expect("...001 resent")
        + 1;
    assert!(resent > 1, "other DSNs were sent before the retry round");
    assert!(seen.requests[1..resent]
        .iter()
        .all(|r| !dsns(r).contains(&"AC000W000000001")));
}

#[tokio::test]
async fn when_throttling_outlasts_the_deadline_lambda_retries_from_the_first_unpublished_record() {
    let records = common::sample("mixed-batch.json");
    // DSN ...003 (records 0 and 1, three events) gets in over the first
    // three calls; after that everything is throttled.
    let mut script: Vec<Option<Answer>> = (0..3)
        .map(|_| Some(Box::new(dsn_is("AC000W000000003")) as Answer))
        .collect();
    script.extend((0..10_000).map(|_| Some(Box::new(|_: usize, _: &DplRecord| false) as Answer)));
    let (client, seen) = mocked_kinesis(script);
    let started = Instant::now();
    let response = handle(client, &records, started + Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_millis(600));
    assert_eq!(first_failure(&response), Some(sequence_number(&records[2])));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.accepted.len(), 3);
    assert!(seen.requests.len() > 3, "retried while time remained");
}

/// An HTTP client that plays a script: drop the connection, hang, or
/// answer `PutRecords` with every entry accepted.
#[derive(Clone, Debug, Default)]
struct ScriptedHttp {
    steps: Arc<Mutex<VecDeque<Step>>>,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

#[derive(Clone, Copy, Debug)]
enum Step {
    ConnectionReset,
    Hang,
}

impl HttpConnector for ScriptedHttp {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body: serde_json::Value =
            serde_json::from_slice(request.body().bytes().unwrap_or_default()).unwrap();
        let entries = body["Records"].as_array().map_or(0, Vec::len);
        self.bodies.lock().unwrap().push(body);
        match self.steps.lock().unwrap().pop_front() {
            Some(Step::ConnectionReset) => HttpConnectorFuture::ready(Err(ConnectorError::io(
                "connection reset by peer".into(),
            ))),
            Some(Step::Hang) => HttpConnectorFuture::new(std::future::pending()),
            None => {
                let records: Vec<serde_json::Value> = (0..entries)
                    .map(|i| serde_json::json!({"SequenceNumber": i.to_string(), "ShardId": "shardId-000000000000"}))
                    .collect();
                let answer = serde_json::json!({"FailedRecordCount": 0, "Records": records});
                let response = HttpResponse::new(
                    200u16.try_into().unwrap(),
                    SdkBody::from(answer.to_string()),
                );
                HttpConnectorFuture::ready(Ok(response))
            }
        }
    }
}

impl HttpClient for ScriptedHttp {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn scripted_kinesis(steps: &[Step]) -> (Client, ScriptedHttp) {
    let http = ScriptedHttp::default();
    http.steps.lock().unwrap().extend(steps.iter().copied());
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(http.clone())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(100))
                .build(),
        )
        .build();
    (Client::from_conf(config), http)
}

#[tokio::test]
async fn a_dropped_connection_and_a_timed_out_call_are_retried() {
    let records = common::sample("mixed-batch.json");
    let (client, http) = scripted_kinesis(&[Step::ConnectionReset, Step::Hang]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let response = handle(client, &records, deadline).await;
    assert_eq!(first_failure(&response), None);
    let bodies = http.bodies.lock().unwrap();
    assert!(bodies.len() > 3, "reset, timeout, success, then the rest");
    assert!(
        bodies[..3].iter().all(|b| b == &bodies[0]),
        "the same request each time"
    );
}

#[tokio::test]
async fn a_call_hanging_past_the_deadline_reports_the_first_record() {
    let records = common::sample("mixed-batch.json");
    let (client, _http) = scripted_kinesis(&[Step::Hang; 100]);
    let response = handle(
        client,
        &records,
        Instant::now() + Duration::from_millis(250),
    )
    .await;
    assert_eq!(first_failure(&response), Some(sequence_number(&records[0])));
}
