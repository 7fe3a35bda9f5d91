//! `dplctl streams test` and `dplctl streams redrive`: the delivery engine
//! of the stream functions (`dpl::streams`), run from the operator's shell
//! with the operator's credentials.

use std::time::Duration;

use anyhow::bail;
use aws_config::SdkConfig;
use dpl::examples::seed_record;
use dpl::streams::delivery::{Delivery, Position};
use dpl::streams::destination::{Destination, Destinations};
use dpl::streams::dispatch::{DispatchConfig, Dispatcher};
use dpl::streams::dynamo::DynamoSubscriptions;
use dpl::streams::eventhubs::{EventHubDestinations, ENDPOINT_URL_VAR};
use dpl::streams::kinesis::KinesisDestinations;
use dpl::streams::parking_dynamo::DynamoParking;
use dpl::streams::secrets::SecretsManager;
use dpl::streams::subscription::{Subscription, Transport};
use dpl::EventType;
use tokio::time::Instant;

/// Where the parked events table comes from when `--parked-table` is not given.
pub const PARKED_TABLE_VAR: &str = "PARKED_EVENTS_TABLE";

/// How long `test` waits for the destination.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one `redrive` may run.
const REDRIVE_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) fn event_hubs(aws: &SdkConfig) -> EventHubDestinations<SecretsManager> {
    let endpoint = std::env::var(ENDPOINT_URL_VAR)
        .ok()
        .filter(|v| !v.is_empty());
    EventHubDestinations::new(
        SecretsManager::from_sdk_config(aws),
        endpoint,
        Default::default(),
    )
}

pub(crate) fn kinesis(aws: &SdkConfig) -> KinesisDestinations<SecretsManager> {
    KinesisDestinations::new(
        aws.clone(),
        SecretsManager::from_sdk_config(aws),
        Default::default(),
    )
}

/// Sends one sample event (the seed's datapoint, moved to the
/// subscription's OEM) to the subscription's destination, whatever its
/// filters and status, and says exactly what failed.
pub async fn test(aws: &SdkConfig, subscription: &Subscription) -> anyhow::Result<()> {
    match subscription.transport() {
        Transport::Kinesis => test_with(&kinesis(aws), subscription).await,
        Transport::EventHubs => test_with(&event_hubs(aws), subscription).await,
    }
}

async fn test_with(
    destinations: &impl Destinations,
    subscription: &Subscription,
) -> anyhow::Result<()> {
    let record = seed_record(
        EventType::Datapoint,
        &subscription.oem_id,
        "dplctl-test",
        "DPLCTL000TEST",
        "dplctl_test",
        0,
    );
    let delivery = Delivery::new(Position::new("dplctl-test", "0")?, &record);
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
            error.unwrap_or_else(|| "no answer".into())
        ),
    }
}

/// Delivers the subscription's parked events, oldest first.
pub async fn redrive(
    aws: &SdkConfig,
    store: DynamoSubscriptions,
    parked_table: &str,
    subscription: &Subscription,
) -> anyhow::Result<()> {
    let parking = DynamoParking::new(aws_sdk_dynamodb::Client::new(aws), parked_table);
    let config = DispatchConfig::new(subscription.transport());
    match subscription.transport() {
        Transport::Kinesis => {
            redrive_with(
                Dispatcher::new(store, parking, kinesis(aws), config),
                subscription,
            )
            .await
        }
        Transport::EventHubs => {
            let dispatcher = Dispatcher::new(store, parking, event_hubs(aws), config);
            redrive_with(dispatcher, subscription).await
        }
    }
}

async fn redrive_with<D: Destinations>(
    dispatcher: Dispatcher<DynamoSubscriptions, DynamoParking, D>,
    subscription: &Subscription,
) -> anyhow::Result<()> {
    let redriven = dispatcher
        .redrive(subscription, Instant::now() + REDRIVE_TIMEOUT)
        .await;
    println!(
        "{}: {} parked events delivered{}",
        subscription.id,
        redriven.delivered,
        if redriven.remaining {
            "; some remain parked"
        } else {
            "; none left"
        }
    );
    match redriven.error {
        Some(error) => bail!("{}: redrive stopped: {error}", subscription.id),
        None => Ok(()),
    }
}
