//! One invocation: compute the hours (schedule) or take the one asked for,
//! export what needs it, log one line per partition and one per run.
//!
//! Fan-out: partitions are exported one after the other, in this
//! invocation. See `docs/export.md` ("Fan-out") for the limits of that and
//! the planned per-partition asynchronous invocations.

use std::time::Instant;

use dpl::export::run::Progress;
use dpl::export::{
    candidate_hours, ExportError, Exporter, ObjectStore, PartitionOutcome, Selection, StoreError,
    Window,
};
use dpl::Timestamp;
use lambda_runtime::LambdaEvent;
use serde::Serialize;

use crate::config::Config;
use crate::request::{scheduled_time, Request, RequestError};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("listing staging objects: {0}")]
    Listing(#[from] StoreError),
    #[error("{failed} of {partitions} partitions failed; the first: {first}")]
    Partitions {
        failed: usize,
        partitions: usize,
        first: ExportError,
    },
}

/// The invocation's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub hours: Vec<String>,
    pub exported: usize,
    pub up_to_date: usize,
    pub rows: u64,
    pub bytes: u64,
}

pub struct Handler<S> {
    exporter: Exporter<S>,
    window: Window,
}

impl<S: ObjectStore> Handler<S> {
    pub fn new(store: S, config: &Config) -> Result<Self, ExportError> {
        Ok(Self {
            exporter: Exporter::new(store, config.storage.layout.clone(), config.options.clone())?,
            window: config.window,
        })
    }

    pub fn exporter(&self) -> &Exporter<S> {
        &self.exporter
    }

    /// The Lambda entry point.
    pub async fn handle(&self, event: LambdaEvent<Request>) -> Result<Summary, HandlerError> {
        self.process(&event.payload).await
    }

    pub async fn process(&self, request: &Request) -> Result<Summary, HandlerError> {
        let (hours, selection) = match request {
            Request::Scheduled(event) => (
                candidate_hours(scheduled_time(event)?, self.window),
                Selection::default(),
            ),
            Request::Hour(hour) => (
                vec![hour.hour().map_err(RequestError::from)?],
                Selection {
                    oem_id: hour.oem_id.clone(),
                    force: hour.force,
                },
            ),
        };
        self.export(&hours, &selection).await
    }

    /// Exports `hours`; an error if any partition failed (after trying all:
    /// the schedule's retry then redoes only what is still needed).
    pub async fn export(
        &self,
        hours: &[Timestamp],
        selection: &Selection,
    ) -> Result<Summary, HandlerError> {
        let started = Instant::now();
        let mut log = LogProgress;
        let outcomes = self.exporter.run(hours, selection, &mut log).await?;
        let mut summary = Summary {
            hours: hours.iter().map(|h| h.folder_name().to_string()).collect(),
            ..Summary::default()
        };
        let partitions = outcomes.len();
        let mut failures = Vec::new();
        for outcome in outcomes {
            match outcome {
                PartitionOutcome::Exported(e) => {
                    summary.exported += 1;
                    summary.rows += e.csv.rows;
                    summary.bytes += e.csv.bytes;
                }
                PartitionOutcome::UpToDate(_) => summary.up_to_date += 1,
                PartitionOutcome::Failed(_, error) => failures.push(error),
            }
        }
        tracing::info!(
            hours = hours.len(),
            partitions,
            exported = summary.exported,
            up_to_date = summary.up_to_date,
            failed = failures.len(),
            rows = summary.rows,
            bytes = summary.bytes,
            duration_ms = started.elapsed().as_millis() as u64,
            "export run finished"
        );
        let failed = failures.len();
        match failures.into_iter().next() {
            None => Ok(summary),
            Some(first) => Err(HandlerError::Partitions {
                failed,
                partitions,
                first,
            }),
        }
    }
}

/// One log line per exported or failed partition.
struct LogProgress;

impl Progress for LogProgress {
    fn finished(&mut self, outcome: &PartitionOutcome) {
        match outcome {
            PartitionOutcome::Exported(e) => tracing::info!(
                partition = %e.partition,
                reason = ?e.reason,
                staging_objects = e.staging_objects,
                rows = e.csv.rows,
                bytes = e.csv.bytes,
                parts = e.parts,
                duplicates_dropped = e.duplicates_dropped,
                "partition exported"
            ),
            PartitionOutcome::UpToDate(_) => {}
            PartitionOutcome::Failed(partition, error) => {
                tracing::error!(%partition, %error, "partition export failed")
            }
        }
    }
}
