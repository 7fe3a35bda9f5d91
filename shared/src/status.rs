//! What `dplctl status` and the HTTP API's `GET /status` report: the
//! health of stream subscriptions (state, live or behind and for how long,
//! last delivery, dead letters, last error) and what the export wrote per
//! hour (files, rows, bytes), from the manifests
//! (`manifests/{oem}/{type}/{YYYY-MM-DD-HH}.json`, `docs/export.md`).
//!
//! Pure functions of the subscriptions, the manifests and the current time.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::export::Manifest;
use crate::streams::subscription::Subscription;
use crate::streams::summary::DeliverySummary;
use crate::time::TimestampError;
use crate::Timestamp;

/// The most hours one status reads: the 12 months exports are kept.
pub const MAX_STATUS_HOURS: u32 = 366 * 24;

const HOUR_MS: i64 = 3_600_000;

/// One subscription's delivery health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionStatus {
    pub id: String,
    pub oem_id: String,
    pub name: String,
    pub state: String,
    /// `live`, or `behind on N shards for ...`.
    pub delivery: String,
    /// Shards where the subscription is behind (catching up).
    pub behind_shards: usize,
    /// How long the oldest event not yet delivered has waited, in seconds;
    /// `None` when the subscription is live on every shard.
    pub lag_seconds: Option<i64>,
    pub last_delivery: Option<String>,
    /// Events its destination refused for good, kept for a redrive.
    pub dead_letters: u64,
    pub last_error_at: Option<String>,
    pub last_error: Option<String>,
}

/// What the manifests of one hour say.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HourStatus {
    /// The hour's folder name, `2020-08-28-09:00:00`.
    pub hour: String,
    /// Partitions exported (one CSV file each).
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Per OEM and type: `{"abcd1234/datapoint": {"rows": 3, "bytes": 512}}`.
    pub partitions: BTreeMap<String, PartitionCounts>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PartitionCounts {
    pub rows: u64,
    pub bytes: u64,
}

/// The health of `subscription` at `now`, given its delivery state.
pub fn subscription_status(
    subscription: &Subscription,
    delivery: &DeliverySummary,
    now: Timestamp,
) -> SubscriptionStatus {
    let health = &subscription.health;
    SubscriptionStatus {
        id: subscription.id.to_string(),
        oem_id: subscription.oem_id.clone(),
        name: subscription.name.clone(),
        state: subscription.status.to_string(),
        delivery: delivery.line(now),
        behind_shards: delivery.behind_shards,
        lag_seconds: delivery.lag_seconds(now),
        last_delivery: health.last_success.map(|t| t.iso_seconds().to_string()),
        dead_letters: delivery.dead_letters,
        last_error_at: health
            .last_error
            .as_ref()
            .map(|e| e.at.iso_seconds().to_string()),
        last_error: health.last_error.as_ref().map(|e| e.message.clone()),
    }
}

/// The last `count` hours that have ended at `now`, newest first.
pub fn recent_hours(now: Timestamp, count: u32) -> Result<Vec<Timestamp>, TimestampError> {
    let current = now.hour_start().millis();
    (1..=i64::from(count))
        .map(|n| Timestamp::from_millis(current - n * HOUR_MS))
        .collect()
}

/// Sums `manifests` per hour, one entry for every hour of `hours` (in that
/// order), empty when no manifest names it. Manifests of other hours are
/// ignored.
pub fn summarize(hours: &[Timestamp], manifests: &[Manifest]) -> Vec<HourStatus> {
    let mut by_hour: BTreeMap<String, HourStatus> = hours
        .iter()
        .map(|h| {
            let name = h.folder_name().to_string();
            let status = HourStatus {
                hour: name.clone(),
                ..HourStatus::default()
            };
            (name, status)
        })
        .collect();
    for manifest in manifests {
        let Some(status) = by_hour.get_mut(&manifest.hour) else {
            continue;
        };
        status.files += 1;
        status.rows += manifest.rows;
        status.bytes += manifest.bytes;
        status.partitions.insert(
            format!("{}/{}", manifest.oem_id, manifest.event_type),
            PartitionCounts {
                rows: manifest.rows,
                bytes: manifest.bytes,
            },
        );
    }
    hours
        .iter()
        .filter_map(|h| by_hour.remove(&h.folder_name().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::subscription::{
        Credentials, Destination, Filters, LastError, SubscriptionId, SubscriptionSpec,
    };

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn manifest(oem: &str, event_type: &str, hour: &str, rows: u64, bytes: u64) -> Manifest {
        Manifest {
            format_version: 1,
            oem_id: oem.into(),
            event_type: event_type.into(),
            hour: hour.into(),
            export_key: String::new(),
            export_etag: String::new(),
            rows,
            bytes,
            sha256: String::new(),
            duplicates_dropped: 0,
            staging: Vec::new(),
        }
    }

    fn subscription() -> Subscription {
        Subscription::new(
            SubscriptionId::from_bits(1),
            SubscriptionSpec {
                oem_id: "abcd1234".into(),
                name: "n".into(),
                description: String::new(),
                destination: Destination::Kinesis {
                    stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/s"
                        .parse()
                        .unwrap(),
                },
                credentials: Credentials::AssumeRole {
                    role_arn: "arn:aws:iam::123456789012:role/r".into(),
                    external_id: Some("dpl-x1".into()),
                },
                filters: Filters::all(),
            },
            at("2020-08-28T00:00:00Z"),
        )
        .unwrap()
    }

    #[test]
    fn hours_are_the_ended_ones_newest_first() {
        let hours = recent_hours(at("2020-08-28T10:15:00Z"), 3).unwrap();
        let names: Vec<String> = hours.iter().map(|h| h.folder_name().to_string()).collect();
        assert_eq!(
            names,
            [
                "2020-08-28-09:00:00",
                "2020-08-28-08:00:00",
                "2020-08-28-07:00:00"
            ]
        );
    }

    #[test]
    fn manifests_are_summed_per_hour_and_empty_hours_are_shown() {
        let hours = recent_hours(at("2020-08-28T10:15:00Z"), 3).unwrap();
        let manifests = [
            manifest("a", "datapoint", "2020-08-28-09:00:00", 10, 1000),
            manifest("b", "datapoint", "2020-08-28-09:00:00", 5, 200),
            manifest("a", "location", "2020-08-28-07:00:00", 1, 30),
            manifest("a", "location", "2020-08-27-07:00:00", 99, 99),
        ];
        let summary = summarize(&hours, &manifests);
        let counts: Vec<(&str, u64, u64, u64)> = summary
            .iter()
            .map(|h| (h.hour.as_str(), h.files, h.rows, h.bytes))
            .collect();
        assert_eq!(
            counts,
            [
                ("2020-08-28-09:00:00", 2, 15, 1200),
                ("2020-08-28-08:00:00", 0, 0, 0),
                ("2020-08-28-07:00:00", 1, 1, 30),
            ]
        );
        assert_eq!(
            summary[0].partitions["b/datapoint"],
            PartitionCounts {
                rows: 5,
                bytes: 200
            }
        );
    }

    #[test]
    fn lag_is_how_long_the_oldest_undelivered_event_waited() {
        let mut s = subscription();
        let now = at("2020-08-28T10:00:00Z");
        let live = subscription_status(&s, &DeliverySummary::default(), now);
        assert_eq!((live.last_delivery, live.lag_seconds), (None, None));
        assert_eq!(live.delivery, "live");
        s.health.last_success = Some(at("2020-08-28T09:55:30Z"));
        s.health.last_error = Some(LastError {
            at: at("2020-08-28T09:59:00Z"),
            message: "throttled".into(),
        });
        let behind = DeliverySummary {
            behind_shards: 1,
            behind_since: Some(at("2020-08-28T09:55:30Z")),
            dead_letters: 4,
            ..DeliverySummary::default()
        };
        let status = subscription_status(&s, &behind, now);
        assert_eq!(status.lag_seconds, Some(270));
        assert_eq!(status.dead_letters, 4);
        assert_eq!(status.last_error.as_deref(), Some("throttled"));
    }
}
