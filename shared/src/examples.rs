//! Events holding the values of the vendor's documented examples.
//!
//! The seed's CSV examples ("Downloading events") show rows, not events: the
//! events here hold the same values, so that encoding them reproduces those
//! rows byte for byte (`shared/tests/golden_csv.rs`, the export's emulator
//! tests). The seed's CSV rows use OEM `abcd1234` (its JSON records use
//! `1234abcd`). Each event's top-level `timestamp` differs from the dates in
//! its row, so a row that printed the wrong date would not match.

use crate::event::{
    Connection, Datapoint, DatapointMetadata, DeviceMetadata, Location, PropertyMetadata,
    Registration,
};
use crate::{BaseType, DeviceEvent, DplRecord, EventType, Timestamp};

/// The nil UUID the seed prints for every id and user.
pub const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("example timestamps are valid")
}

fn device(event_type: EventType) -> DeviceMetadata {
    DeviceMetadata {
        oem_id: "abcd1234".into(),
        oem_model: "ledevb".into(),
        dsn: "AC000W000000001".into(),
        event_type,
    }
}

/// `abcd1234,ledevb,AC000W000000001,Mon Feb 03 21:30:45 UTC 2020,<nil>,Online`
fn connection() -> DeviceEvent {
    DeviceEvent::Connectivity {
        metadata: device(EventType::Connectivity),
        timestamp: at("2020-02-03T21:30:46.250Z"),
        connection: Connection {
            event_time: at("2020-02-03T21:30:45Z"),
            user_uuid: Some(NIL_UUID.into()),
            status: "Online".into(),
            metadata: device(EventType::Connectivity),
        },
    }
}

/// The `log` property (base type `string`) set to `CMD_1`.
fn datapoint() -> DeviceEvent {
    DeviceEvent::Datapoint {
        metadata: PropertyMetadata {
            oem_id: "abcd1234".into(),
            oem_model: "ledevb".into(),
            dsn: "AC000W000000001".into(),
            property_name: "log".into(),
            display_name: "log".into(),
            base_type: BaseType::String,
            resource_tags: None,
            event_type: EventType::Datapoint,
        },
        datapoint: Datapoint {
            id: NIL_UUID.into(),
            updated_at: at("2020-02-05T12:08:26Z"),
            created_at: at("2020-02-05T12:08:26Z"),
            echo: false,
            closed: false,
            value: "CMD_1".into(),
            metadata: DatapointMetadata::default(),
            user_uuid: Some(NIL_UUID.into()),
            discarded: false,
            scope: "user".into(),
            direction: "output".into(),
        },
        timestamp: at("2020-02-05T12:08:27Z"),
    }
}

/// Note the leading space of the positive latitude, kept as is.
fn location() -> DeviceEvent {
    DeviceEvent::Location {
        metadata: device(EventType::Location),
        location_event: Location {
            user_uuid: Some(NIL_UUID.into()),
            dsn: "AC000W000000001".into(),
            ip: Some("22.22.22.22".into()),
            lat: " 10.000000".into(),
            provider: "user-based".into(),
            created_at: at("2020-08-28T08:52:08Z"),
            long: "-10.000000".into(),
        },
        timestamp: at("2020-08-28T08:52:09Z"),
    }
}

/// Never unregistered: the `unregistered_at` cell is empty.
fn registration() -> DeviceEvent {
    DeviceEvent::Registration {
        metadata: device(EventType::Registration),
        registration_event: Registration {
            dsn: "AC000W000000001".into(),
            user_uuid: Some(NIL_UUID.into()),
            registered: false,
            registration_type: "Dsn".into(),
            registered_at: Some(at("2020-04-24T09:57:47Z")),
            unregistered_at: None,
        },
        timestamp: at("2020-04-24T09:57:48Z"),
    }
}

/// (export name, event) for each of the seed's four CSV examples, in the
/// order the seed lists them.
pub fn seed_csv_examples() -> [(&'static str, DeviceEvent); 4] {
    [
        ("connection", connection()),
        ("datapoint", datapoint()),
        ("location", location()),
        ("registration", registration()),
    ]
}

/// `data` as the Lambda Kinesis event source delivers it from the DPL
/// stream: shard `shardId-000000000000`, the given sequence number.
/// `DplRecord`s go in as `(record.partition_key(), &record.to_json())`.
pub fn kinesis_event_record(
    partition_key: &str,
    data: &[u8],
    sequence: u64,
) -> aws_lambda_events::event::kinesis::KinesisEventRecord {
    use base64::Engine;
    serde_json::from_value(serde_json::json!({
        "eventID": format!("shardId-000000000000:{sequence}"),
        "eventSource": "aws:kinesis",
        "eventName": "aws:kinesis:record",
        "eventVersion": "1.0",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/dpl",
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence.to_string(),
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "approximateArrivalTimestamp": 1598607936.0
        }
    }))
    .expect("a Kinesis event source record")
}

/// The seed's DPL record of `event_type` (`tests/fixtures/seed/`).
pub fn seed_json(event_type: EventType) -> &'static str {
    match event_type {
        EventType::Activation => include_str!("../../tests/fixtures/seed/activation.json"),
        EventType::Connectivity => include_str!("../../tests/fixtures/seed/connectivity.json"),
        EventType::Datapoint => include_str!("../../tests/fixtures/seed/datapoint.json"),
        EventType::DatapointAck => include_str!("../../tests/fixtures/seed/datapointack.json"),
        EventType::Location => include_str!("../../tests/fixtures/seed/location.json"),
        EventType::Registration => include_str!("../../tests/fixtures/seed/registration.json"),
    }
}

/// A seed record of `event_type`, moved to another OEM, model, DSN and
/// (for property events) property, with its own id.
pub fn seed_record(
    event_type: EventType,
    oem: &str,
    model: &str,
    dsn: &str,
    property: &str,
    n: u64,
) -> DplRecord {
    fn retarget(value: &mut serde_json::Value, fields: &[(&str, &str)]) {
        match value {
            serde_json::Value::Object(map) => {
                for (name, value) in map.iter_mut() {
                    match fields.iter().find(|(field, _)| field == name) {
                        Some((_, new)) => *value = serde_json::Value::from(*new),
                        None => retarget(value, fields),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| retarget(v, fields)),
            _ => {}
        }
    }
    let mut value: serde_json::Value =
        serde_json::from_str(seed_json(event_type)).expect("seed fixtures are JSON");
    let fields = [
        ("oem_id", oem),
        ("oem_model", model),
        ("dsn", dsn),
        ("property_name", property),
        ("display_name", property),
    ];
    retarget(&mut value, &fields);
    let id = crate::EventId::derive(&format!("twin-stream-{n}"), event_type);
    value["event_id"] = serde_json::Value::from(id.to_string());
    // A twin stream record's sequence number has 21 to 40 digits.
    let sequence = 100_000_000_000_000_000_000_u128 + u128::from(n);
    value["stream_order"] =
        serde_json::json!({"sequence_number": sequence.to_string(), "index": 0});
    let bytes = serde_json::to_vec(&value).expect("a JSON value serializes");
    DplRecord::from_json(&bytes).expect("a moved seed record is a DPL record")
}

/// Every event type for two OEMs, two models, three DSNs and two
/// properties, interleaved.
pub fn small_fleet() -> Vec<DplRecord> {
    let mut records = Vec::new();
    let mut n = 0;
    for round in 0..2 {
        for oem in ["oema0001", "oemb0002"] {
            for (model, dsn) in [
                ("ledevb", "AC000W000000001"),
                ("ledevb", "AC000W000000002"),
                ("plug", "AC000W000000003"),
            ] {
                for event_type in EventType::ALL {
                    let property = if round == 0 { "Blue_LED" } else { "Green_LED" };
                    n += 1;
                    records.push(seed_record(event_type, oem, model, dsn, property, n));
                }
            }
        }
    }
    records
}
