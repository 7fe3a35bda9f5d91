//! Golden tests: the seed's record examples and its decoded Kinesis example,
//! stored byte for byte under `tests/fixtures/seed/`, survive parse then
//! serialize unchanged: same keys, same order, same value types.
//!
//! Two deliberate differences from the seed text, both in the fixtures:
//! - `activation.json`: the seed's `event_time` is a placeholder that is not a
//!   date (`0000-00-0T00:00:00Z`); the fixture holds `2020-08-28T09:45:36Z`.
//! - `kinesis_decoded.json`: the vendor printed `timestamp` as the lossy float
//!   `1.59886711E12`; we write the exact epoch milliseconds of the event,
//!   `1598867107000`. `kinesis_decoded_vendor.json` keeps the vendor's text
//!   and is still accepted as input.

use std::path::PathBuf;

use dpl::{CustomerPayload, DeviceEvent, DplRecord, EventType};
use serde::{Deserialize, Serialize};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/seed")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The seed's records are the DPL record without our envelope fields.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRecord {
    dpl_event: DeviceEvent,
}

fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap() + "\n"
}

#[test]
fn each_seed_record_round_trips_byte_for_byte() {
    for event_type in EventType::ALL {
        let text = fixture(&format!("{event_type}.json"));
        let record: SeedRecord = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{event_type}.json does not parse: {e}"));
        assert_eq!(record.dpl_event.event_type(), event_type);
        assert_eq!(
            pretty(&record),
            text,
            "{event_type}.json changed on the way through"
        );
    }
}

#[test]
fn decoded_kinesis_example_round_trips_byte_for_byte() {
    let text = fixture("kinesis_decoded.json");
    let event = DeviceEvent::from_customer_json(text.as_bytes()).unwrap();
    assert_eq!(pretty(&CustomerPayload(&event)), text);
}

#[test]
fn vendor_float_timestamp_is_read_and_written_as_exact_millis() {
    let vendor = fixture("kinesis_decoded_vendor.json");
    let event = DeviceEvent::from_customer_json(vendor.as_bytes()).unwrap();
    assert_eq!(event.time().millis(), 1_598_867_110_000);
    let json: serde_json::Value =
        serde_json::from_slice(&CustomerPayload(&event).to_json()).unwrap();
    assert!(
        json["timestamp"].is_u64(),
        "timestamp must be an integer: {json}"
    );
}

#[test]
fn customer_payload_is_the_dpl_event_without_wrapper_and_with_numeric_time() {
    for event_type in EventType::ALL {
        let record: SeedRecord =
            serde_json::from_str(&fixture(&format!("{event_type}.json"))).unwrap();
        let event = record.dpl_event;
        let mut expected = serde_json::to_value(&event).unwrap();
        if let Some(ts) = expected.get_mut("timestamp") {
            *ts = serde_json::json!(event.time().millis());
        }
        let customer: serde_json::Value =
            serde_json::from_slice(&CustomerPayload(&event).to_json()).unwrap();
        assert_eq!(customer, expected, "{event_type}");
        let back = DeviceEvent::from_customer_json(&CustomerPayload(&event).to_json()).unwrap();
        assert_eq!(back, event, "{event_type}");
    }
}

#[test]
fn seed_value_types_are_kept() {
    let dp: serde_json::Value = serde_json::from_str(&fixture("datapoint.json")).unwrap();
    assert!(dp["dpl_event"]["datapoint"]["value"].is_string());
    let ack: SeedRecord = serde_json::from_str(&fixture("datapointack.json")).unwrap();
    let ack = serde_json::to_value(&ack).unwrap();
    assert!(ack["dpl_event"]["datapointack"]["value"].is_number());
    assert!(ack["dpl_event"]["datapointack"]["created_at_from_device"].is_null());
    assert_eq!(
        ack["dpl_event"]["metadata"]["resource_tags"],
        serde_json::json!([])
    );
    let loc: SeedRecord = serde_json::from_str(&fixture("location.json")).unwrap();
    assert_eq!(
        serde_json::to_value(&loc).unwrap()["dpl_event"]["location_event"]["lat"],
        " 44.787100"
    );
    let reg: SeedRecord = serde_json::from_str(&fixture("registration.json")).unwrap();
    assert!(
        serde_json::to_value(&reg).unwrap()["dpl_event"]["registration_event"]["unregistered_at"]
            .is_null()
    );
}

#[test]
fn dpl_record_carries_the_event_and_its_id() {
    let text = fixture("../dpl_record.json");
    let record = DplRecord::from_json(text.as_bytes()).unwrap();
    assert_eq!(pretty(&record), text);
    let compact = record.to_json();
    assert!(!compact.contains(&b'\n'));
    assert_eq!(DplRecord::from_json(&compact).unwrap(), record);
    assert_eq!(record.partition_key(), "AC000W000000001");
    let order = record
        .stream_order
        .expect("the fixture has its stream order");
    assert_eq!(
        (order.sequence_number.to_string().as_str(), order.index),
        ("4421584500000000017450439091", 0)
    );
}

#[test]
fn malformed_records_are_rejected_with_the_reason() {
    let datapoint = fixture("datapoint.json");
    let cases = [
        (
            "\"event_type\": \"datapoint\"",
            "\"event_type\": \"location\"",
            "body is a datapoint",
        ),
        ("\"value\": \"1\"", "\"value\": 1", "invalid type"),
        (
            "\"timestamp\": \"2020-08-28T09:36:15.000+0000\"",
            "\"timestamp\": \"yesterday\"",
            "yesterday",
        ),
        (
            "\"base_type\": \"boolean\"",
            "\"base_type\": \"blob\"",
            "blob",
        ),
        ("\"scope\": \"user\",", "", "missing field `scope`"),
        (
            "\"echo\": false,",
            "\"echo\": false, \"extra\": 1,",
            "unknown field `extra`",
        ),
    ];
    for (from, to, reason) in cases {
        let broken = datapoint.replacen(from, to, 1);
        assert_ne!(broken, datapoint, "case {from} did not apply");
        let err = serde_json::from_str::<SeedRecord>(&broken)
            .err()
            .unwrap_or_else(|| panic!("{to} accepted"));
        assert!(err.to_string().contains(reason), "{to}: {err}");
    }
    let activation = fixture("activation.json").replacen(
        "\"activation\": {",
        "\"timestamp\": \"2020-08-28T09:45:36.000+0000\",\n    \"activation\": {",
        1,
    );
    assert!(serde_json::from_str::<SeedRecord>(&activation).is_err());
}
