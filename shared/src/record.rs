//! The two JSON renderings of a [`DeviceEvent`]:
//!
//! - the internal DPL record, `{"dpl_event": {...}, "event_id": "...",
//!   "stream_order": {...}}`, on the DPL stream and in staging: the seed's
//!   record shape plus a stable event id for deduplication and the event's
//!   place in the twin table's stream, which orders a device's events within
//!   one second;
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
    /// Where the event was made in the twin table's stream. Absent only in
    /// records staged before it existed; those sort before the others of
    /// their second, by event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_order: Option<StreamOrder>,
}

/// Most digits of a DynamoDB Streams sequence number: 40 (DynamoDB Streams
/// API Reference, `StreamRecord.SequenceNumber`: "Length Constraints:
/// Minimum length of 21. Maximum length of 40.").
pub const MAX_STREAM_SEQUENCE_DIGITS: usize = 40;

/// Digits held by [`StreamSequence`]'s low half: 10^38 - 1 fits a `u128`.
const LOW_DIGITS: usize = 38;

/// A DynamoDB Streams sequence number, as the number it is: up to 40
/// decimal digits, kept as the digits above and below 10^38 so that it is
/// `Copy` and compares as the number does.
///
/// "Each stream record is assigned a sequence number, reflecting the order
/// in which the record was published to the stream" (DynamoDB Developer
/// Guide, "Change data capture for DynamoDB Streams"), and a table item's
/// records are on one shard at a time, in the order of its modifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamSequence {
    high: u8,
    low: u128,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a DynamoDB stream sequence number (1 to 40 decimal digits)")]
pub struct BadStreamSequence(pub String);

impl FromStr for StreamSequence {
    type Err = BadStreamSequence;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.len();
        if digits == 0
            || digits > MAX_STREAM_SEQUENCE_DIGITS
            || !text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(BadStreamSequence(crate::twin::excerpt(text)));
        }
        let split = digits.saturating_sub(LOW_DIGITS);
        let (high, low) = text.split_at(split);
        // Only digits, at most two above and 38 below: both parses succeed.
        let bad = |_| BadStreamSequence(text.to_owned());
        Ok(Self {
            high: if high.is_empty() {
                0
            } else {
                high.parse().map_err(bad)?
            },
            low: low.parse().map_err(bad)?,
        })
    }
}

impl From<u128> for StreamSequence {
    fn from(value: u128) -> Self {
        const LOW_LIMIT: u128 = 10_u128.pow(LOW_DIGITS as u32);
        Self {
            // u128::MAX / 10^38 is 3.
            high: (value / LOW_LIMIT) as u8,
            low: value % LOW_LIMIT,
        }
    }
}

impl fmt::Display for StreamSequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.high == 0 {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}{:0>width$}", self.high, self.low, width = LOW_DIGITS)
        }
    }
}

/// An event's place in the twin table's stream: the sequence number of the
/// DynamoDB stream record it was derived from, and its index among the
/// events that record yields (one record can change a device's connection
/// and its location at once). Events sort by it within one second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOrder {
    #[serde(with = "sequence_text")]
    pub sequence_number: StreamSequence,
    pub index: u8,
}

/// A sequence number is written as its decimal string, as DynamoDB writes it.
mod sequence_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &StreamSequence, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StreamSequence, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
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

    /// The order of rows in staging objects, exports and replays: event
    /// time, then the place in the twin stream, then the event id (which
    /// only breaks ties between events without a stream order).
    pub fn sort_key(&self) -> SortKey {
        SortKey {
            time: self.dpl_event.time(),
            stream_order: self.stream_order,
            event_id: self.event_id,
        }
    }
}

/// See [`DplRecord::sort_key`]. Copies of one event have equal keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    pub time: Timestamp,
    pub stream_order: Option<StreamOrder>,
    pub event_id: EventId,
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
    use proptest::prelude::*;

    fn digits() -> impl Strategy<Value = String> {
        "(0|[1-9][0-9]{0,39})"
    }

    /// The number's order: longer is larger, then the digits.
    fn numeric_order(a: &str, b: &str) -> std::cmp::Ordering {
        (a.len(), a).cmp(&(b.len(), b))
    }

    proptest! {
        #[test]
        fn a_stream_sequence_reads_back_and_sorts_as_its_number(a in digits(), b in digits()) {
            let (pa, pb): (StreamSequence, StreamSequence) = (a.parse().unwrap(), b.parse().unwrap());
            prop_assert_eq!(pa.to_string(), a.clone());
            prop_assert_eq!(pa.cmp(&pb), numeric_order(&a, &b));
        }

        #[test]
        fn anything_else_is_refused_without_panicking(text in "\\PC{0,60}") {
            let valid = !text.is_empty() && text.len() <= 40 && text.bytes().all(|b| b.is_ascii_digit());
            prop_assert_eq!(text.parse::<StreamSequence>().is_ok(), valid);
        }

        #[test]
        fn from_u128_agrees_with_the_text(n in any::<u128>()) {
            prop_assert_eq!(StreamSequence::from(n), n.to_string().parse::<StreamSequence>().unwrap());
        }
    }

    #[test]
    fn leading_zeros_and_forty_digits_are_numbers() {
        let max: StreamSequence = "9".repeat(40).parse().unwrap();
        assert_eq!(max.to_string(), "9".repeat(40));
        assert_eq!(
            "007".parse::<StreamSequence>().unwrap(),
            StreamSequence::from(7)
        );
        assert!(max > StreamSequence::from(u128::MAX));
        assert!("9".repeat(41).parse::<StreamSequence>().is_err());
    }

    #[test]
    fn the_stream_order_travels_in_the_record_and_old_records_still_read() {
        let mut record = crate::examples::seed_record(
            EventType::Datapoint,
            "abcd1234",
            "ledevb",
            "AC000W000000001",
            "Blue_LED",
            7,
        );
        record.stream_order = Some(StreamOrder {
            sequence_number: "4421584500000000017450439091".parse().unwrap(),
            index: 1,
        });
        let json = String::from_utf8(record.to_json()).unwrap();
        assert!(
            json.ends_with(
                r#","stream_order":{"sequence_number":"4421584500000000017450439091","index":1}}"#
            ),
            "{json}"
        );
        assert_eq!(DplRecord::from_json(json.as_bytes()).unwrap(), record);

        record.stream_order = None;
        let old = record.to_json();
        assert!(!String::from_utf8_lossy(&old).contains("stream_order"));
        assert_eq!(DplRecord::from_json(&old).unwrap(), record);
    }

    #[test]
    fn rows_of_one_second_sort_by_stream_order_before_event_id() {
        let at = |sequence: u128, index: u8, id: &str| {
            let mut record = crate::examples::seed_record(
                EventType::Connectivity,
                "abcd1234",
                "ledevb",
                "AC000W000000001",
                "",
                0,
            );
            record.event_id = EventId::derive(id, EventType::Connectivity);
            record.stream_order = Some(StreamOrder {
                sequence_number: StreamSequence::from(sequence),
                index,
            });
            record.sort_key()
        };
        // The earlier event gets the larger id, so that the ids' own order
        // is the reverse of the stream's.
        let (small, large) = {
            let (a, b) = (
                EventId::derive("a", EventType::Connectivity),
                EventId::derive("b", EventType::Connectivity),
            );
            if a < b {
                ("a", "b")
            } else {
                ("b", "a")
            }
        };
        let (first, second) = (at(9, 0, large), at(10, 0, small));
        assert!(first.event_id > second.event_id);
        assert!(first < second);
        assert!(at(10, 0, "x") < at(10, 1, "a"));
    }

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
