//! The DPL stream on a local emulator, as the stream functions see it:
//! records put as twin-events puts them, and read back batch by batch as
//! the Lambda event source mapping hands them over (real sequence numbers,
//! so the catch-up worker can read from a cursor). For emulator tests,
//! benchmarks and local runs; the demo's mapping runner does the same for
//! every function.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;

use super::reader::StreamRecord;
use crate::position::Position;
use crate::{DplRecord, Timestamp};

/// See the module docs. One shard.
pub struct LocalDpl {
    client: aws_sdk_kinesis::Client,
    stream: String,
    shard: String,
    iterator: Option<String>,
}

fn failed(what: &str, error: impl std::error::Error + 'static) -> String {
    format!("{what}: {}", DisplayErrorContext(&error))
}

impl LocalDpl {
    /// Creates `stream` with one shard and reads it from its start.
    pub async fn create(client: aws_sdk_kinesis::Client, stream: &str) -> Result<Self, String> {
        client
            .create_stream()
            .stream_name(stream)
            .shard_count(1)
            .send()
            .await
            .map_err(|e| failed("CreateStream", e))?;
        let shards = client
            .list_shards()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| failed("ListShards", e))?;
        let shard = shards
            .shards()
            .first()
            .map(|s| s.shard_id().to_owned())
            .ok_or("the stream has no shard")?;
        let iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| failed("GetShardIterator", e))?
            .shard_iterator;
        Ok(Self {
            client,
            stream: stream.to_owned(),
            shard,
            iterator,
        })
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn shard(&self) -> &str {
        &self.shard
    }

    /// Puts `records` in order (partition key = DSN), then reads them back
    /// as one batch of the event source mapping.
    pub async fn batch(&mut self, records: &[DplRecord]) -> Result<KinesisEvent, String> {
        for record in records {
            self.client
                .put_record()
                .stream_name(&self.stream)
                .partition_key(record.partition_key())
                .data(Blob::new(record.to_json()))
                .send()
                .await
                .map_err(|e| failed("PutRecord", e))?;
        }
        let mut event = KinesisEvent::default();
        while event.records.len() < records.len() {
            let iterator = self.iterator.clone().ok_or("the shard is closed")?;
            let page = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .map_err(|e| failed("GetRecords", e))?;
            self.iterator = page.next_shard_iterator.clone();
            for record in page.records() {
                let position = Position::new(&self.shard, record.sequence_number())
                    .map_err(|e| e.to_string())?;
                let stream_record = StreamRecord {
                    position,
                    arrival: Timestamp::now(),
                    data: record.data().as_ref().to_vec(),
                };
                event.records.push(stream_record.lambda_record());
            }
        }
        Ok(event)
    }
}
