//! The pure part of an invocation: stream records -> entries for the DPL
//! stream and rejected records; and, once publishing and dead-lettering are
//! done, the record Lambda must retry the batch from.

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use dpl::kinesis::{Entry, EntryError};
use dpl::twin::{derive_events, TwinError};
use dpl::EventType;

/// Why a stream record cannot be published. Permanent: the same record
/// always fails the same way, so it goes to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Derive(#[from] TwinError),
    #[error(
        "stream record {stream_event_id}: its {event_type} event cannot be published: {source}"
    )]
    Unpublishable {
        stream_event_id: String,
        event_type: EventType,
        source: EntryError,
    },
}

impl RecordError {
    /// The attribute at fault, when there is one.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            RecordError::Derive(error) => error.attribute(),
            RecordError::Unpublishable { .. } => None,
        }
    }
}

/// A record of the batch that is rejected, by position in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub record: usize,
    pub error: RecordError,
}

/// A batch, ready to publish.
#[derive(Debug, Default)]
pub struct Batch {
    /// The DPL records of all good stream records, in batch order.
    pub entries: Vec<Entry>,
    /// `owners[i]`: position in the batch of the stream record of entry `i`.
    owners: Vec<usize>,
    pub rejected: Vec<Rejected>,
}

impl Batch {
    pub fn from_records(records: &[EventRecord]) -> Self {
        let mut batch = Batch::default();
        for (position, record) in records.iter().enumerate() {
            match record_entries(record) {
                Ok(entries) => {
                    batch
                        .owners
                        .extend(std::iter::repeat_n(position, entries.len()));
                    batch.entries.extend(entries);
                }
                Err(error) => batch.rejected.push(Rejected {
                    record: position,
                    error,
                }),
            }
        }
        batch
    }

    /// Position in the batch of the stream record that entry `entry` comes from.
    pub fn owner(&self, entry: usize) -> Option<usize> {
        self.owners.get(entry).copied()
    }
}

/// All entries of one stream record, or why none can be published.
fn record_entries(record: &EventRecord) -> Result<Vec<Entry>, RecordError> {
    derive_events(record)?
        .iter()
        .map(|dpl_record| {
            Entry::from_dpl_record(dpl_record).map_err(|source| RecordError::Unpublishable {
                stream_event_id: record.event_id.clone(),
                event_type: dpl_record.dpl_event.event_type(),
                source,
            })
        })
        .collect()
}

/// The earlier of two failure points (positions in the batch).
pub fn earliest(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The record to retry from has no `SequenceNumber`: the event is not a
/// DynamoDB Streams event as Lambda sends it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stream record {stream_event_id} has no SequenceNumber to report as the batch item failure"
)]
pub struct MissingSequenceNumber {
    pub stream_event_id: String,
}

/// The partial batch response: empty when every record was handled,
/// otherwise the one record Lambda must retry from (it retries that record
/// and every later one; the earlier ones are done).
pub fn response(
    records: &[EventRecord],
    retry_from: Option<usize>,
) -> Result<DynamoDbEventResponse, MissingSequenceNumber> {
    let mut response = DynamoDbEventResponse::default();
    if let Some(record) = retry_from.and_then(|position| records.get(position)) {
        let sequence_number =
            record
                .change
                .sequence_number
                .clone()
                .ok_or_else(|| MissingSequenceNumber {
                    stream_event_id: record.event_id.clone(),
                })?;
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence_number);
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event_id: &str, sequence_number: Option<&str>) -> EventRecord {
        let mut record = EventRecord::default();
        record.event_id = event_id.into();
        record.change.sequence_number = sequence_number.map(Into::into);
        record
    }

    #[test]
    fn earliest_failure_point_wins() {
        assert_eq!(earliest(None, None), None);
        assert_eq!(earliest(Some(3), None), Some(3));
        assert_eq!(earliest(None, Some(2)), Some(2));
        assert_eq!(earliest(Some(3), Some(2)), Some(2));
    }

    #[test]
    fn the_response_names_the_record_to_retry_from_by_sequence_number() {
        let records = [record("a", Some("100")), record("b", Some("200"))];
        assert!(response(&records, None)
            .unwrap()
            .batch_item_failures
            .is_empty());
        let failures = response(&records, Some(1)).unwrap().batch_item_failures;
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].item_identifier.as_deref(), Some("200"));
        assert_eq!(
            response(&[record("c", None)], Some(0)).unwrap_err(),
            MissingSequenceNumber {
                stream_event_id: "c".into()
            }
        );
    }

    #[test]
    fn a_malformed_record_is_rejected_and_its_neighbours_are_kept() {
        let mut bad = record("bad", Some("1"));
        bad.event_name = "UPSERT".into();
        let batch = Batch::from_records(&[bad]);
        assert!(batch.entries.is_empty());
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!(batch.rejected[0].record, 0);
        assert_eq!(batch.rejected[0].error.attribute(), Some("eventName"));
    }
}
