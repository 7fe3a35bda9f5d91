//! [`ShardReader`] on the DPL stream through `aws_sdk_kinesis::Client`:
//! `GetShardIterator` (`AT_SEQUENCE_NUMBER` / `AFTER_SEQUENCE_NUMBER`) and
//! `GetRecords`.

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::ShardIteratorType;

use super::{Page, ReadError, ShardReader, StreamRecord};
use crate::position::{HashRange, Position};
use crate::streams::cursor::Resume;
use crate::Timestamp;

/// Error codes that mean "read less often" (Kinesis API Reference,
/// `GetRecords`, Errors: `ProvisionedThroughputExceededException`, and the
/// KMS throttling of an encrypted stream).
const THROTTLING: [&str; 2] = [
    "ProvisionedThroughputExceededException",
    "KMSThrottlingException",
];

/// Reads from the trim horizon before giving up on finding its record.
const FIRST_RECORD_READS: usize = 5;

/// The DPL stream, by name or ARN.
#[derive(Clone, Debug)]
pub struct KinesisReader {
    client: aws_sdk_kinesis::Client,
    stream: String,
}

impl KinesisReader {
    pub fn new(client: aws_sdk_kinesis::Client, stream: impl Into<String>) -> Self {
        Self {
            client,
            stream: stream.into(),
        }
    }
}

fn read_error<E, R>(error: SdkError<E, R>) -> ReadError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = match &error {
        SdkError::ServiceError(e) => e.err().code().map(str::to_owned),
        _ => None,
    };
    let text = DisplayErrorContext(&error).to_string();
    match code.as_deref() {
        Some("ExpiredIteratorException") => ReadError::ExpiredIterator,
        Some(code) if THROTTLING.contains(&code) => ReadError::Throttled(text),
        _ => ReadError::Failed(text),
    }
}

/// Kinesis iterators are opaque and do not name their shard, so the
/// iterators this adapter hands out carry it: `{shard}|{iterator}`.
impl KinesisReader {
    /// The stream named by name or ARN in a request builder.
    fn named<B>(
        &self,
        builder: B,
        by_arn: impl FnOnce(B, &str) -> B,
        by_name: impl FnOnce(B, &str) -> B,
    ) -> B {
        if self.stream.starts_with("arn:") {
            by_arn(builder, &self.stream)
        } else {
            by_name(builder, &self.stream)
        }
    }
}

impl ShardReader for KinesisReader {
    async fn iterator(&self, shard: &str, from: &Resume) -> Result<String, ReadError> {
        let (kind, sequence) = match from {
            Resume::At(sequence) => (ShardIteratorType::AtSequenceNumber, sequence),
            Resume::After(sequence) => (ShardIteratorType::AfterSequenceNumber, sequence),
        };
        let request = self.named(
            self.client.get_shard_iterator(),
            |r, s| r.stream_arn(s),
            |r, s| r.stream_name(s),
        );
        let output = request
            .shard_id(shard)
            .shard_iterator_type(kind)
            .starting_sequence_number(sequence.as_str())
            .send()
            .await
            .map_err(read_error)?;
        output
            .shard_iterator
            .map(|iterator| format!("{shard}|{iterator}"))
            .ok_or_else(|| {
                ReadError::Failed(format!("GetShardIterator gave no iterator for {shard}"))
            })
    }

    async fn read(&self, iterator: &str, limit: usize) -> Result<Page, ReadError> {
        let (shard, iterator) = iterator
            .split_once('|')
            .ok_or_else(|| ReadError::Failed("not an iterator of this reader".into()))?;
        let output = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(i32::try_from(limit.clamp(1, super::MAX_RECORDS_PER_READ)).unwrap_or(1))
            .send()
            .await
            .map_err(read_error)?;
        let records = output
            .records()
            .iter()
            .map(|record| {
                let position = Position::new(shard, record.sequence_number())
                    .map_err(|e| ReadError::Failed(e.to_string()))?;
                let arrival = record
                    .approximate_arrival_timestamp()
                    .and_then(|t| t.to_millis().ok())
                    .and_then(|ms| Timestamp::from_millis(ms).ok())
                    .unwrap_or_else(Timestamp::now);
                Ok(StreamRecord {
                    position,
                    arrival,
                    data: record.data().as_ref().to_vec(),
                })
            })
            .collect::<Result<Vec<_>, ReadError>>()?;
        Ok(Page {
            records,
            next: output.next_shard_iterator().map(|s| format!("{shard}|{s}")),
            millis_behind: output
                .millis_behind_latest()
                .and_then(|ms| u64::try_from(ms).ok()),
        })
    }

    async fn first_retained(&self, shard: &str) -> Result<Option<StreamRecord>, ReadError> {
        let request = self.named(
            self.client.get_shard_iterator(),
            |r, s| r.stream_arn(s),
            |r, s| r.stream_name(s),
        );
        let mut iterator = request
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(read_error)?
            .shard_iterator
            .map(|i| format!("{shard}|{i}"));
        // GetRecords may answer empty pages before the first record; a few
        // reads find it, or reach the tip.
        for _ in 0..FIRST_RECORD_READS {
            let Some(current) = iterator.take() else {
                break;
            };
            let page = self.read(&current, 1).await?;
            if let Some(record) = page.records.into_iter().next() {
                return Ok(Some(record));
            }
            if page.millis_behind == Some(0) {
                break;
            }
            iterator = page.next;
        }
        Ok(None)
    }

    async fn hash_range(&self, shard: &str) -> Result<HashRange, ReadError> {
        let mut next: Option<String> = None;
        loop {
            let mut request = self.client.list_shards();
            request = match &next {
                Some(token) => request.next_token(token),
                None => self.named(request, |r, s| r.stream_arn(s), |r, s| r.stream_name(s)),
            };
            let output = request.send().await.map_err(read_error)?;
            if let Some(found) = output.shards().iter().find(|s| s.shard_id() == shard) {
                let range = found.hash_key_range();
                return range
                    .and_then(|r| HashRange::parse(r.starting_hash_key(), r.ending_hash_key()))
                    .ok_or_else(|| {
                        ReadError::Failed(format!("shard {shard} has no hash key range"))
                    });
            }
            next = output.next_token().map(str::to_owned);
            if next.is_none() {
                return Err(ReadError::Failed(format!(
                    "the DPL stream has no shard {shard}"
                )));
            }
        }
    }
}
