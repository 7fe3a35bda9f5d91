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
use crate::{BaseType, DeviceEvent, EventType, Timestamp};

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
