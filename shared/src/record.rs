//! The two JSON renderings of a [`DeviceEvent`]:
//!
//! - the internal DPL record, `{"dpl_event": {...}, "event_id": "..."}`, on
//!   the DPL stream and in staging: the seed's record shape plus a stable
//!   event id for deduplication;
//! - the customer payload, the data of a customer's Kinesis record or the
//!   body of an Event Hubs message: the inner object without the wrapper and
//!   with `timestamp` as a number of epoch milliseconds (the seed's decoded
//!   Kinesis example; the vendor printed a lossy float, `1.59886711E12`, we
//!   write the exact integer).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::event::{
    Activation, BaseType, Connection, Datapoint, DatapointAck, DeviceEvent, DeviceMetadata,
    EventType, Location, PropertyMetadata, Registration,
};
use crate::time::Timestamp;

/// Namespace of the name-based (v5) UUIDs that identify events. Fixed
/// forever: changing it would change every event id and defeat dedup.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c2e_9d4b_4f0a_8e57_2b1d_c0de_e7e5);

/// A stable identifier of one event. Derived from the DynamoDB stream
/// record's `eventID` and the event type (a record yields at most one event
/// of each type), so a retried or re-read record yields the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(Uuid);

impl EventId {
    pub fn derive(stream_event_id: &str, event_type: EventType) -> Self {
        let mut name = Vec::with_capacity(stream_event_id.len() + 16);
        name.extend_from_slice(stream_event_id.as_bytes());
        name.push(b'/');
        name.extend_from_slice(event_type.as_str().as_bytes());
        EventId(Uuid::new_v5(&EVENT_ID_NAMESPACE, &name))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for EventId {
    type Err = uuid::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(text).map(EventId)
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A record of the internal DPL stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DplRecord {
    pub dpl_event: DeviceEvent,
    pub event_id: EventId,
}

impl DplRecord {
    /// One line of compact JSON, as written to the DPL stream.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(768);
        self.write_json(&mut out);
        out
    }

    /// Appends the compact JSON to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("a DPL record always serializes");
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Partition key on the DPL stream and on customer streams: the DSN.
    pub fn partition_key(&self) -> &str {
        self.dpl_event.dsn()
    }
}

/// How the top-level `timestamp` is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimeStyle {
    /// `"2020-08-28T09:45:36.000+0000"`
    DplText,
    /// `1598607936000`
    EpochMillis,
}

/// The customer rendering of an event; see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct CustomerPayload<'a>(pub &'a DeviceEvent);

impl CustomerPayload<'_> {
    /// Compact JSON bytes: the Kinesis record data or Event Hubs body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a customer payload always serializes")
    }
}

impl Serialize for CustomerPayload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_event(self.0, TimeStyle::EpochMillis, serializer)
    }
}

impl DeviceEvent {
    /// Reads a customer payload back (tests, replay tools). Accepts the
    /// vendor's float spelling of `timestamp` as well as our integer.
    pub fn from_customer_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let event = de.deserialize_map(EventVisitor(TimeStyle::EpochMillis))?;
        de.end()?;
        Ok(event)
    }
}

impl Serialize for DeviceEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_event(self, TimeStyle::DplText, serializer)
    }
}

impl<'de> Deserialize<'de> for DeviceEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor(TimeStyle::DplText))
    }
}

struct StyledTime(Timestamp, TimeStyle);

impl Serialize for StyledTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.1 {
            TimeStyle::DplText => serializer.collect_str(&self.0.dpl()),
            TimeStyle::EpochMillis => serializer.serialize_i64(self.0.millis()),
        }
    }
}

/// Top-level field order per type, exactly as the seed prints each record.
fn serialize_event<S: Serializer>(
    event: &DeviceEvent,
    style: TimeStyle,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let at = |t: &Timestamp| StyledTime(*t, style);
    match event {
        DeviceEvent::Activation {
            metadata,
            activation,
        } => {
            let mut map = serializer.serialize_map(Some(2))?;
            map.serialize_entry("metadata", metadata)?;
            map.serialize_entry("activation", activation)?;
            map.end()
        }
        DeviceEvent::Connectivity {
            metadata,
            timestamp,
            connection,
        } => {
            let mut map = serializer.serialize_map(Some(3))?;
            map.serialize_entry("metadata", metadata)?;
            map.serialize_entry("timestamp", &at(timestamp))?;
            map.serialize_entry("connection", connection)?;
            map.end()
        }
        DeviceEvent::Datapoint {
            metadata,
            datapoint,
            timestamp,
        } => body_then_time(serializer, metadata, "datapoint", datapoint, at(timestamp)),
        DeviceEvent::DatapointAck {
            metadata,
            datapointack,
            timestamp,
        } => body_then_time(
            serializer,
            metadata,
            "datapointack",
            datapointack,
            at(timestamp),
        ),
        DeviceEvent::Location {
            metadata,
            location_event,
            timestamp,
        } => body_then_time(
            serializer,
            metadata,
            "location_event",
            location_event,
            at(timestamp),
        ),
        DeviceEvent::Registration {
            metadata,
            registration_event,
            timestamp,
        } => body_then_time(
            serializer,
            metadata,
            "registration_event",
            registration_event,
            at(timestamp),
        ),
    }
}

fn body_then_time<S: Serializer>(
    serializer: S,
    metadata: &impl Serialize,
    body_name: &'static str,
    body: &impl Serialize,
    timestamp: StyledTime,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(3))?;
    map.serialize_entry("metadata", metadata)?;
    map.serialize_entry(body_name, body)?;
    map.serialize_entry("timestamp", &timestamp)?;
    map.end()
}

/// `metadata` as read, before we know which level of event it belongs to.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnyMetadata {
    oem_id: String,
    oem_model: String,
    dsn: String,
    #[serde(default)]
    property_name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    base_type: Option<BaseType>,
    #[serde(default)]
    resource_tags: Option<Vec<String>>,
    event_type: EventType,
}

impl AnyMetadata {
    fn device<E: de::Error>(self) -> Result<DeviceMetadata, E> {
        if let Some(field) = [
            self.property_name.as_ref().map(|_| "property_name"),
            self.display_name.as_ref().map(|_| "display_name"),
            self.base_type.as_ref().map(|_| "base_type"),
            self.resource_tags.as_ref().map(|_| "resource_tags"),
        ]
        .into_iter()
        .flatten()
        .next()
        {
            return Err(E::custom(format_args!(
                "metadata.{field} is not a field of a {} event",
                self.event_type
            )));
        }
        Ok(DeviceMetadata {
            oem_id: self.oem_id,
            oem_model: self.oem_model,
            dsn: self.dsn,
            event_type: self.event_type,
        })
    }

    fn property<E: de::Error>(self) -> Result<PropertyMetadata, E> {
        let missing = |name| E::custom(format_args!("missing field `metadata.{name}`"));
        Ok(PropertyMetadata {
            oem_id: self.oem_id,
            oem_model: self.oem_model,
            dsn: self.dsn,
            property_name: self.property_name.ok_or_else(|| missing("property_name"))?,
            display_name: self.display_name.ok_or_else(|| missing("display_name"))?,
            base_type: self.base_type.ok_or_else(|| missing("base_type"))?,
            resource_tags: self.resource_tags,
            event_type: self.event_type,
        })
    }
}

enum Body {
    Activation(Activation),
    Connection(Connection),
    Datapoint(Datapoint),
    DatapointAck(DatapointAck),
    Location(Location),
    Registration(Registration),
}

impl Body {
    fn event_type(&self) -> EventType {
        match self {
            Body::Activation(_) => EventType::Activation,
            Body::Connection(_) => EventType::Connectivity,
            Body::Datapoint(_) => EventType::Datapoint,
            Body::DatapointAck(_) => EventType::DatapointAck,
            Body::Location(_) => EventType::Location,
            Body::Registration(_) => EventType::Registration,
        }
    }
}

/// A top-level `timestamp` in customer form: an integer, or the vendor's float.
struct EpochMillis(i64);

impl<'de> Deserialize<'de> for EpochMillis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        number
            .as_i64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .map(EpochMillis)
            .ok_or_else(|| {
                de::Error::custom(format_args!(
                    "timestamp {number} is not whole epoch milliseconds"
                ))
            })
    }
}

struct EventVisitor(TimeStyle);

impl<'de> Visitor<'de> for EventVisitor {
    type Value = DeviceEvent;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a device event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DeviceEvent, A::Error> {
        let mut metadata: Option<AnyMetadata> = None;
        let mut timestamp: Option<Timestamp> = None;
        let mut body: Option<Body> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let new_body = match key.as_ref() {
                "metadata" => {
                    metadata = Some(map.next_value()?);
                    continue;
                }
                "timestamp" => {
                    timestamp = Some(match self.0 {
                        TimeStyle::DplText => map.next_value()?,
                        TimeStyle::EpochMillis => {
                            let EpochMillis(ms) = map.next_value()?;
                            Timestamp::from_millis(ms).map_err(de::Error::custom)?
                        }
                    });
                    continue;
                }
                "activation" => Body::Activation(map.next_value()?),
                "connection" => Body::Connection(map.next_value()?),
                "datapoint" => Body::Datapoint(map.next_value()?),
                "datapointack" => Body::DatapointAck(map.next_value()?),
                "location_event" => Body::Location(map.next_value()?),
                "registration_event" => Body::Registration(map.next_value()?),
                other => return Err(de::Error::unknown_field(other, TOP_LEVEL_FIELDS)),
            };
            if body.replace(new_body).is_some() {
                return Err(de::Error::custom("an event has exactly one body"));
            }
        }
        let metadata = metadata.ok_or_else(|| de::Error::missing_field("metadata"))?;
        let body = body.ok_or_else(|| {
            de::Error::custom("missing the event body (datapoint, connection, ...)")
        })?;
        assemble(metadata, timestamp, body)
    }
}

const TOP_LEVEL_FIELDS: &[&str] = &[
    "metadata",
    "timestamp",
    "activation",
    "connection",
    "datapoint",
    "datapointack",
    "location_event",
    "registration_event",
];

fn assemble<E: de::Error>(
    metadata: AnyMetadata,
    timestamp: Option<Timestamp>,
    body: Body,
) -> Result<DeviceEvent, E> {
    if metadata.event_type != body.event_type() {
        return Err(E::custom(format_args!(
            "metadata.event_type is `{}` but the body is a {} event",
            metadata.event_type,
            body.event_type()
        )));
    }
    if let Body::Activation(activation) = body {
        if timestamp.is_some() {
            return Err(E::custom("an activation event has no top-level timestamp"));
        }
        let metadata = metadata.device()?;
        return Ok(DeviceEvent::Activation {
            metadata,
            activation,
        });
    }
    let timestamp = timestamp.ok_or_else(|| E::missing_field("timestamp"))?;
    Ok(match body {
        Body::Activation(_) => unreachable!("handled above"),
        Body::Connection(connection) => DeviceEvent::Connectivity {
            metadata: metadata.device()?,
            timestamp,
            connection,
        },
        Body::Datapoint(datapoint) => DeviceEvent::Datapoint {
            metadata: metadata.property()?,
            datapoint,
            timestamp,
        },
        Body::DatapointAck(datapointack) => DeviceEvent::DatapointAck {
            metadata: metadata.property()?,
            datapointack,
            timestamp,
        },
        Body::Location(location_event) => DeviceEvent::Location {
            metadata: metadata.device()?,
            location_event,
            timestamp,
        },
        Body::Registration(registration_event) => DeviceEvent::Registration {
            metadata: metadata.device()?,
            registration_event,
            timestamp,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_is_stable_and_distinct_per_type() {
        let a = EventId::derive("c81e728d9d4c2f636f067f89cc14862c", EventType::Datapoint);
        let b = EventId::derive("c81e728d9d4c2f636f067f89cc14862c", EventType::Datapoint);
        let c = EventId::derive("c81e728d9d4c2f636f067f89cc14862c", EventType::DatapointAck);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string().parse::<EventId>().unwrap(), a);
        // Pinned: a different id for the same record would break dedup of
        // events written before and after an upgrade.
        assert_eq!(a.to_string(), "93df5c50-fac3-564d-91aa-8e7298db3c40");
    }
}
