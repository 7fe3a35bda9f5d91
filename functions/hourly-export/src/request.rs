//! What the function is invoked with: the hourly schedule's EventBridge
//! event (sample: `events/hourly-export/scheduled.json`), or one hour to
//! export (sample: `events/hourly-export/hour.json`), the payload of a
//! manual or fanned-out run.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use dpl::export::keys::{parse_hour, KeyError};
use dpl::Timestamp;
use serde::Deserialize;

/// One hour to export, optionally one OEM only, optionally even when its
/// manifests are current.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HourRequest {
    /// `2020-08-28T09` (or a full timestamp in that hour).
    pub hour: String,
    #[serde(default)]
    pub oem_id: Option<String>,
    #[serde(default)]
    pub force: bool,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Request {
    Hour(HourRequest),
    Scheduled(Box<EventBridgeEvent<serde_json::Value>>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Hour(#[from] KeyError),
    #[error("the scheduled event has no usable `time`")]
    NoTime,
}

impl HourRequest {
    pub fn hour(&self) -> Result<Timestamp, KeyError> {
        parse_hour(&self.hour)
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

    #[test]
    fn the_schedule_sample_is_a_scheduled_request_at_its_time() {
        let Request::Scheduled(event) = sample("scheduled.json") else {
            panic!("not read as a scheduled event");
        };
        assert_eq!(
            scheduled_time(&event).unwrap(),
            Timestamp::parse("2020-08-28T10:10:00Z").unwrap()
        );
    }

    #[test]
    fn the_hour_sample_is_an_hour_request() {
        let Request::Hour(hour) = sample("hour.json") else {
            panic!("not read as an hour request");
        };
        assert_eq!(
            hour.hour().unwrap(),
            Timestamp::parse("2020-08-28T09:00:00Z").unwrap()
        );
        assert_eq!(hour.oem_id.as_deref(), Some("abcd1234"));
    }
}
