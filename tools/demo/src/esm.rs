//! A local event source mapping: what Lambda does between a stream and a
//! function, for the emulator, with the functions called in-process.
//!
//! - reads each shard from `TRIM_HORIZON` with the real SDK clients
//!   (DynamoDB Streams `GetRecords`, Kinesis `GetRecords`), at most the
//!   mapping's `BatchSize` records per invocation;
//! - builds the event Lambda sends: DynamoDB records with `eventSourceARN`
//!   and whole-second `ApproximateCreationDateTime`; Kinesis records with
//!   base64 `data` and `eventID` = `{shardId}:{sequenceNumber}`;
//! - honours partial batch responses (`ReportBatchItemFailures`): the batch
//!   is invoked again from the first reported record; a reported
//!   identifier that is not in the batch fails the whole batch, as in
//!   Lambda;
//! - retries a failed batch at most `MaximumRetryAttempts` times, then
//!   sends its metadata to the on-failure queue (as Lambda's
//!   `DestinationConfig.OnFailure` does) and goes on. The demo treats any
//!   such batch as a failure of the run.
//!
//! Not modelled: batching windows (the demo drains what is there),
//! bisection on function errors (a function error retries the batch), and
//! parallelization (one batch per shard at a time, shards one after the
//! other).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::kinesis::KinesisEventRecord;
use base64::Engine;
use lambda_runtime::tracing::{info_span, Instrument};
use serde::Serialize;
use serde_json::{json, Value};

use crate::stack::EventSource;

/// Where a mapping reads.
pub trait Source {
    type Record: Clone;

    /// The stream's ARN (`eventSourceARN`).
    fn arn(&self) -> &str;

    fn shard_ids(&self) -> Vec<String>;

    /// The next records of shard `shard` (an index into `shard_ids`), at
    /// most `limit`; empty when the shard has nothing more now.
    fn read(
        &mut self,
        shard: usize,
        limit: usize,
    ) -> impl std::future::Future<Output = anyhow::Result<Vec<Self::Record>>>;

    /// The record's identifier in a partial batch response.
    fn sequence_number(record: &Self::Record) -> &str;
}

/// A function invoked with a batch: the item identifiers of its partial
/// batch response, or its error.
pub trait Invoke<R> {
    fn invoke(
        &self,
        records: &[R],
    ) -> impl std::future::Future<Output = anyhow::Result<Vec<String>>>;
}

/// The `itemIdentifier`s of a partial batch response (DynamoDB or Kinesis).
pub fn batch_item_failures(response: &impl Serialize) -> anyhow::Result<Vec<String>> {
    let value = serde_json::to_value(response).context("a batch response")?;
    let failures = value
        .get("batchItemFailures")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(failures
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap_or_default().to_owned())
        .collect())
}

/// The settings of a mapping, from the template.
#[derive(Clone, Debug)]
pub struct Settings {
    pub batch_size: usize,
    pub maximum_retry_attempts: u32,
    pub report_batch_item_failures: bool,
}

impl Settings {
    /// Lambda's defaults where the template says nothing (Lambda
    /// Developer Guide, CreateEventSourceMapping: batch size 100, retries
    /// until the record expires; we stop at 10000).
    pub fn from_template(source: &EventSource) -> Self {
        Self {
            batch_size: source.batch_size.unwrap_or(100),
            maximum_retry_attempts: source.maximum_retry_attempts.unwrap_or(10_000),
            report_batch_item_failures: source.report_batch_item_failures,
        }
    }
}

/// What a mapping did.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub invocations: usize,
    pub records: usize,
    /// Invocations answered with batch item failures.
    pub partial_failures: usize,
    /// Invocations that failed as a whole.
    pub errors: usize,
    pub retries: usize,
    /// Records of batches given up after the last retry (sent to the
    /// on-failure queue).
    pub given_up: usize,
    pub last_error: Option<String>,
}

/// The on-failure destination of a mapping.
pub struct OnFailure {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

/// One event source mapping: a source, a function, settings.
pub struct Mapping<S, F> {
    pub name: String,
    pub source: S,
    pub function: F,
    pub settings: Settings,
    pub on_failure: Option<OnFailure>,
    pub backoff: Duration,
    pub stats: Stats,
}

impl<S: Source, F: Invoke<S::Record>> Mapping<S, F> {
    pub fn new(name: &str, source: S, function: F, settings: Settings) -> Self {
        Self {
            name: name.to_owned(),
            source,
            function,
            settings,
            on_failure: None,
            backoff: Duration::from_millis(100),
            stats: Stats::default(),
        }
    }

    /// Invokes the function until every shard has nothing more to read;
    /// `progress` gets the number of records of each finished batch.
    pub async fn drain(&mut self, progress: &dyn Fn(usize)) -> anyhow::Result<()> {
        for (shard, shard_id) in self.source.shard_ids().into_iter().enumerate() {
            loop {
                let records = self
                    .source
                    .read(shard, self.settings.batch_size)
                    .await
                    .with_context(|| format!("{}: reading {shard_id}", self.name))?;
                if records.is_empty() {
                    break;
                }
                self.deliver(&shard_id, &records).await?;
                self.stats.records += records.len();
                progress(records.len());
            }
        }
        Ok(())
    }

    async fn deliver(&mut self, shard_id: &str, records: &[S::Record]) -> anyhow::Result<()> {
        let mut pending = records;
        let mut retries = 0;
        loop {
            self.stats.invocations += 1;
            // Each function's log lines name it, as its own log group would.
            let invocation = self
                .function
                .invoke(pending)
                .instrument(info_span!("function", name = %self.name));
            let why = match invocation.await {
                Ok(failed) if failed.is_empty() => return Ok(()),
                Ok(failed) => {
                    self.stats.partial_failures += 1;
                    let first = failed
                        .iter()
                        .map(|id| pending.iter().position(|r| S::sequence_number(r) == id))
                        .collect::<Option<Vec<usize>>>()
                        .and_then(|positions| positions.into_iter().min());
                    match first {
                        Some(first) if self.settings.report_batch_item_failures => {
                            pending = &pending[first..];
                            format!(
                                "batch item failure from {}",
                                S::sequence_number(&pending[0])
                            )
                        }
                        _ => format!(
                            "batch item failures {failed:?} do not name a record of the batch"
                        ),
                    }
                }
                Err(error) => {
                    self.stats.errors += 1;
                    format!("{error:#}")
                }
            };
            self.stats.last_error = Some(why.clone());
            if retries >= self.settings.maximum_retry_attempts {
                return self.give_up(shard_id, pending, &why, retries).await;
            }
            retries += 1;
            self.stats.retries += 1;
            let wait = self.backoff * 2u32.pow(retries.min(5) - 1);
            tokio::time::sleep(wait).await;
        }
    }

    /// After the last retry: the batch's metadata to the on-failure
    /// queue, in the shape of Lambda's invocation record.
    async fn give_up(
        &mut self,
        shard_id: &str,
        records: &[S::Record],
        why: &str,
        retries: u32,
    ) -> anyhow::Result<()> {
        self.stats.given_up += records.len();
        let first = records.first().map(S::sequence_number).unwrap_or_default();
        let last = records.last().map(S::sequence_number).unwrap_or_default();
        let record = json!({
            "requestContext": {
                "condition": "RetryAttemptsExhausted",
                "functionArn": self.name,
                "approximateInvokeCount": retries + 1,
            },
            "responseContext": {"functionError": why},
            "batchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first,
                "endSequenceNumber": last,
                "batchSize": records.len(),
                "streamArn": self.source.arn(),
            },
        });
        if let Some(on_failure) = &self.on_failure {
            on_failure
                .sqs
                .send_message()
                .queue_url(&on_failure.queue_url)
                .message_body(record.to_string())
                .send()
                .await
                .with_context(|| format!("{}: sending to the on-failure queue", self.name))?;
        }
        Ok(())
    }
}

/// A DynamoDB stream, read through the DynamoDB Streams API.
pub struct DynamoDbStream {
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    region: String,
    shards: Vec<(String, Option<String>)>,
}

impl DynamoDbStream {
    /// Every shard of the stream, from `TRIM_HORIZON`.
    pub async fn open(
        client: aws_sdk_dynamodbstreams::Client,
        arn: &str,
        region: &str,
    ) -> anyhow::Result<Self> {
        use aws_sdk_dynamodbstreams::types::ShardIteratorType;
        let description = client
            .describe_stream()
            .stream_arn(arn)
            .send()
            .await
            .with_context(|| format!("DescribeStream {arn}"))?
            .stream_description
            .context("DescribeStream: no description")?;
        let mut shards = Vec::new();
        for shard in description.shards() {
            let id = shard.shard_id().unwrap_or_default().to_owned();
            let iterator = client
                .get_shard_iterator()
                .stream_arn(arn)
                .shard_id(&id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .with_context(|| format!("GetShardIterator {id}"))?
                .shard_iterator;
            shards.push((id, iterator));
        }
        Ok(Self {
            client,
            arn: arn.to_owned(),
            region: region.to_owned(),
            shards,
        })
    }

    /// A DynamoDB Streams API record as Lambda delivers it.
    fn lambda_record(&self, record: &aws_sdk_dynamodbstreams::types::Record) -> Value {
        type Image = HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>;
        let image = |item: Option<&Image>| {
            item.map(|item| {
                serde_json::to_value(serde_dynamo::Item::from(item.clone()))
                    .expect("an item is JSON")
            })
        };
        let change = record.dynamodb();
        let mut dynamodb = json!({
            // Lambda delivers whole seconds (docs/twin-table.md).
            "ApproximateCreationDateTime": change
                .and_then(|c| c.approximate_creation_date_time())
                .map(|t| t.secs()),
            "Keys": image(change.and_then(|c| c.keys.as_ref())),
            "SequenceNumber": change.and_then(|c| c.sequence_number()),
            "SizeBytes": change.and_then(|c| c.size_bytes()),
            "StreamViewType": change.and_then(|c| c.stream_view_type()).map(|v| v.as_str()),
        });
        for (name, item) in [
            ("NewImage", image(change.and_then(|c| c.new_image.as_ref()))),
            ("OldImage", image(change.and_then(|c| c.old_image.as_ref()))),
        ] {
            if let Some(item) = item {
                dynamodb[name] = item;
            }
        }
        json!({
            "eventID": record.event_id(),
            "eventName": record.event_name().map(|n| n.as_str()),
            "eventVersion": record.event_version(),
            "eventSource": record.event_source(),
            "awsRegion": record.aws_region().unwrap_or(&self.region),
            "eventSourceARN": self.arn,
            "dynamodb": dynamodb,
        })
    }
}

impl Source for DynamoDbStream {
    type Record = EventRecord;

    fn arn(&self) -> &str {
        &self.arn
    }

    fn shard_ids(&self) -> Vec<String> {
        self.shards.iter().map(|(id, _)| id.clone()).collect()
    }

    async fn read(&mut self, shard: usize, limit: usize) -> anyhow::Result<Vec<EventRecord>> {
        let Some(iterator) = self.shards[shard].1.clone() else {
            return Ok(Vec::new());
        };
        let page = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit.min(1000) as i32)
            .send()
            .await
            .context("GetRecords")?;
        self.shards[shard].1 = page.next_shard_iterator.clone();
        let records: Vec<Value> = page
            .records()
            .iter()
            .map(|r| self.lambda_record(r))
            .collect();
        let event: Event = serde_json::from_value(json!({ "Records": records }))
            .context("a DynamoDB stream record that Lambda's event type does not read")?;
        Ok(event.records)
    }

    fn sequence_number(record: &EventRecord) -> &str {
        record.change.sequence_number.as_deref().unwrap_or_default()
    }
}

/// A Kinesis stream, read through the Kinesis API.
pub struct KinesisStream {
    client: aws_sdk_kinesis::Client,
    arn: String,
    region: String,
    shards: Vec<(String, Option<String>)>,
}

impl KinesisStream {
    /// Every shard of the stream, from `TRIM_HORIZON`.
    pub async fn open(
        client: aws_sdk_kinesis::Client,
        arn: &str,
        region: &str,
    ) -> anyhow::Result<Self> {
        use aws_sdk_kinesis::types::ShardIteratorType;
        let name = arn.rsplit('/').next().unwrap_or(arn);
        let listed = client
            .list_shards()
            .stream_name(name)
            .send()
            .await
            .with_context(|| format!("ListShards {name}"))?;
        let mut shards = Vec::new();
        for shard in listed.shards() {
            let iterator = client
                .get_shard_iterator()
                .stream_name(name)
                .shard_id(shard.shard_id())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .with_context(|| format!("GetShardIterator {}", shard.shard_id()))?
                .shard_iterator;
            shards.push((shard.shard_id().to_owned(), iterator));
        }
        Ok(Self {
            client,
            arn: arn.to_owned(),
            region: region.to_owned(),
            shards,
        })
    }
}

impl Source for KinesisStream {
    type Record = KinesisEventRecord;

    fn arn(&self) -> &str {
        &self.arn
    }

    fn shard_ids(&self) -> Vec<String> {
        self.shards.iter().map(|(id, _)| id.clone()).collect()
    }

    async fn read(
        &mut self,
        shard: usize,
        limit: usize,
    ) -> anyhow::Result<Vec<KinesisEventRecord>> {
        let Some(iterator) = self.shards[shard].1.clone() else {
            return Ok(Vec::new());
        };
        let page = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit.min(10_000) as i32)
            .send()
            .await
            .context("GetRecords")?;
        self.shards[shard].1 = page.next_shard_iterator.clone();
        let shard_id = &self.shards[shard].0;
        page.records()
            .iter()
            .map(|r| {
                let arrival = r
                    .approximate_arrival_timestamp()
                    .map_or(0.0, |t| t.as_secs_f64());
                serde_json::from_value(json!({
                    "eventID": format!("{shard_id}:{}", r.sequence_number()),
                    "eventSource": "aws:kinesis",
                    "eventName": "aws:kinesis:record",
                    "eventVersion": "1.0",
                    "awsRegion": self.region,
                    "eventSourceARN": self.arn,
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r.partition_key(),
                        "sequenceNumber": r.sequence_number(),
                        "data": base64::engine::general_purpose::STANDARD.encode(r.data().as_ref()),
                        "approximateArrivalTimestamp": arrival,
                    }
                }))
                .context("a Kinesis record that Lambda's event type does not read")
            })
            .collect()
    }

    fn sequence_number(record: &KinesisEventRecord) -> &str {
        record.kinesis.sequence_number.as_str()
    }
}
