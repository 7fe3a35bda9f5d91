//! The live path: one DPL batch to every matching subscription of one
//! transport.
//!
//! - Each event goes to the enabled subscriptions of its OEM whose filters
//!   match it, as the customer payload, partition key = DSN.
//! - Subscriptions are served concurrently, each within its own time budget:
//!   a slow or broken endpoint costs only its own subscription's time, and
//!   only once: a subscription that misses events falls behind on the shard
//!   (a [`Cursor`] at the first event it missed) and from then on the live
//!   path skips it there, noting how far (one conditional write per batch),
//!   while the catch-up worker (`super::catchup`) delivers from the cursor.
//! - After the worker hands back, the live path delivers the events at or
//!   after the hand-back bound and removes the cursor.
//! - An event a destination refuses for good is dead-lettered with its
//!   reason; the events after it go on.
//! - The batch succeeds once every event is delivered, dead-lettered or
//!   covered by a cursor. Otherwise Lambda is told to retry from the first
//!   record not secured; what was delivered may be delivered again (at
//!   least once; the event id travels with each event where the transport
//!   allows).

use std::collections::BTreeMap;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_lambda_events::event::streams::KinesisEventResponse;
use futures_util::future::join_all;
use tokio::time::{timeout_at, Instant};

use super::archive::Archive;
use super::cursor::{Bound, Cursor, CursorState};
use super::dead_letter::DeadLetter;
use super::delivery::Delivery;
use super::destination::{Destination, Destinations, Outcome, SendReport};
use super::engine::{Engine, EngineError};
use super::queue::CatchUpQueue;
use super::reader::{Page, ShardReader};
use super::state::{Cas, DeliveryState};
use super::store::SubscriptionStore;
use super::subscription::Subscription;
use crate::position::{Position, PositionError, SequenceNumber};
use crate::{DeviceEvent, DplRecord, Timestamp};

/// One decoded event of the batch and the record it came from.
#[derive(Debug)]
pub(super) struct BatchEvent {
    pub record: usize,
    pub event: DeviceEvent,
    pub delivery: Delivery,
}

/// Why a record of the batch is skipped.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error(transparent)]
    Position(#[from] PositionError),
    #[error("not a DPL record: {0}")]
    Json(#[from] serde_json::Error),
}

/// What one subscription's share of a batch came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Served {
    pub matched: usize,
    pub delivered: usize,
    pub dead_lettered: usize,
    /// Events left to the catch-up worker (the subscription is behind).
    pub behind: usize,
    /// The first record neither delivered, dead-lettered nor behind a cursor.
    pub unsecured_from: Option<usize>,
    pub error: Option<String>,
}

/// What a batch came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub events: usize,
    pub skipped: usize,
    pub subscriptions: usize,
    pub delivered: usize,
    pub dead_lettered: usize,
    pub behind: usize,
    /// The first record to retry from, if any.
    pub retry_from: Option<usize>,
}

/// One shard's part of a batch (a batch of the event source holds one shard).
struct ShardBatch<'a> {
    shard: String,
    /// The last record of the batch on the shard, decodable or not: what the
    /// live path has seen.
    last: SequenceNumber,
    events: Vec<&'a BatchEvent>,
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
    /// Delivers the batch's events to every matching subscription that is
    /// live on the shard, by `deadline`.
    pub async fn dispatch(
        &self,
        records: &[KinesisEventRecord],
        deadline: Instant,
    ) -> Result<KinesisEventResponse, EngineError> {
        let started = Instant::now();
        let (events, skipped) = decode(records);
        let subscriptions = self.subscriptions().await?;
        let mut served = Vec::new();
        for batch in shard_batches(records, &events) {
            served.extend(self.dispatch_shard(&subscriptions, &batch, deadline).await);
        }
        let report = BatchReport {
            events: events.len(),
            skipped,
            subscriptions: served.iter().filter(|s| s.matched > 0).count(),
            delivered: served.iter().map(|s| s.delivered).sum(),
            dead_lettered: served.iter().map(|s| s.dead_lettered).sum(),
            behind: served.iter().map(|s| s.behind).sum(),
            retry_from: served.iter().filter_map(|s| s.unsecured_from).min(),
        };
        tracing::info!(
            records_in = records.len(),
            events = report.events,
            skipped = report.skipped,
            subscriptions = report.subscriptions,
            delivered = report.delivered,
            dead_lettered = report.dead_lettered,
            behind = report.behind,
            retry_from = report
                .retry_from
                .and_then(|n| records.get(n))
                .map(|r| r.kinesis.sequence_number.as_str()),
            duration_ms = started.elapsed().as_millis() as u64,
            "batch dispatched"
        );
        let mut response = KinesisEventResponse::default();
        if let Some(record) = report.retry_from.and_then(|n| records.get(n)) {
            response.add_failure(record.kinesis.sequence_number.clone());
        }
        Ok(response)
    }

    async fn dispatch_shard(
        &self,
        subscriptions: &[Subscription],
        batch: &ShardBatch<'_>,
        deadline: Instant,
    ) -> Vec<Served> {
        let shares: Vec<(&Subscription, Vec<&BatchEvent>)> = subscriptions
            .iter()
            .map(|s| {
                let mine = batch
                    .events
                    .iter()
                    .copied()
                    .filter(|e| s.accepts(&e.event))
                    .collect();
                (s, mine)
            })
            .filter(|(_, mine): &(_, Vec<&BatchEvent>)| !mine.is_empty())
            .collect();
        if shares.is_empty() {
            return Vec::new();
        }
        let ids: Vec<_> = shares.iter().map(|(s, _)| &s.id).collect();
        let cursors = match timeout_at(deadline, self.ports.state.cursors(&batch.shard, &ids)).await
        {
            Ok(Ok(cursors)) => cursors,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the invocation's deadline came".to_owned(),
                };
                tracing::error!(%error, shard = %batch.shard, "cursors not read; the batch is retried");
                let first = batch.events.first().map(|e| e.record);
                return vec![Served {
                    unsecured_from: first,
                    error: Some(error),
                    ..Served::default()
                }];
            }
        };
        join_all(shares.into_iter().map(|(subscription, mine)| {
            let cursor = cursors.get(&subscription.id).cloned();
            self.serve(subscription, batch, mine, cursor, deadline)
        }))
        .await
    }

    /// One subscription's share of the batch, given its cursor on the shard.
    async fn serve(
        &self,
        subscription: &Subscription,
        batch: &ShardBatch<'_>,
        mine: Vec<&BatchEvent>,
        cursor: Option<Cursor>,
        deadline: Instant,
    ) -> Served {
        let (id, shard) = (&subscription.id, batch.shard.as_str());
        let handed_back_at = match cursor {
            None => None,
            Some(c) if c.state == CursorState::HandedBack => Some(c.bound),
            Some(_) => match self.ports.state.skip(id, shard, &batch.last).await {
                Ok(Cas::Done) => return Served::behind(mine.len()),
                Ok(Cas::Lost(Some(now))) if now.state == CursorState::HandedBack => Some(now.bound),
                // Still behind, and a retried batch already noted this far.
                Ok(Cas::Lost(Some(_))) => return Served::behind(mine.len()),
                // The cursor is gone (the subscription's state was reset).
                Ok(Cas::Lost(None)) => None,
                Err(error) => return Served::unsecured(&mine, error.to_string()),
            },
        };
        let served = self
            .deliver_live(subscription, batch, mine, handed_back_at, deadline)
            .await;
        self.record_health(id, served.delivered > 0, served.error.as_deref())
            .await;
        served
    }

    /// Sends the events not covered by a hand-back bound; what is missed
    /// puts the subscription behind.
    async fn deliver_live(
        &self,
        subscription: &Subscription,
        batch: &ShardBatch<'_>,
        mine: Vec<&BatchEvent>,
        handed_back_at: Option<Bound>,
        deadline: Instant,
    ) -> Served {
        let todo: Vec<&BatchEvent> = mine
            .iter()
            .copied()
            .filter(|e| {
                let sequence = e.delivery.position.sequence();
                handed_back_at
                    .as_ref()
                    .is_none_or(|bound| !bound.covers(sequence))
            })
            .collect();
        let mut served = Served {
            matched: mine.len(),
            ..Served::default()
        };
        let deliveries: Vec<&Delivery> = todo.iter().map(|e| &e.delivery).collect();
        let own_deadline = deadline.min(Instant::now() + self.config.budget);
        let report = self.send(subscription, &deliveries, own_deadline).await;
        let outcomes = self
            .dead_letter(subscription, &deliveries, report.outcomes)
            .await;
        served.delivered = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Accepted))
            .count();
        served.dead_lettered = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Rejected(_)))
            .count();
        served.error = report.error;
        let first_pending = outcomes.iter().position(|o| matches!(o, Outcome::Pending));
        let (id, shard) = (&subscription.id, batch.shard.as_str());
        let Some(first_pending) = first_pending.map(|n| todo[n]) else {
            // Delivered past the hand-back bound: live again on this shard.
            // (A batch read before the hand-back, wholly covered by the
            // bound, leaves the cursor: the next one may be covered too.)
            let past = handed_back_at
                .as_ref()
                .filter(|bound| !bound.covers(&batch.last));
            if let Some(bound) = past {
                if let Err(error) = self.ports.state.remove(id, shard, bound).await {
                    tracing::warn!(subscription = %id, shard, %error, "handed-back cursor not removed");
                }
            }
            return served;
        };
        let cursor = Cursor::behind(
            id.clone(),
            shard,
            first_pending.delivery.position.sequence(),
            first_pending.delivery.arrival,
            &batch.last,
            Timestamp::now(),
        );
        let written = match &handed_back_at {
            None => self.ports.state.create(&cursor).await,
            Some(bound) => self.ports.state.fall_behind(bound, &cursor).await,
        };
        let secured = match written {
            Ok(Cas::Done) => true,
            // A retried batch made it already: note how far this one went.
            Ok(Cas::Lost(Some(existing))) if existing.state == CursorState::Behind => {
                self.ports.state.skip(id, shard, &batch.last).await.is_ok()
            }
            Ok(Cas::Lost(_)) => false,
            Err(error) => {
                tracing::error!(subscription = %id, shard, %error, "cursor not written");
                false
            }
        };
        if !secured {
            served.unsecured_from = Some(first_pending.record);
            return served;
        }
        served.behind = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Pending))
            .count();
        tracing::warn!(subscription = %id, shard, from = %cursor.bound,
            error = served.error.as_deref(), "subscription fell behind; catch-up asked for");
        if let Err(error) = self.ports.queue.request(shard).await {
            tracing::warn!(shard, %error, "catch-up not asked for; the sweep will");
        }
        served
    }

    /// Sends `deliveries` to the subscription's destination by `deadline`.
    pub(super) async fn send(
        &self,
        subscription: &Subscription,
        deliveries: &[&Delivery],
        deadline: Instant,
    ) -> SendReport {
        if deliveries.is_empty() {
            return SendReport::all_accepted(0);
        }
        let destination =
            match timeout_at(deadline, self.ports.destinations.destination(subscription)).await {
                Ok(Ok(destination)) => destination,
                Ok(Err(error)) => return SendReport::refused(deliveries.len(), error),
                Err(_) => return SendReport::refused(deliveries.len(), "time budget exhausted"),
            };
        timeout_at(deadline, destination.send(deliveries, deadline))
            .await
            .unwrap_or_else(|_| {
                SendReport::refused(deliveries.len(), "time budget exhausted while sending")
            })
    }

    /// Stores the rejected events as dead letters; if that fails they stay
    /// pending (never dropped).
    pub(super) async fn dead_letter(
        &self,
        subscription: &Subscription,
        deliveries: &[&Delivery],
        mut outcomes: Vec<Outcome>,
    ) -> Vec<Outcome> {
        let now = Timestamp::now();
        let letters: Vec<DeadLetter> = deliveries
            .iter()
            .zip(&outcomes)
            .filter_map(|(delivery, outcome)| match outcome {
                Outcome::Rejected(reason) => Some(DeadLetter::new(delivery, reason, now)),
                _ => None,
            })
            .collect();
        if letters.is_empty() {
            return outcomes;
        }
        let id = &subscription.id;
        match self.ports.state.add_dead_letters(id, &letters).await {
            Ok(()) => {
                for letter in &letters {
                    tracing::warn!(subscription = %id, event_id = %letter.event_id,
                        position = %letter.position, reason = %letter.reason,
                        "event refused for good: dead-lettered");
                }
            }
            Err(error) => {
                tracing::error!(subscription = %id, %error, "dead letters not stored; the events stay pending");
                for outcome in &mut outcomes {
                    if matches!(outcome, Outcome::Rejected(_)) {
                        *outcome = Outcome::Pending;
                    }
                }
            }
        }
        outcomes
    }
}

impl Served {
    fn behind(count: usize) -> Self {
        Served {
            matched: count,
            behind: count,
            ..Served::default()
        }
    }

    fn unsecured(mine: &[&BatchEvent], error: String) -> Self {
        tracing::error!(%error, "cursor not updated; the batch is retried");
        Served {
            matched: mine.len(),
            unsecured_from: mine.first().map(|e| e.record),
            error: Some(error),
            ..Served::default()
        }
    }
}

/// The batch's events by shard, with each shard's last record.
fn shard_batches<'a>(
    records: &[KinesisEventRecord],
    events: &'a [BatchEvent],
) -> Vec<ShardBatch<'a>> {
    let mut last: BTreeMap<String, SequenceNumber> = BTreeMap::new();
    for position in records.iter().filter_map(|r| Position::of_record(r).ok()) {
        let entry = last
            .entry(position.shard().to_owned())
            .or_insert_with(|| position.sequence().clone());
        if position.sequence() > entry {
            *entry = position.sequence().clone();
        }
    }
    last.into_iter()
        .map(|(shard, last)| {
            let events = events
                .iter()
                .filter(|e| e.delivery.position.shard() == shard)
                .collect();
            ShardBatch {
                shard,
                last,
                events,
            }
        })
        .collect()
}

/// The batch's DPL records, decoded; a record that is not one is logged
/// and skipped (the event-store function quarantines the same record).
pub(super) fn decode(records: &[KinesisEventRecord]) -> (Vec<BatchEvent>, usize) {
    let mut events = Vec::with_capacity(records.len());
    let mut skipped = 0;
    for (n, record) in records.iter().enumerate() {
        match decode_one(record) {
            Ok((event, delivery)) => events.push(BatchEvent {
                record: n,
                event,
                delivery,
            }),
            Err(error) => {
                skipped += 1;
                tracing::warn!(%error, sequence_number = %record.kinesis.sequence_number,
                    "record skipped: not a DPL record");
            }
        }
    }
    (events, skipped)
}

fn decode_one(record: &KinesisEventRecord) -> Result<(DeviceEvent, Delivery), RecordError> {
    let position = Position::of_record(record)?;
    let dpl = DplRecord::from_json(&record.kinesis.data)?;
    let arrival = Timestamp::from_millis(
        record
            .kinesis
            .approximate_arrival_timestamp
            .timestamp_millis(),
    )
    .unwrap_or_else(|_| Timestamp::now());
    let delivery = Delivery::new(position, arrival, &dpl);
    Ok((dpl.dpl_event, delivery))
}

/// The DPL records of a page the catch-up worker read, decoded, in order;
/// a record that is not one is logged and skipped, as in a batch.
pub(super) fn decode_page(page: &Page) -> Vec<(DeviceEvent, Delivery)> {
    page.records
        .iter()
        .filter_map(|record| match DplRecord::from_json(&record.data) {
            Ok(dpl) => {
                let delivery = Delivery::new(record.position.clone(), record.arrival, &dpl);
                Some((dpl.dpl_event, delivery))
            }
            Err(error) => {
                tracing::warn!(%error, position = %record.position, "record skipped: not a DPL record");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::super::state::DeliveryState;
    use super::super::testing::*;
    use super::*;
    use crate::examples::kinesis_event_record;

    fn failures(response: &KinesisEventResponse) -> Vec<String> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap_or_default())
            .collect()
    }

    async fn cursor(engine: &TestEngine, subscription: &Subscription) -> Option<Cursor> {
        let id = &subscription.id;
        engine
            .ports()
            .state
            .cursors(SHARD, &[id])
            .await
            .unwrap()
            .remove(id)
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_endpoint_costs_its_budget_once_then_falls_behind_for_one_write_a_batch() {
        let (slow, fast) = (
            subscription(1, "oem1", "slow"),
            subscription(2, "oem1", "fast"),
        );
        let engine = engine(vec![slow.clone(), fast.clone()], Duration::from_secs(3));
        engine.ports().destinations.set("slow", Behaviour::Hang);
        let first = write(&engine, "oem1", 7, 3);
        let started = Instant::now();
        let response = engine
            .dispatch(&first.records, started + Duration::from_secs(60))
            .await
            .unwrap();
        assert!(failures(&response).is_empty());
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(3),
            "one budget, not the deadline"
        );
        assert!(check(&engine, "fast", &first.events).holds());
        let behind = cursor(&engine, &slow)
            .await
            .expect("the slow subscription fell behind");
        assert_eq!(behind.state, CursorState::Behind);
        let first_position = Position::of_record(&first.records[0]).unwrap();
        let last_position = Position::of_record(&first.records[6]).unwrap();
        assert_eq!(behind.bound, Bound::at(first_position.sequence()));
        assert_eq!(behind.live_seen.as_ref(), Some(last_position.sequence()));
        assert_eq!(engine.ports().queue.take(), [SHARD], "catch-up asked for");
        let health = engine
            .ports()
            .subscriptions
            .get(&slow.id)
            .await
            .unwrap()
            .unwrap()
            .health;
        assert!(health.last_error.unwrap().message.contains("time budget"));

        // The next batch costs the slow subscription no time, no request to
        // its endpoint, and one write: how far the live path skipped.
        let second = write(&engine, "oem1", 5, 3);
        let requests = engine.ports().state.usage().requests;
        let started = Instant::now();
        engine
            .dispatch(&second.records, started + Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(engine.ports().destinations.calls("slow"), 1);
        assert_eq!(
            engine.ports().state.usage().requests - requests,
            2,
            "one read, one write"
        );
        let skipped_to = Position::of_record(&second.records[4]).unwrap();
        assert_eq!(
            cursor(&engine, &slow).await.unwrap().live_seen.as_ref(),
            Some(skipped_to.sequence())
        );
        let all: Vec<_> = first.events.iter().chain(&second.events).cloned().collect();
        assert!(check(&engine, "fast", &all).holds());
    }

    #[tokio::test]
    async fn an_endpoint_taking_part_of_a_batch_falls_behind_at_the_first_event_it_missed() {
        let sub = subscription(1, "oem1", "flaky");
        let engine = engine(vec![sub.clone()], Duration::from_secs(5));
        engine
            .ports()
            .destinations
            .set("flaky", Behaviour::AcceptFirst(2));
        let batch = write(&engine, "oem1", 5, 5);
        engine.dispatch(&batch.records, soon()).await.unwrap();
        let third = Position::of_record(&batch.records[2]).unwrap();
        assert_eq!(
            cursor(&engine, &sub).await.unwrap().bound,
            Bound::at(third.sequence())
        );
        assert_eq!(engine.ports().destinations.received("flaky").len(), 2);
    }

    #[tokio::test]
    async fn a_cursor_that_cannot_be_written_retries_the_batch_from_the_first_unsecured_record() {
        let sub = subscription(1, "oem1", "down");
        let engine = engine(vec![sub], Duration::from_secs(5));
        engine
            .ports()
            .destinations
            .set("down", Behaviour::AcceptFirst(3));
        engine.ports().state.set_failing(true);
        let batch = write(&engine, "oem1", 6, 6);
        let response = engine.dispatch(&batch.records, soon()).await.unwrap();
        assert_eq!(
            failures(&response),
            vec![batch.records[0].kinesis.sequence_number.clone()]
        );
    }

    #[tokio::test]
    async fn an_event_refused_for_good_is_dead_lettered_once_and_holds_nobody() {
        let sub = subscription(1, "oem1", "picky");
        let engine = engine(vec![sub.clone()], Duration::from_secs(5));
        // Two DSNs; the second event (DSN 1) is refused for good.
        let batch = write(&engine, "oem1", 6, 2);
        let poison = batch.events[1].1;
        engine
            .ports()
            .destinations
            .set("picky", Behaviour::Reject(HashSet::from([poison])));
        for _ in 0..2 {
            // The second time as a retried batch would come.
            let response = engine.dispatch(&batch.records, soon()).await.unwrap();
            assert!(failures(&response).is_empty());
        }
        let state = &engine.ports().state;
        assert_eq!(
            state.count_dead_letters(&sub.id).await.unwrap(),
            1,
            "exact under retries"
        );
        let letters = state.dead_letters(&sub.id, 10).await.unwrap();
        assert_eq!(letters[0].event_id, poison);
        assert!(letters[0].reason.starts_with("413"));
        assert!(cursor(&engine, &sub).await.is_none(), "nobody is behind");
        // Everything else arrived, each DSN in order (twice: the retry).
        let rest: Vec<_> = batch
            .events
            .iter()
            .filter(|(_, id)| *id != poison)
            .cloned()
            .collect();
        assert!(check(&engine, "picky", &rest).holds());
    }

    #[tokio::test]
    async fn a_subscription_item_that_does_not_decode_is_skipped_and_the_others_served() {
        let sub = subscription(1, "oem1", "fine");
        let engine = engine(vec![sub], Duration::from_secs(5));
        engine
            .ports()
            .subscriptions
            .add_corrupt("sub-00000000000000ff", "status `paused`");
        let batch = write(&engine, "oem1", 3, 3);
        let response = engine.dispatch(&batch.records, soon()).await.unwrap();
        assert!(failures(&response).is_empty());
        assert!(check(&engine, "fine", &batch.events).holds());
    }

    #[tokio::test]
    async fn events_go_only_to_their_oems_subscriptions_and_bad_records_are_skipped() {
        let (a, b) = (subscription(1, "oem1", "a"), subscription(2, "oem2", "b"));
        let engine = engine(vec![a, b], Duration::from_secs(5));
        let first = write(&engine, "oem1", 3, 3);
        let second = write(&engine, "oem2", 2, 2);
        let mut records = first.records.clone();
        let mut bad = kinesis_event_record("AC000W000000001", b"{\"dpl_event\": 1}", 150);
        bad.event_id = Some(format!("{SHARD}:150"));
        records.push(bad);
        records.extend(second.records.clone());
        let response = engine.dispatch(&records, soon()).await.unwrap();
        assert!(failures(&response).is_empty());
        assert!(check(&engine, "a", &first.events).holds());
        assert!(check(&engine, "b", &second.events).holds());
    }
}
