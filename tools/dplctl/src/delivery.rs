//! `dplctl streams test` and `dplctl streams redrive`: the delivery engine
//! of the stream functions, run from the operator's shell with the
//! operator's credentials ([`dpl::streams::operate`], shared with the HTTP
//! API).

use std::time::Duration;

use anyhow::bail;
use aws_config::SdkConfig;
use dpl::streams::build::AnyDestinations;
use dpl::streams::operate::{self, RedriveTables};
use dpl::streams::subscription::{Subscription, Transport};
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
    operate::destinations(aws, transport, concurrency)
}

/// Sends one sample event (the seed's datapoint, moved to the
/// subscription's OEM) to the subscription's destination, whatever its
/// filters and status, and says exactly what failed.
pub async fn test(aws: &SdkConfig, subscription: &Subscription) -> anyhow::Result<()> {
    let destinations = destinations(aws, subscription.transport());
    let tested = operate::test(&destinations, subscription, TEST_TIMEOUT).await?;
    println!(
        "{}: delivered one {} event (id {}, partition key {}) to {}",
        subscription.id, tested.event_type, tested.event_id, tested.dsn, tested.target
    );
    Ok(())
}

/// Where `redrive` reads and writes.
pub type Tables = RedriveTables;

/// Sends the subscription's dead letters again.
pub async fn redrive(
    aws: &SdkConfig,
    tables: Tables,
    subscription: &Subscription,
) -> anyhow::Result<()> {
    let destinations = destinations(aws, subscription.transport());
    let redriven = operate::redrive(
        aws,
        tables,
        destinations,
        subscription,
        Instant::now() + REDRIVE_TIMEOUT,
    )
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
