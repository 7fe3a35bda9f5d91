//! Redrive: delivering a subscription's parked events, oldest first, once
//! its destination accepts again. Run by the stream functions on a
//! schedule and by `dplctl streams redrive`.
//!
//! Each page of [`REDRIVE_PAGE`] parked events is sent in order; the
//! accepted ones are removed, and the first failure ends the redrive of
//! that subscription (what was not accepted stays parked, in order, for
//! the next run). An event is removed only after its destination accepted
//! it, so a crash in between delivers it again: at least once.

use tokio::time::{timeout_at, Instant};

use super::delivery::{Delivery, Position};
use super::destination::{Destination, Destinations};
use super::dispatch::Dispatcher;
use super::dynamo::SubscriptionStore;
use super::parking::ParkingLot;
use super::subscription::{Subscription, SubscriptionId};
use crate::Timestamp;

/// Parked events read and sent per round: two full `PutRecords` requests,
/// or a few Event Hubs batches.
pub const REDRIVE_PAGE: usize = 1_000;

/// What a redrive of one subscription came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redriven {
    pub delivered: usize,
    /// Whether parked events remain (the destination refused, or time ran out).
    pub remaining: bool,
    pub error: Option<String>,
}

impl<S, P, D> Dispatcher<S, P, D>
where
    S: SubscriptionStore,
    P: ParkingLot,
    D: Destinations,
{
    /// Redrives every enabled subscription of this transport that has
    /// parked events, concurrently, each within its budget.
    pub async fn redrive_all(
        &self,
        deadline: Instant,
    ) -> Result<Vec<(SubscriptionId, Redriven)>, super::dispatch::DispatchError> {
        let subscriptions = self.subscriptions().await?;
        let results = futures_util::future::join_all(subscriptions.iter().map(|s| async {
            let own_deadline = deadline.min(Instant::now() + self.config().budget);
            (s.id.clone(), self.redrive(s, own_deadline).await)
        }))
        .await;
        Ok(results)
    }

    /// Delivers `subscription`'s parked events until none is left, the
    /// destination refuses, or `deadline` comes.
    pub async fn redrive(&self, subscription: &Subscription, deadline: Instant) -> Redriven {
        let mut redriven = Redriven::default();
        let outcome = self
            .redrive_pages(subscription, deadline, &mut redriven)
            .await;
        if let Err(error) = outcome {
            redriven.remaining = true;
            redriven.error = Some(error);
        }
        self.record_redrive(subscription, &redriven).await;
        redriven
    }

    async fn redrive_pages(
        &self,
        subscription: &Subscription,
        deadline: Instant,
        redriven: &mut Redriven,
    ) -> Result<(), String> {
        let id = &subscription.id;
        loop {
            let page = within(deadline, self.parking().oldest(id, REDRIVE_PAGE))
                .await?
                .map_err(|e| e.to_string())?;
            if page.is_empty() {
                return Ok(());
            }
            let destination =
                within(deadline, self.destinations().destination(subscription)).await??;
            let events: Vec<&Delivery> = page.iter().collect();
            let report = within(deadline, destination.send(&events, deadline)).await?;
            let delivered: Vec<&Position> = page
                .iter()
                .zip(&report.accepted)
                .filter(|(_, accepted)| **accepted)
                .map(|(delivery, _)| &delivery.position)
                .collect();
            if !delivered.is_empty() {
                within(deadline, self.parking().remove(id, &delivered))
                    .await?
                    .map_err(|e| e.to_string())?;
                redriven.delivered += delivered.len();
            }
            if delivered.len() < page.len() {
                return Err(report
                    .error
                    .unwrap_or_else(|| "the destination did not take every event".into()));
            }
        }
    }

    async fn record_redrive(&self, subscription: &Subscription, redriven: &Redriven) {
        let store = self.subscription_store();
        let id = &subscription.id;
        let now = Timestamp::now();
        let health = match &redriven.error {
            Some(error) => store.record_error(id, now, error).await,
            None if redriven.delivered > 0 => store.record_success(id, now).await,
            None => Ok(()),
        };
        if let Err(error) = health {
            tracing::warn!(subscription = %id, %error, "health not recorded");
        }
        if redriven.delivered > 0 {
            let delta = -i64::try_from(redriven.delivered).unwrap_or(i64::MAX);
            if let Err(error) = store.add_parked(id, delta).await {
                tracing::warn!(subscription = %id, %error, "parked count not recorded");
            }
        }
        tracing::info!(subscription = %id, delivered = redriven.delivered,
            remaining = redriven.remaining, error = redriven.error.as_deref(), "redrive done");
    }
}

/// `future`, or an error if `deadline` comes first.
async fn within<F: std::future::Future>(deadline: Instant, future: F) -> Result<F::Output, String> {
    timeout_at(deadline, future)
        .await
        .map_err(|_| "the redrive's time budget ran out".to_owned())
}
