//! One invocation: derive the batch's events, publish them to the DPL
//! stream, dead-letter the malformed records, and tell Lambda where to
//! retry from if anything is left.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use dpl::kinesis::{publish, Backoff, PublishOutcome, PutRecordsApi};
use lambda_runtime::{Context, LambdaEvent};
use tokio::time::{timeout_at, Instant};

use crate::batch::{earliest, response, Batch, MissingSequenceNumber, Rejected};
use crate::config::Config;
use crate::dead_letter::{dead_letter_body, DeadLetterError, DeadLetterQueue};

/// `PutRecords` calls in flight at once. One: the DPL stream is in the
/// function's region (round trips of milliseconds), and after a partial
/// failure the batch is retried from its first unpublished record, which
/// more calls in flight would only make later.
const PUT_CALLS_IN_FLIGHT: usize = 1;

/// The handler, with its clients built once.
#[derive(Debug)]
pub struct Handler<K, D> {
    kinesis: K,
    dead_letters: D,
    stream_name: String,
    backoff: Backoff,
    deadline_margin: Duration,
}

impl<K: PutRecordsApi, D: DeadLetterQueue> Handler<K, D> {
    pub fn new(kinesis: K, dead_letters: D, config: &Config) -> Self {
        Self {
            kinesis,
            dead_letters,
            stream_name: config.stream_name.clone(),
            backoff: config.backoff,
            deadline_margin: config.deadline_margin,
        }
    }

    pub fn kinesis(&self) -> &K {
        &self.kinesis
    }

    pub fn dead_letters(&self) -> &D {
        &self.dead_letters
    }

    /// The Lambda entry point.
    pub async fn handle(
        &self,
        event: LambdaEvent<Event>,
    ) -> Result<DynamoDbEventResponse, MissingSequenceNumber> {
        let deadline = deadline(&event.context, self.deadline_margin);
        self.process(&event.payload.records, deadline).await
    }

    /// Handles `records`, finishing by `deadline`: every record before the
    /// returned batch item failure (if any) is done, its events accepted by
    /// the DPL stream or, if malformed, its dead letter accepted by the queue.
    pub async fn process(
        &self,
        records: &[EventRecord],
        deadline: Instant,
    ) -> Result<DynamoDbEventResponse, MissingSequenceNumber> {
        let started = Instant::now();
        let batch = Batch::from_records(records);
        let outcome = publish(
            &self.kinesis,
            &self.stream_name,
            &batch.entries,
            deadline,
            &self.backoff,
            PUT_CALLS_IN_FLIGHT,
        )
        .await;
        let unpublished = outcome.first_unaccepted().and_then(|e| batch.owner(e));
        let (dead_lettered, undelivered) = self
            .dead_letter(records, &batch.rejected, unpublished, deadline)
            .await;
        let retry_from = earliest(unpublished, undelivered);
        log_batch(
            records,
            &batch,
            &outcome,
            dead_lettered,
            retry_from,
            started,
        );
        response(records, retry_from)
    }

    /// Sends the dead letters of the rejected records before `limit` (later
    /// ones are retried anyway), in order. Returns how many were sent and
    /// the first record whose dead letter could not be sent.
    async fn dead_letter(
        &self,
        records: &[EventRecord],
        rejected: &[Rejected],
        limit: Option<usize>,
        deadline: Instant,
    ) -> (usize, Option<usize>) {
        let due = rejected
            .iter()
            .take_while(|r| limit.is_none_or(|limit| r.record < limit));
        let mut sent = 0;
        for Rejected { record, error } in due {
            tracing::warn!(%error, "malformed stream record sent to the dead-letter queue");
            let body = dead_letter_body(&records[*record], error);
            let result = timeout_at(deadline, self.dead_letters.send(body))
                .await
                .unwrap_or(Err(DeadLetterError::Deadline));
            if let Err(send_error) = result {
                tracing::error!(%send_error, stream_event_id = %records[*record].event_id,
                    "dead letter not sent; the batch is retried from this record");
                return (sent, Some(*record));
            }
            sent += 1;
        }
        (sent, None)
    }
}

/// The invocation deadline less `margin`, on the tokio clock.
fn deadline(context: &Context, margin: Duration) -> Instant {
    dpl::deadline::invocation_deadline(context.deadline, margin)
}

/// The one info line per batch: counts only, never payloads.
fn log_batch(
    records: &[EventRecord],
    batch: &Batch,
    outcome: &PublishOutcome,
    dead_lettered: usize,
    retry_from: Option<usize>,
    started: Instant,
) {
    let events_out = (0..batch.entries.len())
        .filter(|&i| outcome.is_accepted(i))
        .count();
    let retry_from = retry_from
        .and_then(|position| records.get(position))
        .and_then(|record| record.change.sequence_number.as_deref());
    if let Some(stopped) = &outcome.stopped {
        tracing::warn!(
            ?stopped,
            "publishing stopped before every event was accepted"
        );
    }
    tracing::info!(
        records_in = records.len(),
        events_out,
        rejected = batch.rejected.len(),
        dead_lettered,
        retries = outcome.stats.resent,
        max_in_flight = outcome.stats.max_in_flight,
        put_calls = outcome.stats.put_calls,
        retry_from,
        duration_ms = started.elapsed().as_millis() as u64,
        "batch handled"
    );
}
