//! One invocation, by what it was invoked with:
//!
//! - the schedule: compute the candidate hours, plan their partitions, and
//!   either export those that need it here (no task queue) or queue one
//!   export task per such partition (fan-out, [`crate::fan_out`]);
//! - one hour (a manual run): export it here;
//! - an SQS event of export tasks: export each task's partition here and
//!   answer which messages failed (partial batch response).
//!
//! Logs one line per exported, kept or failed partition and one per run.
//! See `docs/export.md` ("Fan-out") for why a queue.
//!
//! A partition whose file was made from staging objects that are gone is
//! never re-exported from what is left ("Re-exports never shrink" in
//! `docs/export.md`): a scheduled run or an export task keeps it and logs
//! an error; an hour request fails with an error naming the objects,
//! unless it sets `allow_shrink`.

use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use dpl::export::manifest::StagingGone;
use dpl::export::run::Progress;
use dpl::export::{
    candidate_hours, Decision, ExportError, Exporter, ObjectStore, Partition, PartitionOutcome,
    RangeOutcome, Selection, StoreError, Window,
};
use dpl::Timestamp;
use lambda_runtime::LambdaEvent;
use serde::Serialize;

use crate::config::Config;
use crate::fan_out::{send_tasks, FanOutError};
use crate::queue::{NoQueue, TaskQueue};
use crate::request::{scheduled_time, HourRequest, RangeTask, Request, RequestError};

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
        first: Box<ExportError>,
    },
    #[error("queueing export tasks: {0}")]
    FanOut(#[from] FanOutError),
    #[error("planning the split export of {partition}: {source}")]
    Split {
        partition: Partition,
        source: Box<ExportError>,
    },
    #[error("an SQS message without a messageId failed: its batch cannot be answered per message")]
    NoMessageId,
}

/// The answer to a scheduled run or an hour request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub hours: Vec<String>,
    pub exported: usize,
    pub up_to_date: usize,
    /// Partitions left as they are because staging objects their file was
    /// made from are gone (see the module docs).
    pub kept: usize,
    /// Export tasks queued (fan-out) instead of exported here.
    pub queued: usize,
    pub rows: u64,
    pub bytes: u64,
}

/// The invocation's answer: a summary, or for an SQS event the messages
/// whose task failed (`{"batchItemFailures": [{"itemIdentifier": …}]}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Summary(Summary),
    Tasks(SqsBatchResponse),
}

impl Response {
    pub fn summary(self) -> Option<Summary> {
        match self {
            Response::Summary(summary) => Some(summary),
            Response::Tasks(_) => None,
        }
    }

    pub fn tasks(self) -> Option<SqsBatchResponse> {
        match self {
            Response::Tasks(batch) => Some(batch),
            Response::Summary(_) => None,
        }
    }
}

/// The function over an object store `S` and, for the fan-out, a task
/// queue `Q` (none: everything runs in-process).
pub struct Handler<S, Q = NoQueue> {
    exporter: Exporter<S>,
    window: Window,
    queue: Option<Q>,
}

impl<S: ObjectStore> Handler<S> {
    /// A handler that exports in-process (no task queue).
    pub fn new(store: S, config: &Config) -> Result<Self, ExportError> {
        Handler::with_queue(store, None, config)
    }
}

impl<S: ObjectStore, Q: TaskQueue> Handler<S, Q> {
    /// A handler whose scheduled runs queue export tasks on `queue`, or
    /// export in-process when it is `None`.
    pub fn with_queue(store: S, queue: Option<Q>, config: &Config) -> Result<Self, ExportError> {
        Ok(Self {
            exporter: Exporter::new(store, config.storage.layout.clone(), config.options.clone())?,
            window: config.window,
            queue,
        })
    }

    pub fn exporter(&self) -> &Exporter<S> {
        &self.exporter
    }

    /// The Lambda entry point.
    pub async fn handle(&self, event: LambdaEvent<Request>) -> Result<Response, HandlerError> {
        self.process(&event.payload).await
    }

    pub async fn process(&self, request: &Request) -> Result<Response, HandlerError> {
        match request {
            Request::Scheduled(event) => {
                let hours = candidate_hours(scheduled_time(event)?, self.window);
                let summary = match &self.queue {
                    Some(queue) => self.fan_out(&hours, queue).await?,
                    None => {
                        self.export(&hours, &Selection::default(), Kept::Keep)
                            .await?
                    }
                };
                Ok(Response::Summary(summary))
            }
            Request::Hour(hour) => Ok(Response::Summary(
                self.export_request(hour, Kept::Fail).await?,
            )),
            Request::Tasks(event) => Ok(Response::Tasks(self.run_tasks(event).await?)),
        }
    }

    /// Exports what `request` names, here: one partition, or an hour
    /// (optionally of one OEM). `kept` says whether a partition kept for
    /// missing staging fails the request.
    pub async fn export_request(
        &self,
        request: &HourRequest,
        kept: Kept,
    ) -> Result<Summary, HandlerError> {
        let selection = Selection {
            oem_id: request.oem_id.clone(),
            force: request.force,
            allow_shrink: request.allow_shrink,
        };
        let range = request.checked_range()?;
        match request.partition()? {
            Some(partition) if range.is_some() => {
                let range = range.expect("checked above");
                self.export_range(partition, range).await
            }
            Some(partition) => self.export_partition(partition, &selection, kept).await,
            None => {
                let hour = request.hour().map_err(RequestError::from)?;
                self.export(&[hour], &selection, kept).await
            }
        }
    }

    /// Exports `hours`; an error if any partition failed (after trying all:
    /// the schedule's retry then redoes only what is still needed).
    pub async fn export(
        &self,
        hours: &[Timestamp],
        selection: &Selection,
        kept: Kept,
    ) -> Result<Summary, HandlerError> {
        let started = Instant::now();
        let outcomes = self
            .exporter
            .run(hours, selection, &mut LogProgress)
            .await?;
        summarize(hours, kept.apply(outcomes), started)
    }

    /// Exports one partition, listing only its staging folder.
    async fn export_partition(
        &self,
        partition: Partition,
        selection: &Selection,
        kept: Kept,
    ) -> Result<Summary, HandlerError> {
        let started = Instant::now();
        let hour = partition.hour;
        let listing = self.exporter.staged_partition(&partition).await?;
        let outcome = self
            .exporter
            .run_planned(partition, &listing, selection)
            .await;
        LogProgress.finished(&outcome);
        summarize(&[hour], kept.apply(vec![outcome]), started)
    }

    /// Runs one range task of a split partition (planned by the fan-out,
    /// which decided on the partition already).
    async fn export_range(
        &self,
        partition: Partition,
        task: &RangeTask,
    ) -> Result<Summary, HandlerError> {
        let started = Instant::now();
        let hour = partition.hour;
        let range = task.range();
        let outcome = match self
            .exporter
            .export_range(&partition, &task.split, range)
            .await
        {
            Ok(RangeOutcome::AlreadyDone) => {
                tracing::info!(%partition, split = %task.split, index = range.index, of = range.of, "range task: its split is complete already");
                PartitionOutcome::UpToDate(partition)
            }
            Ok(RangeOutcome::Uploaded { missing }) => {
                tracing::info!(%partition, split = %task.split, index = range.index, of = range.of, missing, "range exported; other ranges not yet");
                return Ok(Summary {
                    hours: hour_names(&[hour]),
                    ..Summary::default()
                });
            }
            Ok(RangeOutcome::Completed {
                exported,
                in_one_piece,
            }) => {
                if in_one_piece {
                    tracing::warn!(%partition, split = %task.split, "a range other than the last had rows but under 5 MiB (S3's least part): the split was abandoned and the partition exported in one piece");
                }
                PartitionOutcome::Exported(*exported)
            }
            Err(error) => PartitionOutcome::Failed(partition, error),
        };
        LogProgress.finished(&outcome);
        summarize(&[hour], vec![outcome], started)
    }

    /// The bodies of the tasks exporting `partition`, staged as `listing`:
    /// one, or one per range when it is split (the split is planned here,
    /// so that every range exports the same listing to the same upload).
    async fn tasks_of(
        &self,
        partition: &Partition,
        listing: &[dpl::export::ObjectInfo],
        reason: dpl::export::Reason,
    ) -> Result<Vec<String>, HandlerError> {
        let ranges = self.exporter.ranges_for(listing);
        if ranges == 1 {
            return Ok(vec![HourRequest::task(partition).to_body()]);
        }
        let split = self
            .exporter
            .plan_split(partition, listing, reason, ranges)
            .await
            .map_err(|source| HandlerError::Split {
                partition: partition.clone(),
                source: Box::new(source),
            })?;
        tracing::info!(%partition, %split, ranges, "split export planned");
        Ok((0..ranges)
            .map(|index| {
                HourRequest::range_task(
                    partition,
                    &split,
                    dpl::export::TimeRange { index, of: ranges },
                )
                .to_body()
            })
            .collect())
    }

    /// Plans `hours` as an in-process run would, and queues one export task
    /// per partition that needs exporting, or one per range of a partition
    /// too large for one task. A partition whose manifest cannot be read is
    /// queued too: its task decides again.
    async fn fan_out(&self, hours: &[Timestamp], queue: &Q) -> Result<Summary, HandlerError> {
        let started = Instant::now();
        let planned = self.exporter.plan(hours, &Selection::default()).await?;
        let partitions = planned.len();
        let mut summary = Summary {
            hours: hour_names(hours),
            ..Summary::default()
        };
        let mut tasks = Vec::new();
        for (partition, listing) in planned {
            match self.exporter.decide(&partition, &listing).await {
                Ok(Decision::Export(reason)) => {
                    tracing::debug!(%partition, ?reason, "export task planned");
                    tasks.extend(self.tasks_of(&partition, &listing, reason).await?);
                }
                Ok(Decision::UpToDate | Decision::NothingStaged) => summary.up_to_date += 1,
                Ok(Decision::StagingGone(gone)) => {
                    log_kept(&partition, &gone);
                    summary.kept += 1;
                }
                Err(error) => {
                    tracing::warn!(%partition, %error, "cannot decide; queued for its task to decide");
                    tasks.push(HourRequest::task(&partition).to_body());
                }
            }
        }
        let planned_tasks = tasks.len();
        let sent = send_tasks(queue, tasks).await;
        tracing::info!(
            hours = hours.len(),
            partitions,
            up_to_date = summary.up_to_date,
            kept = summary.kept,
            tasks = planned_tasks,
            queued = sent.as_ref().map_or(0, |n| *n),
            duration_ms = started.elapsed().as_millis() as u64,
            "export tasks queued"
        );
        summary.queued = sent?;
        Ok(summary)
    }

    /// Runs each task of an SQS event; the answer lists the messages whose
    /// task failed or could not be read, for SQS to deliver again (and,
    /// after the queue's maxReceiveCount, to move to its dead-letter queue).
    async fn run_tasks(&self, event: &SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        let mut response = SqsBatchResponse::default();
        for message in &event.records {
            let Err(error) = self.run_task(message).await else {
                continue;
            };
            let receive_count = message
                .attributes
                .get("ApproximateReceiveCount")
                .map(String::as_str);
            match &error {
                HandlerError::Request(RequestError::MalformedTask(_) | RequestError::NoBody) => {
                    tracing::error!(
                        message_id = message.message_id.as_deref(),
                        receive_count,
                        %error,
                        "malformed export task: not an hour request; it ends in the dead-letter queue"
                    )
                }
                _ => tracing::error!(
                    message_id = message.message_id.as_deref(),
                    receive_count,
                    %error,
                    "export task failed"
                ),
            }
            let id = message
                .message_id
                .as_deref()
                .ok_or(HandlerError::NoMessageId)?;
            response.add_failure(id);
        }
        Ok(response)
    }

    async fn run_task(&self, message: &SqsMessage) -> Result<Summary, HandlerError> {
        let body = message.body.as_deref().ok_or(RequestError::NoBody)?;
        let task = HourRequest::from_body(body)?;
        // A task is part of a scheduled run: a kept partition is logged,
        // not retried (its staging will not come back).
        self.export_request(&task, Kept::Keep).await
    }
}

/// What a run does with a partition kept because staging objects its file
/// was made from are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// Leave the file, log an error, count it (scheduled runs and tasks:
    /// retrying cannot bring the staging back).
    Keep,
    /// Fail with an error naming the objects and what to do (an
    /// operator's hour request).
    Fail,
}

impl Kept {
    fn apply(self, outcomes: Vec<PartitionOutcome>) -> Vec<PartitionOutcome> {
        match self {
            Kept::Keep => outcomes,
            Kept::Fail => outcomes
                .into_iter()
                .map(PartitionOutcome::kept_as_error)
                .collect(),
        }
    }
}

fn log_kept(partition: &Partition, gone: &StagingGone) {
    tracing::error!(
        %partition,
        missing = gone.missing.len(),
        rows = gone.rows,
        "partition kept, not re-exported: {gone}; an export now would shrink the file \
         (see docs/export.md, \"Re-exports never shrink\")"
    );
}

fn hour_names(hours: &[Timestamp]) -> Vec<String> {
    hours.iter().map(|h| h.folder_name().to_string()).collect()
}

/// The summary of a run's outcomes, logged; an error if any failed.
fn summarize(
    hours: &[Timestamp],
    outcomes: Vec<PartitionOutcome>,
    started: Instant,
) -> Result<Summary, HandlerError> {
    let mut summary = Summary {
        hours: hour_names(hours),
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
            PartitionOutcome::Kept(..) => summary.kept += 1,
            PartitionOutcome::Failed(_, error) => failures.push(error),
        }
    }
    tracing::info!(
        hours = hours.len(),
        partitions,
        exported = summary.exported,
        up_to_date = summary.up_to_date,
        kept = summary.kept,
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
            first: Box::new(first),
        }),
    }
}

/// One log line per exported or failed partition.
struct LogProgress;

impl Progress for LogProgress {
    fn finished(&mut self, outcome: &PartitionOutcome) {
        match outcome {
            PartitionOutcome::Exported(e) if !e.missing_staging.is_empty() => tracing::warn!(
                partition = %e.partition,
                rows = e.csv.rows,
                missing = e.missing_staging.len(),
                first_missing = e.missing_staging.first().map(String::as_str),
                "partition exported from fewer staging objects than its previous file \
                 (allow_shrink): the rows of the missing objects are gone from the file"
            ),
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
            PartitionOutcome::Kept(partition, gone) => log_kept(partition, gone),
            PartitionOutcome::Failed(partition, error) => {
                tracing::error!(%partition, %error, "partition export failed")
            }
        }
    }
}
