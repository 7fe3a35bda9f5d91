//! Parking: durable, ordered storage of the events a subscription's
//! destination could not take in time.
//!
//! Parked events are kept per subscription in [`Position`] order, which
//! keeps each DSN's order. While a subscription has parked events, its new
//! events are parked behind them ([`super::dispatch`]); a redrive
//! ([`super::redrive`]) delivers them from the oldest and removes each one
//! only after its destination accepted it. Parking the same event twice
//! (a retried DPL batch) stores it once: the position is the key.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;

use super::delivery::{Delivery, Position};
use super::subscription::SubscriptionId;

/// Why the parking store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parking {operation} for subscription {subscription}: {message}")]
pub struct ParkingError {
    pub operation: &'static str,
    pub subscription: String,
    pub message: String,
}

impl ParkingError {
    pub fn new(
        operation: &'static str,
        subscription: &SubscriptionId,
        message: impl ToString,
    ) -> Self {
        Self {
            operation,
            subscription: subscription.to_string(),
            message: message.to_string(),
        }
    }
}

/// The port to the parking store.
pub trait ParkingLot: Send + Sync {
    /// Stores `deliveries` for `subscription` (idempotent per position).
    fn park(
        &self,
        subscription: &SubscriptionId,
        deliveries: &[&Delivery],
    ) -> impl Future<Output = Result<(), ParkingError>> + Send;

    /// Whether `subscription` has parked events (a strongly consistent read:
    /// an event parked a moment ago counts).
    fn has_parked(
        &self,
        subscription: &SubscriptionId,
    ) -> impl Future<Output = Result<bool, ParkingError>> + Send;

    /// The oldest `limit` parked events of `subscription`, in order.
    fn oldest(
        &self,
        subscription: &SubscriptionId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Delivery>, ParkingError>> + Send;

    /// Removes delivered events.
    fn remove(
        &self,
        subscription: &SubscriptionId,
        positions: &[&Position],
    ) -> impl Future<Output = Result<(), ParkingError>> + Send;
}

/// Parking in memory, for tests and benchmarks. [`Self::set_failing`]
/// makes writes fail, as a throttled or unreachable store would.
#[derive(Debug, Default)]
pub struct InMemoryParking {
    lots: Mutex<HashMap<SubscriptionId, BTreeMap<Position, Delivery>>>,
    failing: Mutex<bool>,
}

impl InMemoryParking {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes writes (park, remove) fail (`true`) or work again.
    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock().expect("parking lock") = failing;
    }

    /// Everything parked for `subscription`, in order.
    pub fn parked(&self, subscription: &SubscriptionId) -> Vec<Delivery> {
        self.lots
            .lock()
            .expect("parking lock")
            .get(subscription)
            .map(|lot| lot.values().cloned().collect())
            .unwrap_or_default()
    }

    fn check(&self, operation: &'static str, id: &SubscriptionId) -> Result<(), ParkingError> {
        if *self.failing.lock().expect("parking lock") {
            return Err(ParkingError::new(operation, id, "store unavailable"));
        }
        Ok(())
    }
}

impl ParkingLot for InMemoryParking {
    async fn park(
        &self,
        id: &SubscriptionId,
        deliveries: &[&Delivery],
    ) -> Result<(), ParkingError> {
        self.check("put", id)?;
        let mut lots = self.lots.lock().expect("parking lock");
        let lot = lots.entry(id.clone()).or_default();
        for delivery in deliveries {
            lot.insert(delivery.position.clone(), (*delivery).clone());
        }
        Ok(())
    }

    async fn has_parked(&self, id: &SubscriptionId) -> Result<bool, ParkingError> {
        let lots = self.lots.lock().expect("parking lock");
        Ok(lots.get(id).is_some_and(|lot| !lot.is_empty()))
    }

    async fn oldest(
        &self,
        id: &SubscriptionId,
        limit: usize,
    ) -> Result<Vec<Delivery>, ParkingError> {
        let lots = self.lots.lock().expect("parking lock");
        Ok(lots
            .get(id)
            .map(|lot| lot.values().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn remove(
        &self,
        id: &SubscriptionId,
        positions: &[&Position],
    ) -> Result<(), ParkingError> {
        self.check("delete", id)?;
        let mut lots = self.lots.lock().expect("parking lock");
        if let Some(lot) = lots.get_mut(id) {
            for position in positions {
                lot.remove(*position);
            }
        }
        Ok(())
    }
}
