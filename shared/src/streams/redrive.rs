//! Redrive: dead letters sent again, once the cause is fixed (a larger
//! event hub limit, a repaired event), by `dplctl streams redrive` or
//! `{"redrive": "sub-..."}`. Each is removed only after its destination
//! accepted it; one refused again stays, with its new reason. Dead letters
//! arrive after the events that followed them: they held nobody up, so
//! their DSN's order is already past them.

use tokio::time::{timeout_at, Instant};

use super::archive::Archive;
use super::dead_letter::DeadLetter;
use super::delivery::Delivery;
use super::destination::{Destinations, Outcome};
use super::engine::Engine;
use super::queue::CatchUpQueue;
use super::reader::ShardReader;
use super::state::DeliveryState;
use super::store::SubscriptionStore;
use super::subscription::Subscription;
use crate::position::Position;
use crate::Timestamp;

/// Dead letters read and sent per round.
pub const REDRIVE_PAGE: usize = 500;

/// What a redrive of one subscription came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redriven {
    pub delivered: usize,
    /// Refused again (kept, with the new reason).
    pub refused: usize,
    /// Whether dead letters remain.
    pub remaining: bool,
    pub error: Option<String>,
}

impl<S, T, D, R, Q, A> Engine<S, T, D, R, Q, A>
where
    S: SubscriptionStore + Send + Sync,
    T: DeliveryState,
    D: Destinations,
    R: ShardReader,
    Q: CatchUpQueue,
    A: Archive,
{
    /// Sends `subscription`'s dead letters again, oldest first, until none
    /// is left that the destination accepts, or `deadline`.
    pub async fn redrive(&self, subscription: &Subscription, deadline: Instant) -> Redriven {
        let mut redriven = Redriven::default();
        if let Err(error) = self
            .redrive_pages(subscription, deadline, &mut redriven)
            .await
        {
            redriven.remaining = true;
            redriven.error = Some(error);
        }
        tracing::info!(subscription = %subscription.id, delivered = redriven.delivered,
            refused = redriven.refused, remaining = redriven.remaining,
            error = redriven.error.as_deref(), "redrive done");
        redriven
    }

    async fn redrive_pages(
        &self,
        subscription: &Subscription,
        deadline: Instant,
        redriven: &mut Redriven,
    ) -> Result<(), String> {
        let (id, state) = (&subscription.id, &self.ports.state);
        // Dead letters refused again stay first in line: skip past them.
        let mut seen = 0;
        loop {
            let letters = within(deadline, state.dead_letters(id, seen + REDRIVE_PAGE))
                .await?
                .map_err(|e| e.to_string())?;
            let page: Vec<DeadLetter> = letters.into_iter().skip(seen).collect();
            if page.is_empty() {
                return Ok(());
            }
            seen += page.len();
            let deliveries = self.redeliverable(&page).await;
            let sending: Vec<&Delivery> = deliveries.iter().collect();
            let report = self.send(subscription, &sending, deadline).await;
            let mut accepted: Vec<&Position> = Vec::new();
            let mut refused_again: Vec<DeadLetter> = Vec::new();
            for (delivery, outcome) in deliveries.iter().zip(&report.outcomes) {
                match outcome {
                    Outcome::Accepted => accepted.push(&delivery.position),
                    Outcome::Rejected(reason) => {
                        refused_again.push(DeadLetter::new(delivery, reason, Timestamp::now()))
                    }
                    Outcome::Pending => {}
                }
            }
            if !accepted.is_empty() {
                within(deadline, state.remove_dead_letters(id, &accepted))
                    .await?
                    .map_err(|e| e.to_string())?;
                redriven.delivered += accepted.len();
                seen -= accepted.len();
            }
            if !refused_again.is_empty() {
                redriven.refused += refused_again.len();
                let _ = within(deadline, state.add_dead_letters(id, &refused_again)).await;
            }
            if report.pending() > 0 {
                return Err(report
                    .error
                    .unwrap_or_else(|| "the destination did not take every event".into()));
            }
            let unreadable = page.len() - deliveries.len();
            if unreadable > 0 {
                redriven.remaining = true;
                redriven.error = Some(format!(
                    "{unreadable} dead letters kept no payload and are no longer on the DPL stream"
                ));
            }
            redriven.remaining |= redriven.refused > 0;
        }
    }

    /// The events of `letters`: the kept payload, or the record read back
    /// from the DPL stream by position (while it is retained).
    async fn redeliverable(&self, letters: &[DeadLetter]) -> Vec<Delivery> {
        let mut deliveries = Vec::with_capacity(letters.len());
        for letter in letters {
            match letter.delivery() {
                Some(delivery) => deliveries.push(delivery),
                None => match self.read_back(&letter.position).await {
                    Some(delivery) => deliveries.push(delivery),
                    None => tracing::warn!(position = %letter.position,
                        "dead letter without payload is no longer on the DPL stream"),
                },
            }
        }
        deliveries
    }

    async fn read_back(&self, position: &Position) -> Option<Delivery> {
        use super::cursor::Resume;
        let reader = &self.ports.reader;
        let from = Resume::At(position.sequence().clone());
        let iterator = reader.iterator(position.shard(), &from).await.ok()?;
        let page = reader.read(&iterator, 1).await.ok()?;
        super::live::decode_page(&page)
            .into_iter()
            .map(|(_, delivery)| delivery)
            .find(|delivery| &delivery.position == position)
    }
}

/// `future`, or an error if `deadline` comes first.
async fn within<F: std::future::Future>(deadline: Instant, future: F) -> Result<F::Output, String> {
    timeout_at(deadline, future)
        .await
        .map_err(|_| "the redrive's time budget ran out".to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::super::testing::*;
    use super::*;

    #[tokio::test]
    async fn dead_letters_are_delivered_after_a_fix_and_kept_while_still_refused() {
        let sub = subscription(1, "oem1", "picky");
        let engine = engine(vec![sub.clone()], Duration::from_secs(5));
        let batch = write(&engine, "oem1", 4, 2);
        let (first, second) = (batch.events[0].1, batch.events[3].1);
        let endpoints = &engine.ports().destinations;
        endpoints.set("picky", Behaviour::Reject(HashSet::from([first, second])));
        engine.dispatch(&batch.records, soon()).await.unwrap();
        let state = &engine.ports().state;
        assert_eq!(state.count_dead_letters(&sub.id).await.unwrap(), 2);

        // Still refused: both stay, with their reason.
        let again = engine.redrive(&sub, soon()).await;
        assert_eq!(
            (again.delivered, again.refused, again.remaining),
            (0, 2, true)
        );
        assert_eq!(state.count_dead_letters(&sub.id).await.unwrap(), 2);

        // One fixed: it is delivered and removed, the other stays.
        endpoints.set("picky", Behaviour::Reject(HashSet::from([second])));
        let fixed = engine.redrive(&sub, soon()).await;
        assert_eq!(
            (fixed.delivered, fixed.refused, fixed.remaining),
            (1, 1, true)
        );
        let left = state.dead_letters(&sub.id, 10).await.unwrap();
        assert_eq!(
            left.iter().map(|l| l.event_id).collect::<Vec<_>>(),
            [second]
        );
        let received: Vec<_> = endpoints
            .received("picky")
            .iter()
            .map(|d| d.event_id)
            .collect();
        assert_eq!(received.last(), Some(&first));
    }
}
