//! Delivery state: the [`Cursor`]s of subscriptions that fell behind, their
//! [`DeadLetter`]s, and the leases that keep one catch-up worker per shard.
//! The port [`DeliveryState`], its DynamoDB adapter ([`dynamo`], item
//! schema in [`item`]) and an in-memory adapter ([`memory`]).
//!
//! Storage grows with time and shards, not with events: a subscription
//! that is behind has one cursor per shard, written when it falls behind,
//! when the live path skips a batch, and at the worker's checkpoints.
//!
//! Every cursor change is conditional on the cursor being what the writer
//! last saw ([`Cas`]): that is what keeps the live path and the catch-up
//! worker from ever delivering the same shard's events at the same time
//! (`super::cursor`).

use std::collections::HashMap;
use std::future::Future;

use super::cursor::{Bound, Cursor};
use super::dead_letter::DeadLetter;
use super::subscription::SubscriptionId;
use crate::position::{Position, SequenceNumber};
use crate::Timestamp;

pub mod dynamo;
pub mod item;
pub mod memory;

pub use dynamo::DynamoState;
pub use memory::InMemoryState;

/// Why the state store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delivery state {operation} for {subject}: {message}")]
pub struct StateError {
    pub operation: &'static str,
    pub subject: String,
    pub message: String,
}

impl StateError {
    pub fn new(operation: &'static str, subject: impl ToString, message: impl ToString) -> Self {
        Self {
            operation,
            subject: subject.to_string(),
            message: message.to_string(),
        }
    }
}

/// The answer to a conditional cursor change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cas {
    /// The change is made.
    Done,
    /// The cursor was not what the writer expected; this is how it is now
    /// (`None`: there is none).
    Lost(Option<Cursor>),
}

/// See the module docs. Reads are strongly consistent.
pub trait DeliveryState: Send + Sync {
    /// The cursors on `shard` of those of `subscriptions` that have one.
    fn cursors(
        &self,
        shard: &str,
        subscriptions: &[&SubscriptionId],
    ) -> impl Future<Output = Result<HashMap<SubscriptionId, Cursor>, StateError>> + Send;

    /// Every cursor of `subscription`, by shard.
    fn cursors_of(
        &self,
        subscription: &SubscriptionId,
    ) -> impl Future<Output = Result<Vec<Cursor>, StateError>> + Send;

    /// Stores `cursor` if its subscription has none on its shard (the live
    /// path, when a subscription falls behind).
    fn create(&self, cursor: &Cursor) -> impl Future<Output = Result<Cas, StateError>> + Send;

    /// The live path skipped up to `seen`: raises `live_seen` if the cursor
    /// is behind (never lowers it).
    fn skip(
        &self,
        subscription: &SubscriptionId,
        shard: &str,
        seen: &SequenceNumber,
    ) -> impl Future<Output = Result<Cas, StateError>> + Send;

    /// The worker's checkpoint: a behind cursor at `expected` moves to
    /// `cursor`'s bound, `since` and `behind_ms` (`live_seen` is left alone).
    fn advance(
        &self,
        expected: &Bound,
        cursor: &Cursor,
    ) -> impl Future<Output = Result<Cas, StateError>> + Send;

    /// The worker hands back at `cursor.bound`: a behind cursor at
    /// `expected` whose `live_seen` the new bound covers becomes
    /// handed back.
    fn hand_back(
        &self,
        expected: &Bound,
        cursor: &Cursor,
    ) -> impl Future<Output = Result<Cas, StateError>> + Send;

    /// The live path missed events after a hand-back: a handed-back cursor
    /// at `expected` becomes `cursor` (behind again).
    fn fall_behind(
        &self,
        expected: &Bound,
        cursor: &Cursor,
    ) -> impl Future<Output = Result<Cas, StateError>> + Send;

    /// The live path delivered past a hand-back: the handed-back cursor at
    /// `expected` goes; the subscription is live on the shard again.
    fn remove(
        &self,
        subscription: &SubscriptionId,
        shard: &str,
        expected: &Bound,
    ) -> impl Future<Output = Result<Cas, StateError>> + Send;

    /// Stores dead letters (the same position twice is stored once).
    fn add_dead_letters(
        &self,
        subscription: &SubscriptionId,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// The oldest `limit` dead letters of `subscription`, by position.
    fn dead_letters(
        &self,
        subscription: &SubscriptionId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, StateError>> + Send;

    /// How many dead letters `subscription` has: counted, not kept as a
    /// counter, so retries never make it drift.
    fn count_dead_letters(
        &self,
        subscription: &SubscriptionId,
    ) -> impl Future<Output = Result<u64, StateError>> + Send;

    fn remove_dead_letters(
        &self,
        subscription: &SubscriptionId,
        positions: &[&Position],
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Takes the lease `name` for `owner` until `until`, if it is free,
    /// expired (at `now`) or already `owner`'s.
    fn lease(
        &self,
        name: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StateError>> + Send;

    /// Gives the lease up, if `owner` still holds it.
    fn release(
        &self,
        name: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Removes every cursor and dead letter of `subscription` (it was
    /// deleted); returns how many items went.
    fn forget(
        &self,
        subscription: &SubscriptionId,
    ) -> impl Future<Output = Result<usize, StateError>> + Send;
}
