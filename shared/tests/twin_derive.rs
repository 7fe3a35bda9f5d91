//! Derivation of device events from twin-table stream records.
//!
//! Records are written as the JSON Lambda delivers (`{"eventID": ...,
//! "dynamodb": {...}}`) and read with `aws_lambda_events`, exactly as the
//! twin-events function reads them. Items are written as plain JSON and turned
//! into DynamoDB JSON by [`ddb`]; `docs/twin-table.md` is their schema.

use std::path::PathBuf;

use aws_lambda_events::event::dynamodb::{EventRecord, StreamViewType};
use dpl::event::AckValue;
use dpl::twin::{derive_events, TwinError, TwinErrorKind, MAX_VALUE_BYTES};
use dpl::{DeviceEvent, DplRecord, EventId, EventType};
use serde::Serialize;
use serde_json::{json, Value};

// ---------------------------------------------------------------- helpers

const ZEROS: &str = "00000000-0000-0000-0000-000000000000";
const EVENT_ID: &str = "1a2b3c4d5e6f708192a3b4c5d6e7f809";
/// 2020-08-28T09:45:36Z, the seed's connectivity time.
const AT_CONNECTIVITY: i64 = 1_598_607_936;
/// 2020-08-28T09:36:15Z, the seed's datapoint and datapointack time.
const AT_DATAPOINT: i64 = 1_598_607_375;
/// 2020-08-29T10:32:47Z, the seed's registration time.
const AT_REGISTRATION: i64 = 1_598_697_167;

/// Plain JSON to DynamoDB JSON: strings are `S`, numbers `N` (their JSON
/// text), booleans `BOOL`, null `NULL`, arrays `L`, objects `M`;
/// `{"$N": "text"}` is an `N` with exactly that text.
fn ddb(plain: &Value) -> Value {
    match plain {
        Value::String(text) => json!({ "S": text }),
        Value::Number(number) => json!({ "N": number.to_string() }),
        Value::Bool(flag) => json!({ "BOOL": flag }),
        Value::Null => json!({ "NULL": true }),
        Value::Array(items) => json!({ "L": items.iter().map(ddb).collect::<Vec<_>>() }),
        Value::Object(map) => match map.get("$N") {
            Some(text) => json!({ "N": text }),
            None => json!({ "M": attributes(plain) }),
        },
    }
}

/// A plain JSON object as a DynamoDB item (the attribute map itself).
fn attributes(plain: &Value) -> Value {
    let map = plain.as_object().expect("an item is an object");
    Value::Object(map.iter().map(|(k, v)| (k.clone(), ddb(v))).collect())
}

/// An `N` attribute with exactly this text.
fn n(text: &str) -> Value {
    json!({ "$N": text })
}

/// A stream record as Lambda delivers it. `Keys` come from the image.
fn stream_record(name: &str, old: Option<&Value>, new: Option<&Value>, at: Value) -> Value {
    let image = new.or(old).expect("a record has an image");
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": at,
        "Keys": attributes(&json!({ "pk": image["pk"], "sk": image["sk"] })),
        "SequenceNumber": "4421584500000000017450439091",
        "SizeBytes": 321,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(new) = new {
        dynamodb["NewImage"] = attributes(new);
    }
    if let Some(old) = old {
        dynamodb["OldImage"] = attributes(old);
    }
    json!({
        "eventID": EVENT_ID,
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/twins/stream/2020-08-01T00:00:00.000",
        "dynamodb": dynamodb,
    })
}

fn modify(old: &Value, new: &Value, at: i64) -> Value {
    stream_record("MODIFY", Some(old), Some(new), json!(at))
}

fn insert(new: &Value, at: i64) -> Value {
    stream_record("INSERT", None, Some(new), json!(at))
}

fn parse(record: &Value) -> EventRecord {
    serde_json::from_value(record.clone()).expect("a Lambda DynamoDB stream record")
}

fn derive(record: &Value) -> Result<Vec<DplRecord>, TwinError> {
    derive_events(&parse(record))
}

fn types(records: &[DplRecord]) -> Vec<EventType> {
    records.iter().map(|r| r.dpl_event.event_type()).collect()
}

fn repo_file(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The seed's rendering: the DPL record without our envelope fields.
#[derive(Serialize)]
struct SeedLike<'a> {
    dpl_event: &'a DeviceEvent,
}

fn seed_like(event: &DeviceEvent) -> String {
    serde_json::to_string_pretty(&SeedLike { dpl_event: event }).unwrap() + "\n"
}

fn only_event(record: &Value) -> DeviceEvent {
    let records = derive(record).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(records.len(), 1, "{:?}", types(&records));
    records.into_iter().next().unwrap().dpl_event
}

// ------------------------------------------------------------------ items

fn device() -> Value {
    json!({
        "pk": "DEVICE#AC000W000000001",
        "sk": "DEVICE",
        "dsn": "AC000W000000001",
        "oem_id": "1234abcd",
        "oem_model": "ledevb",
        "connection_status": "Offline",
        "connection_changed_at": "2020-08-28T09:40:00Z",
        "connection_user_uuid": ZEROS,
        "lat": 10,
        "lng": -10,
        "ip": "22.22.22.22",
        "location_provider": "user-based",
        "location_user_uuid": ZEROS,
        "location_changed_at": "2020-08-28T08:52:08Z",
        "registered": false,
        "registration_type": "Same-LAN",
        "registration_user_uuid": ZEROS,
    })
}

fn reservation() -> Value {
    json!({
        "pk": "DEVICE#AC000W000000001",
        "sk": "RESERVATION",
        "dsn": "AC000W000000001",
        "oem_id": "1234abcd",
        "oem_model": "generic",
        "device_type": "Wifi",
        "activation_id": ZEROS,
    })
}

fn datapoint(id: &str, value: Value, at: &str) -> Value {
    json!({
        "id": id,
        "value": value,
        "created_at": at,
        "updated_at": at,
        "user_uuid": ZEROS,
        "echo": false,
        "closed": false,
        "discarded": false,
        "scope": "user",
    })
}

fn ack(datapoint_id: &str, ack_id: &str, at: &str) -> Value {
    json!({
        "id": datapoint_id,
        "ack_id": ack_id,
        "ack_status": 200,
        "ack_message": 0,
        "acked_at": at,
    })
}

/// The seed's Blue_LED property, holding an older datapoint.
fn property() -> Value {
    json!({
        "pk": "DEVICE#AC000W000000001",
        "sk": "PROPERTY#Blue_LED",
        "dsn": "AC000W000000001",
        "oem_id": "1234abcd",
        "oem_model": "ledevb",
        "property_name": "Blue_LED",
        "display_name": "Blue_LED",
        "base_type": "boolean",
        "direction": "input",
        "datapoint": datapoint("11111111-1111-1111-1111-111111111111", json!(0), "2020-08-28T09:30:00Z"),
    })
}

fn with(mut item: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().unwrap() {
        if value == &json!("$absent") {
            item.as_object_mut().unwrap().remove(key);
        } else {
            item[key] = value.clone();
        }
    }
    item
}

// ------------------------------------------------- seed records, byte for byte

#[test]
fn connectivity_reproduces_the_seed_record() {
    let old = device();
    let new = with(
        device(),
        json!({ "connection_status": "Online", "connection_changed_at": "2020-08-28T09:45:36Z" }),
    );
    let event = only_event(&modify(&old, &new, AT_CONNECTIVITY));
    assert_eq!(seed_like(&event), repo_file("seed/connectivity.json"));
}

/// `docs/twin-table.md`, "Attribute conventions": an item time may carry a
/// fraction, and event bodies write whole seconds.
#[test]
fn a_fraction_of_an_item_time_is_accepted_and_bodies_keep_whole_seconds() {
    let old = device();
    let new = with(
        device(),
        json!({ "connection_status": "Online", "connection_changed_at": "2020-08-28T09:45:36.813Z" }),
    );
    let event = only_event(&modify(&old, &new, AT_CONNECTIVITY));
    let text = seed_like(&event);
    assert!(!text.contains(".813"), "{text}");
    assert_eq!(text, repo_file("seed/connectivity.json"));
}

#[test]
fn location_reproduces_the_seed_record_to_the_second() {
    let new = with(
        device(),
        json!({ "lat": 44.7871, "lng": -64.1234, "location_changed_at": "2020-08-28T09:11:11Z" }),
    );
    // The seed's location timestamp has 813 ms. DynamoDB Streams writes
    // ApproximateCreationDateTime in whole seconds, and aws_lambda_events
    // misreads a fraction (0.813 s becomes 813 microseconds), so the event
    // time is the whole second: .000 where the seed shows .813.
    let event = only_event(&stream_record(
        "MODIFY",
        Some(&device()),
        Some(&new),
        json!(1_598_605_871.813),
    ));
    let expected = repo_file("seed/location.json").replace(
        "2020-08-28T09:11:11.813+0000",
        "2020-08-28T09:11:11.000+0000",
    );
    assert_eq!(seed_like(&event), expected);
}

#[test]
fn registration_reproduces_the_seed_record() {
    let old = with(device(), json!({ "oem_model": "linuxevb" }));
    let new = with(
        old.clone(),
        json!({ "registered": true, "registered_at": "2020-08-29T10:32:47Z", "unregistered_at": null }),
    );
    let event = only_event(&modify(&old, &new, AT_REGISTRATION));
    assert_eq!(seed_like(&event), repo_file("seed/registration.json"));
}

#[test]
fn datapoint_reproduces_the_seed_record() {
    let new = with(
        property(),
        json!({ "datapoint": datapoint(ZEROS, json!(1), "2020-08-28T09:36:15Z") }),
    );
    let event = only_event(&modify(&property(), &new, AT_DATAPOINT));
    assert_eq!(seed_like(&event), repo_file("seed/datapoint.json"));
}

/// The sample records under `tests/fixtures/twin/` (also the examples of
/// `docs/twin-table.md`) yield the seed's records.
#[test]
fn sample_stream_records_reproduce_the_seed_records() {
    for (sample, seed) in [
        ("twin/device_modify.json", "seed/connectivity.json"),
        ("twin/reservation_modify.json", "seed/activation.json"),
        ("twin/property_modify.json", "seed/datapointack.json"),
    ] {
        let record: Value = serde_json::from_str(&repo_file(sample)).unwrap();
        let event = only_event(&record);
        assert_eq!(seed_like(&event), repo_file(seed), "{sample}");
    }
}

// ------------------------------------------------------- what causes events

struct Case {
    name: &'static str,
    record: Value,
    expected: &'static [EventType],
}

fn case(name: &'static str, record: Value, expected: &'static [EventType]) -> Case {
    Case {
        name,
        record,
        expected,
    }
}

fn check(cases: Vec<Case>) {
    for Case {
        name,
        record,
        expected,
    } in cases
    {
        let records = derive(&record).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(types(&records), expected, "{name}");
    }
}

#[test]
fn each_documented_change_causes_its_event() {
    use EventType::*;
    let t = AT_CONNECTIVITY;
    let online = with(device(), json!({ "connection_status": "Online" }));
    let new_datapoint = with(
        property(),
        json!({ "datapoint": datapoint(ZEROS, json!(1), "2020-08-28T09:36:15Z") }),
    );
    let acked = with(
        property(),
        json!({ "ack": ack("11111111-1111-1111-1111-111111111111", ZEROS, "2020-08-28T09:36:20Z") }),
    );
    check(vec![
        case(
            "connection_status changes",
            modify(&device(), &online, t),
            &[Connectivity],
        ),
        case(
            "lat changes",
            modify(&device(), &with(device(), json!({ "lat": 11 })), t),
            &[Location],
        ),
        case(
            "lng changes",
            modify(&device(), &with(device(), json!({ "lng": 11 })), t),
            &[Location],
        ),
        case(
            "location appears",
            modify(
                &with(device(), json!({ "lat": "$absent", "lng": "$absent" })),
                &device(),
                t,
            ),
            &[Location],
        ),
        case(
            "registered false -> true",
            modify(&device(), &with(device(), json!({ "registered": true })), t),
            &[Registration],
        ),
        case(
            "registered true -> false",
            modify(&with(device(), json!({ "registered": true })), &device(), t),
            &[Registration],
        ),
        case(
            "registered absent -> true",
            modify(
                &with(device(), json!({ "registered": "$absent" })),
                &with(device(), json!({ "registered": true })),
                t,
            ),
            &[Registration],
        ),
        case(
            "activated_at appears",
            modify(
                &reservation(),
                &with(
                    reservation(),
                    json!({ "activated_at": "2020-08-28T09:45:36Z", "device_id": "d1" }),
                ),
                t,
            ),
            &[Activation],
        ),
        case(
            "activated_at appears where it was NULL",
            modify(
                &with(reservation(), json!({ "activated_at": null })),
                &with(
                    reservation(),
                    json!({ "activated_at": "2020-08-28T09:45:36Z" }),
                ),
                t,
            ),
            &[Activation],
        ),
        case(
            "a new datapoint",
            modify(&property(), &new_datapoint, t),
            &[Datapoint],
        ),
        case(
            "the first datapoint",
            modify(
                &with(property(), json!({ "datapoint": "$absent" })),
                &new_datapoint,
                t,
            ),
            &[Datapoint],
        ),
        case(
            "an ack arrives",
            modify(&property(), &acked, t),
            &[DatapointAck],
        ),
        case(
            "a new ack_id",
            modify(
                &acked,
                &with(
                    acked.clone(),
                    json!({ "ack": ack("11111111-1111-1111-1111-111111111111", "a2", "2020-08-28T09:37:00Z") }),
                ),
                t,
            ),
            &[DatapointAck],
        ),
    ]);
}

#[test]
fn unrelated_changes_cause_no_event() {
    let t = AT_CONNECTIVITY;
    let acked = with(
        property(),
        json!({ "ack": ack("11111111-1111-1111-1111-111111111111", ZEROS, "2020-08-28T09:36:20Z") }),
    );
    let activated = with(
        reservation(),
        json!({ "activated_at": "2020-08-28T09:45:36Z", "device_id": "d1" }),
    );
    let mut rewritten = property();
    rewritten["datapoint"]["closed"] = json!(true);
    rewritten["datapoint"]["updated_at"] = json!("2020-08-28T09:31:00Z");
    let mut ack_rewritten = acked.clone();
    ack_rewritten["ack"]["ack_status"] = json!(500);
    check(vec![
        case(
            "ip alone",
            modify(&device(), &with(device(), json!({ "ip": "10.0.0.1" })), t),
            &[],
        ),
        case(
            "connection_changed_at alone",
            modify(
                &device(),
                &with(
                    device(),
                    json!({ "connection_changed_at": "2020-08-28T09:45:36Z" }),
                ),
                t,
            ),
            &[],
        ),
        case(
            "location_provider and location_changed_at alone",
            modify(
                &device(),
                &with(
                    device(),
                    json!({ "location_provider": "ip-based", "location_changed_at": "2020-08-28T09:45:36Z" }),
                ),
                t,
            ),
            &[],
        ),
        case(
            "registration_type alone",
            modify(
                &device(),
                &with(device(), json!({ "registration_type": "Dsn" })),
                t,
            ),
            &[],
        ),
        case(
            "registered absent -> false",
            modify(
                &with(device(), json!({ "registered": "$absent" })),
                &device(),
                t,
            ),
            &[],
        ),
        case(
            "registered false -> NULL",
            modify(&device(), &with(device(), json!({ "registered": null })), t),
            &[],
        ),
        case(
            "connection_status removed",
            modify(
                &device(),
                &with(device(), json!({ "connection_status": "$absent" })),
                t,
            ),
            &[],
        ),
        case(
            "location removed",
            modify(
                &device(),
                &with(device(), json!({ "lat": "$absent", "lng": "$absent" })),
                t,
            ),
            &[],
        ),
        case("an identical rewrite", modify(&device(), &device(), t), &[]),
        case(
            "re-association to another device",
            modify(
                &activated,
                &with(activated.clone(), json!({ "device_id": "d2" })),
                t,
            ),
            &[],
        ),
        case(
            "activated_at rewritten",
            modify(
                &activated,
                &with(
                    activated.clone(),
                    json!({ "activated_at": "2021-01-01T00:00:00Z" }),
                ),
                t,
            ),
            &[],
        ),
        case(
            "reservation without activated_at changes",
            modify(
                &reservation(),
                &with(reservation(), json!({ "device_type": "Cellular" })),
                t,
            ),
            &[],
        ),
        case(
            "display_name alone",
            modify(
                &property(),
                &with(property(), json!({ "display_name": "Blue LED" })),
                t,
            ),
            &[],
        ),
        case(
            "datapoint rewritten with the same id",
            modify(&property(), &rewritten, t),
            &[],
        ),
        case(
            "datapoint removed",
            modify(
                &property(),
                &with(property(), json!({ "datapoint": "$absent" })),
                t,
            ),
            &[],
        ),
        case(
            "ack rewritten with the same ack_id",
            modify(&acked, &ack_rewritten, t),
            &[],
        ),
        case("ack removed", modify(&acked, &property(), t), &[]),
    ]);
}

#[test]
fn one_record_yields_several_events_in_event_type_order() {
    use EventType::*;
    let t = AT_CONNECTIVITY;
    let moved = with(
        device(),
        json!({ "registered": true, "connection_status": "Online", "lat": 45 }),
    );
    let records = derive(&modify(&device(), &moved, t)).unwrap();
    assert_eq!(types(&records), [Connectivity, Location, Registration]);
    // Each event's place in the twin stream: the record's sequence number,
    // and its index among the record's events.
    for (index, record) in records.iter().enumerate() {
        let order = record
            .stream_order
            .expect("derived events have a stream order");
        assert_eq!(
            order.sequence_number.to_string(),
            "4421584500000000017450439091"
        );
        assert_eq!(usize::from(order.index), index);
    }
    for record in &records {
        assert_eq!(
            record.event_id,
            EventId::derive(EVENT_ID, record.dpl_event.event_type())
        );
        assert_eq!(record.dpl_event.time().millis(), t * 1000);
        assert_eq!(record.partition_key(), "AC000W000000001");
    }

    // A new datapoint and the ack of it, in one write.
    let new = with(
        property(),
        json!({
            "datapoint": datapoint(ZEROS, json!(1), "2020-08-28T09:36:15Z"),
            "ack": ack(ZEROS, "a1", "2020-08-28T09:36:16Z"),
        }),
    );
    let records = derive(&modify(&property(), &new, t)).unwrap();
    assert_eq!(types(&records), [Datapoint, DatapointAck]);
    assert_ne!(records[0].event_id, records[1].event_id);
}

#[test]
fn insert_compares_with_an_empty_item() {
    use EventType::*;
    let t = AT_CONNECTIVITY;
    check(vec![
        case(
            "unregistered device",
            insert(&device(), t),
            &[Connectivity, Location],
        ),
        case(
            "registered device",
            insert(&with(device(), json!({ "registered": true })), t),
            &[Connectivity, Location, Registration],
        ),
        case(
            "device without status or position",
            insert(
                &with(
                    device(),
                    json!({ "connection_status": "$absent", "lat": "$absent", "lng": "$absent" }),
                ),
                t,
            ),
            &[],
        ),
        case("reserved DSN", insert(&reservation(), t), &[]),
        case(
            "reserved and provisioned DSN",
            insert(
                &with(
                    reservation(),
                    json!({ "activated_at": "2020-08-28T09:45:36Z" }),
                ),
                t,
            ),
            &[Activation],
        ),
        case(
            "property with a datapoint",
            insert(&property(), t),
            &[Datapoint],
        ),
        case(
            "property without datapoint",
            insert(&with(property(), json!({ "datapoint": "$absent" })), t),
            &[],
        ),
    ]);
}

#[test]
fn remove_and_foreign_items_cause_no_event() {
    let t = json!(AT_CONNECTIVITY);
    // Whatever the old image holds, even garbage.
    let garbage = with(
        device(),
        json!({ "registered": "yes", "connection_status": 7 }),
    );
    check(vec![
        case(
            "device removed",
            stream_record("REMOVE", Some(&device()), None, t.clone()),
            &[],
        ),
        case(
            "garbage removed",
            stream_record("REMOVE", Some(&garbage), None, t.clone()),
            &[],
        ),
        case(
            "property removed",
            stream_record("REMOVE", Some(&property()), None, t.clone()),
            &[],
        ),
        case(
            "schedule item",
            insert(
                &with(device(), json!({ "sk": "SCHEDULE#night" })),
                AT_CONNECTIVITY,
            ),
            &[],
        ),
        case(
            "sk that merely starts like ours",
            insert(&with(device(), json!({ "sk": "DEVICES" })), AT_CONNECTIVITY),
            &[],
        ),
    ]);
}

// ------------------------------------------------------------- body rules

#[test]
fn event_times_come_from_the_record_and_the_item() {
    let new = with(
        device(),
        json!({ "connection_status": "Online", "connection_changed_at": "2020-08-28T09:45:30Z" }),
    );
    let DeviceEvent::Connectivity {
        timestamp,
        connection,
        ..
    } = only_event(&modify(&device(), &new, AT_CONNECTIVITY))
    else {
        panic!("not a connectivity event")
    };
    assert_eq!(timestamp.millis(), AT_CONNECTIVITY * 1000);
    assert_eq!(
        connection.event_time.iso_seconds().to_string(),
        "2020-08-28T09:45:30Z"
    );

    // An activation has no top-level timestamp: its time is activated_at.
    let new = with(
        reservation(),
        json!({ "activated_at": "2020-08-28T09:00:00Z" }),
    );
    let event = only_event(&modify(&reservation(), &new, AT_CONNECTIVITY));
    assert_eq!(
        event.time().iso_seconds().to_string(),
        "2020-08-28T09:00:00Z"
    );
}

#[test]
fn coordinates_print_with_six_decimals_and_a_sign_column() {
    for (lat, lng, want_lat, want_long) in [
        ("44.7871", "-64.1234", " 44.787100", "-64.123400"),
        ("10", "-10", " 10.000000", "-10.000000"),
        ("-0.0000001", "0.0000005", " 0.000000", " 0.000001"),
        ("-0.0000005", "180", "-0.000001", " 180.000000"),
        ("90", "-180", " 90.000000", "-180.000000"),
        ("1E+1", "1.5e-7", " 10.000000", " 0.000000"),
    ] {
        let old = with(device(), json!({ "lat": n("0.5"), "lng": n("0.5") }));
        let new = with(device(), json!({ "lat": n(lat), "lng": n(lng) }));
        let DeviceEvent::Location { location_event, .. } =
            only_event(&modify(&old, &new, AT_CONNECTIVITY))
        else {
            panic!("not a location event")
        };
        assert_eq!(
            (location_event.lat.as_str(), location_event.long.as_str()),
            (want_lat, want_long),
            "{lat} {lng}"
        );
    }
}

#[test]
fn datapoint_values_keep_their_text_and_acks_type_them_by_base_type() {
    for (base_type, value, want_text, want_ack) in [
        ("boolean", n("1"), "1", json!(1)),
        ("integer", n("-42"), "-42", json!(-42)),
        ("decimal", n("21.5"), "21.5", json!(21.5)),
        ("float", n("1.25E+2"), "1.25E+2", json!(125.0)),
        ("string", json!("CMD_1"), "CMD_1", json!("CMD_1")),
        (
            "message",
            json!("{\"a\":1}"),
            "{\"a\":1}",
            json!("{\"a\":1}"),
        ),
        (
            "file",
            json!("https://files/1"),
            "https://files/1",
            json!("https://files/1"),
        ),
        ("string", n("7"), "7", json!("7")),
    ] {
        let new = with(
            property(),
            json!({
                "base_type": base_type,
                "datapoint": datapoint(ZEROS, value.clone(), "2020-08-28T09:36:15Z"),
                "ack": ack(ZEROS, "a1", "2020-08-28T09:36:16Z"),
            }),
        );
        let records = derive(&modify(&property(), &new, AT_DATAPOINT))
            .unwrap_or_else(|e| panic!("{base_type} {value}: {e}"));
        let [dp, dpa] = &records[..] else {
            panic!("{base_type}: {:?}", types(&records))
        };
        let DeviceEvent::Datapoint { datapoint, .. } = &dp.dpl_event else {
            panic!()
        };
        assert_eq!(datapoint.value, want_text, "{base_type} {value}");
        let DeviceEvent::DatapointAck { datapointack, .. } = &dpa.dpl_event else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(&datapointack.value).unwrap(),
            want_ack,
            "{base_type} {value}"
        );
        assert_eq!(
            matches!(datapointack.value, AckValue::Text(_)),
            want_ack.is_string()
        );
    }
}

#[test]
fn metadata_rules_follow_the_seed() {
    let new = with(
        property(),
        json!({
            "resource_tags": ["kitchen", "led"],
            "datapoint": with(datapoint(ZEROS, json!(1), "2020-08-28T09:36:15Z"),
                json!({ "metadata": { "z": "1", "a": "2", "m": "3" } })),
            "ack": ack(ZEROS, "a1", "2020-08-28T09:36:16Z"),
        }),
    );
    let records = derive(&modify(&property(), &new, AT_DATAPOINT)).unwrap();
    let json: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_slice(&r.to_json()).unwrap())
        .collect();
    // datapoint metadata has no resource_tags, datapointack's has them.
    assert!(json[0]["dpl_event"]["metadata"]
        .get("resource_tags")
        .is_none());
    assert_eq!(
        json[1]["dpl_event"]["metadata"]["resource_tags"],
        json!(["kitchen", "led"])
    );
    // A DynamoDB map has no order: datapoint metadata is sorted by key.
    let text = String::from_utf8(records[0].to_json()).unwrap();
    assert!(
        text.contains(r#""metadata":{"a":"2","m":"3","z":"1"}"#),
        "{text}"
    );

    // Without resource_tags, datapointack still has them, empty.
    let new = with(
        property(),
        json!({ "ack": ack("11111111-1111-1111-1111-111111111111", "a1", "2020-08-28T09:36:16Z") }),
    );
    let record = &derive(&modify(&property(), &new, AT_DATAPOINT)).unwrap()[0];
    let json: Value = serde_json::from_slice(&record.to_json()).unwrap();
    assert_eq!(json["dpl_event"]["metadata"]["resource_tags"], json!([]));

    // Connectivity's connection.metadata repeats the event metadata.
    let online = with(device(), json!({ "connection_status": "Online" }));
    let DeviceEvent::Connectivity {
        metadata,
        connection,
        ..
    } = only_event(&modify(&device(), &online, AT_CONNECTIVITY))
    else {
        panic!()
    };
    assert_eq!(connection.metadata, metadata);
}

#[test]
fn an_ack_takes_its_datapoint_fields_from_the_datapoint_it_acks() {
    // The same write replaces the datapoint and records the ack of the one
    // before: the ack's fields come from the old image.
    let new = with(
        property(),
        json!({
            "datapoint": datapoint(ZEROS, json!(1), "2020-08-28T09:36:15Z"),
            "ack": ack("11111111-1111-1111-1111-111111111111", "a1", "2020-08-28T09:36:16Z"),
        }),
    );
    let records = derive(&modify(&property(), &new, AT_DATAPOINT)).unwrap();
    let DeviceEvent::DatapointAck { datapointack, .. } = &records[1].dpl_event else {
        panic!("{:?}", types(&records))
    };
    assert_eq!(datapointack.id, "11111111-1111-1111-1111-111111111111");
    assert_eq!(datapointack.value, AckValue::Number(0.into()));
    assert_eq!(
        datapointack.created_at.iso_seconds().to_string(),
        "2020-08-28T09:30:00Z"
    );
}

#[test]
fn the_same_record_twice_gives_identical_events() {
    let new = with(
        property(),
        json!({
            "datapoint": with(datapoint(ZEROS, json!(1), "2020-08-28T09:36:15Z"),
                json!({ "metadata": { "k1": "a", "k2": "b", "k3": "c", "k4": "d", "k5": "e" } })),
            "ack": ack(ZEROS, "a1", "2020-08-28T09:36:16Z"),
        }),
    );
    let record = modify(&property(), &new, AT_DATAPOINT);
    // Each parse builds its hash maps with a new random seed.
    let first: Vec<Vec<u8>> = derive(&record)
        .unwrap()
        .iter()
        .map(DplRecord::to_json)
        .collect();
    for _ in 0..10 {
        let again: Vec<Vec<u8>> = derive(&record)
            .unwrap()
            .iter()
            .map(DplRecord::to_json)
            .collect();
        assert_eq!(again, first);
    }
    // Another stream record of the same change is another event.
    let mut other = record.clone();
    other["eventID"] = json!("ffff");
    assert_ne!(
        derive(&other).unwrap()[0].event_id,
        derive(&record).unwrap()[0].event_id
    );
}

// ------------------------------------------------------------- bad input

struct Bad {
    name: &'static str,
    record: Value,
    attribute: Option<&'static str>,
    kind: fn(&TwinErrorKind) -> bool,
}

fn bad(
    name: &'static str,
    record: Value,
    attribute: Option<&'static str>,
    kind: fn(&TwinErrorKind) -> bool,
) -> Bad {
    Bad {
        name,
        record,
        attribute,
        kind,
    }
}

fn datapoint_write(changes: Value) -> Value {
    let dp = with(datapoint(ZEROS, json!(1), "2020-08-28T09:36:15Z"), changes);
    modify(
        &property(),
        &with(property(), json!({ "datapoint": dp })),
        AT_DATAPOINT,
    )
}

fn ack_write(changes: Value) -> Value {
    let a = with(
        ack(
            "11111111-1111-1111-1111-111111111111",
            "a1",
            "2020-08-28T09:36:16Z",
        ),
        changes,
    );
    modify(
        &property(),
        &with(property(), json!({ "ack": a })),
        AT_DATAPOINT,
    )
}

fn online(changes: Value) -> Value {
    let new = with(device(), json!({ "connection_status": "Online" }));
    modify(&device(), &with(new, changes), AT_CONNECTIVITY)
}

fn edit(mut record: Value, edit: impl FnOnce(&mut Value)) -> Value {
    edit(&mut record);
    record
}

#[test]
fn bad_input_is_a_typed_error_naming_record_and_attribute() {
    use TwinErrorKind as K;
    let online_record = online(json!({}));
    let cases = vec![
        bad(
            "value of the wrong type",
            datapoint_write(json!({ "value": true })),
            Some("NewImage.datapoint.value"),
            |k| {
                matches!(
                    k,
                    K::WrongType {
                        expected: "N or S",
                        found: "BOOL"
                    }
                )
            },
        ),
        bad(
            "missing oem_id",
            online(json!({ "oem_id": "$absent" })),
            Some("NewImage.oem_id"),
            |k| matches!(k, K::MissingAttribute),
        ),
        bad(
            "NULL dsn",
            online(json!({ "dsn": null })),
            Some("NewImage.dsn"),
            |k| matches!(k, K::MissingAttribute),
        ),
        bad(
            "status of the wrong type",
            modify(
                &device(),
                &with(device(), json!({ "connection_status": 1 })),
                AT_CONNECTIVITY,
            ),
            Some("NewImage.connection_status"),
            |k| {
                matches!(
                    k,
                    K::WrongType {
                        expected: "S",
                        found: "N"
                    }
                )
            },
        ),
        bad(
            "registered of the wrong type in the old image",
            modify(
                &with(device(), json!({ "registered": "no" })),
                &with(device(), json!({ "registered": true })),
                AT_CONNECTIVITY,
            ),
            Some("OldImage.registered"),
            |k| {
                matches!(
                    k,
                    K::WrongType {
                        expected: "BOOL",
                        found: "S"
                    }
                )
            },
        ),
        bad(
            "unknown base type",
            modify(
                &property(),
                &with(insert_datapoint(), json!({ "base_type": "blob" })),
                AT_DATAPOINT,
            ),
            Some("NewImage.base_type"),
            |k| matches!(k, K::UnknownBaseType(t) if t == "blob"),
        ),
        bad(
            "KEYS_ONLY stream",
            edit(online_record.clone(), |r| {
                r["dynamodb"]["StreamViewType"] = json!("KEYS_ONLY")
            }),
            Some("StreamViewType"),
            |k| {
                matches!(
                    k,
                    K::NoOldImage {
                        view: Some(StreamViewType::KeysOnly)
                    }
                )
            },
        ),
        bad(
            "NEW_IMAGE stream",
            edit(online_record.clone(), |r| {
                r["dynamodb"]["StreamViewType"] = json!("NEW_IMAGE")
            }),
            Some("StreamViewType"),
            |k| {
                matches!(
                    k,
                    K::NoOldImage {
                        view: Some(StreamViewType::NewImage)
                    }
                )
            },
        ),
        bad(
            "no stream view type",
            edit(online_record.clone(), |r| {
                r["dynamodb"]
                    .as_object_mut()
                    .unwrap()
                    .remove("StreamViewType");
            }),
            Some("StreamViewType"),
            |k| matches!(k, K::NoOldImage { view: None }),
        ),
        bad(
            "MODIFY without OldImage",
            edit(online_record.clone(), |r| {
                r["dynamodb"].as_object_mut().unwrap().remove("OldImage");
            }),
            Some("OldImage"),
            |k| {
                matches!(
                    k,
                    K::NoOldImage {
                        view: Some(StreamViewType::NewAndOldImages)
                    }
                )
            },
        ),
        bad(
            "INSERT without NewImage",
            edit(insert(&device(), AT_CONNECTIVITY), |r| {
                r["dynamodb"].as_object_mut().unwrap().remove("NewImage");
            }),
            Some("NewImage"),
            |k| matches!(k, K::MissingAttribute),
        ),
        bad(
            "oversized value",
            modify(
                &property(),
                &with(
                    property(),
                    json!({
                        "base_type": "message",
                        "datapoint": datapoint(ZEROS, json!("x".repeat(MAX_VALUE_BYTES + 1)), "2020-08-28T09:36:15Z"),
                    }),
                ),
                AT_DATAPOINT,
            ),
            Some("NewImage.datapoint.value"),
            |k| matches!(k, K::ValueTooLarge { bytes, limit } if *bytes == MAX_VALUE_BYTES + 1 && *limit == MAX_VALUE_BYTES),
        ),
        bad(
            "bad time",
            online(json!({ "connection_changed_at": "yesterday" })),
            Some("NewImage.connection_changed_at"),
            |k| matches!(k, K::BadTimestamp { text } if text == "yesterday"),
        ),
        bad(
            "time with an offset",
            datapoint_write(json!({ "created_at": "2020-08-28T11:36:15+02:00" })),
            Some("NewImage.datapoint.created_at"),
            |k| matches!(k, K::BadTimestamp { .. }),
        ),
        bad(
            "unknown event name",
            edit(online_record.clone(), |r| r["eventName"] = json!("UPSERT")),
            Some("eventName"),
            |k| matches!(k, K::UnknownEventName(name) if name == "UPSERT"),
        ),
        bad(
            "no ApproximateCreationDateTime",
            edit(online_record.clone(), |r| {
                r["dynamodb"]
                    .as_object_mut()
                    .unwrap()
                    .remove("ApproximateCreationDateTime");
            }),
            Some("ApproximateCreationDateTime"),
            |k| matches!(k, K::MissingCreationTime),
        ),
        bad(
            "ApproximateCreationDateTime of zero",
            edit(online_record.clone(), |r| {
                r["dynamodb"]["ApproximateCreationDateTime"] = json!(0)
            }),
            Some("ApproximateCreationDateTime"),
            |k| matches!(k, K::MissingCreationTime),
        ),
        bad(
            "no SequenceNumber",
            edit(online_record.clone(), |r| {
                r["dynamodb"]
                    .as_object_mut()
                    .unwrap()
                    .remove("SequenceNumber");
            }),
            Some("SequenceNumber"),
            |k| matches!(k, K::MissingAttribute),
        ),
        bad(
            "SequenceNumber that is no number",
            edit(online_record.clone(), |r| {
                r["dynamodb"]["SequenceNumber"] = json!("44215845-0001")
            }),
            Some("SequenceNumber"),
            |k| matches!(k, K::BadSequenceNumber(text) if text == "44215845-0001"),
        ),
        bad(
            "SequenceNumber of 41 digits",
            edit(online_record.clone(), |r| {
                r["dynamodb"]["SequenceNumber"] = json!("1".repeat(41))
            }),
            Some("SequenceNumber"),
            |k| matches!(k, K::BadSequenceNumber(_)),
        ),
        bad(
            "ApproximateCreationDateTime before 1970",
            edit(online_record.clone(), |r| {
                r["dynamodb"]["ApproximateCreationDateTime"] = json!(-86400)
            }),
            Some("ApproximateCreationDateTime"),
            |k| matches!(k, K::BadTimestamp { text } if text == "-86400"),
        ),
        bad(
            "latitude out of range",
            modify(
                &device(),
                &with(device(), json!({ "lat": 91 })),
                AT_CONNECTIVITY,
            ),
            Some("NewImage.lat"),
            |k| matches!(k, K::InvalidNumber { text, .. } if text == "91"),
        ),
        bad(
            "longitude that is no number",
            modify(
                &device(),
                &with(device(), json!({ "lng": n("east") })),
                AT_CONNECTIVITY,
            ),
            Some("NewImage.lng"),
            |k| matches!(k, K::InvalidNumber { .. }),
        ),
        bad(
            "latitude without longitude",
            modify(
                &device(),
                &with(device(), json!({ "lat": 1, "lng": "$absent" })),
                AT_CONNECTIVITY,
            ),
            Some("NewImage.lng"),
            |k| matches!(k, K::MissingAttribute),
        ),
        bad(
            "non-numeric value of a boolean property",
            datapoint_write(json!({ "value": "true" })),
            Some("NewImage.datapoint.value"),
            |k| matches!(k, K::InvalidNumber { text, .. } if text == "true"),
        ),
        bad(
            "infinite value",
            datapoint_write(json!({ "value": n("1e400") })),
            Some("NewImage.datapoint.value"),
            |k| matches!(k, K::InvalidNumber { .. }),
        ),
        bad(
            "fractional ack_status",
            ack_write(json!({ "ack_status": 200.5 })),
            Some("NewImage.ack.ack_status"),
            |k| matches!(k, K::InvalidNumber { text, .. } if text == "200.5"),
        ),
        bad(
            "ack without ack_id",
            ack_write(json!({ "ack_id": "$absent" })),
            Some("NewImage.ack.ack_id"),
            |k| matches!(k, K::MissingAttribute),
        ),
        bad(
            "ack of an unknown datapoint",
            ack_write(json!({ "id": "22222222-2222-2222-2222-222222222222" })),
            Some("NewImage.ack.id"),
            |k| matches!(k, K::AckedDatapointUnknown { id } if id.starts_with("2222")),
        ),
        bad(
            "datapoint that is not a map",
            modify(
                &property(),
                &with(property(), json!({ "datapoint": "1" })),
                AT_DATAPOINT,
            ),
            Some("NewImage.datapoint"),
            |k| {
                matches!(
                    k,
                    K::WrongType {
                        expected: "M",
                        found: "S"
                    }
                )
            },
        ),
        bad(
            "datapoint metadata of the wrong type",
            datapoint_write(json!({ "metadata": { "b": "ok", "a": 1 } })),
            Some("NewImage.datapoint.metadata.a"),
            |k| {
                matches!(
                    k,
                    K::WrongType {
                        expected: "S",
                        found: "N"
                    }
                )
            },
        ),
        bad(
            "resource tag of the wrong type",
            edit(ack_write(json!({})), |r| {
                r["dynamodb"]["NewImage"]["resource_tags"] =
                    json!({ "L": [{ "S": "a" }, { "N": "1" }] })
            }),
            Some("NewImage.resource_tags[1]"),
            |k| {
                matches!(
                    k,
                    K::WrongType {
                        expected: "S",
                        found: "N"
                    }
                )
            },
        ),
        bad(
            "sort key missing",
            edit(online_record.clone(), |r| {
                r["dynamodb"]["Keys"].as_object_mut().unwrap().remove("sk");
            }),
            Some("Keys.sk"),
            |k| matches!(k, K::MissingAttribute),
        ),
    ];
    for Bad {
        name,
        record,
        attribute,
        kind,
    } in cases
    {
        let err = match derive(&record) {
            Err(err) => err,
            Ok(records) => panic!("{name}: accepted, {:?}", types(&records)),
        };
        assert!(kind(err.kind()), "{name}: {err:?}");
        assert_eq!(err.stream_event_id(), EVENT_ID, "{name}");
        assert_eq!(err.attribute(), attribute, "{name}");
        let message = err.to_string();
        let prefix = format!("stream record {EVENT_ID}: {}", attribute.unwrap_or(""));
        assert!(message.starts_with(&prefix), "{name}: {message}");
        // Errors are as deterministic as events.
        assert_eq!(derive(&record).unwrap_err(), err, "{name}");
    }
}

#[test]
fn a_wrongly_typed_value_reads_as_documented() {
    let err = derive(&datapoint_write(json!({ "value": true }))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("stream record {EVENT_ID}: NewImage.datapoint.value: expected N or S, found BOOL")
    );
}

#[test]
fn errors_quote_at_most_an_excerpt_of_the_input() {
    let long = "y".repeat(10_000);
    let err = derive(&online(json!({ "connection_changed_at": long }))).unwrap_err();
    assert!(err.to_string().len() < 300, "{err}");
}

#[test]
fn attributes_no_event_needs_are_not_checked() {
    // A broken ip does not stop a connectivity event; a broken status does
    // not stop a record that changes nothing of interest.
    let records = derive(&online(json!({ "ip": 5 }))).unwrap();
    assert_eq!(types(&records), [EventType::Connectivity]);
    let broken = with(
        device(),
        json!({ "connection_changed_at": 5, "lat": "north" }),
    );
    assert!(derive(&modify(
        &broken,
        &with(broken.clone(), json!({ "ip": "1.1.1.1" })),
        AT_CONNECTIVITY
    ))
    .unwrap()
    .is_empty());
}

/// A new datapoint in a property item.
fn insert_datapoint() -> Value {
    with(
        property(),
        json!({ "datapoint": datapoint(ZEROS, json!(1), "2020-08-28T09:36:15Z") }),
    )
}
