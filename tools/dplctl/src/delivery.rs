//! `dplctl streams test` and `dplctl streams redrive`: the delivery engine
//! of the stream functions (`dpl::streams`), run from the operator's shell
//! with the operator's credentials, its destinations built by the same
//! function as theirs (`dpl::streams::build`).

use std::time::Duration;

use anyhow::bail;
use aws_config::SdkConfig;
use dpl::examples::seed_record;
use dpl::position::Position;
use dpl::streams::archive::NoArchive;
use dpl::streams::build::{destinations as build, AnyDestinations, DestinationSettings};
use dpl::streams::delivery::Delivery;
use dpl::streams::destination::{Destination, Destinations};
use dpl::streams::engine::{Engine, EngineConfig, Ports};
use dpl::streams::queue::InMemoryQueue;
use dpl::streams::reader::KinesisReader;
use dpl::streams::state::DynamoState;
use dpl::streams::store::DynamoSubscriptions;
use dpl::streams::subscription::{Subscription, Transport};
use dpl::{EventType, Timestamp};
use tokio::time::Instant;

/// How long `test` waits for the destination.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one `redrive` may run.
const REDRIVE_TIMEOUT: Duration = Duration::from_secs(600);

/// The destinations of `transport`, as the stream functions build them
/// (`EVENTHUBS_ENDPOINT_URL` and `DESTINATION_CONCURRENCY` as they read them).
pub(crate) fn destinations(aws: &SdkConfig, transport: Transport) -> AnyDestinations {
    let concurrency = std::env::var(dpl::streams::function::CONCURRENCY_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok());
    build(transport, aws, &DestinationSettings::from_env(concurrency))
}

/// Sends one sample event (the seed's datapoint, moved to the
/// subscription's OEM) to the subscription's destination, whatever its
/// filters and status, and says exactly what failed.
pub async fn test(aws: &SdkConfig, subscription: &Subscription) -> anyhow::Result<()> {
    let destinations = destinations(aws, subscription.transport());
    let record = seed_record(
        EventType::Datapoint,
        &subscription.oem_id,
        "dplctl-test",
        "DPLCTL000TEST",
        "dplctl_test",
        0,
    );
    let delivery = Delivery::new(
        Position::new("dplctl-test", "0")?,
        Timestamp::now(),
        &record,
    );
    let destination = match destinations.destination(subscription).await {
        Ok(destination) => destination,
        Err(error) => bail!("{}: cannot reach the destination: {error}", subscription.id),
    };
    let report = destination
        .send(&[&delivery], Instant::now() + TEST_TIMEOUT)
        .await;
    match report.error {
        None if report.delivered() == 1 => {
            println!(
                "{}: delivered one {} event (id {}, partition key {}) to {}",
                subscription.id,
                delivery.event_type,
                delivery.event_id,
                delivery.dsn,
                subscription.destination.target()
            );
            Ok(())
        }
        error => bail!(
            "{}: the test event was not delivered to {}: {}",
            subscription.id,
            subscription.destination.target(),
            error.unwrap_or_else(|| "refused for good".into())
        ),
    }
}

/// Where `redrive` reads and writes.
pub struct Tables {
    pub store: DynamoSubscriptions,
    pub state_table: String,
    /// The DPL stream (name or ARN), for dead letters without a payload;
    /// empty when not given.
    pub dpl_stream: String,
}

/// Sends the subscription's dead letters again.
pub async fn redrive(
    aws: &SdkConfig,
    tables: Tables,
    subscription: &Subscription,
) -> anyhow::Result<()> {
    let engine = Engine::new(
        Ports {
            subscriptions: tables.store,
            state: DynamoState::new(aws_sdk_dynamodb::Client::new(aws), tables.state_table),
            destinations: destinations(aws, subscription.transport()),
            reader: KinesisReader::new(aws_sdk_kinesis::Client::new(aws), tables.dpl_stream),
            // A redrive asks for no catch-up.
            queue: InMemoryQueue::new(),
            archive: NoArchive,
        },
        EngineConfig::new(subscription.transport()),
    );
    let redriven = engine
        .redrive(subscription, Instant::now() + REDRIVE_TIMEOUT)
        .await;
    println!(
        "{}: {} dead letters delivered, {} refused again{}",
        subscription.id,
        redriven.delivered,
        redriven.refused,
        if redriven.remaining {
            "; some remain"
        } else {
            "; none left"
        }
    );
    match redriven.error {
        Some(error) => bail!("{}: redrive stopped: {error}", subscription.id),
        None => Ok(()),
    }
}
