//! The handler against in-memory Kinesis and dead-letter queue.

mod common;

use std::time::Duration;

use dpl::kinesis::{EntryResult, InMemoryKinesis};
use tokio::time::Instant;
use twin_events::dead_letter::InMemoryDeadLetters;
use twin_events::Handler;

const STREAM: &str = "dpl";

fn handler(
    kinesis: InMemoryKinesis,
    dead_letters: InMemoryDeadLetters,
) -> Handler<InMemoryKinesis, InMemoryDeadLetters> {
    Handler::new(kinesis, dead_letters, &common::config(STREAM, "memory"))
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn failed_sequence_numbers(
    response: &aws_lambda_events::event::streams::DynamoDbEventResponse,
) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.as_deref())
        .collect()
}

#[tokio::test]
async fn a_mixed_batch_is_published_in_order_per_dsn() {
    let records = common::sample("mixed-batch.json");
    let handler = handler(InMemoryKinesis::new(), InMemoryDeadLetters::new());
    let response = handler.process(&records, soon()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let published = handler.kinesis().records(STREAM);
    let data: Vec<&[u8]> = published.iter().map(|e| e.data()).collect();
    // Per DSN in record order (another DSN's events may come in between).
    let by_dsn = |mut records: Vec<dpl::DplRecord>| {
        records.sort_by(|a, b| a.dpl_event.dsn().cmp(b.dpl_event.dsn()));
        records
    };
    assert_eq!(
        by_dsn(common::parse_records(data)),
        by_dsn(common::expected_records(&records))
    );
    for entry in &published {
        assert_eq!(
            entry.partition_key(),
            common::parse_records([entry.data()])[0].dpl_event.dsn()
        );
    }
}

#[tokio::test]
async fn a_malformed_record_goes_to_the_dead_letter_queue_and_its_neighbours_are_published() {
    let records = common::sample("malformed-batch.json");
    let handler = handler(InMemoryKinesis::new(), InMemoryDeadLetters::new());
    let response = handler.process(&records, soon()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(handler.kinesis().records(STREAM).len(), 2);
    let letters = handler.dead_letters().bodies();
    assert_eq!(letters.len(), 1);
    let letter: serde_json::Value = serde_json::from_str(&letters[0]).unwrap();
    assert_eq!(letter["reason"], "malformed_record");
    assert_eq!(letter["stream_event_id"], records[1].event_id.as_str());
    assert_eq!(letter["attribute"], "NewImage.connection_status");
    assert_eq!(
        letter["sequence_number"].as_str(),
        records[1].change.sequence_number.as_deref()
    );
    assert!(letter["error"]
        .as_str()
        .unwrap()
        .contains("expected S, found N"));
    assert_eq!(letter["record_truncated"], false);
    assert_eq!(letter["record"]["eventID"], records[1].event_id.as_str());
}

#[tokio::test]
async fn when_the_dead_letter_cannot_be_written_the_batch_is_retried_from_that_record() {
    let records = common::sample("malformed-batch.json");
    let handler = handler(InMemoryKinesis::new(), InMemoryDeadLetters::failing());
    let response = handler.process(&records, soon()).await.unwrap();
    assert_eq!(
        failed_sequence_numbers(&response),
        vec![records[1].change.sequence_number.as_deref().unwrap()]
    );
}

#[tokio::test]
async fn when_time_runs_out_the_first_record_not_fully_published_is_reported() {
    let records = common::sample("mixed-batch.json");
    // Over the first three calls the events of DSN ...003 (records 0 and 1)
    // are accepted; everything else is throttled.
    let kinesis = InMemoryKinesis::new().with_fault(|call, batch| {
        Some(Ok(batch
            .iter()
            .map(|e| match (call, e.partition_key()) {
                (0..=2, "AC000W000000003") => EntryResult::Accepted,
                _ => EntryResult::failed("ProvisionedThroughputExceededException", "Rate exceeded"),
            })
            .collect()))
    });
    let handler = handler(kinesis, InMemoryDeadLetters::new());
    let deadline = Instant::now() + Duration::from_millis(150);
    let response = handler.process(&records, deadline).await.unwrap();
    // Events 0-2 are the activation (record 0) and the inserted device's
    // connectivity and location (record 1): record 2 is the first left.
    assert_eq!(
        failed_sequence_numbers(&response),
        vec![records[2].change.sequence_number.as_deref().unwrap()]
    );
    assert_eq!(handler.kinesis().records(STREAM).len(), 3);
}

#[tokio::test]
async fn an_empty_batch_succeeds_without_calls() {
    let handler = handler(InMemoryKinesis::new(), InMemoryDeadLetters::new());
    let response = handler.process(&[], soon()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(handler.kinesis().calls(), 0);
}
