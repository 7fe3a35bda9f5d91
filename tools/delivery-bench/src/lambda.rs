//! Our delivery engine (`dpl::streams::engine`) as Lambda runs a stream
//! function, behind the harness's [`Engine`] seam: DPL batches go to the
//! live path (`dispatch`); the scheduled work is what the catch-up queue's
//! event source mapping does (a worker per requested shard, concurrently,
//! each an invocation of its own) and, every [`SWEEP_EVERY`], the sweep.
//!
//! The catch-up queue is in memory: a request reaches a worker within
//! [`QUEUE_POLL`], as the SQS mapping's long poll hands it over. Everything
//! else is whatever ports the bench builds the engine with.

use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use dpl::streams::archive::Archive;
use dpl::streams::destination::Destinations;
use dpl::streams::engine::Engine as Delivery;
use dpl::streams::function::DEFAULT_DEADLINE_MARGIN;
use dpl::streams::queue::InMemoryQueue;
use dpl::streams::reader::ShardReader;
use dpl::streams::state::DeliveryState;
use dpl::streams::store::SubscriptionStore;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::Engine;

/// The stream functions' timeout (`template.yaml`, `Timeout: 300`): a DPL
/// batch's and a catch-up worker's time.
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(300);

/// How soon a queued catch-up request reaches a worker: the SQS event
/// source mapping long-polls the queue.
pub const QUEUE_POLL: Duration = Duration::from_secs(1);

/// The template's `CatchUpSweepSchedule`: `rate(1 minute)`.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// See the module docs.
pub struct StreamFunction<S, T, D, R, A> {
    pub delivery: Delivery<S, T, D, R, InMemoryQueue, A>,
    /// Shards asked for and not yet given a worker.
    queued: Mutex<Vec<String>>,
    last_sweep: Mutex<Option<Instant>>,
}

impl<S, T, D, R, A> StreamFunction<S, T, D, R, A> {
    pub fn new(delivery: Delivery<S, T, D, R, InMemoryQueue, A>) -> Self {
        Self {
            delivery,
            queued: Mutex::new(Vec::new()),
            last_sweep: Mutex::new(None),
        }
    }

    /// What Lambda's deadline leaves an invocation starting now.
    fn deadline() -> Instant {
        Instant::now() + FUNCTION_TIMEOUT - DEFAULT_DEADLINE_MARGIN
    }

    fn sweep_due(&self) -> bool {
        let mut last = self.last_sweep.lock().expect("sweep lock");
        let due = last.is_none_or(|at| at.elapsed() >= SWEEP_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

impl<S, T, D, R, A> StreamFunction<S, T, D, R, A>
where
    S: SubscriptionStore + Send + Sync,
    T: DeliveryState,
    D: Destinations,
    R: ShardReader,
    A: Archive,
{
    /// The shards asked for so far, each once.
    fn take_queued(&self) -> Vec<String> {
        let mut queued = self.queued.lock().expect("queue lock");
        queued.extend(self.delivery.ports().queue.take());
        let mut seen = std::collections::HashSet::new();
        let mut shards = std::mem::take(&mut *queued);
        shards.retain(|shard| seen.insert(shard.clone()));
        shards
    }
}

impl<S, T, D, R, A> Engine for StreamFunction<S, T, D, R, A>
where
    S: SubscriptionStore + Send + Sync,
    T: DeliveryState,
    D: Destinations,
    R: ShardReader,
    A: Archive,
{
    async fn deliver(&self, batch: &[KinesisEventRecord]) -> anyhow::Result<Option<String>> {
        let response = self.delivery.dispatch(batch, Self::deadline()).await?;
        Ok(response
            .batch_item_failures
            .first()
            .and_then(|f| f.item_identifier.clone()))
    }

    /// What the catch-up queue's mapping does while anything is queued: a
    /// worker for every shard asked for, each an invocation of its own,
    /// concurrently; requests that arrive meanwhile (a successor asked for
    /// at a worker's deadline, another shard falling behind) start theirs
    /// within a second; the sweep runs when due. Returns once no worker
    /// runs and nothing is queued, so it never reports events held.
    async fn scheduled(&self) -> anyhow::Result<bool> {
        let mut running = FuturesUnordered::new();
        loop {
            if self.sweep_due() {
                self.delivery.sweep().await?;
            }
            for shard in self.take_queued() {
                running.push(async move {
                    let report = self.delivery.catch_up(&shard, Self::deadline()).await;
                    (shard, report)
                });
            }
            if running.is_empty() {
                return Ok(false);
            }
            tokio::select! {
                Some((shard, report)) = running.next() => {
                    report.map_err(|e| anyhow::anyhow!("catch-up of {shard}: {e}"))?;
                }
                () = tokio::time::sleep(QUEUE_POLL) => {}
            }
        }
    }
}

/// The DPL shard the benches' backlog sits on.
pub const DPL_SHARD: &str = "shardId-000000000000";

/// The DPL stream our engine's catch-up workers read, in memory, holding
/// `workload`'s events on one shard as they arrived just now, and the same
/// records in batches of `batch_records` as the event source mapping hands
/// them over.
pub fn dpl_stream(
    workload: &crate::workload::Workload,
    batch_records: usize,
) -> (
    dpl::streams::reader::InMemoryDplStream,
    Vec<Vec<KinesisEventRecord>>,
) {
    let stream = dpl::streams::reader::InMemoryDplStream::new();
    let now = dpl::Timestamp::now();
    let records = workload.records();
    for record in &records {
        stream.append(DPL_SHARD, record.to_json(), now);
    }
    let lambda_records: Vec<KinesisEventRecord> = stream
        .records(DPL_SHARD)
        .iter()
        .zip(&records)
        .map(|(stored, record)| {
            let mut lambda = stored.lambda_record();
            lambda.kinesis.partition_key = record.partition_key().to_owned();
            lambda
        })
        .collect();
    let batches = lambda_records
        .chunks(batch_records)
        .map(<[_]>::to_vec)
        .collect();
    (stream, batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{dpl_event_number, Workload};
    use dpl::position::Position;

    #[test]
    fn the_batches_are_the_streams_records_in_order_with_their_dsns() {
        let workload = Workload {
            events: 2_500,
            devices: 1_000,
        };
        let (stream, batches) = dpl_stream(&workload, 1_000);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [1_000, 1_000, 500]
        );
        let stored = stream.records(DPL_SHARD);
        for (n, (lambda, stored)) in batches.iter().flatten().zip(&stored).enumerate() {
            assert_eq!(Position::of_record(lambda).unwrap(), stored.position);
            assert_eq!(dpl_event_number(&lambda.kinesis.data).unwrap(), n as u64);
            assert_eq!(lambda.kinesis.partition_key, workload.dsn(n as u64));
        }
        let distinct: std::collections::HashSet<_> = batches[0]
            .iter()
            .map(|r| &r.kinesis.partition_key)
            .collect();
        assert_eq!(distinct.len(), 1_000, "a full batch holds distinct DSNs");
    }
}
