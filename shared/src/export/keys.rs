//! Object keys of the hourly export, derived from their inputs only, so that
//! a retried write lands on the same key.
//!
//! | object     | key                                                                  |
//! |------------|----------------------------------------------------------------------|
//! | staging    | `{staging}/{YYYY-MM-DD-HH}/{oem_id}/{type}/{shard}-{first}-{last}.ndjson.gz` |
//! | export     | `{exports}/{oem_id}/{type}/{YYYY-MM-DD-HH:MM:SS}/{type}.csv`         |
//! | manifest   | `{manifests}/{oem_id}/{type}/{YYYY-MM-DD-HH}.json`                   |
//! | quarantine | `{quarantine}/{shard}/{sequence number}.json`                        |
//!
//! `{type}` is the export name of the event type ([`crate::csv::export_name`]:
//! `connection` for connectivity). Staging is partitioned by hour first so
//! that the scheduler finds every (OEM, type) of an hour with one listing.

use std::fmt;

use crate::csv::export_name;
use crate::event::EventType;
use crate::time::Timestamp;

/// Suffix of staging objects: gzip-compressed newline-delimited JSON.
pub const STAGING_SUFFIX: &str = ".ndjson.gz";

/// Longest OEM id accepted in a key. S3 keys are at most 1,024 bytes of
/// UTF-8 (Amazon S3 User Guide, "Naming Amazon S3 objects"); with the
/// prefixes, the type and two sequence numbers of up to 56 digits this leaves
/// room to spare.
pub const MAX_OEM_ID_LEN: usize = 128;

/// The prefixes of the four kinds of objects, without trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub staging: String,
    pub exports: String,
    pub manifests: String,
    pub quarantine: String,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            staging: "staging".into(),
            exports: "exports".into(),
            manifests: "manifests".into(),
            quarantine: "quarantine".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("OEM id {0:?} cannot be part of an object key (empty, longer than {MAX_OEM_ID_LEN} bytes, or holding `/`, `\\`, `.`-only or a control character)")]
    UnsafeOemId(String),
    #[error("shard id {0:?} cannot be part of an object key")]
    UnsafeShardId(String),
    #[error("sequence number {0:?} is not a decimal number")]
    BadSequenceNumber(String),
    #[error("{0:?} is not a staging object key")]
    NotStagingKey(String),
    #[error("{0:?} is not an hour like 2020-08-28T09 or 2020-08-28-09")]
    BadHour(String),
}

/// One unit of export: the events of one OEM, one type, one hour. It owns
/// one staging folder, one CSV file and one manifest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    pub hour: Timestamp,
    pub oem_id: String,
    pub event_type: EventType,
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.oem_id,
            export_name(self.event_type),
            HourLabel(self.hour)
        )
    }
}

/// `2020-08-28-09`: an hour in staging and manifest keys.
#[derive(Clone, Copy, Debug)]
pub struct HourLabel(pub Timestamp);

impl fmt::Display for HourLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `folder_name` is `YYYY-MM-DD-HH:MM:SS`, always 19 characters.
        let folder = self.0.hour_start().folder_name().to_string();
        f.write_str(&folder[..13])
    }
}

/// Parses an hour as an operator or a key writes it: `2020-08-28T09`,
/// `2020-08-28-09`, or a full timestamp (`2020-08-28T09:15:00Z`, truncated
/// to its hour).
pub fn parse_hour(text: &str) -> Result<Timestamp, KeyError> {
    let bad = || KeyError::BadHour(text.to_owned());
    let bytes = text.as_bytes();
    let full = if bytes.len() == 13 && matches!(bytes[10], b'T' | b'-') {
        format!("{}T{}:00:00Z", &text[..10], &text[11..])
    } else {
        text.to_owned()
    };
    Timestamp::parse(&full)
        .map(Timestamp::hour_start)
        .map_err(|_| bad())
}

/// Checks that `oem_id` can be one segment of a key.
pub fn check_oem_id(oem_id: &str) -> Result<(), KeyError> {
    let unsafe_char = |c: char| c == '/' || c == '\\' || c.is_control();
    if oem_id.is_empty()
        || oem_id.len() > MAX_OEM_ID_LEN
        || oem_id.chars().all(|c| c == '.')
        || oem_id.chars().any(unsafe_char)
    {
        return Err(KeyError::UnsafeOemId(oem_id.to_owned()));
    }
    Ok(())
}

fn check_shard_id(shard_id: &str) -> Result<(), KeyError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if shard_id.is_empty() || shard_id.len() > 64 || !shard_id.chars().all(ok) {
        return Err(KeyError::UnsafeShardId(shard_id.to_owned()));
    }
    Ok(())
}

fn check_sequence_number(sequence: &str) -> Result<(), KeyError> {
    if sequence.is_empty() || sequence.len() > 128 || !sequence.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(KeyError::BadSequenceNumber(sequence.to_owned()));
    }
    Ok(())
}

/// Folder of an OEM's split exports' plans and records, under manifests.
pub const SPLITS_FOLDER: &str = "_splits";
/// Start of the name of a range record in a split's folder.
pub const SPLIT_RANGE_PREFIX: &str = "range-";

/// Folder of an OEM's customer manifests, beside its type folders.
pub const CUSTOMER_MANIFESTS_FOLDER: &str = "_manifests";

/// The Kinesis batch a staging object comes from: its shard and the first
/// and last sequence numbers of the whole batch (not of the object's rows),
/// so a retried batch rewrites the same objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRange<'a> {
    pub shard_id: &'a str,
    pub first_sequence: &'a str,
    pub last_sequence: &'a str,
}

impl Layout {
    /// Prefix of every staging object of `hour`, ending with `/`.
    pub fn staging_hour_prefix(&self, hour: Timestamp) -> String {
        format!("{}/{}/", self.staging, HourLabel(hour))
    }

    /// Prefix of the staging objects of one partition, ending with `/`.
    pub fn staging_partition_prefix(&self, partition: &Partition) -> String {
        format!(
            "{}{}/{}/",
            self.staging_hour_prefix(partition.hour),
            partition.oem_id,
            export_name(partition.event_type)
        )
    }

    /// Folder of one split export's plan and range records,
    /// `{manifests}/{oem}/_splits/{type}/{YYYY-MM-DD-HH}/{id}/`, ending with
    /// `/`: beside the OEM's type folders of manifests, so listings of a
    /// type's manifests (`dplctl status`) never see them.
    pub fn split_prefix(&self, partition: &Partition, id: &str) -> String {
        format!(
            "{}/{}/{SPLITS_FOLDER}/{}/{}/{id}/",
            self.manifests,
            partition.oem_id,
            export_name(partition.event_type),
            HourLabel(partition.hour)
        )
    }

    /// The plan of split `id` ([`super::split::SplitPlan`]).
    pub fn split_plan_key(&self, partition: &Partition, id: &str) -> String {
        format!("{}plan.json", self.split_prefix(partition, id))
    }

    /// The record of range `index` of split `id` ([`super::split::RangeRecord`]).
    pub fn split_range_key(&self, partition: &Partition, id: &str, index: u32) -> String {
        format!(
            "{}{SPLIT_RANGE_PREFIX}{index:03}.json",
            self.split_prefix(partition, id)
        )
    }

    /// Written once split `id` is complete and its manifests are written.
    pub fn split_done_key(&self, partition: &Partition, id: &str) -> String {
        format!("{}done.json", self.split_prefix(partition, id))
    }

    /// Key of the staging object of `partition` written by the batch `range`.
    pub fn staging_key(
        &self,
        partition: &Partition,
        range: &BatchRange,
    ) -> Result<String, KeyError> {
        check_oem_id(&partition.oem_id)?;
        check_shard_id(range.shard_id)?;
        check_sequence_number(range.first_sequence)?;
        check_sequence_number(range.last_sequence)?;
        Ok(format!(
            "{}{}-{}-{}{STAGING_SUFFIX}",
            self.staging_partition_prefix(partition),
            range.shard_id,
            range.first_sequence,
            range.last_sequence
        ))
    }

    /// The partition a staging key belongs to.
    pub fn parse_staging_key(&self, key: &str) -> Result<Partition, KeyError> {
        let not = || KeyError::NotStagingKey(key.to_owned());
        let rest = key
            .strip_prefix(self.staging.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(not)?;
        let mut parts = rest.split('/');
        let (Some(hour), Some(oem_id), Some(type_name), Some(file), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(not());
        };
        if !file.ends_with(STAGING_SUFFIX) || hour.len() != 13 {
            return Err(not());
        }
        let event_type = EventType::ALL
            .into_iter()
            .find(|t| export_name(*t) == type_name)
            .ok_or_else(not)?;
        check_oem_id(oem_id).map_err(|_| not())?;
        Ok(Partition {
            hour: parse_hour(hour).map_err(|_| not())?,
            oem_id: oem_id.to_owned(),
            event_type,
        })
    }

    /// Key of the partition's CSV file: one file in the hour's folder.
    pub fn export_key(&self, partition: &Partition) -> String {
        let name = export_name(partition.event_type);
        format!(
            "{}/{}/{name}/{}/{name}.csv",
            self.exports,
            partition.oem_id,
            partition.hour.hour_start().folder_name()
        )
    }

    /// Key of the customer's copy of the partition's manifest
    /// ([`super::manifest::CustomerManifest`]): under the OEM's exports, so
    /// its download credentials read it, but beside the type folders, so
    /// every hour folder still holds one CSV file:
    /// `exports/{oem}/_manifests/{type}/{YYYY-MM-DD-HH:MM:SS}.json`. The
    /// leading `_` also keeps it out of tools that skip such names (Spark,
    /// Hive and Athena treat `_`-prefixed paths as hidden).
    pub fn customer_manifest_key(&self, partition: &Partition) -> String {
        format!(
            "{}/{}/{CUSTOMER_MANIFESTS_FOLDER}/{}/{}.json",
            self.exports,
            partition.oem_id,
            export_name(partition.event_type),
            partition.hour.hour_start().folder_name()
        )
    }

    /// Key of the partition's manifest, outside the customer-visible exports.
    pub fn manifest_key(&self, partition: &Partition) -> String {
        format!(
            "{}/{}/{}/{}.json",
            self.manifests,
            partition.oem_id,
            export_name(partition.event_type),
            HourLabel(partition.hour)
        )
    }

    /// Key of a malformed DPL record's quarantine object.
    pub fn quarantine_key(&self, shard_id: &str, sequence: &str) -> Result<String, KeyError> {
        check_shard_id(shard_id)?;
        check_sequence_number(sequence)?;
        Ok(format!("{}/{shard_id}/{sequence}.json", self.quarantine))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(text: &str) -> Timestamp {
        parse_hour(text).unwrap()
    }

    fn partition(oem: &str, event_type: EventType, h: &str) -> Partition {
        Partition {
            hour: hour(h),
            oem_id: oem.into(),
            event_type,
        }
    }

    const RANGE: BatchRange<'static> = BatchRange {
        shard_id: "shardId-000000000000",
        first_sequence: "49590338271490256608559692538361571095921575989136588898",
        last_sequence: "49590338271490256608559692540925702759324208523137515618",
    };

    #[test]
    fn keys_per_object_kind() {
        let layout = Layout::default();
        let cases = [
            (
                partition("abcd1234", EventType::Connectivity, "2020-08-28T09"),
                "staging/2020-08-28-09/abcd1234/connection/shardId-000000000000-49590338271490256608559692538361571095921575989136588898-49590338271490256608559692540925702759324208523137515618.ndjson.gz",
                "exports/abcd1234/connection/2020-08-28-09:00:00/connection.csv",
                "manifests/abcd1234/connection/2020-08-28-09.json",
            ),
            (
                partition("1234abcd", EventType::DatapointAck, "2020-02-05-23"),
                "staging/2020-02-05-23/1234abcd/datapointack/shardId-000000000000-49590338271490256608559692538361571095921575989136588898-49590338271490256608559692540925702759324208523137515618.ndjson.gz",
                "exports/1234abcd/datapointack/2020-02-05-23:00:00/datapointack.csv",
                "manifests/1234abcd/datapointack/2020-02-05-23.json",
            ),
        ];
        for (partition, staging, export, manifest) in cases {
            assert_eq!(layout.staging_key(&partition, &RANGE).unwrap(), staging);
            assert_eq!(layout.parse_staging_key(staging).unwrap(), partition);
            assert_eq!(layout.export_key(&partition), export);
            assert_eq!(layout.manifest_key(&partition), manifest);
        }
        let p = partition("abcd1234", EventType::Connectivity, "2020-08-28T09");
        assert_eq!(
            layout.customer_manifest_key(&p),
            "exports/abcd1234/_manifests/connection/2020-08-28-09:00:00.json"
        );
    }

    #[test]
    fn hours_parse_in_operator_and_key_spelling() {
        let want = Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
        for text in ["2020-08-28T09", "2020-08-28-09", "2020-08-28T09:59:59.999Z"] {
            assert_eq!(parse_hour(text).unwrap(), want, "{text}");
        }
        for text in ["2020-08-28", "2020-08-28T9", "yesterday", "2020-08-28T24"] {
            assert!(parse_hour(text).is_err(), "{text}");
        }
    }

    #[test]
    fn unsafe_key_segments_are_rejected() {
        let layout = Layout::default();
        for oem in ["", "a/b", "..", "a\nb", &"x".repeat(MAX_OEM_ID_LEN + 1)] {
            let p = partition(oem, EventType::Location, "2020-08-28T09");
            assert!(matches!(
                layout.staging_key(&p, &RANGE),
                Err(KeyError::UnsafeOemId(_))
            ));
        }
        let p = partition("abcd1234", EventType::Location, "2020-08-28T09");
        let bad_shard = BatchRange {
            shard_id: "../x",
            ..RANGE
        };
        assert!(layout.staging_key(&p, &bad_shard).is_err());
        let bad_seq = BatchRange {
            first_sequence: "12a",
            ..RANGE
        };
        assert!(layout.staging_key(&p, &bad_seq).is_err());
    }

    #[test]
    fn foreign_keys_are_not_staging_keys() {
        let layout = Layout::default();
        for key in [
            "staging/2020-08-28-09/abcd1234/connectivity/s-1-2.ndjson.gz",
            "staging/2020-08-28-09/abcd1234/connection/s-1-2.json",
            "staging/2020-08-28-09/abcd1234/connection/x/s-1-2.ndjson.gz",
            "exports/abcd1234/connection/2020-08-28-09:00:00/connection.csv",
            "staging/2020-08-28/abcd1234/connection/s-1-2.ndjson.gz",
        ] {
            assert!(layout.parse_staging_key(key).is_err(), "{key}");
        }
    }

    #[test]
    fn quarantine_keys_name_the_record() {
        let layout = Layout::default();
        assert_eq!(
            layout.quarantine_key("shardId-000000000001", "42").unwrap(),
            "quarantine/shardId-000000000001/42.json"
        );
        assert!(layout.quarantine_key("shard/1", "42").is_err());
    }
}
