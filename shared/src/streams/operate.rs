//! What an operator (`dplctl streams test|redrive|replay`) or an OEM (the
//! HTTP API, `functions/api`) asks of one subscription: one sample event,
//! its dead letters again, or its events of past hours again. The delivery
//! engine of the stream functions does the work, its destinations built by
//! the same function as theirs ([`super::build`]).
//!
//! Replay, per hour, reads the archive ([`super::archive`], the same the
//! catch-up worker reads past the DPL stream's retention): the staging
//! objects of the OEM and of the types the subscription takes, merged the
//! way the export merges them, in (event time, stream order, event id)
//! order, each event once. The events the subscription
//! [accepts](Subscription::accepts) are sent in chunks of
//! [`REPLAY_CHUNK`], in that order, each chunk after the previous one was
//! accepted whole. Memory is one chunk plus one reader per merged file.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::time::Instant;

use super::archive::{Archive, NoArchive};
use super::build::{destinations as build, AnyDestinations, DestinationSettings};
use super::delivery::Delivery;
use super::destination::{Destination, Destinations, Outcome};
use super::engine::{Engine, EngineConfig, Ports};
use super::queue::InMemoryQueue;
use super::reader::KinesisReader;
use super::redrive::Redriven;
use super::state::DynamoState;
use super::store::DynamoSubscriptions;
use super::subscription::{Status, Subscription, Transport};
use crate::examples::seed_record;
use crate::export::keys::HourLabel;
use crate::position::Position;
use crate::{EventType, Timestamp};

/// Events per send: one Kinesis `PutRecords` call holds at most 500
/// records (Kinesis API Reference, `PutRecords`).
pub const REPLAY_CHUNK: usize = 500;

/// How long one replay chunk may take, retries included.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(120);

/// The destinations of `transport`, as the stream functions build them
/// (`EVENTHUBS_ENDPOINT_URL` as they read it).
pub fn destinations(
    aws: &SdkConfig,
    transport: Transport,
    concurrency: Option<usize>,
) -> AnyDestinations {
    build(transport, aws, &DestinationSettings::from_env(concurrency))
}

/// Why a test, redrive or replay did not do everything asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperateError {
    #[error("{id}: cannot reach the destination: {message}")]
    Unreachable { id: String, message: String },
    #[error("{id}: the test event was not delivered to {target}: {message}")]
    NotDelivered {
        id: String,
        target: String,
        message: String,
    },
    #[error("subscription {0} is disabled: it accepts no event; enable it first")]
    Disabled(String),
    #[error("staging of {hour}: {message}")]
    Archive { hour: String, message: String },
    #[error("{0}")]
    Stopped(String),
}

/// The sample event a test delivered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tested {
    pub event_type: String,
    pub event_id: String,
    /// The partition key (DSN).
    pub dsn: String,
    pub target: String,
}

/// Sends one sample event (the seed's datapoint, moved to the
/// subscription's OEM) to the subscription's destination, whatever its
/// filters and status, and says exactly what failed.
pub async fn test<D: Destinations>(
    destinations: &D,
    subscription: &Subscription,
    timeout: Duration,
) -> Result<Tested, OperateError> {
    let id = subscription.id.to_string();
    let target = subscription.destination.target();
    let record = seed_record(
        EventType::Datapoint,
        &subscription.oem_id,
        "dplctl-test",
        "DPLCTL000TEST",
        "dplctl_test",
        0,
    );
    let position =
        Position::new("dplctl-test", "0").map_err(|e| OperateError::Stopped(e.to_string()))?;
    let delivery = Delivery::new(position, Timestamp::now(), &record);
    let destination = destinations
        .destination(subscription)
        .await
        .map_err(|message| OperateError::Unreachable {
            id: id.clone(),
            message,
        })?;
    let report = destination
        .send(&[&delivery], Instant::now() + timeout)
        .await;
    match report.error {
        None if report.delivered() == 1 => Ok(Tested {
            event_type: delivery.event_type.to_string(),
            event_id: delivery.event_id.to_string(),
            dsn: delivery.dsn.to_string(),
            target,
        }),
        error => Err(OperateError::NotDelivered {
            id,
            target,
            message: error.unwrap_or_else(|| "refused for good".into()),
        }),
    }
}

/// Where a redrive reads and writes.
pub struct RedriveTables {
    pub store: DynamoSubscriptions,
    pub state_table: String,
    /// The DPL stream (name or ARN), for dead letters without a payload;
    /// empty when not known.
    pub dpl_stream: String,
}

/// Sends the subscription's dead letters again until `deadline`; each is
/// removed once accepted.
pub async fn redrive(
    aws: &SdkConfig,
    tables: RedriveTables,
    destinations: AnyDestinations,
    subscription: &Subscription,
    deadline: Instant,
) -> Redriven {
    let engine = Engine::new(
        Ports {
            subscriptions: tables.store,
            state: DynamoState::new(aws_sdk_dynamodb::Client::new(aws), tables.state_table),
            destinations,
            reader: KinesisReader::new(aws_sdk_kinesis::Client::new(aws), tables.dpl_stream),
            // A redrive asks for no catch-up.
            queue: InMemoryQueue::new(),
            archive: NoArchive,
        },
        EngineConfig::new(subscription.transport()),
    );
    engine.redrive(subscription, deadline).await
}

/// What a replay sent (or, dry, would send), per type.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub per_type: BTreeMap<EventType, u64>,
    /// Staged events of the OEM read (before filtering), duplicates dropped.
    pub read: u64,
}

impl Replayed {
    pub fn total(&self) -> u64 {
        self.per_type.values().sum()
    }
}

/// Sends `chunk` and empties it; fails unless every event was accepted.
async fn flush<D: Destination>(
    destination: &D,
    chunk: &mut Vec<Delivery>,
    sent: &mut u64,
) -> Result<(), OperateError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let refs: Vec<&Delivery> = chunk.iter().collect();
    let report = destination
        .send(&refs, Instant::now() + CHUNK_TIMEOUT)
        .await;
    let delivered = report.delivered();
    if delivered < chunk.len() {
        let first = report
            .outcomes
            .iter()
            .position(|o| *o != Outcome::Accepted)
            .map_or(&chunk[0], |n| &chunk[n]);
        return Err(OperateError::Stopped(format!(
            "replay stopped: {} events sent before; of the next {}, {delivered} were accepted \
             (first not accepted: event {} of {}): {}",
            *sent,
            chunk.len(),
            first.event_id,
            first.dsn,
            report.error.unwrap_or_else(|| "no answer".into())
        )));
    }
    *sent += delivered as u64;
    chunk.clear();
    Ok(())
}

/// Replays `hours` of `subscription` from `archive` to `destinations`, or
/// only counts (`dry_run`); `progress` hears of each hour done.
pub async fn replay<A: Archive, D: Destinations>(
    archive: &A,
    destinations: &D,
    subscription: &Subscription,
    hours: &[Timestamp],
    dry_run: bool,
    mut progress: impl FnMut(Timestamp, &Replayed),
) -> Result<Replayed, OperateError> {
    if subscription.status != Status::Enabled {
        return Err(OperateError::Disabled(subscription.id.to_string()));
    }
    let destination = if dry_run {
        None
    } else {
        Some(
            destinations
                .destination(subscription)
                .await
                .map_err(|message| OperateError::Unreachable {
                    id: subscription.id.to_string(),
                    message,
                })?,
        )
    };
    let mut replayed = Replayed::default();
    let mut chunk: Vec<Delivery> = Vec::with_capacity(REPLAY_CHUNK);
    let mut sent = 0u64;
    for &hour in hours {
        let archive_error = |message: String| OperateError::Archive {
            hour: HourLabel(hour).to_string(),
            message,
        };
        let staged = archive
            .hour(
                &subscription.oem_id,
                hour,
                &subscription.filters.event_types,
            )
            .await
            .map_err(|e| archive_error(e.to_string()))?;
        for record in staged {
            let record = record.map_err(|e| archive_error(e.to_string()))?;
            replayed.read += 1;
            if !subscription.accepts(&record.dpl_event) {
                continue;
            }
            *replayed
                .per_type
                .entry(record.dpl_event.event_type())
                .or_default() += 1;
            if let Some(destination) = &destination {
                let position = Position::new("replay", &replayed.read.to_string())
                    .map_err(|e| OperateError::Stopped(e.to_string()))?;
                chunk.push(Delivery::new(position, Timestamp::now(), &record));
                if chunk.len() == REPLAY_CHUNK {
                    flush(destination.as_ref(), &mut chunk, &mut sent).await?;
                }
            }
        }
        if let Some(destination) = &destination {
            flush(destination.as_ref(), &mut chunk, &mut sent).await?;
        }
        progress(hour, &replayed);
    }
    Ok(replayed)
}
