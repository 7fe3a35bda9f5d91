//! [`ParkingLot`] on a DynamoDB table.
//!
//! Item schema (table `ParkedEventsTable` of `template.yaml`):
//!
//! | attribute         | type | what                                         |
//! |-------------------|------|----------------------------------------------|
//! | `subscription_id` | S    | partition key                                |
//! | `position`        | S    | sort key: `{shard id}#{sequence, 129 digits}`|
//! | `event_id`        | S    | the event's id                               |
//! | `event_type`      | S    | `datapoint`, ...                             |
//! | `dsn`             | S    | the partition key on the customer stream     |
//! | `payload`         | B    | the customer payload, as it is sent          |
//!
//! A query on the partition key in sort-key order reads a subscription's
//! events in stream order. Reads are strongly consistent, so an event
//! parked a moment ago is seen by the next batch and by a redrive.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::delivery::{Delivery, Position};
use super::parking::{ParkingError, ParkingLot};
use super::subscription::SubscriptionId;

/// At most 25 put or delete requests per `BatchWriteItem` call.
///
/// DynamoDB API Reference, `BatchWriteItem`: "A single call to
/// BatchWriteItem can transmit up to 16MB of data over the network,
/// consisting of up to 25 item put or delete operations."
pub const MAX_WRITES_PER_BATCH: usize = 25;

/// Rounds of resending `UnprocessedItems` before a write is reported as
/// failed (the caller then retries the whole DPL batch).
const MAX_UNPROCESSED_ROUNDS: u32 = 8;

/// First wait before resending unprocessed items; doubled each round.
const UNPROCESSED_BACKOFF: Duration = Duration::from_millis(50);

const SUBSCRIPTION_ID: &str = "subscription_id";
const POSITION: &str = "position";
const EVENT_ID: &str = "event_id";
const EVENT_TYPE: &str = "event_type";
const DSN: &str = "dsn";
const PAYLOAD: &str = "payload";

#[derive(Clone, Debug)]
pub struct DynamoParking {
    client: Client,
    table: String,
}

impl DynamoParking {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Sends `requests` in calls of at most [`MAX_WRITES_PER_BATCH`],
    /// resending what DynamoDB leaves unprocessed.
    async fn write_all(
        &self,
        operation: &'static str,
        id: &SubscriptionId,
        requests: Vec<WriteRequest>,
    ) -> Result<(), ParkingError> {
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
                    .map_err(|e| ParkingError::new(operation, id, sdk_message(&e)))?;
                pending = output
                    .unprocessed_items
                    .and_then(|mut items| items.remove(&self.table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                if round == MAX_UNPROCESSED_ROUNDS {
                    return Err(ParkingError::new(
                        operation,
                        id,
                        format!("{} items stayed unprocessed", pending.len()),
                    ));
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Ok(())
    }
}

impl DynamoParking {
    /// A strongly consistent query of `id`'s parked events, in order.
    fn query(&self, id: &SubscriptionId) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#id = :id")
            .expression_attribute_names("#id", SUBSCRIPTION_ID)
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
    }
}

fn sdk_message<E: std::error::Error + 'static>(error: &E) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string()
}

fn item(id: &SubscriptionId, delivery: &Delivery) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            SUBSCRIPTION_ID.to_owned(),
            AttributeValue::S(id.to_string()),
        ),
        (
            POSITION.to_owned(),
            AttributeValue::S(delivery.position.to_string()),
        ),
        (
            EVENT_ID.to_owned(),
            AttributeValue::S(delivery.event_id.to_string()),
        ),
        (
            EVENT_TYPE.to_owned(),
            AttributeValue::S(delivery.event_type.to_string()),
        ),
        (DSN.to_owned(), AttributeValue::S(delivery.dsn.clone())),
        (
            PAYLOAD.to_owned(),
            AttributeValue::B(Blob::new(delivery.payload.clone())),
        ),
    ])
}

fn key(id: &SubscriptionId, position: &Position) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            SUBSCRIPTION_ID.to_owned(),
            AttributeValue::S(id.to_string()),
        ),
        (POSITION.to_owned(), AttributeValue::S(position.to_string())),
    ])
}

/// A parked item read back; `None` names the attribute that is wrong.
fn delivery(item: &HashMap<String, AttributeValue>) -> Result<Delivery, String> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| format!("parked item without a string `{name}`"))
    };
    let bad = |name: &str, error: &dyn std::fmt::Display| format!("parked item `{name}`: {error}");
    Ok(Delivery {
        position: Position::parse(text(POSITION)?).map_err(|e| bad(POSITION, &e))?,
        event_id: text(EVENT_ID)?.parse().map_err(|e| bad(EVENT_ID, &e))?,
        event_type: text(EVENT_TYPE)?.parse().map_err(|e| bad(EVENT_TYPE, &e))?,
        dsn: text(DSN)?.clone(),
        payload: item
            .get(PAYLOAD)
            .and_then(|v| v.as_b().ok())
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| format!("parked item without a binary `{PAYLOAD}`"))?,
    })
}

impl ParkingLot for DynamoParking {
    async fn park(
        &self,
        id: &SubscriptionId,
        deliveries: &[&Delivery],
    ) -> Result<(), ParkingError> {
        let requests = deliveries
            .iter()
            .map(|d| {
                let put = PutRequest::builder()
                    .set_item(Some(item(id, d)))
                    .build()
                    .expect("item is set");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        self.write_all("put", id, requests).await
    }

    async fn has_parked(&self, id: &SubscriptionId) -> Result<bool, ParkingError> {
        let output = self
            .query(id)
            .limit(1)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .map_err(|e| ParkingError::new("query", id, sdk_message(&e)))?;
        Ok(output.count() > 0)
    }

    async fn oldest(
        &self,
        id: &SubscriptionId,
        limit: usize,
    ) -> Result<Vec<Delivery>, ParkingError> {
        let mut found = Vec::new();
        let mut start = None;
        while found.len() < limit {
            let want = i32::try_from(limit - found.len()).unwrap_or(i32::MAX);
            let output = self
                .query(id)
                .scan_index_forward(true)
                .limit(want)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| ParkingError::new("query", id, sdk_message(&e)))?;
            for item in output.items() {
                found.push(delivery(item).map_err(|e| ParkingError::new("read", id, e))?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(found)
    }

    async fn remove(
        &self,
        id: &SubscriptionId,
        positions: &[&Position],
    ) -> Result<(), ParkingError> {
        let requests = positions
            .iter()
            .map(|p| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key(id, p)))
                    .build()
                    .expect("key is set");
                WriteRequest::builder().delete_request(delete).build()
            })
            .collect();
        self.write_all("delete", id, requests).await
    }
}

/// Key attributes of the parked events table.
pub const PARKED_TABLE_KEYS: [&str; 2] = [SUBSCRIPTION_ID, POSITION];

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
    for (n, key) in keys.iter().enumerate() {
        let key_type = if n == 0 {
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
