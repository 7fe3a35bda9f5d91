//! One invocation: write the batch's staging and quarantine objects, and
//! tell Lambda where to retry from if a write failed.

use std::time::Instant;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use dpl::export::{Layout, ObjectStore, StoreError};
use lambda_runtime::LambdaEvent;

use crate::batch::{plan, BatchError, Write, WriteKind};
use crate::config::Config;

/// Content types of the objects written.
const STAGING_CONTENT_TYPE: &str = "application/x-ndjson";
const QUARANTINE_CONTENT_TYPE: &str = "application/json";

/// The handler, with its store built once.
#[derive(Debug)]
pub struct Handler<S> {
    store: S,
    layout: Layout,
}

impl<S: ObjectStore> Handler<S> {
    pub fn new(store: S, config: &Config) -> Self {
        Self {
            store,
            layout: config.storage.layout.clone(),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The Lambda entry point.
    pub async fn handle(
        &self,
        event: LambdaEvent<KinesisEvent>,
    ) -> Result<KinesisEventResponse, BatchError> {
        self.process(&event.payload.records).await
    }

    /// Writes every object of `records`. Every record before the returned
    /// batch item failure (if any) is stored: staged, or quarantined.
    pub async fn process(
        &self,
        records: &[KinesisEventRecord],
    ) -> Result<KinesisEventResponse, BatchError> {
        let started = Instant::now();
        let writes = plan(&self.layout, records)?;
        let mut retry_from: Option<usize> = None;
        for write in &writes {
            if let Err(error) = self.write(write).await {
                tracing::error!(%error, key = %write.key,
                    "object not written; the batch is retried from its first record");
                retry_from =
                    Some(retry_from.map_or(write.first_record, |r| r.min(write.first_record)));
            }
        }
        log_batch(records, &writes, retry_from, started);
        let mut response = KinesisEventResponse::default();
        if let Some(record) = retry_from.and_then(|n| records.get(n)) {
            response.add_failure(record.kinesis.sequence_number.clone());
        }
        Ok(response)
    }

    async fn write(&self, write: &Write) -> Result<String, StoreError> {
        let content_type = match write.kind {
            WriteKind::Staging { .. } => STAGING_CONTENT_TYPE,
            WriteKind::Quarantine => {
                tracing::warn!(key = %write.key, "malformed DPL record quarantined");
                QUARANTINE_CONTENT_TYPE
            }
        };
        self.store
            .put(&write.key, write.body.clone(), content_type)
            .await
    }
}

/// The one info line per batch: counts only, never payloads.
fn log_batch(
    records: &[KinesisEventRecord],
    writes: &[Write],
    retry_from: Option<usize>,
    started: Instant,
) {
    let (mut staged_objects, mut rows, mut quarantined) = (0, 0, 0);
    for write in writes {
        match write.kind {
            WriteKind::Staging { rows: n } => {
                staged_objects += 1;
                rows += n;
            }
            WriteKind::Quarantine => quarantined += 1,
        }
    }
    let retry_from = retry_from
        .and_then(|n| records.get(n))
        .map(|r| r.kinesis.sequence_number.as_str());
    tracing::info!(
        records_in = records.len(),
        staged_objects,
        rows,
        quarantined,
        retry_from,
        duration_ms = started.elapsed().as_millis() as u64,
        "batch staged"
    );
}
