//! The real handlers, wired as each function's `main` wires them, with the
//! configuration the template gives them, behind [`Invoke`].

use std::time::Duration;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use dpl::export::s3::S3Store;
use dpl::streams::build::LambdaEngine;
use dpl::streams::function::{StreamRequest, StreamResponse};
use tokio::time::Instant;
use twin_events::dead_letter::SqsDeadLetters;

use crate::esm::{batch_item_failures, Invoke};

/// `twin-events`.
pub struct TwinEvents {
    pub handler: twin_events::Handler<aws_sdk_kinesis::Client, SqsDeadLetters>,
    /// The function's timeout less its deadline margin.
    pub budget: Duration,
}

impl Invoke<EventRecord> for TwinEvents {
    async fn invoke(&self, records: &[EventRecord]) -> anyhow::Result<Vec<String>> {
        let response = self
            .handler
            .process(records, Instant::now() + self.budget)
            .await?;
        batch_item_failures(&response)
    }
}

/// `event-store`.
pub struct EventStore {
    pub handler: event_store::Handler<S3Store>,
}

impl Invoke<KinesisEventRecord> for EventStore {
    async fn invoke(&self, records: &[KinesisEventRecord]) -> anyhow::Result<Vec<String>> {
        let response = self.handler.process(records).await?;
        batch_item_failures(&response)
    }
}

/// `stream-kinesis` or `stream-eventhubs`, by the engine's transport.
pub struct StreamFunction {
    pub engine: LambdaEngine,
    pub budget: Duration,
}

impl Invoke<KinesisEventRecord> for StreamFunction {
    async fn invoke(&self, records: &[KinesisEventRecord]) -> anyhow::Result<Vec<String>> {
        let mut event = KinesisEvent::default();
        event.records = records.to_vec();
        let request = StreamRequest::Batch(event);
        match self
            .engine
            .handle(&request, Instant::now() + self.budget)
            .await?
        {
            StreamResponse::Batch(response) => batch_item_failures(&response),
            other => anyhow::bail!("a batch answered with {other:?}"),
        }
    }
}
