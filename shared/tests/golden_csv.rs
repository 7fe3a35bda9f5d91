//! Golden tests: the seed's four CSV examples ("Downloading events"), stored
//! byte for byte under `tests/fixtures/seed/{type}.csv` with their header
//! lines in `{type}.header.csv`, are what the encoder writes for events that
//! hold the same values.
//!
//! The seed's CSV rows use OEM `abcd1234` (its JSON records use `1234abcd`).
//! Each event's top-level `timestamp` differs from the dates in its row, so a
//! row that printed the wrong date would fail.

use std::path::PathBuf;

use dpl::csv::{columns, row, write_row};
use dpl::event::{
    Connection, Datapoint, DatapointMetadata, DeviceMetadata, Location, PropertyMetadata,
    Registration,
};
use dpl::{BaseType, DeviceEvent, EventType, Timestamp};

const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/seed")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
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

/// (fixture stem, event) for each of the seed's four examples.
fn seed_examples() -> [(&'static str, DeviceEvent); 4] {
    [
        ("connection", connection()),
        ("datapoint", datapoint()),
        ("location", location()),
        ("registration", registration()),
    ]
}

#[test]
fn each_seed_csv_example_is_written_byte_for_byte() {
    for (stem, event) in seed_examples() {
        let expected = fixture(&format!("{stem}.csv"));
        let mut out = Vec::new();
        write_row(&event, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            expected,
            "{stem}.csv differs"
        );
        assert_eq!(row(&event), expected, "{stem}.csv differs (row)");
    }
}

#[test]
fn columns_match_the_seed_header_lines() {
    for (stem, event) in seed_examples() {
        let header = fixture(&format!("{stem}.header.csv"));
        assert_eq!(
            columns(event.event_type()).join(",") + "\n",
            header,
            "{stem}.header.csv differs"
        );
    }
}
