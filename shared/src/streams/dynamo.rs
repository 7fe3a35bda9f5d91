//! The port to stored subscriptions, [`SubscriptionStore`], its DynamoDB
//! adapter [`DynamoSubscriptions`] and an in-memory adapter for tests,
//! [`InMemorySubscriptions`].
//!
//! The item schema (one item per subscription, partition key `id`) is
//! documented in `docs/streams.md`; [`attr`] names every attribute.
//! Configuration and health live in the same item but are written by
//! different calls: configuration by `create` and `set_status`, health by
//! `record_success`, `record_error` and `add_parked`, each an `UpdateItem`
//! that sets only its own attributes, so neither ever overwrites the other.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::subscription::{
    truncate_message, Credentials, Destination, Filters, Health, LastError, Selection, Status,
    Subscription, SubscriptionId, Transport,
};
use crate::event::EventType;
use crate::time::Timestamp;

/// Attribute names of a subscription item.
pub mod attr {
    /// S, partition key: the [`SubscriptionId`](super::SubscriptionId).
    pub const ID: &str = "id";
    pub const OEM_ID: &str = "oem_id";
    pub const NAME: &str = "name";
    /// S, absent when empty.
    pub const DESCRIPTION: &str = "description";
    /// S: `kinesis` or `eventhubs`.
    pub const TRANSPORT: &str = "transport";
    /// S, Kinesis only.
    pub const STREAM_ARN: &str = "stream_arn";
    /// S, Event Hubs only.
    pub const NAMESPACE: &str = "namespace";
    /// S, Event Hubs only.
    pub const HUB: &str = "hub";
    /// S: `assume_role`, `access_key_secret` or `connection_string_secret`.
    pub const CREDENTIALS: &str = "credentials";
    /// S, `assume_role` only.
    pub const ROLE_ARN: &str = "role_arn";
    /// S, `assume_role` only, optional.
    pub const EXTERNAL_ID: &str = "external_id";
    /// S, the two secret kinds: the Secrets Manager secret's ARN or name.
    pub const SECRET_ID: &str = "secret_id";
    /// S `*`, or SS (never empty: DynamoDB has no empty sets, and neither
    /// have valid filters).
    pub const EVENT_TYPES: &str = "event_types";
    pub const MODELS: &str = "models";
    pub const PROPERTIES: &str = "properties";
    pub const DSNS: &str = "dsns";
    /// S: `enabled` or `disabled`.
    pub const STATUS: &str = "status";
    /// N, epoch milliseconds.
    pub const CREATED_AT: &str = "created_at";
    /// N, epoch milliseconds; health.
    pub const LAST_SUCCESS_AT: &str = "last_success_at";
    /// N, epoch milliseconds; health.
    pub const LAST_ERROR_AT: &str = "last_error_at";
    /// S; health.
    pub const LAST_ERROR: &str = "last_error";
    /// N, a counter changed with `ADD`; health.
    pub const PARKED: &str = "parked";
}

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
    /// id. An item that does not decode fails the whole list (it names the
    /// item): only this module writes items, so one is a bug or a hand edit.
    fn list(
        &self,
        oem_id: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Subscription>, SubscriptionStoreError>> + Send;

    /// Enables or disables; [`SubscriptionStoreError::NotFound`] if absent.
    fn set_status(
        &self,
        id: &SubscriptionId,
        status: Status,
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

    /// Adds `delta` (negative when redriven) to the parked count, atomically;
    /// returns the new count (a count driven below zero reads as 0).
    fn add_parked(
        &self,
        id: &SubscriptionId,
        delta: i64,
    ) -> impl Future<Output = Result<u64, SubscriptionStoreError>> + Send;
}

// ---------------------------------------------------------------------------
// Item mapping (pure)

type Item = HashMap<String, AttributeValue>;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn selection_value<T: ToString>(selection: &Selection<T>) -> AttributeValue {
    match selection {
        Selection::All => s("*"),
        Selection::Only(items) => AttributeValue::Ss(items.iter().map(T::to_string).collect()),
    }
}

/// The item storing `subscription`, health included.
pub fn to_item(subscription: &Subscription) -> Item {
    let mut item = Item::new();
    let mut put = |name: &str, value| {
        item.insert(name.to_owned(), value);
    };
    put(attr::ID, s(subscription.id.as_str()));
    put(attr::OEM_ID, s(&subscription.oem_id));
    put(attr::NAME, s(&subscription.name));
    if !subscription.description.is_empty() {
        put(attr::DESCRIPTION, s(&subscription.description));
    }
    put(attr::TRANSPORT, s(subscription.transport().as_str()));
    match &subscription.destination {
        Destination::Kinesis { stream_arn } => put(attr::STREAM_ARN, s(stream_arn.to_string())),
        Destination::EventHubs { namespace, hub } => {
            put(attr::NAMESPACE, s(namespace));
            put(attr::HUB, s(hub));
        }
    }
    put(attr::CREDENTIALS, s(subscription.credentials.kind()));
    match &subscription.credentials {
        Credentials::AssumeRole {
            role_arn,
            external_id,
        } => {
            put(attr::ROLE_ARN, s(role_arn));
            if let Some(external_id) = external_id {
                put(attr::EXTERNAL_ID, s(external_id));
            }
        }
        Credentials::AccessKeySecret { secret_id }
        | Credentials::ConnectionStringSecret { secret_id } => put(attr::SECRET_ID, s(secret_id)),
    }
    let filters = &subscription.filters;
    put(attr::EVENT_TYPES, selection_value(&filters.event_types));
    put(attr::MODELS, selection_value(&filters.models));
    put(attr::PROPERTIES, selection_value(&filters.properties));
    put(attr::DSNS, selection_value(&filters.dsns));
    put(attr::STATUS, s(subscription.status.as_str()));
    put(attr::CREATED_AT, n(subscription.created_at.millis()));
    let health = &subscription.health;
    if let Some(at) = health.last_success {
        put(attr::LAST_SUCCESS_AT, n(at.millis()));
    }
    if let Some(error) = &health.last_error {
        put(attr::LAST_ERROR_AT, n(error.at.millis()));
        put(attr::LAST_ERROR, s(&error.message));
    }
    put(
        attr::PARKED,
        n(i64::try_from(health.parked).unwrap_or(i64::MAX)),
    );
    item
}

/// Reads attributes of one item, naming the item in errors.
struct Reader<'a> {
    id: &'a str,
    item: &'a Item,
}

impl Reader<'_> {
    fn error(&self, reason: impl ToString) -> SubscriptionStoreError {
        SubscriptionStoreError::corrupt(self.id, reason)
    }

    fn opt_s(&self, name: &str) -> Result<Option<&str>, SubscriptionStoreError> {
        match self.item.get(name) {
            None => Ok(None),
            Some(AttributeValue::S(text)) => Ok(Some(text)),
            Some(_) => Err(self.error(format!("{name} is not a string"))),
        }
    }

    fn s(&self, name: &str) -> Result<&str, SubscriptionStoreError> {
        self.opt_s(name)?
            .ok_or_else(|| self.error(format!("{name} is missing")))
    }

    fn opt_n(&self, name: &str) -> Result<Option<i64>, SubscriptionStoreError> {
        match self.item.get(name) {
            None => Ok(None),
            Some(AttributeValue::N(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| self.error(format!("{name} `{text}` is not an integer"))),
            Some(_) => Err(self.error(format!("{name} is not a number"))),
        }
    }

    fn opt_time(&self, name: &str) -> Result<Option<Timestamp>, SubscriptionStoreError> {
        self.opt_n(name)?
            .map(|ms| Timestamp::from_millis(ms).map_err(|e| self.error(format!("{name}: {e}"))))
            .transpose()
    }

    fn selection<T: Ord>(
        &self,
        name: &str,
        item: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Selection<T>, SubscriptionStoreError> {
        match self.item.get(name) {
            Some(AttributeValue::S(star)) if star == "*" => Ok(Selection::All),
            Some(AttributeValue::Ss(items)) => items
                .iter()
                .map(|i| item(i).map_err(|e| self.error(format!("{name}: {e}"))))
                .collect::<Result<BTreeSet<T>, _>>()
                .map(Selection::Only),
            Some(_) => Err(self.error(format!("{name} is neither \"*\" nor a string set"))),
            None => Err(self.error(format!("{name} is missing"))),
        }
    }
}

/// The subscription stored in `item`, validated.
pub fn from_item(item: &Item) -> Result<Subscription, SubscriptionStoreError> {
    let id_text = match item.get(attr::ID) {
        Some(AttributeValue::S(id)) => id.as_str(),
        _ => "(no id)",
    };
    let r = Reader { id: id_text, item };
    let id: SubscriptionId = id_text.parse().map_err(|e| r.error(e))?;
    let transport: Transport = r.s(attr::TRANSPORT)?.parse().map_err(|e| r.error(e))?;
    let destination = match transport {
        Transport::Kinesis => Destination::Kinesis {
            stream_arn: r.s(attr::STREAM_ARN)?.parse().map_err(|e| r.error(e))?,
        },
        Transport::EventHubs => Destination::EventHubs {
            namespace: r.s(attr::NAMESPACE)?.to_owned(),
            hub: r.s(attr::HUB)?.to_owned(),
        },
    };
    let secret_id = || r.s(attr::SECRET_ID).map(str::to_owned);
    let credentials = match r.s(attr::CREDENTIALS)? {
        "assume_role" => Credentials::AssumeRole {
            role_arn: r.s(attr::ROLE_ARN)?.to_owned(),
            external_id: r.opt_s(attr::EXTERNAL_ID)?.map(str::to_owned),
        },
        "access_key_secret" => Credentials::AccessKeySecret {
            secret_id: secret_id()?,
        },
        "connection_string_secret" => Credentials::ConnectionStringSecret {
            secret_id: secret_id()?,
        },
        other => return Err(r.error(format!("credentials `{other}` is not a known kind"))),
    };
    let name = |t: &str| Ok(t.to_owned());
    let filters = Filters {
        event_types: r.selection(attr::EVENT_TYPES, |t| {
            t.parse::<EventType>().map_err(|e| e.to_string())
        })?,
        models: r.selection(attr::MODELS, name)?,
        properties: r.selection(attr::PROPERTIES, name)?,
        dsns: r.selection(attr::DSNS, name)?,
    };
    let last_error = match (r.opt_time(attr::LAST_ERROR_AT)?, r.opt_s(attr::LAST_ERROR)?) {
        (Some(at), message) => Some(LastError {
            at,
            message: message.unwrap_or_default().to_owned(),
        }),
        (None, _) => None,
    };
    let subscription = Subscription {
        id,
        oem_id: r.s(attr::OEM_ID)?.to_owned(),
        name: r.s(attr::NAME)?.to_owned(),
        description: r.opt_s(attr::DESCRIPTION)?.unwrap_or_default().to_owned(),
        destination,
        credentials,
        filters,
        status: r.s(attr::STATUS)?.parse().map_err(|e| r.error(e))?,
        health: Health {
            last_success: r.opt_time(attr::LAST_SUCCESS_AT)?,
            last_error,
            parked: parked_count(r.opt_n(attr::PARKED)?),
        },
        created_at: r
            .opt_time(attr::CREATED_AT)?
            .ok_or_else(|| r.error("created_at is missing"))?,
    };
    subscription.validate().map_err(|e| r.error(e))?;
    Ok(subscription)
}

/// A stored counter as a count: absent is 0, below zero reads as 0.
fn parked_count(stored: Option<i64>) -> u64 {
    stored.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn sort(subscriptions: &mut [Subscription]) {
    subscriptions
        .sort_by(|a, b| (&a.oem_id, a.created_at, &a.id).cmp(&(&b.oem_id, b.created_at, &b.id)));
}

// ---------------------------------------------------------------------------
// DynamoDB adapter

/// Subscriptions in a DynamoDB table (partition key `id`, S).
#[derive(Clone, Debug)]
pub struct DynamoSubscriptions {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// Error codes worth retrying (DynamoDB developer guide, "Error handling
/// with DynamoDB": 400 throttling codes and 5xx).
const RETRYABLE_CODES: [&str; 6] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
];

fn service<E, R>(operation: &'static str, id: &str, error: SdkError<E, R>) -> SubscriptionStoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &error {
        SdkError::ServiceError(e) => e.err().code().is_some_and(|c| RETRYABLE_CODES.contains(&c)),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    };
    SubscriptionStoreError::Service {
        operation,
        id: id.to_owned(),
        message: DisplayErrorContext(&error).to_string(),
        retryable,
    }
}

fn is_conditional_failure<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    matches!(error, SdkError::ServiceError(e)
        if e.err().code() == Some("ConditionalCheckFailedException"))
}

impl DynamoSubscriptions {
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(sdk), table)
    }

    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(id: &SubscriptionId) -> (String, AttributeValue) {
        (attr::ID.to_owned(), s(id.as_str()))
    }

    /// Sets `name = :at` (and `extra`) if the item exists and `name` holds
    /// no later time. A refused condition is `NotFound` only if the item is
    /// indeed gone; otherwise a later time was already recorded.
    async fn set_if_later(
        &self,
        operation: &'static str,
        id: &SubscriptionId,
        name: &str,
        at: Timestamp,
        extra: Option<(&str, String)>,
    ) -> Result<(), SubscriptionStoreError> {
        let mut update = "SET #at = :at".to_owned();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::ID, s(id.as_str()))
            .condition_expression(
                "attribute_exists(#id) AND (attribute_not_exists(#at) OR #at <= :at)",
            )
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#at", name)
            .expression_attribute_values(":at", n(at.millis()));
        if let Some((extra_name, value)) = extra {
            update.push_str(", #extra = :extra");
            request = request
                .expression_attribute_names("#extra", extra_name)
                .expression_attribute_values(":extra", s(value));
        }
        match request.update_expression(update).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => match self.get(id).await? {
                Some(_) => Ok(()),
                None => Err(SubscriptionStoreError::NotFound(id.clone())),
            },
            Err(e) => Err(service(operation, id.as_str(), e)),
        }
    }
}

impl SubscriptionStore for DynamoSubscriptions {
    async fn create(&self, subscription: &Subscription) -> Result<(), SubscriptionStoreError> {
        let id = &subscription.id;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(subscription)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                Err(SubscriptionStoreError::AlreadyExists(id.clone()))
            }
            Err(e) => Err(service("create", id.as_str(), e)),
        }
    }

    async fn get(
        &self,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, SubscriptionStoreError> {
        let (name, value) = Self::key(id);
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(name, value)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| service("get", id.as_str(), e))?;
        output.item.as_ref().map(from_item).transpose()
    }

    /// A `Scan` of the whole table (filtered on `oem_id` when asked), page
    /// by page, strongly consistent: the table holds one small item per
    /// subscription, a few hundred at most, so a scan costs less than
    /// keeping a per-OEM index.
    async fn list(
        &self,
        oem_id: Option<&str>,
    ) -> Result<Vec<Subscription>, SubscriptionStoreError> {
        let mut request = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true);
        if let Some(oem_id) = oem_id {
            request = request
                .filter_expression("#oem = :oem")
                .expression_attribute_names("#oem", attr::OEM_ID)
                .expression_attribute_values(":oem", s(oem_id));
        }
        let mut pages = request.into_paginator().send();
        let mut subscriptions = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service("list", oem_id.unwrap_or("*"), e))?;
            for item in page.items() {
                subscriptions.push(from_item(item)?);
            }
        }
        sort(&mut subscriptions);
        Ok(subscriptions)
    }

    async fn set_status(
        &self,
        id: &SubscriptionId,
        status: Status,
    ) -> Result<(), SubscriptionStoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::ID, s(id.as_str()))
            .update_expression("SET #status = :status")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_values(":status", s(status.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                Err(SubscriptionStoreError::NotFound(id.clone()))
            }
            Err(e) => Err(service("set_status", id.as_str(), e)),
        }
    }

    async fn delete(&self, id: &SubscriptionId) -> Result<(), SubscriptionStoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(attr::ID, s(id.as_str()))
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                Err(SubscriptionStoreError::NotFound(id.clone()))
            }
            Err(e) => Err(service("delete", id.as_str(), e)),
        }
    }

    async fn record_success(
        &self,
        id: &SubscriptionId,
        at: Timestamp,
    ) -> Result<(), SubscriptionStoreError> {
        self.set_if_later("record_success", id, attr::LAST_SUCCESS_AT, at, None)
            .await
    }

    async fn record_error(
        &self,
        id: &SubscriptionId,
        at: Timestamp,
        message: &str,
    ) -> Result<(), SubscriptionStoreError> {
        let message = truncate_message(message);
        self.set_if_later(
            "record_error",
            id,
            attr::LAST_ERROR_AT,
            at,
            Some((attr::LAST_ERROR, message)),
        )
        .await
    }

    async fn add_parked(
        &self,
        id: &SubscriptionId,
        delta: i64,
    ) -> Result<u64, SubscriptionStoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::ID, s(id.as_str()))
            .update_expression("ADD #parked :delta")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#parked", attr::PARKED)
            .expression_attribute_values(":delta", n(delta))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let attributes = output.attributes.unwrap_or_default();
                let r = Reader {
                    id: id.as_str(),
                    item: &attributes,
                };
                Ok(parked_count(r.opt_n(attr::PARKED)?))
            }
            Err(e) if is_conditional_failure(&e) => {
                Err(SubscriptionStoreError::NotFound(id.clone()))
            }
            Err(e) => Err(service("add_parked", id.as_str(), e)),
        }
    }
}

// ---------------------------------------------------------------------------
// In-memory adapter

/// Subscriptions in a map, with the DynamoDB adapter's semantics
/// (conditional create, health that never creates an item, later-wins
/// health times, counters that read below zero as 0).
#[derive(Debug, Default)]
pub struct InMemorySubscriptions {
    items: Mutex<BTreeMap<SubscriptionId, (Subscription, i64)>>,
}

impl InMemorySubscriptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `subscriptions`.
    pub fn with(subscriptions: impl IntoIterator<Item = Subscription>) -> Self {
        let store = Self::new();
        {
            let mut items = store.lock();
            for subscription in subscriptions {
                let parked = i64::try_from(subscription.health.parked).unwrap_or(i64::MAX);
                items.insert(subscription.id.clone(), (subscription, parked));
            }
        }
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SubscriptionId, (Subscription, i64)>> {
        // A panic while holding the lock leaves plain data: keep using it.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update<T>(
        &self,
        id: &SubscriptionId,
        change: impl FnOnce(&mut Subscription, &mut i64) -> T,
    ) -> Result<T, SubscriptionStoreError> {
        let mut items = self.lock();
        let (subscription, parked) = items
            .get_mut(id)
            .ok_or_else(|| SubscriptionStoreError::NotFound(id.clone()))?;
        Ok(change(subscription, parked))
    }
}

impl SubscriptionStore for InMemorySubscriptions {
    async fn create(&self, subscription: &Subscription) -> Result<(), SubscriptionStoreError> {
        let mut items = self.lock();
        if items.contains_key(&subscription.id) {
            return Err(SubscriptionStoreError::AlreadyExists(
                subscription.id.clone(),
            ));
        }
        let parked = i64::try_from(subscription.health.parked).unwrap_or(i64::MAX);
        items.insert(subscription.id.clone(), (subscription.clone(), parked));
        Ok(())
    }

    async fn get(
        &self,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, SubscriptionStoreError> {
        Ok(self.lock().get(id).map(|(s, _)| s.clone()))
    }

    async fn list(
        &self,
        oem_id: Option<&str>,
    ) -> Result<Vec<Subscription>, SubscriptionStoreError> {
        let mut subscriptions: Vec<Subscription> = self
            .lock()
            .values()
            .filter(|(s, _)| oem_id.is_none_or(|oem| s.oem_id == oem))
            .map(|(s, _)| s.clone())
            .collect();
        sort(&mut subscriptions);
        Ok(subscriptions)
    }

    async fn set_status(
        &self,
        id: &SubscriptionId,
        status: Status,
    ) -> Result<(), SubscriptionStoreError> {
        self.update(id, |s, _| s.status = status)
    }

    async fn delete(&self, id: &SubscriptionId) -> Result<(), SubscriptionStoreError> {
        self.lock()
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| SubscriptionStoreError::NotFound(id.clone()))
    }

    async fn record_success(
        &self,
        id: &SubscriptionId,
        at: Timestamp,
    ) -> Result<(), SubscriptionStoreError> {
        self.update(id, |s, _| {
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
        self.update(id, |s, _| {
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

    async fn add_parked(
        &self,
        id: &SubscriptionId,
        delta: i64,
    ) -> Result<u64, SubscriptionStoreError> {
        self.update(id, |s, parked| {
            *parked = parked.saturating_add(delta);
            s.health.parked = parked_count(Some(*parked));
            s.health.parked
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::subscription::{SubscriptionSpec, MAX_ERROR_MESSAGE_LEN};

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn kinesis(bits: u64, oem: &str) -> Subscription {
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
                    external_id: None,
                },
                filters: Filters::all(),
            },
            at(bits as i64),
        )
        .unwrap()
    }

    fn event_hubs() -> Subscription {
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

    #[test]
    fn items_round_trip_with_health() {
        let mut with_health = kinesis(1, "0dfc7900");
        with_health.credentials = Credentials::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/writer".to_owned(),
            external_id: Some("dpl-0dfc7900".to_owned()),
        };
        with_health.status = Status::Disabled;
        with_health.health = Health {
            last_success: Some(at(10)),
            last_error: Some(LastError {
                at: at(20),
                message: "AccessDenied".to_owned(),
            }),
            parked: 7,
        };
        for subscription in [with_health, event_hubs()] {
            assert_eq!(from_item(&to_item(&subscription)).unwrap(), subscription);
        }
    }

    #[test]
    fn item_attributes_are_as_documented() {
        let item = to_item(&event_hubs());
        let text = |name: &str| match &item[name] {
            AttributeValue::S(s) => s.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(text(attr::ID), "sub-000000000000000e");
        assert_eq!(text(attr::TRANSPORT), "eventhubs");
        assert_eq!(text(attr::CREDENTIALS), "connection_string_secret");
        assert_eq!(
            item[attr::MODELS],
            AttributeValue::Ss(vec!["ledevb".to_owned()])
        );
        assert_eq!(text(attr::DSNS), "*");
        assert_eq!(
            item[attr::EVENT_TYPES],
            AttributeValue::Ss(vec!["datapoint".to_owned(), "datapointack".to_owned()])
        );
        assert_eq!(item[attr::CREATED_AT], AttributeValue::N("5".to_owned()));
        assert_eq!(item[attr::PARKED], AttributeValue::N("0".to_owned()));
        assert!(!item.contains_key(attr::STREAM_ARN));
        assert!(!item.contains_key(attr::LAST_SUCCESS_AT));
    }

    #[test]
    fn corrupt_items_are_named() {
        let good = to_item(&event_hubs());
        type Edit = fn(&mut Item);
        let cases: &[(Edit, &str)] = &[
            (|i| drop(i.remove(attr::NAME)), "name is missing"),
            (
                |i| drop(i.insert(attr::STATUS.into(), s("paused"))),
                "status `paused`",
            ),
            (
                |i| drop(i.insert(attr::DSNS.into(), s("all"))),
                "dsns is neither",
            ),
            (
                |i| {
                    drop(i.insert(
                        attr::EVENT_TYPES.into(),
                        AttributeValue::Ss(vec!["x".into()]),
                    ))
                },
                "`x` is not an event type",
            ),
            (
                |i| drop(i.insert(attr::CREDENTIALS.into(), s("assume_role"))),
                "role_arn is missing",
            ),
            (|i| drop(i.insert(attr::HUB.into(), s("-"))), "hub `-`"),
            (
                |i| drop(i.insert(attr::CREATED_AT.into(), s("5"))),
                "created_at is not a number",
            ),
        ];
        for (edit, expected) in cases {
            let mut item = good.clone();
            edit(&mut item);
            let error = from_item(&item).unwrap_err().to_string();
            assert!(
                error.starts_with("subscription item sub-000000000000000e: "),
                "{error}"
            );
            assert!(error.contains(expected), "expected {expected:?} in {error}");
        }
    }

    #[test]
    fn parked_counts_below_zero_read_as_zero() {
        assert_eq!(parked_count(Some(-3)), 0);
        assert_eq!(parked_count(None), 0);
        assert_eq!(parked_count(Some(4)), 4);
    }

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
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed, [b.id.clone(), a.id.clone()]);
        assert_eq!(
            store.list(Some("oem-a")).await.unwrap(),
            std::slice::from_ref(&b)
        );

        store.record_success(&a.id, at(100)).await.unwrap();
        store.record_success(&a.id, at(50)).await.unwrap();
        store
            .record_error(&a.id, at(60), &"x".repeat(5000))
            .await
            .unwrap();
        assert_eq!(store.add_parked(&a.id, 5).await.unwrap(), 5);
        assert_eq!(store.add_parked(&a.id, -7).await.unwrap(), 0);
        assert_eq!(store.add_parked(&a.id, 3).await.unwrap(), 1);
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
        assert_eq!(store.add_parked(&a.id, 1).await, Err(gone));
        assert_eq!(store.get(&a.id).await.unwrap(), None);
    }
}
