//! Every parser of outside data under arbitrary input: bytes, text and JSON
//! values. Each one returns (never panics), refuses with a typed error that
//! names where the input went wrong (line and column, the staging line, the
//! field, the segment, the item), and reads back what we write.
//!
//! Parsers: `DplRecord::from_json` (DPL stream records), staging lines
//! (`StagingReader`, `RawRow::parse`), `Selection` (the CLI's text form and
//! the JSON of a subscription), subscriptions as JSON and as DynamoDB items
//! (`store::item::from_item`, feature `streams`), Kinesis stream and role
//! ARNs, `ConnectionString::parse`, catch-up task bodies
//! (`CatchUpRequest::from_body`, feature `streams`). Hour requests and
//! export task bodies are the hourly-export function's
//! (`functions/hourly-export/tests/request_proptest.rs`).

use std::io::BufReader;

use dpl::eventhubs::connection::{ConnectionString, ConnectionStringError};
use dpl::export::staging::{encode, gzip_reader, RawRow, StagingError, StagingReader};
use dpl::streams::subscription::{
    validate_role_arn, KinesisStreamArn, Selection, Subscription, SubscriptionError,
};
use dpl::{DplRecord, EventType};
use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value, nested a few levels, with keys that sometimes are the
/// fields our parsers look for (so that the parsers get past the first one).
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("dpl_event".to_owned()),
        Just("event_id".to_owned()),
        Just("metadata".to_owned()),
        Just("timestamp".to_owned()),
        Just("event_type".to_owned()),
        Just("catch_up".to_owned()),
        Just("shard".to_owned()),
        Just("hour".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        Just(Value::from("datapoint")),
        Just(Value::from("2020-08-28T09:45:36.000+0000")),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid DPL record of any type, OEM, DSN and id.
fn record() -> impl Strategy<Value = DplRecord> {
    (
        proptest::sample::select(EventType::ALL.to_vec()),
        "[a-z0-9]{1,12}",
        "[A-Za-z0-9_-]{1,12}",
        "AC[0-9A-Z]{6,13}",
        "[A-Za-z0-9_]{1,16}",
        any::<u64>(),
    )
        .prop_map(|(event_type, oem, model, dsn, property, n)| {
            dpl::examples::seed_record(event_type, &oem, &model, &dsn, &property, n)
        })
}

/// The error of a serde_json parse names the line and column it stopped at.
fn names_its_place(error: &serde_json::Error) -> bool {
    error.line() >= 1 && error.to_string().contains(" at line ")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // ------------------------------------------------------------ DplRecord

    #[test]
    fn dpl_records_from_arbitrary_bytes_are_refused_with_their_place(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Err(error) = DplRecord::from_json(&bytes) {
            prop_assert!(names_its_place(&error), "{error}");
        }
    }

    #[test]
    fn dpl_records_from_arbitrary_json_are_refused_with_their_place(value in json()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        match DplRecord::from_json(&bytes) {
            Err(error) => prop_assert!(names_its_place(&error), "{error}"),
            // Whatever is accepted is a record that writes itself back.
            Ok(record) => prop_assert_eq!(DplRecord::from_json(&record.to_json()).unwrap(), record),
        }
    }

    #[test]
    fn a_record_mutated_anywhere_is_refused_or_read_never_panics(
        record in record(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = record.to_json();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Err(error) = DplRecord::from_json(&bytes) {
            prop_assert!(names_its_place(&error), "{error}");
        }
    }

    #[test]
    fn valid_records_round_trip(record in record()) {
        let read = DplRecord::from_json(&record.to_json()).unwrap();
        prop_assert_eq!(&read, &record);
        prop_assert_eq!(read.to_json(), record.to_json());
    }

    // -------------------------------------------------------- staging lines

    #[test]
    fn staging_objects_of_arbitrary_bytes_fail_naming_the_line(
        lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..6),
    ) {
        let text: Vec<u8> = lines.join(&b'\n');
        let expected_lines = text.split(|b| *b == b'\n').count() as u64;
        for row in StagingReader::new(BufReader::new(text.as_slice())) {
            match row {
                Ok(_) => {}
                Err(StagingError::Record { line, source }) => {
                    prop_assert!((1..=expected_lines).contains(&line), "line {line}");
                    prop_assert!(names_its_place(&source), "{source}");
                    let message = StagingError::Record { line, source }.to_string();
                    prop_assert!(message.starts_with(&format!("staging line {line} ")), "{message}");
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
        for line in text.split(|b| *b == b'\n') {
            if let Err(error) = RawRow::parse(line) {
                prop_assert!(error.to_string().contains("line"), "{error}");
            }
        }
    }

    #[test]
    fn staging_lines_of_arbitrary_json_never_panic(values in prop::collection::vec(json(), 1..4)) {
        let text: Vec<u8> = values
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect::<Vec<_>>()
            .join(&b'\n');
        for (n, row) in StagingReader::new(BufReader::new(text.as_slice())).enumerate() {
            if let Err(StagingError::Record { line, .. }) = row {
                prop_assert_eq!(line, n as u64 + 1);
            }
        }
    }

    #[test]
    fn staged_records_read_back_with_their_sort_keys(
        records in prop::collection::vec(record(), 1..8),
    ) {
        let mut records = records;
        dpl::export::staging::sort_rows(&mut records);
        let read: Vec<DplRecord> = gzip_reader(encode(&records).as_slice())
            .collect::<Result<_, _>>()
            .unwrap();
        // Staging lines are the records' JSON, one per line.
        let text: Vec<u8> = records.iter().map(DplRecord::to_json).collect::<Vec<_>>().join(&b'\n');
        prop_assert_eq!(&read, &records);
        for (line, record) in text.split(|b| *b == b'\n').zip(&records) {
            prop_assert_eq!(RawRow::parse(line).unwrap().sort_key(), record.sort_key());
        }
    }

    // ------------------------------------------------------------ Selection

    #[test]
    fn selections_from_arbitrary_text_are_refused_naming_the_field(text in "\\PC{0,40}") {
        match Selection::parse_names("models", &text) {
            Err(error) => prop_assert!(error.to_string().starts_with("models "), "{error}"),
            Ok(selection) => prop_assert_eq!(
                Selection::parse_names("models", &selection.to_string()).unwrap(),
                selection
            ),
        }
        match Selection::parse_event_types(&text) {
            Err(error) => prop_assert!(error.to_string().starts_with("event_types"), "{error}"),
            Ok(selection) => prop_assert_eq!(
                Selection::parse_event_types(&selection.to_string()).unwrap(),
                selection
            ),
        }
    }

    #[test]
    fn valid_selections_round_trip_as_text_and_json(
        names in prop::collection::btree_set("[A-Za-z0-9_.:-]{1,20}", 0..5),
    ) {
        let selection = if names.is_empty() {
            Selection::All
        } else {
            Selection::only(names)
        };
        let text = selection.to_string();
        prop_assert_eq!(&Selection::parse_names("dsns", &text).unwrap(), &selection);
        let json = serde_json::to_value(&selection).unwrap();
        prop_assert_eq!(serde_json::from_value::<Selection<String>>(json).unwrap(), selection);
    }

    #[test]
    fn selections_and_subscriptions_from_arbitrary_json_never_panic(value in json()) {
        let _ = serde_json::from_value::<Selection<String>>(value.clone());
        let _ = serde_json::from_value::<Selection<EventType>>(value.clone());
        let text = serde_json::to_vec(&value).unwrap();
        if let Err(error) = serde_json::from_slice::<Subscription>(&text) {
            prop_assert!(names_its_place(&error), "{error}");
        }
    }

    // ----------------------------------------------------------------- ARNs

    #[test]
    fn arns_from_arbitrary_bytes_are_refused_quoting_them(
        bytes in prop::collection::vec(any::<u8>(), 0..96),
    ) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match text.parse::<KinesisStreamArn>() {
            Ok(arn) => prop_assert_eq!(arn.to_string(), text.as_str()),
            Err(error) => prop_assert!(error.to_string().contains(&format!("`{text}`")), "{error}"),
        }
        match validate_role_arn(&text) {
            Ok(()) => prop_assert!(text.starts_with("arn:")),
            Err(error) => {
                prop_assert!(matches!(error, SubscriptionError::RoleArn { .. }), "{error}");
                prop_assert!(error.to_string().starts_with("role_arn `"), "{error}");
            }
        }
    }

    #[test]
    fn valid_role_arns_are_accepted(
        account in "[0-9]{12}",
        path in "(/[a-z]{1,8}){0,2}/",
        name in "[A-Za-z0-9_+=,.@-]{1,64}",
    ) {
        let arn = format!("arn:aws:iam::{account}:role{path}{name}");
        prop_assert!(validate_role_arn(&arn).is_ok(), "{arn}");
    }

    // ---------------------------------------------------- connection strings

    #[test]
    fn connection_strings_from_arbitrary_text_never_echo_the_input(
        text in "\\PC{0,120}",
        key in "[A-Za-z0-9+/]{16,44}=",
    ) {
        // Arbitrary text, and arbitrary text around a real-looking key.
        for input in [text.clone(), format!("{text};SharedAccessKey={key}")] {
            if let Err(error) = ConnectionString::parse(&input) {
                let message = error.to_string();
                prop_assert!(message.starts_with("connection string "), "{message}");
                prop_assert!(!message.contains(&key), "{message} holds the key");
                // Segments are counted from 1.
                if let ConnectionStringError::Malformed(segment) = error {
                    prop_assert!((1..=input.split(';').count()).contains(&segment));
                }
            }
        }
    }

    #[test]
    fn valid_connection_strings_round_trip(
        namespace in "[a-z][a-z0-9-]{4,48}[a-z0-9]",
        key_name in "[A-Za-z0-9_]{1,20}",
        key in "[A-Za-z0-9+/]{43}=",
        hub in proptest::option::of("[a-z0-9][a-z0-9._-]{0,30}[a-z0-9]"),
    ) {
        let host = format!("{namespace}.servicebus.windows.net");
        let mut text = format!("Endpoint=sb://{host}/;SharedAccessKeyName={key_name};SharedAccessKey={key}");
        if let Some(hub) = &hub {
            text.push_str(&format!(";EntityPath={hub}"));
        }
        let parsed = ConnectionString::parse(&text).unwrap();
        prop_assert_eq!(parsed.namespace_host(), host.as_str());
        prop_assert_eq!(parsed.key_name(), key_name.as_str());
        prop_assert_eq!(parsed.entity_path(), hub.as_deref());
        prop_assert!(!format!("{parsed:?}").contains(&key), "Debug shows the key");
    }
}

#[cfg(feature = "streams")]
mod streams {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;
    use dpl::streams::queue::CatchUpRequest;
    use dpl::streams::store::item::{attr, from_item, to_item};
    use dpl::streams::store::SubscriptionStoreError;
    use dpl::streams::subscription::{
        Credentials, Destination, Filters, SubscriptionId, SubscriptionSpec,
    };
    use dpl::Timestamp;

    use super::*;

    fn attribute() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            "\\PC{0,24}".prop_map(AttributeValue::S),
            Just(AttributeValue::S("sub-0123456789abcdef".into())),
            Just(AttributeValue::S("kinesis".into())),
            Just(AttributeValue::S("eventhubs".into())),
            Just(AttributeValue::S("assume_role".into())),
            Just(AttributeValue::S("*".into())),
            Just(AttributeValue::S("enabled".into())),
            "-?[0-9]{1,14}".prop_map(AttributeValue::N),
            "\\PC{0,6}".prop_map(AttributeValue::N),
            any::<bool>().prop_map(AttributeValue::Bool),
            prop::collection::vec("\\PC{0,8}", 0..3).prop_map(AttributeValue::Ss),
            Just(AttributeValue::Null(true)),
        ]
    }

    /// An item of arbitrary values under the attribute names we read, and
    /// some others.
    fn item() -> impl Strategy<Value = HashMap<String, AttributeValue>> {
        let names = vec![
            attr::ID,
            "oem_id",
            "name",
            "description",
            "transport",
            "stream_arn",
            "namespace",
            "hub",
            "credentials",
            "role_arn",
            attr::EXTERNAL_ID,
            "secret_id",
            "event_types",
            "models",
            "properties",
            "dsns",
            "status",
            "created_at",
            attr::EVENT_ID_IN_PAYLOAD,
            "unknown",
        ];
        prop::collection::hash_map(
            proptest::sample::select(names).prop_map(str::to_owned),
            attribute(),
            0..20,
        )
    }

    fn subscription() -> impl Strategy<Value = Subscription> {
        (
            "[a-z0-9]{1,12}",
            "[A-Za-z0-9 ]{0,20}[A-Za-z0-9]",
            any::<u64>(),
            "[a-z][a-z0-9-]{1,20}",
            any::<bool>(),
            prop::collection::btree_set("AC[0-9]{6}", 0..3),
            // Whole seconds: the JSON form writes times to the second.
            (0i64..4_000_000_000).prop_map(|s| s * 1000),
        )
            .prop_map(|(oem, name, bits, stream, id_in_payload, dsns, at)| {
                let mut subscription = Subscription::new(
                    SubscriptionId::from_bits(bits),
                    SubscriptionSpec {
                        oem_id: oem.clone(),
                        name,
                        description: String::new(),
                        destination: Destination::Kinesis {
                            stream_arn: format!(
                                "arn:aws:kinesis:eu-west-1:123456789012:stream/{stream}"
                            )
                            .parse()
                            .unwrap(),
                        },
                        credentials: Credentials::AssumeRole {
                            role_arn: "arn:aws:iam::123456789012:role/dpl-delivery-w".into(),
                            external_id: Some(format!("dpl-{oem}")),
                        },
                        filters: Filters {
                            dsns: if dsns.is_empty() {
                                Selection::All
                            } else {
                                Selection::only(dsns)
                            },
                            ..Filters::all()
                        },
                    },
                    Timestamp::from_millis(at).unwrap(),
                )
                .unwrap();
                subscription.event_id_in_payload = id_in_payload;
                subscription
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn subscription_items_of_arbitrary_values_are_refused_naming_the_item(item in item()) {
            match from_item(&item) {
                Ok(subscription) => prop_assert!(subscription.validate().is_ok()),
                Err(SubscriptionStoreError::Corrupt { id, reason }) => {
                    let named = match item.get(attr::ID) {
                        Some(AttributeValue::S(text)) => text.clone(),
                        _ => "(no id)".to_owned(),
                    };
                    prop_assert_eq!(id, named);
                    prop_assert!(!reason.is_empty());
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }

        #[test]
        fn subscriptions_round_trip_as_items_and_json(subscription in subscription()) {
            prop_assert_eq!(&from_item(&to_item(&subscription)).unwrap(), &subscription);
            let json = serde_json::to_vec(&subscription).unwrap();
            prop_assert_eq!(serde_json::from_slice::<Subscription>(&json).unwrap(), subscription);
        }

        #[test]
        fn catch_up_bodies_of_arbitrary_text_are_refused_with_their_place(
            text in "\\PC{0,60}",
            value in json(),
        ) {
            for body in [text.clone(), value.to_string()] {
                if let Err(error) = CatchUpRequest::from_body(&body) {
                    prop_assert!(names_its_place(&error), "{error}");
                }
            }
        }

        #[test]
        fn catch_up_bodies_round_trip(shard in "shardId-[0-9]{12}") {
            let request = CatchUpRequest::new(&shard);
            prop_assert_eq!(CatchUpRequest::from_body(&request.to_json()).unwrap(), request);
        }
    }
}
