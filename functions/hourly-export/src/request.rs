//! What the function is invoked with, one shape per trigger (samples in
//! `events/hourly-export/`):
//!
//! - the hourly schedule's EventBridge event (`scheduled.json`);
//! - one hour to export (`hour.json`), a manual run;
//! - an SQS event of export tasks (`task.json`), the fanned-out run: each
//!   message body is an [`HourRequest`] naming one partition (OEM, event
//!   type, hour), as [`HourRequest::task`] writes it.
//!
//! [`Request`] is untagged: serde tries the variants in order. An hour
//! request has a required `hour` and no other fields than its own; an
//! EventBridge event requires `detail-type`, `source` and `detail`; an SQS
//! event requires `Records`. No shape has the required fields of another,
//! so each sample parses as its own variant (tested below).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use dpl::export::keys::{check_oem_id, parse_hour, KeyError};
use dpl::export::{Partition, TimeRange};
use dpl::{EventType, Timestamp};
use serde::{Deserialize, Serialize};

/// One hour to export, optionally one OEM only, optionally one event type
/// of that OEM only (one partition: an export task), optionally even when
/// its manifests are current.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HourRequest {
    /// `2020-08-28T09` (or a full timestamp in that hour).
    pub hour: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oem_id: Option<String>,
    /// The event type as events spell it (`connectivity`, not the export
    /// name `connection`). Needs `oem_id`: together they name a partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventType>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Export even a partition whose file was made from staging objects
    /// that are gone, replacing it with fewer rows. Off: such a request
    /// fails with an error naming the objects.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_shrink: bool,
    /// One time range of a split partition's export (needs `oem_id` and
    /// `event_type`): the task exports that range's rows as its parts of
    /// the split's upload (`docs/export.md`, "Partitions of any size").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeTask>,
}

/// `"range": {"split": "…16 hex digits…", "index": 0, "of": 3}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeTask {
    /// The split's id ([`dpl::export::range_task::split_id`]).
    pub split: String,
    pub index: u32,
    pub of: u32,
}

impl RangeTask {
    pub fn range(&self) -> TimeRange {
        TimeRange {
            index: self.index,
            of: self.of,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Request {
    Hour(HourRequest),
    Scheduled(Box<EventBridgeEvent<serde_json::Value>>),
    Tasks(SqsEvent),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Hour(#[from] KeyError),
    #[error("the scheduled event has no usable `time`")]
    NoTime,
    #[error("`event_type` ({0}) selects a partition and needs `oem_id`")]
    EventTypeWithoutOem(EventType),
    #[error("an export task is not an hour request: {0}")]
    MalformedTask(String),
    #[error("an SQS message has no body")]
    NoBody,
    #[error("`range` selects a range of one partition and needs `oem_id` and `event_type`")]
    RangeWithoutPartition,
    #[error("`range` {index} of {of} of split {split:?} is not a range (index below of, of 1 to 100, split 16 hex digits)")]
    BadRange { split: String, index: u32, of: u32 },
}

impl HourRequest {
    /// The export task of one partition: the body of one queue message.
    pub fn task(partition: &Partition) -> Self {
        // `2020-08-28T09:00:00Z` -> `2020-08-28T09`, as operators write it.
        let hour = partition.hour.hour_start().iso_seconds().to_string();
        Self {
            hour: hour[..13].to_owned(),
            oem_id: Some(partition.oem_id.clone()),
            event_type: Some(partition.event_type),
            force: false,
            allow_shrink: false,
            range: None,
        }
    }

    /// The export task of range `range` of split `split` of `partition`.
    pub fn range_task(partition: &Partition, split: &str, range: TimeRange) -> Self {
        Self {
            range: Some(RangeTask {
                split: split.to_owned(),
                index: range.index,
                of: range.of,
            }),
            ..Self::task(partition)
        }
    }

    /// The range this request names, checked; `None` for a whole
    /// partition or hour.
    pub fn checked_range(&self) -> Result<Option<&RangeTask>, RequestError> {
        let Some(range) = &self.range else {
            return Ok(None);
        };
        if self.oem_id.is_none() || self.event_type.is_none() {
            return Err(RequestError::RangeWithoutPartition);
        }
        let hex = range.split.len() == 16 && range.split.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex || !range.range().is_valid() {
            return Err(RequestError::BadRange {
                split: range.split.clone(),
                index: range.index,
                of: range.of,
            });
        }
        Ok(Some(range))
    }

    /// Reads an export task from a queue message body.
    pub fn from_body(body: &str) -> Result<Self, RequestError> {
        serde_json::from_str(body).map_err(|e| RequestError::MalformedTask(e.to_string()))
    }

    /// The JSON of this request, as a queue message body.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("an hour request always serializes")
    }

    pub fn hour(&self) -> Result<Timestamp, KeyError> {
        parse_hour(&self.hour)
    }

    /// The one partition this request names, if it names one (OEM and event
    /// type); an error if the request is inconsistent.
    pub fn partition(&self) -> Result<Option<Partition>, RequestError> {
        let hour = self.hour()?;
        if let Some(oem_id) = &self.oem_id {
            check_oem_id(oem_id)?;
        }
        match (&self.oem_id, self.event_type) {
            (Some(oem_id), Some(event_type)) => Ok(Some(Partition {
                hour,
                oem_id: oem_id.clone(),
                event_type,
            })),
            (None, Some(event_type)) => Err(RequestError::EventTypeWithoutOem(event_type)),
            (_, None) => Ok(None),
        }
    }
}

/// The schedule's firing time: retries of one firing carry the same time,
/// so they look at the same hours.
pub fn scheduled_time(
    event: &EventBridgeEvent<serde_json::Value>,
) -> Result<Timestamp, RequestError> {
    let time = event.time.ok_or(RequestError::NoTime)?;
    Timestamp::from_millis(time.timestamp_millis()).map_err(|_| RequestError::NoTime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Request {
        let path = format!(
            "{}/../../events/hourly-export/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn every_sample_parses_as_its_own_variant() {
        let dir = format!("{}/../../events/hourly-export", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["hour.json", "scheduled.json", "task.json"]);
        for name in names {
            let variant = match sample(&name) {
                Request::Hour(_) => "hour.json",
                Request::Scheduled(_) => "scheduled.json",
                Request::Tasks(_) => "task.json",
            };
            assert_eq!(variant, name);
        }
    }

    #[test]
    fn the_schedule_sample_is_a_scheduled_request_at_its_time() {
        let Request::Scheduled(event) = sample("scheduled.json") else {
            panic!("not read as a scheduled event");
        };
        assert_eq!(scheduled_time(&event).unwrap(), at("2020-08-28T10:10:00Z"));
    }

    #[test]
    fn the_hour_sample_is_an_hour_request() {
        let Request::Hour(hour) = sample("hour.json") else {
            panic!("not read as an hour request");
        };
        assert_eq!(hour.hour().unwrap(), at("2020-08-28T09:00:00Z"));
        assert_eq!(hour.oem_id.as_deref(), Some("abcd1234"));
        assert_eq!(hour.partition(), Ok(None));
    }

    #[test]
    fn the_task_sample_is_an_sqs_event_of_one_partition() {
        let Request::Tasks(event) = sample("task.json") else {
            panic!("not read as an SQS event");
        };
        let [message] = &event.records[..] else {
            panic!("{event:?}");
        };
        let task = HourRequest::from_body(message.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            task.partition().unwrap(),
            Some(Partition {
                hour: at("2020-08-28T09:00:00Z"),
                oem_id: "abcd1234".into(),
                event_type: EventType::Connectivity,
            })
        );
        assert!(!task.force);
    }

    #[test]
    fn a_task_body_names_its_partition_and_reads_back() {
        let partition = Partition {
            hour: at("2020-08-28T09:00:00Z"),
            oem_id: "abcd1234".into(),
            event_type: EventType::DatapointAck,
        };
        let body = HourRequest::task(&partition).to_body();
        assert_eq!(
            body,
            r#"{"hour":"2020-08-28T09","oem_id":"abcd1234","event_type":"datapointack"}"#
        );
        let task = HourRequest::from_body(&body).unwrap();
        assert_eq!(task.partition().unwrap(), Some(partition));
    }

    #[test]
    fn a_range_task_body_names_its_range_and_reads_back() {
        let partition = Partition {
            hour: at("2020-08-28T09:00:00Z"),
            oem_id: "abcd1234".into(),
            event_type: EventType::Connectivity,
        };
        let range = TimeRange { index: 1, of: 3 };
        let body = HourRequest::range_task(&partition, "0123456789abcdef", range).to_body();
        assert_eq!(
            body,
            r#"{"hour":"2020-08-28T09","oem_id":"abcd1234","event_type":"connectivity","range":{"split":"0123456789abcdef","index":1,"of":3}}"#
        );
        let task = HourRequest::from_body(&body).unwrap();
        assert_eq!(task.partition().unwrap(), Some(partition));
        assert_eq!(task.checked_range().unwrap().unwrap().range(), range);
        // A body without a range (as queued before splits existed) is a
        // whole partition.
        let old = HourRequest::from_body(
            r#"{"hour":"2020-08-28T09","oem_id":"abcd1234","event_type":"connectivity"}"#,
        )
        .unwrap();
        assert_eq!(old.checked_range(), Ok(None));
        for bad in [
            r#"{"hour":"2020-08-28T09","oem_id":"a","event_type":"connectivity","range":{"split":"0123456789abcdef","index":3,"of":3}}"#,
            r#"{"hour":"2020-08-28T09","oem_id":"a","event_type":"connectivity","range":{"split":"../x","index":0,"of":3}}"#,
            r#"{"hour":"2020-08-28T09","oem_id":"a","range":{"split":"0123456789abcdef","index":0,"of":3}}"#,
        ] {
            assert!(
                HourRequest::from_body(bad)
                    .unwrap()
                    .checked_range()
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_tasks_are_rejected_with_their_reason() {
        let cases = [
            ("not json", "expected"),
            (r#"{"hour": 9}"#, "invalid type"),
            (r#"{"oem_id": "a"}"#, "missing field `hour`"),
            (
                r#"{"hour": "2020-08-28T09", "oem": "a"}"#,
                "unknown field `oem`",
            ),
            (
                r#"{"hour": "2020-08-28T09", "oem_id": "a", "event_type": "connection"}"#,
                "unknown variant `connection`",
            ),
        ];
        for (body, reason) in cases {
            let err = HourRequest::from_body(body).unwrap_err();
            assert!(
                matches!(&err, RequestError::MalformedTask(m) if m.contains(reason)),
                "{body}: {err}"
            );
        }
    }

    #[test]
    fn a_partition_needs_a_valid_hour_an_oem_and_a_safe_oem_id() {
        let request = |hour: &str, oem: Option<&str>, event_type| HourRequest {
            hour: hour.into(),
            oem_id: oem.map(Into::into),
            event_type,
            force: false,
            allow_shrink: false,
            range: None,
        };
        assert_eq!(
            request("2020-08-28T09", None, Some(EventType::Location)).partition(),
            Err(RequestError::EventTypeWithoutOem(EventType::Location))
        );
        assert!(matches!(
            request("2020-08-28T09", Some("a/b"), Some(EventType::Location)).partition(),
            Err(RequestError::Hour(KeyError::UnsafeOemId(_)))
        ));
        assert!(matches!(
            request("yesterday", Some("a"), Some(EventType::Location)).partition(),
            Err(RequestError::Hour(KeyError::BadHour(_)))
        ));
        assert_eq!(
            request("2020-08-28T09", Some("a"), None).partition(),
            Ok(None)
        );
    }
}
