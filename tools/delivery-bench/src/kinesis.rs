//! Kinesis streams on the AWS emulator (moto, started by
//! `scripts/with-moto.sh`): created through the SDK, written as a producer
//! writes, and read back as a consumer reads (`GetShardIterator`
//! `TRIM_HORIZON`, `GetRecords` on every shard), with each record's arrival
//! time.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;
use base64::Engine as _;

use crate::check::Arrival;
use crate::network::socket_addr;
use crate::workload::event_number;

/// Most entries in one `PutRecords` call (Kinesis API Reference,
/// `PutRecords`: "Each PutRecords request can support up to 500 records").
pub const MAX_PUT_ENTRIES: usize = 500;

/// Most records one `GetRecords` call returns (API Reference, `GetRecords`,
/// `Limit`: "The maximum value is 10,000").
const MAX_GET_RECORDS: usize = 10_000;

/// The emulator's `AWS_ENDPOINT_URL`, taken out of the environment.
static EMULATOR: OnceLock<String> = OnceLock::new();

/// Takes `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`) out of the
/// environment, so that an endpoint set in code takes effect: the SDK lets
/// the variable override a configuration's `endpoint_url` (a service
/// client built from an `SdkConfig` reads `AWS_ENDPOINT_URL[_SERVICE]`
/// first), which would send the clients meant for a proxy straight to the
/// emulator. Call it first in `main`, before any thread runs.
pub fn take_emulator_endpoint() {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        let _ = EMULATOR.set(url);
    }
    std::env::remove_var("AWS_ENDPOINT_URL");
}

/// Attempts of one `GetRecords` before a read fails.
const MAX_READ_ATTEMPTS: u32 = 20;

/// The SDK configuration for the emulator (its endpoint set in code), and
/// the emulator's address. Fails, rather than skips, without a local
/// `AWS_ENDPOINT_URL`.
pub async fn emulator() -> anyhow::Result<(SdkConfig, SocketAddr)> {
    let endpoint = EMULATOR
        .get()
        .cloned()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .unwrap_or_default();
    let addr = socket_addr(&endpoint).with_context(|| {
        format!(
            "AWS_ENDPOINT_URL must point at a local moto server (got {endpoint:?}): \
             run the bench through `scripts/with-moto.sh`"
        )
    })?;
    anyhow::ensure!(addr.ip().is_loopback(), "{endpoint} is not on loopback");
    let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    Ok((through(&aws, &endpoint), addr))
}

/// `aws` with its requests sent to `url` (a proxy in front of the emulator).
pub fn through(aws: &SdkConfig, url: &str) -> SdkConfig {
    aws.to_builder().endpoint_url(url).build()
}

/// Creates stream `name` with `shards` shards; returns its ARN once active.
pub async fn create_stream(client: &Client, name: &str, shards: i32) -> anyhow::Result<String> {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .with_context(|| format!("CreateStream {name}"))?;
    for _ in 0..100 {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .with_context(|| format!("DescribeStreamSummary {name}"))?
            .stream_description_summary
            .context("DescribeStreamSummary: no summary")?;
        if summary.stream_status == StreamStatus::Active {
            return Ok(summary.stream_arn);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("stream {name} did not become active")
}

/// Puts `entries` (partition key, data) in calls of at most
/// [`MAX_PUT_ENTRIES`], resending failed entries; returns the calls made.
pub async fn put(
    client: &Client,
    stream: &str,
    entries: &[(String, Vec<u8>)],
) -> anyhow::Result<usize> {
    let mut calls = 0;
    for chunk in entries.chunks(MAX_PUT_ENTRIES) {
        let mut pending: Vec<&(String, Vec<u8>)> = chunk.iter().collect();
        for _round in 0..10 {
            let requests = pending
                .iter()
                .map(|(key, data)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(key)
                        .data(Blob::new(data.clone()))
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            calls += 1;
            let answer = client
                .put_records()
                .stream_name(stream)
                .set_records(Some(requests))
                .send()
                .await
                .with_context(|| format!("PutRecords {stream}"))?;
            pending = pending
                .into_iter()
                .zip(answer.records())
                .filter(|(_, result)| result.error_code().is_some())
                .map(|(entry, _)| entry)
                .collect();
            if pending.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(pending.is_empty(), "{stream}: entries kept failing");
    }
    Ok(calls)
}

/// One record read from a stream.
#[derive(Clone, Debug)]
pub struct StreamRecord {
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// `ApproximateArrivalTimestamp`: when the stream accepted it.
    pub arrival: SystemTime,
}

/// A consumer's position in one shard, from `TRIM_HORIZON`.
pub struct ShardReader {
    client: Client,
    stream: String,
    pub shard_id: String,
    iterator: Option<String>,
}

impl ShardReader {
    /// Readers of every shard of `stream`.
    pub async fn every_shard(client: &Client, stream: &str) -> anyhow::Result<Vec<ShardReader>> {
        let listed = client
            .list_shards()
            .stream_name(stream)
            .send()
            .await
            .with_context(|| format!("ListShards {stream}"))?;
        let mut readers = Vec::new();
        for shard in listed.shards() {
            let iterator = client
                .get_shard_iterator()
                .stream_name(stream)
                .shard_id(shard.shard_id())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .with_context(|| format!("GetShardIterator {}", shard.shard_id()))?
                .shard_iterator;
            readers.push(ShardReader {
                client: client.clone(),
                stream: stream.to_owned(),
                shard_id: shard.shard_id().to_owned(),
                iterator,
            });
        }
        Ok(readers)
    }

    /// The next records of the shard, at most `limit` (one `GetRecords`,
    /// sent again after a failure, as a consumer does: moto fails a
    /// `GetRecords` that reads a shard while a `PutRecords` appends to it,
    /// with a 500, "OrderedDict mutated during iteration").
    pub async fn read(&mut self, limit: usize) -> anyhow::Result<Vec<StreamRecord>> {
        let Some(iterator) = self.iterator.clone() else {
            return Ok(Vec::new());
        };
        let mut attempt = 0;
        let page = loop {
            let answer = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(limit.min(MAX_GET_RECORDS) as i32)
                .send()
                .await
                .with_context(|| format!("GetRecords {} {}", self.stream, self.shard_id));
            match answer {
                Ok(page) => break page,
                Err(error) if attempt < MAX_READ_ATTEMPTS => {
                    attempt += 1;
                    eprintln!("{error:#}; reading again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error),
            }
        };
        self.iterator = page.next_shard_iterator.clone();
        Ok(page
            .records()
            .iter()
            .map(|r| StreamRecord {
                shard_id: self.shard_id.clone(),
                sequence_number: r.sequence_number().to_owned(),
                partition_key: r.partition_key().unwrap_or_default().to_owned(),
                data: r.data().as_ref().to_vec(),
                arrival: r
                    .approximate_arrival_timestamp()
                    .map_or(SystemTime::UNIX_EPOCH, |t| {
                        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(t.as_secs_f64())
                    }),
            })
            .collect())
    }

    /// Everything the shard holds beyond what was read before.
    pub async fn read_all(&mut self) -> anyhow::Result<Vec<StreamRecord>> {
        let mut out = Vec::new();
        loop {
            let page = self.read(MAX_GET_RECORDS).await?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }
}

/// A consumer of a whole stream, reading what arrived since its last read.
pub struct Tail {
    readers: Vec<ShardReader>,
}

impl Tail {
    pub async fn open(client: &Client, stream: &str) -> anyhow::Result<Tail> {
        Ok(Tail {
            readers: ShardReader::every_shard(client, stream).await?,
        })
    }

    /// The records that arrived since the last poll, each shard's in order.
    pub async fn poll(&mut self) -> anyhow::Result<Vec<StreamRecord>> {
        let mut out = Vec::new();
        for reader in &mut self.readers {
            out.extend(reader.read_all().await?);
        }
        Ok(out)
    }
}

/// Every record of `stream`, read back from `TRIM_HORIZON`.
pub async fn read_back(client: &Client, stream: &str) -> anyhow::Result<Vec<StreamRecord>> {
    Tail::open(client, stream).await?.poll().await
}

/// The customer records as [`Arrival`]s (the data is the customer payload).
pub fn arrivals(records: &[StreamRecord]) -> anyhow::Result<Vec<Arrival>> {
    records
        .iter()
        .map(|r| {
            Ok(Arrival {
                dsn: r.partition_key.clone(),
                event: event_number(&r.data)?,
                at: r.arrival,
            })
        })
        .collect()
}

/// A record of the DPL stream as Lambda's Kinesis event source delivers
/// it (as `tools/demo/src/esm.rs` builds it): base64 `data`, `eventID` =
/// `{shardId}:{sequenceNumber}`.
pub fn lambda_record(
    record: &StreamRecord,
    stream_arn: &str,
    region: &str,
) -> anyhow::Result<KinesisEventRecord> {
    let arrival = record
        .arrival
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    serde_json::from_value(serde_json::json!({
        "eventID": format!("{}:{}", record.shard_id, record.sequence_number),
        "eventSource": "aws:kinesis",
        "eventName": "aws:kinesis:record",
        "eventVersion": "1.0",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record.partition_key,
            "sequenceNumber": record.sequence_number,
            "data": base64::engine::general_purpose::STANDARD.encode(&record.data),
            "approximateArrivalTimestamp": arrival,
        }
    }))
    .context("a Kinesis record that Lambda's event type does not read")
}
