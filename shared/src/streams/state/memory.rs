//! [`DeliveryState`] in memory, with the DynamoDB adapter's conditions, for
//! tests and simulations: it counts requests and written items as DynamoDB
//! would bill them, can answer after a latency, and can be made to fail.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{Cas, DeliveryState, StateError};
use crate::position::{Position, SequenceNumber};
use crate::streams::cursor::{Bound, Cursor, CursorState};
use crate::streams::dead_letter::DeadLetter;
use crate::streams::subscription::SubscriptionId;
use crate::Timestamp;

/// Requests made and items written, as DynamoDB counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: u64,
    pub items_written: u64,
}

#[derive(Debug, Default)]
struct Tables {
    cursors: BTreeMap<(SubscriptionId, String), Cursor>,
    dead_letters: BTreeMap<SubscriptionId, BTreeMap<Position, DeadLetter>>,
    leases: HashMap<String, (String, Timestamp)>,
    usage: Usage,
    failing: bool,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct InMemoryState {
    tables: Mutex<Tables>,
    latency: Duration,
}

impl InMemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers every request after `latency` (tokio's clock).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Makes every request fail (`true`), as an unreachable store would.
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }

    pub fn usage(&self) -> Usage {
        self.lock().usage
    }

    /// Every cursor, for assertions.
    pub fn all_cursors(&self) -> Vec<Cursor> {
        self.lock().cursors.values().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One request writing `items`, after the latency.
    async fn request(
        &self,
        operation: &'static str,
        subject: &(dyn std::fmt::Display + Sync),
        items: u64,
    ) -> Result<MutexGuard<'_, Tables>, StateError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let mut tables = self.lock();
        tables.usage.requests += 1;
        tables.usage.items_written += items;
        if tables.failing {
            return Err(StateError::new(operation, subject, "store unavailable"));
        }
        Ok(tables)
    }
}

fn key(subscription: &SubscriptionId, shard: &str) -> (SubscriptionId, String) {
    (subscription.clone(), shard.to_owned())
}

/// The cursor as it is now, if it is not `(state, bound)`.
fn unexpected(
    tables: &Tables,
    subscription: &SubscriptionId,
    shard: &str,
    state: CursorState,
    bound: &Bound,
) -> Option<Cas> {
    let current = tables.cursors.get(&key(subscription, shard));
    match current {
        Some(c) if c.state == state && &c.bound == bound => None,
        other => Some(Cas::Lost(other.cloned())),
    }
}

impl DeliveryState for InMemoryState {
    async fn cursors(
        &self,
        shard: &str,
        subscriptions: &[&SubscriptionId],
    ) -> Result<HashMap<SubscriptionId, Cursor>, StateError> {
        let tables = self.request("get", &shard, 0).await?;
        Ok(subscriptions
            .iter()
            .filter_map(|id| tables.cursors.get(&key(id, shard)))
            .map(|c| (c.subscription.clone(), c.clone()))
            .collect())
    }

    async fn cursors_of(&self, subscription: &SubscriptionId) -> Result<Vec<Cursor>, StateError> {
        let tables = self.request("query", subscription, 0).await?;
        Ok(tables
            .cursors
            .values()
            .filter(|c| &c.subscription == subscription)
            .cloned()
            .collect())
    }

    async fn create(&self, cursor: &Cursor) -> Result<Cas, StateError> {
        let mut tables = self.request("create", &cursor.subscription, 1).await?;
        let slot = key(&cursor.subscription, &cursor.shard);
        if let Some(current) = tables.cursors.get(&slot) {
            return Ok(Cas::Lost(Some(current.clone())));
        }
        tables.cursors.insert(slot, cursor.clone());
        Ok(Cas::Done)
    }

    async fn skip(
        &self,
        subscription: &SubscriptionId,
        shard: &str,
        seen: &SequenceNumber,
    ) -> Result<Cas, StateError> {
        let mut tables = self.request("skip", subscription, 1).await?;
        match tables.cursors.get_mut(&key(subscription, shard)) {
            Some(c)
                if c.state == CursorState::Behind
                    && c.live_seen.as_ref().is_none_or(|s| s < seen) =>
            {
                c.live_seen = Some(seen.clone());
                Ok(Cas::Done)
            }
            other => Ok(Cas::Lost(other.map(|c| c.clone()))),
        }
    }

    async fn advance(&self, expected: &Bound, cursor: &Cursor) -> Result<Cas, StateError> {
        let mut tables = self.request("advance", &cursor.subscription, 1).await?;
        let (id, shard) = (&cursor.subscription, cursor.shard.as_str());
        if let Some(lost) = unexpected(&tables, id, shard, CursorState::Behind, expected) {
            return Ok(lost);
        }
        let stored = tables.cursors.get_mut(&key(id, shard)).expect("checked");
        stored.bound = cursor.bound.clone();
        stored.since = cursor.since;
        stored.behind_ms = cursor.behind_ms;
        stored.updated_at = cursor.updated_at;
        Ok(Cas::Done)
    }

    async fn hand_back(&self, expected: &Bound, cursor: &Cursor) -> Result<Cas, StateError> {
        let mut tables = self.request("hand_back", &cursor.subscription, 1).await?;
        let (id, shard) = (&cursor.subscription, cursor.shard.as_str());
        if let Some(lost) = unexpected(&tables, id, shard, CursorState::Behind, expected) {
            return Ok(lost);
        }
        let stored = tables.cursors.get_mut(&key(id, shard)).expect("checked");
        if !stored.may_hand_back_at(&cursor.bound) {
            return Ok(Cas::Lost(Some(stored.clone())));
        }
        stored.state = CursorState::HandedBack;
        stored.bound = cursor.bound.clone();
        stored.behind_ms = cursor.behind_ms;
        stored.updated_at = cursor.updated_at;
        Ok(Cas::Done)
    }

    async fn fall_behind(&self, expected: &Bound, cursor: &Cursor) -> Result<Cas, StateError> {
        let mut tables = self.request("fall_behind", &cursor.subscription, 1).await?;
        let (id, shard) = (&cursor.subscription, cursor.shard.as_str());
        if let Some(lost) = unexpected(&tables, id, shard, CursorState::HandedBack, expected) {
            return Ok(lost);
        }
        tables.cursors.insert(key(id, shard), cursor.clone());
        Ok(Cas::Done)
    }

    async fn remove(
        &self,
        subscription: &SubscriptionId,
        shard: &str,
        expected: &Bound,
    ) -> Result<Cas, StateError> {
        let mut tables = self.request("remove", subscription, 1).await?;
        if let Some(lost) = unexpected(
            &tables,
            subscription,
            shard,
            CursorState::HandedBack,
            expected,
        ) {
            return Ok(lost);
        }
        tables.cursors.remove(&key(subscription, shard));
        Ok(Cas::Done)
    }

    async fn add_dead_letters(
        &self,
        subscription: &SubscriptionId,
        letters: &[DeadLetter],
    ) -> Result<(), StateError> {
        let mut tables = self
            .request("dead_letter", subscription, letters.len() as u64)
            .await?;
        let lot = tables.dead_letters.entry(subscription.clone()).or_default();
        for letter in letters {
            lot.entry(letter.position.clone())
                .or_insert_with(|| letter.clone());
        }
        Ok(())
    }

    async fn dead_letters(
        &self,
        subscription: &SubscriptionId,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StateError> {
        let tables = self.request("dead_letters", subscription, 0).await?;
        Ok(tables
            .dead_letters
            .get(subscription)
            .map(|lot| lot.values().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn count_dead_letters(&self, subscription: &SubscriptionId) -> Result<u64, StateError> {
        let tables = self.request("count_dead_letters", subscription, 0).await?;
        Ok(tables
            .dead_letters
            .get(subscription)
            .map_or(0, |lot| lot.len() as u64))
    }

    async fn remove_dead_letters(
        &self,
        subscription: &SubscriptionId,
        positions: &[&Position],
    ) -> Result<(), StateError> {
        let mut tables = self
            .request("remove_dead_letters", subscription, positions.len() as u64)
            .await?;
        if let Some(lot) = tables.dead_letters.get_mut(subscription) {
            for position in positions {
                lot.remove(*position);
            }
        }
        Ok(())
    }

    async fn lease(
        &self,
        name: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StateError> {
        let mut tables = self.request("lease", &name, 1).await?;
        let free = tables
            .leases
            .get(name)
            .is_none_or(|(holder, expires)| holder == owner || *expires < now);
        if free {
            tables
                .leases
                .insert(name.to_owned(), (owner.to_owned(), until));
        }
        Ok(free)
    }

    async fn release(&self, name: &str, owner: &str) -> Result<(), StateError> {
        let mut tables = self.request("release", &name, 1).await?;
        if tables
            .leases
            .get(name)
            .is_some_and(|(holder, _)| holder == owner)
        {
            tables.leases.remove(name);
        }
        Ok(())
    }

    async fn forget(&self, subscription: &SubscriptionId) -> Result<usize, StateError> {
        let mut tables = self.request("forget", subscription, 0).await?;
        let before = tables.cursors.len();
        tables.cursors.retain(|(id, _), _| id != subscription);
        let cursors = before - tables.cursors.len();
        let letters = tables
            .dead_letters
            .remove(subscription)
            .map_or(0, |lot| lot.len());
        tables.usage.items_written += (cursors + letters) as u64;
        Ok(cursors + letters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventId, EventType};

    fn seq(n: u64) -> SequenceNumber {
        SequenceNumber::parse(&n.to_string()).unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::from_millis(1_000).unwrap()
    }

    fn cursor(first_missed: u64, live_seen: u64) -> Cursor {
        Cursor::behind(
            SubscriptionId::from_bits(1),
            "shard-0",
            &seq(first_missed),
            now(),
            &seq(live_seen),
            now(),
        )
    }

    #[tokio::test]
    async fn the_live_path_and_the_worker_hand_over_only_through_conditions() {
        let state = InMemoryState::new();
        let id = SubscriptionId::from_bits(1);
        let start = cursor(10, 20);
        assert_eq!(state.create(&start).await.unwrap(), Cas::Done);
        assert!(matches!(
            state.create(&start).await.unwrap(),
            Cas::Lost(Some(_))
        ));
        // The worker delivered through 20 and checkpoints.
        let mut moved = start.clone();
        moved.bound = Bound::after(&seq(20));
        assert_eq!(
            state.advance(&start.bound, &moved).await.unwrap(),
            Cas::Done
        );
        // A stale checkpoint (from the old bound) loses.
        assert!(matches!(
            state.advance(&start.bound, &moved).await.unwrap(),
            Cas::Lost(Some(_))
        ));
        // The live path skipped up to 30: handing back after 20 must fail...
        assert_eq!(
            state.skip(&id, "shard-0", &seq(30)).await.unwrap(),
            Cas::Done
        );
        assert_eq!(
            state.skip(&id, "shard-0", &seq(25)).await.unwrap(),
            Cas::Lost(Some(
                state.cursors("shard-0", &[&id]).await.unwrap()[&id].clone()
            )),
            "never lowered"
        );
        let mut back = moved.clone();
        assert!(matches!(
            state.hand_back(&moved.bound, &back).await.unwrap(),
            Cas::Lost(Some(_))
        ));
        // ... and succeed once the worker delivered through 30.
        back.bound = Bound::after(&seq(30));
        assert_eq!(
            state.hand_back(&moved.bound, &back).await.unwrap(),
            Cas::Done
        );
        // The live path now finds it handed back: skipping is refused.
        let Cas::Lost(Some(now)) = state.skip(&id, "shard-0", &seq(40)).await.unwrap() else {
            panic!("a handed-back cursor is not skipped");
        };
        assert_eq!(now.state, CursorState::HandedBack);
        assert_eq!(
            state.remove(&id, "shard-0", &back.bound).await.unwrap(),
            Cas::Done
        );
        assert!(state.cursors("shard-0", &[&id]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn dead_letters_are_stored_once_and_counted_exactly() {
        let state = InMemoryState::new();
        let id = SubscriptionId::from_bits(1);
        let letter = DeadLetter {
            position: Position::new("shard-0", "5").unwrap(),
            event_id: EventId::derive("e", EventType::Datapoint),
            event_type: EventType::Datapoint,
            dsn: "D".into(),
            reason: "413".into(),
            at: now(),
            size: 1,
            payload: Some(b"x".to_vec()),
        };
        state
            .add_dead_letters(&id, std::slice::from_ref(&letter))
            .await
            .unwrap();
        state
            .add_dead_letters(&id, std::slice::from_ref(&letter))
            .await
            .unwrap();
        assert_eq!(
            state.count_dead_letters(&id).await.unwrap(),
            1,
            "a retry counts once"
        );
        state.create(&cursor(1, 2)).await.unwrap();
        assert_eq!(state.forget(&id).await.unwrap(), 2);
        assert_eq!(state.count_dead_letters(&id).await.unwrap(), 0);
        assert!(state.cursors_of(&id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_lease_is_held_until_it_expires_or_is_released() {
        let state = InMemoryState::new();
        let at = |ms| Timestamp::from_millis(ms).unwrap();
        assert!(state
            .lease("kinesis#shard-0", "a", at(60_000), at(0))
            .await
            .unwrap());
        assert!(!state
            .lease("kinesis#shard-0", "b", at(70_000), at(10_000))
            .await
            .unwrap());
        assert!(
            state
                .lease("kinesis#shard-0", "a", at(80_000), at(20_000))
                .await
                .unwrap(),
            "renewed"
        );
        assert!(
            state
                .lease("kinesis#shard-0", "b", at(200_000), at(90_000))
                .await
                .unwrap(),
            "expired"
        );
        state.release("kinesis#shard-0", "a").await.unwrap();
        assert!(
            !state
                .lease("kinesis#shard-0", "c", at(200_000), at(100_000))
                .await
                .unwrap(),
            "not a's to give"
        );
    }
}
