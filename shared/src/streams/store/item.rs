//! The DynamoDB item of a subscription, both ways (pure): [`to_item`] and
//! [`from_item`], which validates and names the item in every error.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use super::SubscriptionStoreError;
use crate::event::EventType;
use crate::streams::subscription::{
    Credentials, Destination, Filters, Health, LastError, Selection, Subscription, SubscriptionId,
    Transport,
};
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
    pub const EVENT_ID_IN_PAYLOAD: &str = "event_id_in_payload";
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
}

type Item = HashMap<String, AttributeValue>;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn selection_value<T: ToString>(selection: &Selection<T>) -> AttributeValue {
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
    if subscription.event_id_in_payload {
        put(attr::EVENT_ID_IN_PAYLOAD, AttributeValue::Bool(true));
    }
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
    item
}

/// Reads attributes of one item, naming the item in errors.
pub(super) struct Reader<'a> {
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
        },
        created_at: r
            .opt_time(attr::CREATED_AT)?
            .ok_or_else(|| r.error("created_at is missing"))?,
        event_id_in_payload: match item.get(attr::EVENT_ID_IN_PAYLOAD) {
            None => false,
            Some(AttributeValue::Bool(on)) => *on,
            Some(_) => return Err(r.error("event_id_in_payload is not a BOOL")),
        },
    };
    subscription.validate().map_err(|e| r.error(e))?;
    Ok(subscription)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, event_hubs, kinesis};
    use super::*;
    use crate::streams::subscription::Status;

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
        assert!(!item.contains_key("parked"), "health holds no counters");
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
}
