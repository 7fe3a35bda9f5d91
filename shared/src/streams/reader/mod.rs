//! Reading the DPL stream from a position: the port [`ShardReader`] the
//! catch-up worker reads through, its Kinesis adapter ([`kinesis`]) and an
//! in-memory stream ([`memory`]).
//!
//! Every reader of a shard shares its read limits: 5 `GetRecords` calls and
//! 2 MB per second ("Amazon Kinesis Data Streams quotas and limits"), and
//! each event source mapping (event-store, stream-kinesis, stream-eventhubs)
//! polls about once a second. The worker paces itself to what is left
//! (`super::catchup::ReadPacer`).

use std::future::Future;

use aws_lambda_events::encodings::SecondTimestamp;
use aws_lambda_events::event::kinesis::KinesisEventRecord;

use super::cursor::Resume;
use crate::position::{HashRange, Position};
use crate::Timestamp;

pub mod kinesis;
pub mod memory;

pub use kinesis::KinesisReader;
pub use memory::InMemoryDplStream;

/// At most 10,000 records per `GetRecords` call (Kinesis API Reference,
/// `GetRecords`, `Limit`: "The maximum value is 10,000").
pub const MAX_RECORDS_PER_READ: usize = 10_000;

/// One record of the DPL stream, as `GetRecords` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRecord {
    pub position: Position,
    /// `ApproximateArrivalTimestamp`.
    pub arrival: Timestamp,
    pub data: Vec<u8>,
}

impl StreamRecord {
    /// The record as the Lambda Kinesis event source delivers it to the
    /// stream functions (local runs, tests).
    pub fn lambda_record(&self) -> KinesisEventRecord {
        let mut event = KinesisEventRecord::default();
        event.event_id = Some(format!(
            "{}:{}",
            self.position.shard(),
            self.position.sequence()
        ));
        event.event_source = Some("aws:kinesis".into());
        event.event_name = Some("aws:kinesis:record".into());
        event.kinesis.sequence_number = self.position.sequence().to_string();
        *event.kinesis.data = self.data.clone();
        if let Some(arrival) = chrono::DateTime::from_timestamp_millis(self.arrival.millis()) {
            event.kinesis.approximate_arrival_timestamp = SecondTimestamp(arrival);
        }
        event
    }
}

/// One `GetRecords` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<StreamRecord>,
    /// Where the next read continues; `None` once a closed shard (after a
    /// reshard) has been read to its end.
    pub next: Option<String>,
    /// `MillisBehindLatest`: how far the page's end is from the shard's tip.
    pub millis_behind: Option<u64>,
}

impl Page {
    /// The page ends at the newest record of the shard.
    pub fn at_tip(&self) -> bool {
        self.millis_behind == Some(0)
    }

    pub fn bytes(&self) -> usize {
        self.records.iter().map(|r| r.data.len()).sum()
    }
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The shard's shared read limits are used up: wait and read again.
    #[error("the DPL shard's read limits are exceeded: {0}")]
    Throttled(String),
    /// The iterator is older than 5 minutes: get a new one from the cursor.
    #[error("the shard iterator expired")]
    ExpiredIterator,
    #[error("reading the DPL stream: {0}")]
    Failed(String),
}

/// See the module docs.
pub trait ShardReader: Send + Sync {
    /// An iterator over `shard` from `from`.
    fn iterator(
        &self,
        shard: &str,
        from: &Resume,
    ) -> impl Future<Output = Result<String, ReadError>> + Send;

    /// At most `limit` records from `iterator`.
    fn read(
        &self,
        iterator: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Page, ReadError>> + Send;

    /// The oldest record `shard` still keeps (`TRIM_HORIZON`), if any:
    /// whatever came before it is past the stream's retention.
    fn first_retained(
        &self,
        shard: &str,
    ) -> impl Future<Output = Result<Option<StreamRecord>, ReadError>> + Send;

    /// The hash keys `shard` holds (`ListShards`' `HashKeyRange`): which
    /// DSNs' events it has.
    fn hash_range(&self, shard: &str) -> impl Future<Output = Result<HashRange, ReadError>> + Send;
}
