//! A customer's stream subscription: where to deliver which events, with
//! which credentials. Pure: no AWS types, no cargo feature.
//!
//! Every value is checked by [`Subscription::validate`] (and the parsers it
//! relies on) with a [`SubscriptionError`] that names the field and the
//! value. The rules, and why, are in `docs/streams.md`.

//!
//! One concern per file: [`id`] (ids and transports), [`arn`] (Kinesis
//! stream ARNs), [`eventhubs_names`], [`destination`], [`credentials`],
//! [`filters`] (selections and their semantics), [`health`], [`error`];
//! this file holds the subscription itself and its status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::event::DeviceEvent;
use crate::time::Timestamp;

pub mod arn;
pub mod credentials;
pub mod destination;
pub mod error;
pub mod eventhubs_names;
pub mod filters;
pub mod health;
pub mod id;

pub use arn::{
    validate_role_arn, ArnError, KinesisStreamArn, MAX_ROLE_NAME_LEN, MAX_ROLE_PATH_LEN,
    MAX_STREAM_NAME_LEN, PARTITIONS,
};
pub use credentials::{required_external_id, validate_external_id, Credentials, EXTERNAL_ID_LEN};
pub use destination::Destination;
pub use error::SubscriptionError;
pub use eventhubs_names::{validate_hub, validate_namespace, MAX_HUB_LEN, NAMESPACE_LEN};
pub use filters::{Filters, Selection, MAX_FILTER_ITEM_LEN};
pub use health::{truncate_message, Health, LastError, MAX_ERROR_MESSAGE_LEN};
pub use id::{SubscriptionId, Transport};

/// Longest subscription name we accept (our limit: it is a label in tables).
pub const MAX_NAME_LEN: usize = 128;
/// Longest description we accept (our limit).
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// Whether the subscription delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Enabled,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = SubscriptionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "enabled" => Ok(Status::Enabled),
            "disabled" => Ok(Status::Disabled),
            _ => Err(SubscriptionError::UnknownStatus(text.to_owned())),
        }
    }
}

/// One customer stream subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub oem_id: String,
    pub name: String,
    pub description: String,
    pub destination: Destination,
    pub credentials: Credentials,
    pub filters: Filters,
    pub status: Status,
    pub health: Health,
    pub created_at: Timestamp,
    /// Kinesis only, opt-in: the record data carries `"event_id"` as its
    /// last field, so that a consumer can deduplicate (Kinesis records have
    /// no properties to carry it beside the data). Off by default: the data
    /// is then the vendor's payload byte for byte. Event Hubs messages
    /// always carry it as a user property instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub event_id_in_payload: bool,
}

impl Subscription {
    /// A new, enabled subscription with empty health, validated.
    pub fn new(
        id: SubscriptionId,
        spec: SubscriptionSpec,
        created_at: Timestamp,
    ) -> Result<Self, SubscriptionError> {
        let subscription = Self {
            id,
            oem_id: spec.oem_id,
            name: spec.name,
            description: spec.description,
            destination: spec.destination,
            credentials: spec.credentials,
            filters: spec.filters,
            status: Status::Enabled,
            health: Health::default(),
            created_at,
            event_id_in_payload: false,
        };
        subscription.validate()?;
        Ok(subscription)
    }

    pub fn transport(&self) -> Transport {
        self.destination.transport()
    }

    /// Whether `event` is delivered: the subscription is enabled, the event
    /// is of its OEM, and the filters match.
    pub fn accepts(&self, event: &DeviceEvent) -> bool {
        self.status == Status::Enabled
            && event.oem_id() == self.oem_id
            && self.filters.matches(event)
    }

    /// Checks every field: names, destination, credentials against the
    /// transport, filters.
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        validate_text("oem_id", &self.oem_id, MAX_FILTER_ITEM_LEN, true)?;
        validate_text("name", &self.name, MAX_NAME_LEN, true)?;
        validate_text("description", &self.description, MAX_DESCRIPTION_LEN, false)?;
        self.destination.validate()?;
        self.credentials.validate_for(self.transport())?;
        if self.event_id_in_payload && self.transport() != Transport::Kinesis {
            return Err(SubscriptionError::Invalid {
                field: "event_id_in_payload",
                value: "true".to_owned(),
                reason: "is for Kinesis only: Event Hubs messages carry event_id as a user \
                         property",
            });
        }
        self.filters.validate()
    }
}

/// What an operator gives to create a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionSpec {
    pub oem_id: String,
    pub name: String,
    pub description: String,
    pub destination: Destination,
    pub credentials: Credentials,
    pub filters: Filters,
}

fn validate_text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), SubscriptionError> {
    if required && value.trim().is_empty() {
        return Err(SubscriptionError::Empty { field });
    }
    let len = value.chars().count();
    if len > max {
        return Err(SubscriptionError::TooLong { field, len, max });
    }
    if value.chars().any(char::is_control) {
        return Err(SubscriptionError::Invalid {
            field,
            value: value.to_owned(),
            reason: "holds control characters",
        });
    }
    if field == "oem_id" && value.chars().any(char::is_whitespace) {
        return Err(SubscriptionError::Invalid {
            field,
            value: value.to_owned(),
            reason: "holds whitespace",
        });
    }
    Ok(())
}

/// Values shared by the tests of the subscription's files.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::event::{
        AckValue, Activation, Connection, Datapoint, DatapointAck, DatapointMetadata,
        DeviceMetadata, EventType, Location, PropertyMetadata, Registration,
    };
    use crate::BaseType;

    pub const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/ayla-events";
    pub const ROLE: &str = "arn:aws:iam::123456789012:role/dpl-stream-writer";

    pub fn kinesis() -> Destination {
        Destination::Kinesis {
            stream_arn: ARN.parse().unwrap(),
        }
    }

    pub fn spec() -> SubscriptionSpec {
        SubscriptionSpec {
            oem_id: "0dfc7900".to_owned(),
            name: "all events".to_owned(),
            description: String::new(),
            destination: kinesis(),
            credentials: Credentials::AssumeRole {
                role_arn: ROLE.to_owned(),
                external_id: Some("dpl-0dfc7900".to_owned()),
            },
            filters: Filters::all(),
        }
    }

    pub fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    pub fn subscription(filters: Filters) -> Subscription {
        let mut spec = spec();
        spec.filters = filters;
        Subscription::new(SubscriptionId::from_bits(1), spec, at(0)).unwrap()
    }

    pub fn names(items: &[&str]) -> Selection<String> {
        Selection::only(items.iter().map(|s| s.to_string()))
    }

    pub fn t0() -> Timestamp {
        at(1_600_000_000_000)
    }

    pub fn device(event_type: EventType, model: &str, dsn: &str) -> DeviceMetadata {
        DeviceMetadata {
            oem_id: "0dfc7900".to_owned(),
            oem_model: model.to_owned(),
            dsn: dsn.to_owned(),
            event_type,
        }
    }

    pub fn property(event_type: EventType, model: &str, dsn: &str, name: &str) -> PropertyMetadata {
        PropertyMetadata {
            oem_id: "0dfc7900".to_owned(),
            oem_model: model.to_owned(),
            dsn: dsn.to_owned(),
            property_name: name.to_owned(),
            display_name: name.to_owned(),
            base_type: BaseType::Integer,
            resource_tags: None,
            event_type,
        }
    }

    /// An event of `event_type` with the given model, DSN and property
    /// (ignored by device-level events).
    pub fn event(event_type: EventType, model: &str, dsn: &str, name: &str) -> DeviceEvent {
        let metadata = device(event_type, model, dsn);
        match event_type {
            EventType::Activation => DeviceEvent::Activation {
                metadata,
                activation: Activation {
                    id: "1".to_owned(),
                    device_type: "Wifi".to_owned(),
                    status: "activated".to_owned(),
                    event_time: t0(),
                },
            },
            EventType::Connectivity => DeviceEvent::Connectivity {
                metadata: metadata.clone(),
                timestamp: t0(),
                connection: Connection {
                    event_time: t0(),
                    user_uuid: None,
                    status: "Online".to_owned(),
                    metadata,
                },
            },
            EventType::Datapoint => DeviceEvent::Datapoint {
                metadata: property(event_type, model, dsn, name),
                datapoint: Datapoint {
                    id: "1".to_owned(),
                    updated_at: t0(),
                    created_at: t0(),
                    echo: false,
                    closed: false,
                    value: "1".to_owned(),
                    metadata: DatapointMetadata::default(),
                    user_uuid: None,
                    discarded: false,
                    scope: "user".to_owned(),
                    direction: "input".to_owned(),
                },
                timestamp: t0(),
            },
            EventType::DatapointAck => DeviceEvent::DatapointAck {
                metadata: property(event_type, model, dsn, name),
                datapointack: DatapointAck {
                    id: "1".to_owned(),
                    created_at_from_device: None,
                    updated_at: t0(),
                    created_at: t0(),
                    user_uuid: None,
                    echo: false,
                    closed: true,
                    value: AckValue::Number(1.into()),
                    ack_message: 0,
                    ack_status: 200,
                    ack_id: "a".to_owned(),
                    acked_at: t0(),
                    metadata: DatapointMetadata::default(),
                },
                timestamp: t0(),
            },
            EventType::Location => DeviceEvent::Location {
                metadata,
                location_event: Location {
                    user_uuid: None,
                    dsn: dsn.to_owned(),
                    ip: None,
                    lat: " 1.000000".to_owned(),
                    provider: "ip-based".to_owned(),
                    created_at: t0(),
                    long: " 1.000000".to_owned(),
                },
                timestamp: t0(),
            },
            EventType::Registration => DeviceEvent::Registration {
                metadata,
                registration_event: Registration {
                    dsn: dsn.to_owned(),
                    user_uuid: None,
                    registered: true,
                    registration_type: "Dsn".to_owned(),
                    registered_at: Some(t0()),
                    unregistered_at: None,
                },
                timestamp: t0(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::fixtures::*;
    use super::*;
    use crate::event::EventType;

    #[test]
    fn every_field_error_is_typed_and_names_the_field() {
        type Edit = fn(&mut SubscriptionSpec);
        let cases: &[(Edit, &str)] = &[
            (|s| s.oem_id = String::new(), "oem_id is empty"),
            (|s| s.oem_id = "0d fc".to_owned(), "oem_id `0d fc`"),
            (|s| s.name = "  ".to_owned(), "name is empty"),
            (
                |s| s.name = "n".repeat(129),
                "name is 129 characters long: at most 128",
            ),
            (|s| s.description = "d".repeat(1025), "description is 1025"),
            (|s| s.name = "a\nb".to_owned(), "control characters"),
            (
                |s| {
                    s.credentials = Credentials::AssumeRole {
                        role_arn: ROLE.to_owned(),
                        external_id: Some("x".to_owned()),
                    }
                },
                "external_id `x`",
            ),
            (
                |s| {
                    s.credentials = Credentials::AccessKeySecret {
                        secret_id: String::new(),
                    }
                },
                "secret_id is empty",
            ),
            (
                |s| {
                    s.destination = Destination::EventHubs {
                        namespace: "contoso-events".to_owned(),
                        hub: "-".to_owned(),
                    }
                },
                "hub `-`",
            ),
            (
                |s| s.filters.models = Selection::Only(BTreeSet::new()),
                "models is an empty list",
            ),
            (
                |s| s.filters.event_types = Selection::Only(BTreeSet::new()),
                "event_types is an empty list",
            ),
            (
                |s| s.filters.dsns = names(&["AC000W 1"]),
                "dsns item `AC000W 1`",
            ),
            (
                |s| {
                    s.filters.event_types = Selection::only([EventType::Connectivity]);
                    s.filters.properties = names(&["temp"]);
                },
                "properties can never match",
            ),
        ];
        for (edit, expected) in cases {
            let mut spec = spec();
            edit(&mut spec);
            let error = Subscription::new(SubscriptionId::from_bits(1), spec, at(0))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected),
                "expected {expected:?} in {error:?}"
            );
        }
    }

    #[test]
    fn accepts_needs_enabled_same_oem_and_matching_filters() {
        let event = event(EventType::Datapoint, "ledevb", "AC000W1", "temp");
        let mut subscription = subscription(Filters::all());
        subscription.oem_id = event.oem_id().to_owned();
        assert!(subscription.accepts(&event));
        subscription.status = Status::Disabled;
        assert!(!subscription.accepts(&event));
        subscription.status = Status::Enabled;
        subscription.oem_id = "another".to_owned();
        assert!(!subscription.accepts(&event));
        subscription.oem_id = event.oem_id().to_owned();
        subscription.filters.dsns = names(&["nobody"]);
        assert!(!subscription.accepts(&event));
    }

    #[test]
    fn subscriptions_round_trip_through_json() {
        let mut subscription = subscription(Filters {
            event_types: Selection::only([EventType::Datapoint]),
            properties: names(&["temp"]),
            ..Filters::all()
        });
        subscription.health = Health {
            last_success: Some(at(1_000)),
            last_error: Some(LastError {
                at: at(2_000),
                message: "throttled".to_owned(),
            }),
        };
        let json = serde_json::to_value(&subscription).unwrap();
        assert_eq!(json["destination"]["transport"], "kinesis");
        assert_eq!(json["destination"]["stream_arn"], ARN);
        assert_eq!(json["credentials"]["type"], "assume_role");
        assert_eq!(
            serde_json::from_value::<Subscription>(json).unwrap(),
            subscription
        );
    }
}
