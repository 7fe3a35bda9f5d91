//! [`SubscriptionStore`] in memory, for tests and simulations, with the
//! DynamoDB adapter's semantics: conditional create, health that never
//! creates an item, later-wins health times, and items that do not decode
//! listed apart ([`InMemorySubscriptions::add_corrupt`]).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{sort, Listing, SubscriptionStore, SubscriptionStoreError};
use crate::streams::subscription::{
    truncate_message, LastError, Status, Subscription, SubscriptionId,
};
use crate::time::Timestamp;

#[derive(Debug, Default)]
struct Items {
    subscriptions: BTreeMap<SubscriptionId, Subscription>,
    /// Item id and why it does not decode.
    corrupt: Vec<(String, String)>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct InMemorySubscriptions {
    items: Mutex<Items>,
}

impl InMemorySubscriptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `subscriptions`.
    pub fn with(subscriptions: impl IntoIterator<Item = Subscription>) -> Self {
        let store = Self::new();
        store
            .lock()
            .subscriptions
            .extend(subscriptions.into_iter().map(|s| (s.id.clone(), s)));
        store
    }

    /// Adds an item that does not decode (as a hand-edited DynamoDB item
    /// would not): listings name it in [`Listing::corrupt`].
    pub fn add_corrupt(&self, id: &str, reason: &str) {
        self.lock().corrupt.push((id.to_owned(), reason.to_owned()));
    }

    fn lock(&self) -> MutexGuard<'_, Items> {
        // A panic while holding the lock leaves plain data: keep using it.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(
        &self,
        id: &SubscriptionId,
        change: impl FnOnce(&mut Subscription),
    ) -> Result<(), SubscriptionStoreError> {
        let mut items = self.lock();
        let subscription = items
            .subscriptions
            .get_mut(id)
            .ok_or_else(|| SubscriptionStoreError::NotFound(id.clone()))?;
        change(subscription);
        Ok(())
    }
}

impl SubscriptionStore for InMemorySubscriptions {
    async fn create(&self, subscription: &Subscription) -> Result<(), SubscriptionStoreError> {
        let mut items = self.lock();
        if items.subscriptions.contains_key(&subscription.id) {
            return Err(SubscriptionStoreError::AlreadyExists(
                subscription.id.clone(),
            ));
        }
        items
            .subscriptions
            .insert(subscription.id.clone(), subscription.clone());
        Ok(())
    }

    async fn get(
        &self,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, SubscriptionStoreError> {
        Ok(self.lock().subscriptions.get(id).cloned())
    }

    async fn list(&self, oem_id: Option<&str>) -> Result<Listing, SubscriptionStoreError> {
        let items = self.lock();
        let mut subscriptions: Vec<Subscription> = items
            .subscriptions
            .values()
            .filter(|s| oem_id.is_none_or(|oem| s.oem_id == oem))
            .cloned()
            .collect();
        sort(&mut subscriptions);
        let corrupt = items
            .corrupt
            .iter()
            .map(|(id, reason)| SubscriptionStoreError::Corrupt {
                id: id.clone(),
                reason: reason.clone(),
            })
            .collect();
        Ok(Listing {
            subscriptions,
            corrupt,
        })
    }

    async fn set_status(
        &self,
        id: &SubscriptionId,
        status: Status,
    ) -> Result<(), SubscriptionStoreError> {
        self.update(id, |s| s.status = status)
    }

    async fn update_details(
        &self,
        subscription: &Subscription,
    ) -> Result<(), SubscriptionStoreError> {
        self.update(&subscription.id, |stored| {
            stored.name = subscription.name.clone();
            stored.description = subscription.description.clone();
            stored.filters = subscription.filters.clone();
        })
    }

    async fn delete(&self, id: &SubscriptionId) -> Result<(), SubscriptionStoreError> {
        self.lock()
            .subscriptions
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| SubscriptionStoreError::NotFound(id.clone()))
    }

    async fn record_success(
        &self,
        id: &SubscriptionId,
        at: Timestamp,
    ) -> Result<(), SubscriptionStoreError> {
        self.update(id, |s| {
            if s.health.last_success.is_none_or(|last| last <= at) {
                s.health.last_success = Some(at);
            }
        })
    }

    async fn record_error(
        &self,
        id: &SubscriptionId,
        at: Timestamp,
        message: &str,
    ) -> Result<(), SubscriptionStoreError> {
        self.update(id, |s| {
            if s.health
                .last_error
                .as_ref()
                .is_none_or(|last| last.at <= at)
            {
                s.health.last_error = Some(LastError {
                    at,
                    message: truncate_message(message),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, kinesis};
    use super::*;
    use crate::streams::subscription::MAX_ERROR_MESSAGE_LEN;

    #[tokio::test]
    async fn memory_store_keeps_dynamo_semantics() {
        let store = InMemorySubscriptions::new();
        let a = kinesis(2, "oem-b");
        let b = kinesis(1, "oem-a");
        store.create(&a).await.unwrap();
        store.create(&b).await.unwrap();
        assert_eq!(
            store.create(&a).await,
            Err(SubscriptionStoreError::AlreadyExists(a.id.clone()))
        );
        let listed: Vec<_> = store
            .list(None)
            .await
            .unwrap()
            .subscriptions
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed, [b.id.clone(), a.id.clone()]);
        assert_eq!(
            store.list(Some("oem-a")).await.unwrap().subscriptions,
            std::slice::from_ref(&b)
        );
        store.add_corrupt("sub-broken", "status `paused`");
        let listing = store.list(None).await.unwrap();
        assert_eq!(
            listing.subscriptions.len(),
            2,
            "the others are still listed"
        );
        assert_eq!(
            listing.corrupt[0].to_string(),
            "subscription item sub-broken: status `paused`"
        );

        store.record_success(&a.id, at(100)).await.unwrap();
        store.record_success(&a.id, at(50)).await.unwrap();
        store
            .record_error(&a.id, at(60), &"x".repeat(5000))
            .await
            .unwrap();
        store.set_status(&a.id, Status::Disabled).await.unwrap();
        let stored = store.get(&a.id).await.unwrap().unwrap();
        assert_eq!(stored.health.last_success, Some(at(100)));
        let last_error = stored.health.last_error.unwrap();
        assert_eq!(
            (last_error.at, last_error.message.len()),
            (at(60), MAX_ERROR_MESSAGE_LEN)
        );
        assert_eq!(stored.status, Status::Disabled);
        assert_eq!(stored.name, a.name);

        store.delete(&a.id).await.unwrap();
        let gone = SubscriptionStoreError::NotFound(a.id.clone());
        assert_eq!(store.delete(&a.id).await, Err(gone.clone()));
        assert_eq!(store.record_success(&a.id, at(1)).await, Err(gone.clone()));
        assert_eq!(store.get(&a.id).await.unwrap(), None);
    }
}
