//! The [`TaskQueue`] adapter for `aws_sdk_sqs::Client`: one
//! `SendMessageBatch` call, its answer translated without judging it
//! ([`crate::fan_out::sort_answer`] judges).

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::queue::{BatchAnswer, FailedEntry, QueueError, TaskMessage, TaskQueue};

/// Export tasks as messages of an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsTaskQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsTaskQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl TaskQueue for SqsTaskQueue {
    async fn send_batch(&self, messages: &[TaskMessage]) -> Result<BatchAnswer, QueueError> {
        let entries = messages
            .iter()
            .map(|m| {
                SendMessageBatchRequestEntry::builder()
                    .id(&m.id)
                    .message_body(&m.body)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError(e.to_string()))?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError(DisplayErrorContext(&e).to_string()))?;
        Ok(BatchAnswer {
            successful: output
                .successful()
                .iter()
                .map(|s| s.id().to_owned())
                .collect(),
            failed: output
                .failed()
                .iter()
                .map(|f| FailedEntry {
                    id: f.id().to_owned(),
                    code: f.code().to_owned(),
                    message: f.message().unwrap_or_default().to_owned(),
                    sender_fault: f.sender_fault(),
                })
                .collect(),
        })
    }
}
