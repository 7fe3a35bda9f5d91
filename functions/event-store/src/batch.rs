//! Records of one Kinesis batch -> the objects to write.
//!
//! Valid DPL records are grouped by partition (OEM, type, hour of the event
//! time), sorted by (time, stream order, event id), deduplicated, and
//! encoded as one staging object per partition, keyed by the shard and the
//! batch's first and last sequence numbers: a retried batch rewrites the
//! same objects with the same bytes. A record that is not a DPL record (or
//! whose OEM id cannot be a key) becomes a quarantine object carrying its error.

use std::collections::BTreeMap;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use base64::Engine;
use dpl::export::keys::{check_oem_id, BatchRange, KeyError};
use dpl::export::{staging, Layout, Partition};
use dpl::position::{Position, PositionError};
use dpl::DplRecord;
use serde::Serialize;

/// One object to put, and the first record of the batch it covers: if the
/// put fails, the batch is retried from there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub key: String,
    pub body: Vec<u8>,
    pub first_record: usize,
    pub kind: WriteKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Staging { rows: usize },
    Quarantine,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record {record}: {error}: not a Kinesis event source record")]
    NoShard { record: usize, error: PositionError },
    #[error("the batch mixes shards {0} and {1}")]
    MixedShards(String, String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The body of a quarantine object.
#[derive(Serialize)]
struct QuarantineBody<'a> {
    error: String,
    sequence_number: &'a str,
    partition_key: &'a str,
    /// The record's data as text if it is UTF-8, else `data_base64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
}

fn shard_of(records: &[KinesisEventRecord]) -> Result<String, BatchError> {
    let mut shard: Option<String> = None;
    for (n, record) in records.iter().enumerate() {
        let position = Position::of_record(record)
            .map_err(|error| BatchError::NoShard { record: n, error })?;
        match &shard {
            None => shard = Some(position.shard().to_owned()),
            Some(seen) if seen != position.shard() => {
                return Err(BatchError::MixedShards(
                    seen.clone(),
                    position.shard().to_owned(),
                ))
            }
            _ => {}
        }
    }
    shard.ok_or(BatchError::NoShard {
        record: 0,
        error: PositionError::NoEventId,
    })
}

fn quarantine(
    layout: &Layout,
    shard: &str,
    n: usize,
    record: &KinesisEventRecord,
    error: String,
) -> Result<Write, BatchError> {
    let data: &[u8] = &record.kinesis.data;
    let text = std::str::from_utf8(data).ok();
    let body = QuarantineBody {
        error,
        sequence_number: &record.kinesis.sequence_number,
        partition_key: &record.kinesis.partition_key,
        data: text,
        data_base64: text
            .is_none()
            .then(|| base64::engine::general_purpose::STANDARD.encode(data)),
    };
    Ok(Write {
        key: layout.quarantine_key(shard, &record.kinesis.sequence_number)?,
        body: serde_json::to_vec(&body).expect("a quarantine body always serializes"),
        first_record: n,
        kind: WriteKind::Quarantine,
    })
}

/// The objects to write for `records`, staging objects first (in partition
/// order), then quarantine objects (in record order).
pub fn plan(layout: &Layout, records: &[KinesisEventRecord]) -> Result<Vec<Write>, BatchError> {
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Ok(Vec::new());
    };
    let shard = shard_of(records)?;
    let range = BatchRange {
        shard_id: &shard,
        first_sequence: &first.kinesis.sequence_number,
        last_sequence: &last.kinesis.sequence_number,
    };
    let mut groups: BTreeMap<Partition, (usize, Vec<DplRecord>)> = BTreeMap::new();
    let mut quarantined = Vec::new();
    for (n, record) in records.iter().enumerate() {
        let parsed = DplRecord::from_json(&record.kinesis.data)
            .map_err(|e| format!("not a DPL record: {e}"))
            .and_then(|r| match check_oem_id(r.dpl_event.oem_id()) {
                Ok(()) => Ok(r),
                Err(e) => Err(e.to_string()),
            });
        match parsed {
            Ok(dpl) => {
                let partition = Partition {
                    hour: dpl.dpl_event.time().hour_start(),
                    oem_id: dpl.dpl_event.oem_id().to_owned(),
                    event_type: dpl.dpl_event.event_type(),
                };
                groups
                    .entry(partition)
                    .or_insert((n, Vec::new()))
                    .1
                    .push(dpl);
            }
            Err(error) => quarantined.push(quarantine(layout, &shard, n, record, error)?),
        }
    }
    let mut writes = Vec::with_capacity(groups.len() + quarantined.len());
    for (partition, (first_record, mut rows)) in groups {
        staging::sort_rows(&mut rows);
        writes.push(Write {
            key: layout.staging_key(&partition, &range)?,
            body: staging::encode(&rows),
            first_record,
            kind: WriteKind::Staging { rows: rows.len() },
        });
    }
    writes.extend(quarantined);
    Ok(writes)
}
