//! The dead-letter queue: one SQS message per malformed stream record,
//! with its error. See `docs/twin-events.md` for the choice and format.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_sqs::error::DisplayErrorContext;
use serde::Serialize;

use crate::batch::RecordError;

/// Largest SQS message body we send: 256 KiB, the default (and, before
/// 2025, the only) maximum message size. Amazon SQS Developer Guide,
/// "Amazon SQS message quotas": "The maximum is 262,144 bytes (256 KiB)".
pub const SQS_MAX_MESSAGE_BYTES: usize = 262_144;

/// `reason` of a dead letter.
pub const REASON_MALFORMED: &str = "malformed_record";

/// A dead letter's body (JSON). `record` is the stream record as Lambda
/// delivered it; when that makes the body too large for SQS, its images are
/// dropped and `record_truncated` is `true` (the keys, the sequence number
/// and the error remain, which is what an operator needs to find the item).
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    pub reason: &'static str,
    pub error: String,
    pub stream_event_id: &'a str,
    pub attribute: Option<&'a str>,
    pub sequence_number: Option<&'a str>,
    pub event_source_arn: Option<&'a str>,
    pub record_truncated: bool,
    pub record: &'a EventRecord,
}

/// The body of the dead letter of `record`, within [`SQS_MAX_MESSAGE_BYTES`].
pub fn dead_letter_body(record: &EventRecord, error: &RecordError) -> String {
    let letter = |record: &EventRecord, record_truncated| {
        serde_json::to_string(&DeadLetter {
            reason: REASON_MALFORMED,
            error: error.to_string(),
            stream_event_id: &record.event_id,
            attribute: error.attribute(),
            sequence_number: record.change.sequence_number.as_deref(),
            event_source_arn: record.event_source_arn.as_deref(),
            record_truncated,
            record,
        })
        .expect("a dead letter always serializes")
    };
    let full = letter(record, false);
    if full.len() <= SQS_MAX_MESSAGE_BYTES {
        return full;
    }
    let mut without_images = record.clone();
    without_images.change.new_image = Default::default();
    without_images.change.old_image = Default::default();
    letter(&without_images, true)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetterError {
    #[error("SQS SendMessage failed: {0}")]
    Sqs(String),
    #[error("no answer from the dead-letter queue before the deadline")]
    Deadline,
}

/// The port to the dead-letter place.
pub trait DeadLetterQueue {
    fn send(&self, body: String) -> impl Future<Output = Result<(), DeadLetterError>> + Send;
}

/// Dead letters as SQS messages.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl DeadLetterQueue for SqsDeadLetters {
    async fn send(&self, body: String) -> Result<(), DeadLetterError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map(drop)
            .map_err(|error| DeadLetterError::Sqs(DisplayErrorContext(&error).to_string()))
    }
}

/// Dead letters kept in memory, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct InMemoryDeadLetters {
    bodies: Mutex<Vec<String>>,
    failing: bool,
}

impl InMemoryDeadLetters {
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue that refuses every message.
    pub fn failing() -> Self {
        Self {
            failing: true,
            ..Self::default()
        }
    }

    pub fn bodies(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl DeadLetterQueue for InMemoryDeadLetters {
    async fn send(&self, body: String) -> Result<(), DeadLetterError> {
        if self.failing {
            return Err(DeadLetterError::Sqs("queue refuses messages".into()));
        }
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(body);
        Ok(())
    }
}
