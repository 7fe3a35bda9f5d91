//! The six device event types, shaped exactly as the vendor's tech note prints
//! them (field names, field order, value types, `null`s).
//!
//! Bodies (`datapoint`, `connection`, ...) derive serde: their field order is
//! their declaration order. The top level of each event differs per type in
//! where `timestamp` sits, and has two renderings (DPL text timestamp or
//! customer epoch milliseconds), so it is written by hand in [`crate::record`].

use std::fmt;
use std::str::FromStr;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::Timestamp;

/// The six event types, spelled as `metadata.event_type` spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Activation,
    Connectivity,
    Datapoint,
    #[serde(rename = "datapointack")]
    DatapointAck,
    Location,
    Registration,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Activation,
        EventType::Connectivity,
        EventType::Datapoint,
        EventType::DatapointAck,
        EventType::Location,
        EventType::Registration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Activation => "activation",
            EventType::Connectivity => "connectivity",
            EventType::Datapoint => "datapoint",
            EventType::DatapointAck => "datapointack",
            EventType::Location => "location",
            EventType::Registration => "registration",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an event type (activation, connectivity, datapoint, datapointack, location, registration)")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| UnknownEventType(text.to_owned()))
    }
}

/// A property's base type, as the vendor names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseType {
    Boolean,
    Integer,
    Decimal,
    Float,
    String,
    Message,
    File,
}

impl BaseType {
    pub const ALL: [BaseType; 7] = [
        BaseType::Boolean,
        BaseType::Integer,
        BaseType::Decimal,
        BaseType::Float,
        BaseType::String,
        BaseType::Message,
        BaseType::File,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BaseType::Boolean => "boolean",
            BaseType::Integer => "integer",
            BaseType::Decimal => "decimal",
            BaseType::Float => "float",
            BaseType::String => "string",
            BaseType::Message => "message",
            BaseType::File => "file",
        }
    }

    /// Whether values of this type are free text. Free-text values are
    /// base64-encoded in CSV cells (the seed's `log` property of base type
    /// `string` shows `CMD_1` as `Q01EXzE=`) and travel as JSON strings in
    /// datapointack events; the others are numbers there.
    pub fn is_text(self) -> bool {
        matches!(self, BaseType::String | BaseType::Message | BaseType::File)
    }
}

impl fmt::Display for BaseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a base type (boolean, integer, decimal, float, string, message, file)")]
pub struct UnknownBaseType(pub String);

impl FromStr for BaseType {
    type Err = UnknownBaseType;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        BaseType::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| UnknownBaseType(text.to_owned()))
    }
}

/// `metadata` of the device-level events (activation, connectivity,
/// location, registration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceMetadata {
    pub oem_id: String,
    pub oem_model: String,
    pub dsn: String,
    pub event_type: EventType,
}

/// `metadata` of the property-level events (datapoint, datapointack).
/// `resource_tags` appears in datapointack events only, as in the seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyMetadata {
    pub oem_id: String,
    pub oem_model: String,
    pub dsn: String,
    pub property_name: String,
    pub display_name: String,
    pub base_type: BaseType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tags: Option<Vec<String>>,
    pub event_type: EventType,
}

/// A datapoint's `metadata`: string keys to string values, kept in the order
/// they were written (JSON object order is part of the byte-exact contract).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatapointMetadata(pub Vec<(String, String)>);

impl Serialize for DatapointMetadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for DatapointMetadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = DatapointMetadata;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(DatapointMetadata(pairs))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

/// The `activation` body. The seed prints a placeholder `event_time`
/// (`0000-00-0T00:00:00Z`); we write the real activation time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activation {
    pub id: String,
    pub device_type: String,
    pub status: String,
    pub event_time: Timestamp,
}

/// The `connection` body of a connectivity event. Its `metadata` repeats the
/// event's metadata, as the seed shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub event_time: Timestamp,
    pub user_uuid: Option<String>,
    pub status: String,
    pub metadata: DeviceMetadata,
}

/// The `datapoint` body. `value` is always a JSON string, whatever the base type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Datapoint {
    pub id: String,
    pub updated_at: Timestamp,
    pub created_at: Timestamp,
    pub echo: bool,
    pub closed: bool,
    pub value: String,
    pub metadata: DatapointMetadata,
    pub user_uuid: Option<String>,
    pub discarded: bool,
    pub scope: String,
    pub direction: String,
}

/// A datapointack's `value`: a JSON number for numeric and boolean
/// properties (the seed's boolean ack carries `1`), a string for free text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AckValue {
    Number(serde_json::Number),
    Text(String),
}

impl fmt::Display for AckValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckValue::Number(n) => n.fmt(f),
            AckValue::Text(t) => f.write_str(t),
        }
    }
}

/// The `datapointack` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatapointAck {
    pub id: String,
    pub created_at_from_device: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub created_at: Timestamp,
    pub user_uuid: Option<String>,
    pub echo: bool,
    pub closed: bool,
    pub value: AckValue,
    pub ack_message: i64,
    pub ack_status: i64,
    pub ack_id: String,
    pub acked_at: Timestamp,
    pub metadata: DatapointMetadata,
}

/// The `location_event` body. `lat` and `long` are the vendor's fixed-point
/// text, leading space for a positive value included (`" 44.787100"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub user_uuid: Option<String>,
    pub dsn: String,
    pub ip: Option<String>,
    pub lat: String,
    pub provider: String,
    pub created_at: Timestamp,
    pub long: String,
}

/// The `registration_event` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub dsn: String,
    pub user_uuid: Option<String>,
    pub registered: bool,
    pub registration_type: String,
    pub registered_at: Option<Timestamp>,
    pub unregistered_at: Option<Timestamp>,
}

/// One device event: the object inside `{"dpl_event": ...}`.
///
/// `timestamp` is when the platform recorded the change (the DynamoDB stream
/// record's `ApproximateCreationDateTime`); activation events carry no
/// top-level timestamp in the vendor's format, their time is
/// `activation.event_time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    Activation {
        metadata: DeviceMetadata,
        activation: Activation,
    },
    Connectivity {
        metadata: DeviceMetadata,
        timestamp: Timestamp,
        connection: Connection,
    },
    Datapoint {
        metadata: PropertyMetadata,
        datapoint: Datapoint,
        timestamp: Timestamp,
    },
    DatapointAck {
        metadata: PropertyMetadata,
        datapointack: DatapointAck,
        timestamp: Timestamp,
    },
    Location {
        metadata: DeviceMetadata,
        location_event: Location,
        timestamp: Timestamp,
    },
    Registration {
        metadata: DeviceMetadata,
        registration_event: Registration,
        timestamp: Timestamp,
    },
}

/// The fields every event's metadata has, whatever its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventKey<'a> {
    pub oem_id: &'a str,
    pub oem_model: &'a str,
    pub dsn: &'a str,
    pub event_type: EventType,
    /// The property of a datapoint or datapointack event.
    pub property_name: Option<&'a str>,
}

impl DeviceEvent {
    pub fn event_type(&self) -> EventType {
        match self {
            DeviceEvent::Activation { .. } => EventType::Activation,
            DeviceEvent::Connectivity { .. } => EventType::Connectivity,
            DeviceEvent::Datapoint { .. } => EventType::Datapoint,
            DeviceEvent::DatapointAck { .. } => EventType::DatapointAck,
            DeviceEvent::Location { .. } => EventType::Location,
            DeviceEvent::Registration { .. } => EventType::Registration,
        }
    }

    /// Identifying metadata: OEM, model, DSN, type and property.
    pub fn key(&self) -> EventKey<'_> {
        let event_type = self.event_type();
        match self {
            DeviceEvent::Activation { metadata, .. }
            | DeviceEvent::Connectivity { metadata, .. }
            | DeviceEvent::Location { metadata, .. }
            | DeviceEvent::Registration { metadata, .. } => EventKey {
                oem_id: &metadata.oem_id,
                oem_model: &metadata.oem_model,
                dsn: &metadata.dsn,
                event_type,
                property_name: None,
            },
            DeviceEvent::Datapoint { metadata, .. }
            | DeviceEvent::DatapointAck { metadata, .. } => EventKey {
                oem_id: &metadata.oem_id,
                oem_model: &metadata.oem_model,
                dsn: &metadata.dsn,
                event_type,
                property_name: Some(&metadata.property_name),
            },
        }
    }

    pub fn dsn(&self) -> &str {
        self.key().dsn
    }

    pub fn oem_id(&self) -> &str {
        self.key().oem_id
    }

    /// When the event happened ([`event_time`]). Orders rows in exports and
    /// picks their hour.
    pub fn time(&self) -> Timestamp {
        let (activation_time, timestamp) = match self {
            DeviceEvent::Activation { activation, .. } => (Some(activation.event_time), None),
            DeviceEvent::Connectivity { timestamp, .. }
            | DeviceEvent::Datapoint { timestamp, .. }
            | DeviceEvent::DatapointAck { timestamp, .. }
            | DeviceEvent::Location { timestamp, .. }
            | DeviceEvent::Registration { timestamp, .. } => (None, Some(*timestamp)),
        };
        event_time(activation_time, timestamp).expect("every event has one of the two")
    }
}

/// The rule for an event's time, in one place: an activation's
/// `event_time` (activations have no top-level `timestamp`), else the
/// top-level `timestamp`. [`DeviceEvent::time`] applies it to an event, and
/// a staging line's sort key to the two fields read without decoding the
/// event (`export::staging::RawRow`); `None` when neither is there.
pub fn event_time(
    activation_time: Option<Timestamp>,
    timestamp: Option<Timestamp>,
) -> Option<Timestamp> {
    activation_time.or(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_spell_as_the_seed() {
        for t in EventType::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
        }
        assert!("connection".parse::<EventType>().is_err());
    }

    #[test]
    fn base_types_round_trip_and_unknown_ones_are_named() {
        for t in BaseType::ALL {
            assert_eq!(t.as_str().parse::<BaseType>().unwrap(), t);
        }
        let err = "blob".parse::<BaseType>().unwrap_err();
        assert!(err.to_string().contains("`blob`"));
    }

    #[test]
    fn datapoint_metadata_keeps_key_order() {
        let json = r#"{"z":"1","a":"2"}"#;
        let m: DatapointMetadata = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), json);
    }
}
