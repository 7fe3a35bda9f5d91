//! A simulated event source mapping: what Lambda does between the DPL
//! stream and a stream function (as `tools/demo/src/esm.rs` does for the
//! demo): batches of at most [`BATCH_RECORDS`], one at a time per shard,
//! invoked again from the first record a partial batch response names.
//!
//! Two ways to feed an engine:
//! - [`drain`]: a backlog on one shard, handed over batch after batch as
//!   fast as the engine takes them, then the engine's scheduled work run
//!   back to back until it holds nothing (the best case of any schedule);
//! - [`poll_shard`]: one shard of a live stream, polled once a second.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use tokio::time::Instant;

use crate::kinesis::{lambda_record, ShardReader};
use crate::workload::{dpl_event_number, BATCH_RECORDS};
use crate::Engine;

/// How often the mapping reads a shard that had less than a full batch
/// (Lambda Developer Guide, "How Lambda processes records from Kinesis
/// Data Streams": it polls each shard "at a base rate of once per second").
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Invocations of one batch before the mapping gives up on it: the first
/// and `MaximumRetryAttempts` (10) retries (`template.yaml`, the stream
/// functions' mappings). Lambda then sends the batch's metadata to the
/// on-failure queue and goes on: its records are not delivered.
pub const MAX_ATTEMPTS: u32 = 11;

/// Scheduled runs [`drain`] makes before it reports the engine stuck.
const MAX_SCHEDULED_RUNS: usize = 10_000;

/// What the mapping did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Invocations {
    pub invocations: usize,
    /// Invocations answered with a partial batch response.
    pub partial_failures: usize,
    /// Invocations that failed as a whole (a function error).
    pub errors: usize,
    /// Records of batches given up after the last retry.
    pub given_up: usize,
}

impl std::ops::Add for Invocations {
    type Output = Invocations;

    fn add(self, other: Invocations) -> Invocations {
        Invocations {
            invocations: self.invocations + other.invocations,
            partial_failures: self.partial_failures + other.partial_failures,
            errors: self.errors + other.errors,
            given_up: self.given_up + other.given_up,
        }
    }
}

/// Invokes `engine` with `batch` until every record is taken, from the
/// first record of each partial batch response, the whole batch again
/// after an error (waits as the demo's mapping: 100 ms doubling to 1.6 s);
/// after [`MAX_ATTEMPTS`] invocations the rest of the batch is given up.
pub async fn invoke<E: Engine>(
    engine: &E,
    batch: &[KinesisEventRecord],
    stats: &mut Invocations,
) -> anyhow::Result<()> {
    let mut pending = batch;
    for attempt in 0..MAX_ATTEMPTS {
        stats.invocations += 1;
        match engine.deliver(pending).await {
            Ok(None) => return Ok(()),
            Ok(Some(retry_from)) => {
                stats.partial_failures += 1;
                let from = pending
                    .iter()
                    .position(|r| r.kinesis.sequence_number == retry_from)
                    .with_context(|| {
                        format!("batch item failure {retry_from} is not in the batch")
                    })?;
                pending = &pending[from..];
            }
            Err(error) => {
                stats.errors += 1;
                eprintln!("invocation failed: {error:#}");
            }
        }
        let wait = Duration::from_millis(100) * 2u32.pow(attempt.min(4));
        tokio::time::sleep(wait).await;
    }
    stats.given_up += pending.len();
    eprintln!(
        "{} records given up after {MAX_ATTEMPTS} invocations",
        pending.len()
    );
    Ok(())
}

/// What [`drain`] did.
#[derive(Clone, Debug)]
pub struct Drained {
    /// When each event's batch was first handed to the engine.
    pub handed_over: HashMap<u64, SystemTime>,
    /// From the first batch handed over to the engine holding nothing.
    pub elapsed: Duration,
    pub invocations: Invocations,
    /// Scheduled runs after the last batch.
    pub scheduled_runs: usize,
    /// Time spent in them.
    pub scheduled_time: Duration,
}

/// Hands `batches` (one shard's backlog) to `engine` one after the other,
/// then runs its scheduled work back to back until it holds nothing.
pub async fn drain<E: Engine>(
    engine: &E,
    batches: &[Vec<KinesisEventRecord>],
) -> anyhow::Result<Drained> {
    let numbers = batches
        .iter()
        .map(|batch| {
            batch
                .iter()
                .map(|r| dpl_event_number(&r.kinesis.data))
                .collect::<anyhow::Result<Vec<u64>>>()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut handed_over = HashMap::with_capacity(batches.len() * BATCH_RECORDS);
    let mut invocations = Invocations::default();
    let started = Instant::now();
    for (batch, numbers) in batches.iter().zip(&numbers) {
        let now = SystemTime::now();
        handed_over.extend(numbers.iter().map(|n| (*n, now)));
        invoke(engine, batch, &mut invocations).await?;
    }
    let scheduled_from = Instant::now();
    let mut scheduled_runs = 0;
    while engine.scheduled().await? {
        scheduled_runs += 1;
        if scheduled_runs == MAX_SCHEDULED_RUNS {
            bail!("the engine still holds events after {MAX_SCHEDULED_RUNS} scheduled runs");
        }
    }
    Ok(Drained {
        handed_over,
        elapsed: started.elapsed(),
        invocations,
        scheduled_runs,
        scheduled_time: scheduled_from.elapsed(),
    })
}

/// Where [`poll_shard`] reads and what it records.
pub struct ShardMapping<'a> {
    pub reader: ShardReader,
    pub stream_arn: &'a str,
    pub region: &'a str,
    /// Set when the producer has stopped: the mapping ends at the first
    /// empty read after it.
    pub stop: &'a AtomicBool,
    /// When each event's batch was first handed to the engine.
    pub handed_over: &'a RefCell<HashMap<u64, SystemTime>>,
}

/// Reads one shard once a second (at once again after a full batch) and
/// invokes `engine` with what it read.
pub async fn poll_shard<E: Engine>(
    engine: &E,
    mut shard: ShardMapping<'_>,
) -> anyhow::Result<Invocations> {
    let mut stats = Invocations::default();
    loop {
        let polled = Instant::now();
        let stopping = shard.stop.load(Ordering::Relaxed);
        let records = shard.reader.read(BATCH_RECORDS).await?;
        if records.is_empty() && stopping {
            return Ok(stats);
        }
        if !records.is_empty() {
            let batch = records
                .iter()
                .map(|r| lambda_record(r, shard.stream_arn, shard.region))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let now = SystemTime::now();
            for record in &records {
                let n = dpl_event_number(&record.data)?;
                shard.handed_over.borrow_mut().entry(n).or_insert(now);
            }
            invoke(engine, &batch, &mut stats).await?;
        }
        if records.len() < BATCH_RECORDS {
            tokio::time::sleep_until(polled + POLL_INTERVAL).await;
        }
    }
}
