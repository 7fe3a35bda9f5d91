//! [`DeliveryState`] on a DynamoDB table (`DeliveryStateTable`; items in
//! [`super::item`]). Conditions are DynamoDB condition expressions on the
//! cursor item, so the live path and the catch-up worker of any Lambda
//! instance agree on who delivers.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, Select, WriteRequest,
};
use aws_sdk_dynamodb::Client;

use super::item::{
    attr, cursor_from, cursor_item, cursor_key, dead_letter_from, dead_letter_item,
    dead_letter_key, key, n, s, Item, CURSOR_PREFIX, DEAD_LETTER_PREFIX, LEASES,
};
use super::{Cas, DeliveryState, StateError};
use crate::position::{Position, SequenceNumber};
use crate::streams::cursor::{Bound, Cursor, CursorState};
use crate::streams::dead_letter::DeadLetter;
use crate::streams::subscription::SubscriptionId;
use crate::Timestamp;

/// At most 25 put or delete requests per `BatchWriteItem` call (DynamoDB
/// API Reference, `BatchWriteItem`).
pub const MAX_WRITES_PER_BATCH: usize = 25;

/// At most 100 keys per `BatchGetItem` call (DynamoDB API Reference,
/// `BatchGetItem`: "up to 100 items").
pub const MAX_KEYS_PER_GET: usize = 100;

/// Rounds of resending unprocessed items or keys before giving up.
const MAX_UNPROCESSED_ROUNDS: u32 = 8;
/// First wait before resending unprocessed items; doubled each round.
const UNPROCESSED_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Clone, Debug)]
pub struct DynamoState {
    client: Client,
    table: String,
}

fn message<E: std::error::Error + 'static>(error: &E) -> String {
    DisplayErrorContext(error).to_string()
}

fn is_conditional_failure<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    matches!(error, SdkError::ServiceError(e)
        if e.err().code() == Some("ConditionalCheckFailedException"))
}

impl DynamoState {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get(
        &self,
        subscription: &SubscriptionId,
        shard: &str,
    ) -> Result<Option<Cursor>, StateError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(subscription, shard)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StateError::new("get", subscription, message(&e)))?;
        output
            .item
            .as_ref()
            .map(|item| cursor_from(item).map_err(|e| StateError::new("read", subscription, e)))
            .transpose()
    }

    /// `Done`, or the cursor as it is now when the condition failed.
    async fn cas<E, R>(
        &self,
        operation: &'static str,
        cursor: (&SubscriptionId, &str),
        result: Result<(), SdkError<E, R>>,
    ) -> Result<Cas, StateError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        match result {
            Ok(()) => Ok(Cas::Done),
            Err(e) if is_conditional_failure(&e) => {
                Ok(Cas::Lost(self.get(cursor.0, cursor.1).await?))
            }
            Err(e) => Err(StateError::new(operation, cursor.0, message(&e))),
        }
    }

    /// Sends `requests` in calls of at most [`MAX_WRITES_PER_BATCH`],
    /// resending what DynamoDB leaves unprocessed.
    async fn write_all(
        &self,
        operation: &'static str,
        subject: &(dyn std::fmt::Display + Sync),
        requests: Vec<WriteRequest>,
    ) -> Result<(), StateError> {
        for chunk in requests.chunks(MAX_WRITES_PER_BATCH) {
            let mut pending = chunk.to_vec();
            let mut wait = UNPROCESSED_BACKOFF;
            for round in 0.. {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| StateError::new(operation, subject, message(&e)))?;
                pending = output
                    .unprocessed_items
                    .and_then(|mut items| items.remove(&self.table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                if round == MAX_UNPROCESSED_ROUNDS {
                    return Err(StateError::new(
                        operation,
                        subject,
                        format!("{} items stayed unprocessed", pending.len()),
                    ));
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Ok(())
    }

    /// Every item of `subscription` whose sort key starts with `prefix`
    /// (all of them for ""), strongly consistent, page by page.
    async fn query(
        &self,
        subscription: &SubscriptionId,
        prefix: &str,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StateError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_names("#pk", attr::PK)
                .expression_attribute_values(":pk", s(subscription.as_str()));
            // DynamoDB refuses an empty `begins_with` prefix: all items then.
            request = if prefix.is_empty() {
                request.key_condition_expression("#pk = :pk")
            } else {
                request
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#sk", attr::SK)
                    .expression_attribute_values(":prefix", s(prefix))
            };
            request = request.consistent_read(true).set_exclusive_start_key(start);
            if let Some(limit) = limit {
                let left = limit.saturating_sub(found.len());
                request = request.limit(i32::try_from(left).unwrap_or(i32::MAX));
            }
            let output = request
                .send()
                .await
                .map_err(|e| StateError::new("query", subscription, message(&e)))?;
            found.extend(output.items.unwrap_or_default());
            start = output.last_evaluated_key;
            if start.is_none() || limit.is_some_and(|l| found.len() >= l) {
                return Ok(found);
            }
        }
    }

    async fn delete_keys(
        &self,
        operation: &'static str,
        subject: &(dyn std::fmt::Display + Sync),
        keys: Vec<Item>,
    ) -> Result<(), StateError> {
        let requests = keys
            .into_iter()
            .map(|k| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(k))
                    .build()
                    .expect("key is set");
                WriteRequest::builder().delete_request(delete).build()
            })
            .collect();
        self.write_all(operation, subject, requests).await
    }
}

impl DeliveryState for DynamoState {
    async fn cursors(
        &self,
        shard: &str,
        subscriptions: &[&SubscriptionId],
    ) -> Result<HashMap<SubscriptionId, Cursor>, StateError> {
        let mut found = HashMap::new();
        for chunk in subscriptions.chunks(MAX_KEYS_PER_GET) {
            let keys: Vec<Item> = chunk.iter().map(|id| cursor_key(id, shard)).collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .expect("keys are set"),
            );
            let mut wait = UNPROCESSED_BACKOFF;
            for round in 0.. {
                let Some(request) = pending.take() else { break };
                if round > MAX_UNPROCESSED_ROUNDS {
                    return Err(StateError::new("get", shard, "keys stayed unprocessed"));
                }
                if round > 0 {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| StateError::new("get", shard, message(&e)))?;
                for item in output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let cursor =
                        cursor_from(&item).map_err(|e| StateError::new("read", shard, e))?;
                    found.insert(cursor.subscription.clone(), cursor);
                }
                pending = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table));
            }
        }
        Ok(found)
    }

    async fn cursors_of(&self, subscription: &SubscriptionId) -> Result<Vec<Cursor>, StateError> {
        self.query(subscription, CURSOR_PREFIX, None)
            .await?
            .iter()
            .map(|item| cursor_from(item).map_err(|e| StateError::new("read", subscription, e)))
            .collect()
    }

    async fn create(&self, cursor: &Cursor) -> Result<Cas, StateError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(cursor_item(cursor)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", attr::PK)
            .send()
            .await
            .map(|_| ());
        self.cas("create", (&cursor.subscription, &cursor.shard), result)
            .await
    }

    async fn skip(
        &self,
        subscription: &SubscriptionId,
        shard: &str,
        seen: &SequenceNumber,
    ) -> Result<Cas, StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(subscription, shard)))
            .update_expression("SET #seen = :seen")
            .condition_expression(
                "#state = :behind AND (attribute_not_exists(#seen) OR #seen < :seen)",
            )
            .expression_attribute_names("#state", attr::STATE)
            .expression_attribute_names("#seen", attr::LIVE_SEEN)
            .expression_attribute_values(":behind", s(CursorState::Behind.as_str()))
            .expression_attribute_values(":seen", s(seen.padded()))
            .send()
            .await
            .map(|_| ());
        self.cas("skip", (subscription, shard), result).await
    }

    async fn advance(&self, expected: &Bound, cursor: &Cursor) -> Result<Cas, StateError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(&cursor.subscription, &cursor.shard)))
            .condition_expression("#state = :behind AND #bound = :expected")
            .expression_attribute_names("#state", attr::STATE)
            .expression_attribute_names("#bound", attr::BOUND)
            .expression_attribute_names("#since", attr::SINCE)
            .expression_attribute_names("#updated", attr::UPDATED_AT)
            .expression_attribute_values(":behind", s(CursorState::Behind.as_str()))
            .expression_attribute_values(":expected", s(expected.as_str()))
            .expression_attribute_values(":bound", s(cursor.bound.as_str()))
            .expression_attribute_values(":since", n(cursor.since.millis()))
            .expression_attribute_values(":updated", n(cursor.updated_at.millis()));
        let mut update = "SET #bound = :bound, #since = :since, #updated = :updated".to_owned();
        if let Some(ms) = cursor.behind_ms {
            update.push_str(", #behind = :behind_ms");
            request = request
                .expression_attribute_names("#behind", attr::BEHIND_MS)
                .expression_attribute_values(":behind_ms", n(ms));
        }
        let result = request.update_expression(update).send().await.map(|_| ());
        self.cas("advance", (&cursor.subscription, &cursor.shard), result)
            .await
    }

    async fn hand_back(&self, expected: &Bound, cursor: &Cursor) -> Result<Cas, StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(&cursor.subscription, &cursor.shard)))
            .update_expression("SET #state = :handed_back, #bound = :bound, #updated = :updated")
            .condition_expression(
                "#state = :behind AND #bound = :expected \
                 AND (attribute_not_exists(#seen) OR #seen < :bound)",
            )
            .expression_attribute_names("#state", attr::STATE)
            .expression_attribute_names("#bound", attr::BOUND)
            .expression_attribute_names("#seen", attr::LIVE_SEEN)
            .expression_attribute_names("#updated", attr::UPDATED_AT)
            .expression_attribute_values(":behind", s(CursorState::Behind.as_str()))
            .expression_attribute_values(":handed_back", s(CursorState::HandedBack.as_str()))
            .expression_attribute_values(":expected", s(expected.as_str()))
            .expression_attribute_values(":bound", s(cursor.bound.as_str()))
            .expression_attribute_values(":updated", n(cursor.updated_at.millis()))
            .send()
            .await
            .map(|_| ());
        self.cas("hand_back", (&cursor.subscription, &cursor.shard), result)
            .await
    }

    async fn fall_behind(&self, expected: &Bound, cursor: &Cursor) -> Result<Cas, StateError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(cursor_item(cursor)))
            .condition_expression("#state = :handed_back AND #bound = :expected")
            .expression_attribute_names("#state", attr::STATE)
            .expression_attribute_names("#bound", attr::BOUND)
            .expression_attribute_values(":handed_back", s(CursorState::HandedBack.as_str()))
            .expression_attribute_values(":expected", s(expected.as_str()))
            .send()
            .await
            .map(|_| ());
        self.cas("fall_behind", (&cursor.subscription, &cursor.shard), result)
            .await
    }

    async fn remove(
        &self,
        subscription: &SubscriptionId,
        shard: &str,
        expected: &Bound,
    ) -> Result<Cas, StateError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(subscription, shard)))
            .condition_expression("#state = :handed_back AND #bound = :expected")
            .expression_attribute_names("#state", attr::STATE)
            .expression_attribute_names("#bound", attr::BOUND)
            .expression_attribute_values(":handed_back", s(CursorState::HandedBack.as_str()))
            .expression_attribute_values(":expected", s(expected.as_str()))
            .send()
            .await
            .map(|_| ());
        self.cas("remove", (subscription, shard), result).await
    }

    async fn add_dead_letters(
        &self,
        subscription: &SubscriptionId,
        letters: &[DeadLetter],
    ) -> Result<(), StateError> {
        let requests = letters
            .iter()
            .map(|letter| {
                let put = PutRequest::builder()
                    .set_item(Some(dead_letter_item(subscription, letter)))
                    .build()
                    .expect("item is set");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        self.write_all("dead_letter", subscription, requests).await
    }

    async fn dead_letters(
        &self,
        subscription: &SubscriptionId,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StateError> {
        self.query(subscription, DEAD_LETTER_PREFIX, Some(limit))
            .await?
            .iter()
            .map(|item| {
                dead_letter_from(item).map_err(|e| StateError::new("read", subscription, e))
            })
            .collect()
    }

    async fn count_dead_letters(&self, subscription: &SubscriptionId) -> Result<u64, StateError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", attr::PK)
                .expression_attribute_names("#sk", attr::SK)
                .expression_attribute_values(":pk", s(subscription.as_str()))
                .expression_attribute_values(":prefix", s(DEAD_LETTER_PREFIX))
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StateError::new("count", subscription, message(&e)))?;
            count += u64::try_from(output.count).unwrap_or(0);
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(count);
            }
        }
    }

    async fn remove_dead_letters(
        &self,
        subscription: &SubscriptionId,
        positions: &[&Position],
    ) -> Result<(), StateError> {
        let keys = positions
            .iter()
            .map(|p| dead_letter_key(subscription, p))
            .collect();
        self.delete_keys("remove_dead_letters", subscription, keys)
            .await
    }

    async fn lease(
        &self,
        name: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(LEASES, name)))
            .update_expression("SET #owner = :owner, #until = :until")
            .condition_expression("attribute_not_exists(#pk) OR #until < :now OR #owner = :owner")
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_names("#owner", attr::OWNER)
            .expression_attribute_names("#until", attr::UNTIL)
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":until", n(until.millis()))
            .expression_attribute_values(":now", n(now.millis()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(StateError::new("lease", name, message(&e))),
        }
    }

    async fn release(&self, name: &str, owner: &str) -> Result<(), StateError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(LEASES, name)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", attr::OWNER)
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(StateError::new("release", name, message(&e))),
        }
    }

    async fn forget(&self, subscription: &SubscriptionId) -> Result<usize, StateError> {
        let keys: Vec<Item> = self
            .query(subscription, "", None)
            .await?
            .into_iter()
            .map(|item| {
                item.into_iter()
                    .filter(|(name, _)| name == attr::PK || name == attr::SK)
                    .collect::<HashMap<String, AttributeValue>>()
            })
            .collect();
        let count = keys.len();
        self.delete_keys("forget", subscription, keys).await?;
        Ok(count)
    }
}

/// Creates an on-demand table whose keys are the string attributes `keys`
/// (partition key, then the sort key if any): the local emulator's copy of
/// the tables `template.yaml` declares, for tests and local runs.
pub async fn create_table(
    client: &Client,
    name: &str,
    keys: &[&str],
) -> Result<(), aws_sdk_dynamodb::Error> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (index, key) in keys.iter().enumerate() {
        let key_type = if index == 0 {
            KeyType::Hash
        } else {
            KeyType::Range
        };
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("name and type are set"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(*key)
                    .key_type(key_type)
                    .build()
                    .expect("name and type are set"),
            );
    }
    request.send().await?;
    Ok(())
}
