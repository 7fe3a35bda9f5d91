//! Stored subscriptions: the port [`SubscriptionStore`], its DynamoDB
//! adapter ([`dynamo`]), an in-memory adapter for tests ([`memory`]), and
//! the item codec between them ([`item`]).
//!
//! The item schema (one item per subscription, partition key `id`) is
//! documented in `docs/streams.md`; [`item::attr`] names every attribute.
//! Configuration and health live in the same item but are written by
//! different calls: configuration by `create` and `set_status`, health by
//! `record_success` and `record_error`, each an `UpdateItem` that sets only
//! its own attributes, so neither ever overwrites the other. Health holds
//! no counters: what a subscription has behind or dead-lettered is read
//! from the delivery state itself (`super::state`), so it stays exact
//! whatever is retried.

use std::future::Future;

use super::subscription::{Status, Subscription, SubscriptionId};
use crate::time::Timestamp;

pub mod dynamo;
pub mod item;
pub mod memory;

pub use dynamo::DynamoSubscriptions;
pub use item::attr;
pub use memory::InMemorySubscriptions;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionStoreError {
    #[error("subscription {0} does not exist")]
    NotFound(SubscriptionId),
    #[error("subscription {0} already exists")]
    AlreadyExists(SubscriptionId),
    /// A stored item is not a valid subscription (edited by hand?).
    #[error("subscription item {id}: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("{operation} {id}: {message}")]
    Service {
        operation: &'static str,
        id: String,
        message: String,
        retryable: bool,
    },
}

impl SubscriptionStoreError {
    /// Whether the same call may succeed later (throttling, timeouts,
    /// server errors). Not found, already exists and corrupt items are final.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SubscriptionStoreError::Service {
                retryable: true,
                ..
            }
        )
    }

    fn corrupt(id: &str, reason: impl ToString) -> Self {
        SubscriptionStoreError::Corrupt {
            id: id.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Every subscription of a listing that could be read, and an error naming
/// each item that could not: one malformed item (a hand edit, a bug) must
/// not stop delivery for every other customer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub subscriptions: Vec<Subscription>,
    /// [`SubscriptionStoreError::Corrupt`] for each item that did not decode.
    pub corrupt: Vec<SubscriptionStoreError>,
}

/// What the CLI and the delivery engine need from stored subscriptions.
pub trait SubscriptionStore {
    /// Stores a new subscription; [`SubscriptionStoreError::AlreadyExists`]
    /// if its id is taken (nothing is overwritten).
    fn create(
        &self,
        subscription: &Subscription,
    ) -> impl Future<Output = Result<(), SubscriptionStoreError>> + Send;

    /// The subscription, or `None` (strongly consistent read).
    fn get(
        &self,
        id: &SubscriptionId,
    ) -> impl Future<Output = Result<Option<Subscription>, SubscriptionStoreError>> + Send;

    /// Every subscription, or one OEM's, sorted by OEM, creation time and
    /// id. An item that does not decode is left out and named in
    /// [`Listing::corrupt`]: only this module writes items, so one is a bug
    /// or a hand edit, and it must not hide the others.
    fn list(
        &self,
        oem_id: Option<&str>,
    ) -> impl Future<Output = Result<Listing, SubscriptionStoreError>> + Send;

    /// Enables or disables; [`SubscriptionStoreError::NotFound`] if absent.
    fn set_status(
        &self,
        id: &SubscriptionId,
        status: Status,
    ) -> impl Future<Output = Result<(), SubscriptionStoreError>> + Send;

    /// Replaces the name, the description and the filters of a stored
    /// subscription with `subscription`'s (nothing else: status and health
    /// are the stream functions' and the operators'); `NotFound` if absent.
    fn update_details(
        &self,
        subscription: &Subscription,
    ) -> impl Future<Output = Result<(), SubscriptionStoreError>> + Send;

    /// Deletes the item (not its secret); `NotFound` if absent.
    fn delete(
        &self,
        id: &SubscriptionId,
    ) -> impl Future<Output = Result<(), SubscriptionStoreError>> + Send;

    /// Records a delivery at `at`, unless a later one is already recorded
    /// (concurrent deliveries may report out of order). `NotFound` if the
    /// subscription is gone: health never creates an item.
    fn record_success(
        &self,
        id: &SubscriptionId,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), SubscriptionStoreError>> + Send;

    /// Records a failure at `at` (message cut to
    /// [`MAX_ERROR_MESSAGE_LEN`](super::subscription::MAX_ERROR_MESSAGE_LEN)
    /// characters), unless a later failure is already recorded. The message
    /// must hold no secret.
    fn record_error(
        &self,
        id: &SubscriptionId,
        at: Timestamp,
        message: &str,
    ) -> impl Future<Output = Result<(), SubscriptionStoreError>> + Send;
}

/// Listing order: by OEM, creation time and id.
pub(crate) fn sort(subscriptions: &mut [Subscription]) {
    subscriptions
        .sort_by(|a, b| (&a.oem_id, a.created_at, &a.id).cmp(&(&b.oem_id, b.created_at, &b.id)));
}

/// Subscriptions shared by the store's tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::event::EventType;
    use crate::streams::subscription::{
        Credentials, Destination, Filters, Selection, Subscription, SubscriptionId,
        SubscriptionSpec,
    };
    use crate::time::Timestamp;

    pub fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    pub fn kinesis(bits: u64, oem: &str) -> Subscription {
        Subscription::new(
            SubscriptionId::from_bits(bits),
            SubscriptionSpec {
                oem_id: oem.to_owned(),
                name: format!("stream {bits}"),
                description: String::new(),
                destination: Destination::Kinesis {
                    stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/s"
                        .parse()
                        .unwrap(),
                },
                credentials: Credentials::AssumeRole {
                    role_arn: "arn:aws:iam::123456789012:role/writer".to_owned(),
                    external_id: Some("dpl-test".to_owned()),
                },
                filters: Filters::all(),
            },
            at(bits as i64),
        )
        .unwrap()
    }

    pub fn event_hubs() -> Subscription {
        Subscription::new(
            SubscriptionId::from_bits(0xe),
            SubscriptionSpec {
                oem_id: "0dfc7900".to_owned(),
                name: "hub".to_owned(),
                description: "to Azure".to_owned(),
                destination: Destination::EventHubs {
                    namespace: "contoso-events".to_owned(),
                    hub: "devices".to_owned(),
                },
                credentials: Credentials::ConnectionStringSecret {
                    secret_id: "dpl/streams/sub-000000000000000e".to_owned(),
                },
                filters: Filters {
                    event_types: Selection::only([EventType::Datapoint, EventType::DatapointAck]),
                    models: Selection::only(["ledevb".to_owned()]),
                    properties: Selection::only(["temp".to_owned(), "hum".to_owned()]),
                    dsns: Selection::All,
                },
            },
            at(5),
        )
        .unwrap()
    }
}
