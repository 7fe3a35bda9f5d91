//! Property tests of `derive_events`: whatever a stream record holds, it
//! never panics, and every event it returns serializes and reads back.
//!
//! Records are built in the JSON Lambda delivers. Images are either random
//! maps (attribute names from the schema and random ones, random DynamoDB
//! types, random nesting) or the sample items of `tests/fixtures/twin/` with
//! random attributes replaced or removed, so that the deep paths (datapoint
//! values, acks, coordinates) are reached often.

use std::path::PathBuf;
use std::sync::OnceLock;

use aws_lambda_events::event::dynamodb::EventRecord;
use dpl::twin::derive_events;
use dpl::{CustomerPayload, DeviceEvent, DplRecord};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const SCHEMA_NAMES: &[&str] = &[
    "pk",
    "sk",
    "dsn",
    "oem_id",
    "oem_model",
    "connection_status",
    "connection_changed_at",
    "connection_user_uuid",
    "lat",
    "lng",
    "ip",
    "location_provider",
    "location_user_uuid",
    "location_changed_at",
    "registered",
    "registration_type",
    "registered_at",
    "unregistered_at",
    "registration_user_uuid",
    "device_type",
    "activation_id",
    "activated_at",
    "device_id",
    "property_name",
    "display_name",
    "base_type",
    "direction",
    "resource_tags",
    "datapoint",
    "ack",
];

const NESTED_NAMES: &[&str] = &[
    "id",
    "value",
    "created_at",
    "updated_at",
    "user_uuid",
    "echo",
    "closed",
    "discarded",
    "scope",
    "metadata",
    "ack_id",
    "ack_status",
    "ack_message",
    "acked_at",
    "created_at_from_device",
];

const SAMPLES: &[&str] = &[
    "device_modify.json",
    "reservation_modify.json",
    "property_modify.json",
];

/// The sample records' images: the starting points of mutated images.
fn samples() -> &'static [Value] {
    static SAMPLES_JSON: OnceLock<Vec<Value>> = OnceLock::new();
    SAMPLES_JSON.get_or_init(|| {
        SAMPLES
            .iter()
            .map(|name| {
                let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../tests/fixtures/twin")
                    .join(name);
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                serde_json::from_str(&text).unwrap()
            })
            .collect()
    })
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(SCHEMA_NAMES).prop_map(str::to_owned),
        3 => prop::sample::select(NESTED_NAMES).prop_map(str::to_owned),
        1 => "[a-z_]{1,6}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "",
                "2020-08-28T09:45:36Z",
                "2020-08-28T09:45:36.813+0000",
                "2020-02-30T00:00:00Z",
                "1969-12-31T23:59:59Z",
                "Online",
                "Offline",
                "boolean",
                "integer",
                "decimal",
                "float",
                "string",
                "message",
                "file",
                "blob",
                "input",
                "output",
                "DEVICE",
                "RESERVATION",
                "PROPERTY#Blue_LED",
                "00000000-0000-0000-0000-000000000000",
                "11111111-1111-1111-1111-111111111111",
                "1",
                "true",
            ][..]
        )
        .prop_map(str::to_owned),
        "\\PC{0,16}",
    ]
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "0",
                "1",
                "-1",
                "200",
                "44.7871",
                "-64.1234",
                "-0.0000001",
                "0.0000005",
                "90",
                "-180.0000005",
                "1e400",
                "-1E+2",
                "12345678901234567890123456789012345678",
                "abc",
                "",
                "NaN",
            ][..]
        )
        .prop_map(str::to_owned),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        "[-+.eE0-9]{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(|s| json!({ "S": s })),
        3 => number_text().prop_map(|n| json!({ "N": n })),
        2 => any::<bool>().prop_map(|b| json!({ "BOOL": b })),
        1 => Just(json!({ "NULL": true })),
        1 => Just(json!({ "B": "AAEC" })),
        1 => prop::collection::vec(text(), 1..3).prop_map(|v| json!({ "SS": v })),
        1 => prop::collection::vec(number_text(), 1..3).prop_map(|v| json!({ "NS": v })),
        1 => Just(json!({ "BS": ["AAEC", "AQ=="] })),
    ]
}

/// Any attribute value, maps and lists nested up to three levels.
fn attribute_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::btree_map(name(), inner.clone(), 0..6)
                .prop_map(|m| json!({ "M": Map::from_iter(m) })),
            prop::collection::vec(inner, 0..4).prop_map(|v| json!({ "L": v })),
        ]
    })
}

fn random_image() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(name(), attribute_value(), 0..12)
        .prop_map(|m| Value::Object(Map::from_iter(m)))
}

/// Where a mutation applies: the item itself, or its `datapoint` / `ack` map.
#[derive(Clone, Debug)]
enum Target {
    Item,
    Datapoint,
    Ack,
}

#[derive(Clone, Debug)]
struct Mutation {
    target: Target,
    name: String,
    /// `None` removes the attribute.
    value: Option<Value>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop_oneof![
            Just(Target::Item),
            Just(Target::Datapoint),
            Just(Target::Ack)
        ],
        name(),
        prop::option::weighted(0.8, attribute_value()),
    )
        .prop_map(|(target, name, value)| Mutation {
            target,
            name,
            value,
        })
}

fn mutate(image: &mut Value, mutation: &Mutation) {
    let map = match mutation.target {
        Target::Item => image.as_object_mut(),
        Target::Datapoint | Target::Ack => {
            let key = if matches!(mutation.target, Target::Datapoint) {
                "datapoint"
            } else {
                "ack"
            };
            let nested = image
                .as_object_mut()
                .and_then(|m| {
                    Some(
                        m.entry(key)
                            .or_insert_with(|| json!({ "M": {} }))
                            .as_object_mut()?
                            .entry("M")
                            .or_insert_with(|| json!({})),
                    )
                })
                .and_then(Value::as_object_mut);
            nested
        }
    };
    if let Some(map) = map {
        match &mutation.value {
            Some(value) => {
                map.insert(mutation.name.clone(), value.clone());
            }
            None => {
                map.remove(&mutation.name);
            }
        }
    }
}

/// A sample item with mutations, or a random one.
fn image(sample: usize, side: &'static str) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        12 => prop::collection::vec(mutation(), 0..4).prop_map(move |mutations| {
            let mut image = samples()[sample]["dynamodb"][side].clone();
            for m in &mutations {
                mutate(&mut image, m);
            }
            Some(image)
        }),
        2 => random_image().prop_map(Some),
        1 => Just(None),
    ]
}

fn creation_time() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        20 => (1_500_000_000i64..1_700_000_000).prop_map(|s| Some(json!(s))),
        1 => (-10_000_000_000i64..1_000_000_000_000).prop_map(|s| Some(json!(s))),
        1 => (0.0f64..2.0e9).prop_map(|s| Some(json!(s))),
        1 => Just(Some(json!(0))),
        1 => Just(None),
    ]
}

fn stream_record() -> impl Strategy<Value = Value> {
    (0..SAMPLES.len())
        .prop_flat_map(|sample| {
            (
                image(sample, "OldImage"),
                image(sample, "NewImage"),
                prop_oneof![
                    3 => Just(samples()[sample]["dynamodb"]["Keys"].clone()),
                    1 => random_image(),
                    1 => text().prop_map(|sk| json!({ "pk": { "S": "DEVICE#X" }, "sk": { "S": sk } })),
                ],
                prop_oneof![
                    12 => Just("MODIFY".to_owned()),
                    6 => Just("INSERT".to_owned()),
                    1 => Just("REMOVE".to_owned()),
                    1 => "[A-Z]{0,7}",
                ],
                prop_oneof![
                    20 => Just(Some("NEW_AND_OLD_IMAGES")),
                    1 => Just(Some("NEW_IMAGE")),
                    1 => Just(Some("OLD_IMAGE")),
                    1 => Just(Some("KEYS_ONLY")),
                    1 => Just(None),
                ],
                creation_time(),
                "[0-9a-f]{1,32}",
            )
        })
        .prop_map(|(old, new, keys, event_name, view, at, event_id)| {
            let mut dynamodb = json!({ "Keys": keys, "SizeBytes": 100 });
            if let Some(old) = old {
                dynamodb["OldImage"] = old;
            }
            if let Some(new) = new {
                dynamodb["NewImage"] = new;
            }
            if let Some(view) = view {
                dynamodb["StreamViewType"] = json!(view);
            }
            if let Some(at) = at {
                dynamodb["ApproximateCreationDateTime"] = at;
            }
            json!({
                "eventID": event_id,
                "eventName": event_name,
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": dynamodb,
            })
        })
}

fn outcome(record: &EventRecord) -> Result<Vec<Vec<u8>>, String> {
    derive_events(record)
        .map(|records| records.iter().map(DplRecord::to_json).collect())
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn derive_events_never_panics_and_its_events_read_back(json in stream_record()) {
        // Records Lambda could not deliver (e.g. an unrepresentable time)
        // never reach us.
        let Ok(record) = serde_json::from_value::<EventRecord>(json.clone()) else {
            return Ok(());
        };
        match derive_events(&record) {
            Ok(records) => {
                for r in &records {
                    let bytes = r.to_json();
                    let back = DplRecord::from_json(&bytes);
                    prop_assert!(back.is_ok(), "{}: {:?}", String::from_utf8_lossy(&bytes), back);
                    prop_assert_eq!(&back.unwrap(), r);
                    let payload = CustomerPayload(&r.dpl_event).to_json();
                    prop_assert_eq!(&DeviceEvent::from_customer_json(&payload).unwrap(), &r.dpl_event);
                }
            }
            Err(err) => {
                prop_assert_eq!(err.stream_event_id(), record.event_id.as_str());
                let prefix = format!("stream record {}: ", record.event_id);
                prop_assert!(err.to_string().starts_with(&prefix), "{}", err);
            }
        }
        // Parsing again builds new hash maps with new seeds: same outcome.
        let again: EventRecord = serde_json::from_value(json).unwrap();
        prop_assert_eq!(outcome(&again), outcome(&record));
    }
}
