//! Every sample event in `events/twin-events/` goes through the pure part
//! of the handler (derivation and entry building) with the expected result.

mod common;

use dpl::EventType;
use twin_events::batch::Batch;

/// (file, events, malformed records, event types in order)
const EXPECTED: &[(&str, usize, usize, &[EventType])] = &[
    ("activation.json", 1, 0, &[EventType::Activation]),
    ("connectivity.json", 1, 0, &[EventType::Connectivity]),
    ("location.json", 1, 0, &[EventType::Location]),
    ("registration.json", 1, 0, &[EventType::Registration]),
    ("datapoint.json", 1, 0, &[EventType::Datapoint]),
    ("datapointack.json", 1, 0, &[EventType::DatapointAck]),
    (
        "mixed-batch.json",
        8,
        0,
        &[
            EventType::Activation,
            EventType::Connectivity,
            EventType::Location,
            EventType::Connectivity,
            EventType::Location,
            EventType::Registration,
            EventType::Datapoint,
            EventType::DatapointAck,
        ],
    ),
    (
        "malformed-batch.json",
        2,
        1,
        &[EventType::Connectivity, EventType::Datapoint],
    ),
];

#[test]
fn every_sample_event_derives_the_expected_events() {
    let mut files: Vec<String> = std::fs::read_dir(common::sample_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|e| e.0.to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed, "every sample file has an expectation");

    for &(file, events, malformed, types) in EXPECTED {
        let records = common::sample(file);
        let batch = Batch::from_records(&records);
        assert_eq!(batch.entries.len(), events, "{file}: events");
        assert_eq!(batch.rejected.len(), malformed, "{file}: malformed records");
        let derived = common::expected_records(&records);
        let derived_types: Vec<EventType> =
            derived.iter().map(|r| r.dpl_event.event_type()).collect();
        assert_eq!(derived_types, types, "{file}: types");
        for (entry, record) in batch.entries.iter().zip(&derived) {
            assert_eq!(entry.partition_key(), record.dpl_event.dsn(), "{file}");
            assert_eq!(entry.data(), record.to_json(), "{file}");
        }
    }
}

#[test]
fn the_malformed_sample_names_its_record_and_attribute() {
    let records = common::sample("malformed-batch.json");
    let batch = Batch::from_records(&records);
    let rejected = &batch.rejected[0];
    assert_eq!(rejected.record, 1);
    assert_eq!(
        rejected.error.attribute(),
        Some("NewImage.connection_status")
    );
    let message = rejected.error.to_string();
    assert!(message.contains(&records[1].event_id), "{message}");
}
