//! [`SubscriptionStore`] on a DynamoDB table (partition key `id`, S).

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{attr, from_item, n, s, selection_value, to_item};
use super::{sort, Listing, SubscriptionStore, SubscriptionStoreError};
use crate::streams::subscription::{truncate_message, Status, Subscription, SubscriptionId};
use crate::time::Timestamp;

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
    async fn list(&self, oem_id: Option<&str>) -> Result<Listing, SubscriptionStoreError> {
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
        let mut listing = Listing::default();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service("list", oem_id.unwrap_or("*"), e))?;
            for item in page.items() {
                match from_item(item) {
                    Ok(subscription) => listing.subscriptions.push(subscription),
                    Err(error) => listing.corrupt.push(error),
                }
            }
        }
        sort(&mut listing.subscriptions);
        Ok(listing)
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

    async fn update_details(
        &self,
        subscription: &Subscription,
    ) -> Result<(), SubscriptionStoreError> {
        let id = &subscription.id;
        let filters = &subscription.filters;
        let mut update = "SET #name = :name, #et = :et, #models = :models, #props = :props, \
                          #dsns = :dsns"
            .to_owned();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::ID, s(id.as_str()))
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#name", attr::NAME)
            .expression_attribute_names("#et", attr::EVENT_TYPES)
            .expression_attribute_names("#models", attr::MODELS)
            .expression_attribute_names("#props", attr::PROPERTIES)
            .expression_attribute_names("#dsns", attr::DSNS)
            .expression_attribute_names("#desc", attr::DESCRIPTION)
            .expression_attribute_values(":name", s(&subscription.name))
            .expression_attribute_values(":et", selection_value(&filters.event_types))
            .expression_attribute_values(":models", selection_value(&filters.models))
            .expression_attribute_values(":props", selection_value(&filters.properties))
            .expression_attribute_values(":dsns", selection_value(&filters.dsns));
        // The item has no description attribute when it is empty (`to_item`).
        if subscription.description.is_empty() {
            update.push_str(" REMOVE #desc");
        } else {
            update.push_str(", #desc = :desc");
            request = request.expression_attribute_values(":desc", s(&subscription.description));
        }
        match request.update_expression(update).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                Err(SubscriptionStoreError::NotFound(id.clone()))
            }
            Err(e) => Err(service("update_details", id.as_str(), e)),
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
}
