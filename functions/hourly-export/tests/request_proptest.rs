//! The hourly-export function's parsers of outside data under arbitrary
//! input: what it is invoked with (`Request`: an hour request, the
//! schedule's event, an SQS event), export task bodies
//! (`HourRequest::from_body`) and hours (`parse_hour`). None panics; each
//! refuses with a typed error naming where the input went wrong (serde's
//! line and column, the hour's text); what we write reads back. The
//! library's parsers are in `shared/tests/parsers_proptest.rs`.

use dpl::export::keys::{parse_hour, KeyError};
use dpl::export::Partition;
use dpl::{EventType, Timestamp};
use hourly_export::request::{HourRequest, Request, RequestError};
use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value, with keys that are sometimes the requests' own.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("hour".to_owned()),
        Just("oem_id".to_owned()),
        Just("event_type".to_owned()),
        Just("force".to_owned()),
        Just("Records".to_owned()),
        Just("body".to_owned()),
        Just("detail-type".to_owned()),
        Just("source".to_owned()),
        Just("detail".to_owned()),
        Just("time".to_owned()),
        "[a-z]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
        Just(Value::from("2020-08-28T09")),
        Just(Value::from("datapoint")),
        Just(Value::from("2020-08-28T10:10:00Z")),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn partition() -> impl Strategy<Value = Partition> {
    (
        0i64..4_000_000,
        "[A-Za-z0-9_-]{1,32}",
        proptest::sample::select(EventType::ALL.to_vec()),
    )
        .prop_map(|(hours, oem_id, event_type)| Partition {
            hour: Timestamp::from_millis(hours * 3_600_000).unwrap(),
            oem_id,
            event_type,
        })
}

/// Checks a task body: a refusal names serde's line and column; an
/// accepted one reads its partition without panicking and writes itself
/// back.
fn check_body(body: &str) -> Result<(), TestCaseError> {
    match HourRequest::from_body(body) {
        Err(RequestError::MalformedTask(message)) => {
            prop_assert!(message.contains(" at line "), "{message}");
        }
        Err(other) => prop_assert!(false, "not a MalformedTask: {other}"),
        Ok(task) => {
            match task.partition() {
                Ok(_) => {}
                Err(RequestError::Hour(KeyError::BadHour(hour))) => {
                    prop_assert_eq!(hour, task.hour.clone())
                }
                Err(RequestError::Hour(KeyError::UnsafeOemId(oem))) => {
                    prop_assert_eq!(Some(oem), task.oem_id.clone())
                }
                Err(RequestError::EventTypeWithoutOem(t)) => {
                    prop_assert_eq!(Some(t), task.event_type)
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
            prop_assert_eq!(HourRequest::from_body(&task.to_body()).unwrap(), task);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn task_bodies_of_arbitrary_bytes_are_refused_with_their_place(
        bytes in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        check_body(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn task_bodies_of_arbitrary_json_are_refused_or_read(value in json()) {
        check_body(&value.to_string())?;
    }

    #[test]
    fn invocations_of_arbitrary_json_never_panic(value in json()) {
        // The function's whole input: the variant that fits, or serde's error.
        if let Ok(Request::Tasks(event)) = serde_json::from_value::<Request>(value.clone()) {
            for message in &event.records {
                if let Some(body) = &message.body {
                    check_body(body)?;
                }
            }
        }
        if let Ok(Request::Hour(request)) = serde_json::from_value::<Request>(value) {
            let _ = request.partition();
        }
    }

    #[test]
    fn hours_of_arbitrary_text_are_refused_quoting_them(text in "\\PC{0,24}") {
        match parse_hour(&text) {
            Ok(hour) => prop_assert_eq!(hour, hour.hour_start()),
            Err(error) => prop_assert_eq!(error, KeyError::BadHour(text.clone())),
        }
    }

    #[test]
    fn task_bodies_round_trip_to_their_partition(partition in partition()) {
        let body = HourRequest::task(&partition).to_body();
        let task = HourRequest::from_body(&body).unwrap();
        prop_assert_eq!(task.partition().unwrap(), Some(partition.clone()));
        let request: Request = serde_json::from_str(&body).unwrap();
        prop_assert_eq!(request, Request::Hour(task));
    }

    #[test]
    fn hours_round_trip_in_both_spellings(partition in partition()) {
        let iso = partition.hour.iso_seconds().to_string();
        prop_assert_eq!(parse_hour(&iso[..13]).unwrap(), partition.hour);
        let folder = format!("{}-{}", &iso[..10], &iso[11..13]);
        prop_assert_eq!(parse_hour(&folder).unwrap(), partition.hour);
    }
}
