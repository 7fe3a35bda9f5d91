//! What the two stream functions (`stream-kinesis`, `stream-eventhubs`)
//! share: their configuration, the requests they answer, and the handler
//! around [`Engine`]. Each function's `main` only names its transport
//! (`super::build::engine`).

use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::KinesisEventResponse;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::archive::Archive;
use super::catchup::CatchUpReport;
use super::destination::Destinations;
use super::engine::{Engine, EngineConfig, EngineError};
use super::queue::{CatchUpQueue, CatchUpRequest};
use super::reader::ShardReader;
use super::redrive::Redriven;
use super::state::DeliveryState;
use super::store::SubscriptionStore;
use super::subscription::{SubscriptionId, Transport};

/// DynamoDB table of the subscriptions.
pub const SUBSCRIPTIONS_TABLE_VAR: &str = "SUBSCRIPTIONS_TABLE";
/// DynamoDB table of cursors, dead letters and leases.
pub const DELIVERY_STATE_TABLE_VAR: &str = "DELIVERY_STATE_TABLE";
/// The DPL stream (name or ARN), read by the catch-up worker.
pub const DPL_STREAM_VAR: &str = "DPL_STREAM_NAME";
/// SQS queue of catch-up requests.
pub const CATCH_UP_QUEUE_URL_VAR: &str = "CATCH_UP_QUEUE_URL";
/// Time one subscription may take per live batch, in ms (default 2000).
pub const BUDGET_MS_VAR: &str = "SUBSCRIPTION_BUDGET_MS";
/// How long the subscription list is reused, in ms (default 30000).
pub const CACHE_TTL_MS_VAR: &str = "SUBSCRIPTION_CACHE_TTL_MS";
/// Time kept free before the invocation deadline, in ms (default 2000).
pub const DEADLINE_MARGIN_MS_VAR: &str = "DEADLINE_MARGIN_MS";
/// Catch-up `GetRecords` calls per second and shard (default 1).
pub const CATCH_UP_READS_VAR: &str = "CATCH_UP_READS_PER_SECOND";
/// Catch-up bytes read per second and shard (default 1000000).
pub const CATCH_UP_BYTES_VAR: &str = "CATCH_UP_READ_BYTES_PER_SECOND";
/// Requests in flight per destination (Event Hubs: DSNs at once; Kinesis:
/// `PutRecords` calls at once), 1 to 1024. Default per transport:
/// `super::eventhubs::DEFAULT_CONCURRENCY`, `super::kinesis::DEFAULT_IN_FLIGHT`.
pub const CONCURRENCY_VAR: &str = "DESTINATION_CONCURRENCY";

/// How long the DPL stream keeps records, in hours (the template's
/// `DplRetentionHours`; default 168).
pub const DPL_RETENTION_HOURS_VAR: &str = "DPL_RETENTION_HOURS";

/// Default [`DEADLINE_MARGIN_MS_VAR`]: room to write cursors, answer and
/// flush the logs.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set (or empty)")]
    Missing(&'static str),
    #[error("environment variable {name} must be {expected}, found {value:?}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
        value: String,
    },
    /// The archive's bucket and prefixes (`BUCKET`, `STAGING_PREFIX`).
    #[error(transparent)]
    Storage(#[from] crate::export::config::ConfigError),
}

/// A stream function's configuration; see the `*_VAR` constants.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    pub subscriptions_table: String,
    pub delivery_state_table: String,
    pub dpl_stream: String,
    pub catch_up_queue_url: String,
    /// Where the archive (staging) lives.
    pub storage: crate::export::config::StorageConfig,
    pub engine: EngineConfig,
    pub deadline_margin: Duration,
    /// `None`: the transport's default.
    pub concurrency: Option<usize>,
}

impl StreamConfig {
    pub fn from_env(transport: Transport) -> Result<Self, ConfigError> {
        Self::from_lookup(transport, |name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(
        transport: Transport,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let value = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
        let required = |name| value(name).ok_or(ConfigError::Missing(name));
        fn parse<T: std::str::FromStr>(
            name: &'static str,
            expected: &'static str,
            text: Option<String>,
            valid: impl Fn(&T) -> bool,
        ) -> Result<Option<T>, ConfigError> {
            text.map(|text| match text.trim().parse::<T>() {
                Ok(v) if valid(&v) => Ok(v),
                _ => Err(ConfigError::Invalid {
                    name,
                    expected,
                    value: text,
                }),
            })
            .transpose()
        }
        let millis = |name, default: Duration| {
            parse::<u64>(name, "a number of milliseconds", value(name), |_| true)
                .map(|ms| ms.map_or(default, Duration::from_millis))
        };
        let defaults = EngineConfig::new(transport);
        let mut catch_up = defaults.catch_up;
        if let Some(reads) = parse::<f64>(
            CATCH_UP_READS_VAR,
            "a number of calls per second above 0 and at most 5",
            value(CATCH_UP_READS_VAR),
            |v| *v > 0.0 && *v <= 5.0,
        )? {
            catch_up.reads_per_second = reads;
        }
        if let Some(bytes) = parse::<usize>(
            CATCH_UP_BYTES_VAR,
            "a number of bytes per second from 1 to 2000000",
            value(CATCH_UP_BYTES_VAR),
            |v| (1..=2_000_000).contains(v),
        )? {
            catch_up.read_bytes_per_second = bytes;
        }
        if let Some(hours) = parse::<u64>(
            DPL_RETENTION_HOURS_VAR,
            "a number of hours from 24 to 8760 (the DPL stream's retention)",
            value(DPL_RETENTION_HOURS_VAR),
            |v| (24..=8_760).contains(v),
        )? {
            catch_up.retention = Duration::from_secs(hours * 3_600);
        }
        Ok(Self {
            subscriptions_table: required(SUBSCRIPTIONS_TABLE_VAR)?,
            delivery_state_table: required(DELIVERY_STATE_TABLE_VAR)?,
            dpl_stream: required(DPL_STREAM_VAR)?,
            catch_up_queue_url: required(CATCH_UP_QUEUE_URL_VAR)?,
            storage: crate::export::config::StorageConfig::from_lookup(&lookup)?,
            engine: EngineConfig {
                transport,
                budget: millis(BUDGET_MS_VAR, defaults.budget)?,
                cache_ttl: millis(CACHE_TTL_MS_VAR, defaults.cache_ttl)?,
                catch_up,
            },
            deadline_margin: millis(DEADLINE_MARGIN_MS_VAR, DEFAULT_DEADLINE_MARGIN)?,
            concurrency: parse::<usize>(
                CONCURRENCY_VAR,
                "a number of requests from 1 to 1024",
                value(CONCURRENCY_VAR),
                |v| (1..=1024).contains(v),
            )?,
        })
    }
}

/// Dead letters sent again by hand: one subscription, or all of them.
/// Sample: `events/stream-kinesis/redrive.json`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// A subscription id, or `*` for every subscription of the transport.
    pub redrive: String,
}

/// The sweep, by schedule: `{"catch_up": "*"}`
/// (`events/stream-kinesis/sweep.json`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    pub catch_up: Star,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Star {
    #[serde(rename = "*")]
    All,
}

/// What a stream function is invoked with.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum StreamRequest {
    /// A batch of the DPL stream (event source mapping).
    Batch(KinesisEvent),
    /// Catch-up requests from the queue (event source mapping):
    /// `events/stream-kinesis/catch-up.json`.
    Queue(SqsEvent),
    /// One catch-up worker, invoked by hand: `{"catch_up": {"shard": "..."}}`.
    CatchUp(CatchUpRequest),
    /// The schedule.
    Sweep(SweepRequest),
    /// `dplctl streams redrive`, or by hand.
    Redrive(RedriveRequest),
}

/// One subscription's redrive, as answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RedriveSummary {
    pub subscription: String,
    pub delivered: usize,
    pub refused: usize,
    pub remaining: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RedriveSummary {
    fn new(id: &SubscriptionId, redriven: Redriven) -> Self {
        Self {
            subscription: id.to_string(),
            delivered: redriven.delivered,
            refused: redriven.refused,
            remaining: redriven.remaining,
            error: redriven.error,
        }
    }
}

/// One catch-up run, as answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CatchUpSummary {
    pub shard: String,
    pub leased: bool,
    pub subscriptions: usize,
    pub handed_back: usize,
    pub delivered: usize,
    pub dead_lettered: usize,
    pub still_behind: usize,
}

impl CatchUpSummary {
    fn new(shard: &str, report: CatchUpReport) -> Self {
        Self {
            shard: shard.to_owned(),
            leased: report.leased,
            subscriptions: report.subscriptions,
            handed_back: report.handed_back,
            delivered: report.delivered,
            dead_lettered: report.dead_lettered,
            still_behind: report.still_behind,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StreamResponse {
    Batch(KinesisEventResponse),
    Queue(SqsBatchResponse),
    CatchUp { caught_up: Vec<CatchUpSummary> },
    Sweep { catch_up_asked: Vec<String> },
    Redrive { redriven: Vec<RedriveSummary> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("no enabled {transport} subscription has the id {id}")]
    UnknownSubscription { transport: Transport, id: String },
}

impl<S, T, D, R, Q, A> Engine<S, T, D, R, Q, A>
where
    S: SubscriptionStore + Send + Sync,
    T: DeliveryState,
    D: Destinations,
    R: ShardReader,
    Q: CatchUpQueue,
    A: Archive,
{
    /// The Lambda entry point of a stream function.
    pub async fn handle(
        &self,
        request: &StreamRequest,
        deadline: Instant,
    ) -> Result<StreamResponse, RequestError> {
        match request {
            StreamRequest::Batch(event) => Ok(StreamResponse::Batch(
                self.dispatch(&event.records, deadline).await?,
            )),
            StreamRequest::Queue(event) => {
                Ok(StreamResponse::Queue(self.queued(event, deadline).await))
            }
            StreamRequest::CatchUp(request) => {
                let shard = &request.catch_up.shard;
                let report = self.catch_up(shard, deadline).await?;
                Ok(StreamResponse::CatchUp {
                    caught_up: vec![CatchUpSummary::new(shard, report)],
                })
            }
            StreamRequest::Sweep(_) => Ok(StreamResponse::Sweep {
                catch_up_asked: self.sweep().await?,
            }),
            StreamRequest::Redrive(RedriveRequest { redrive }) => {
                self.redrive_matching(redrive, deadline).await
            }
        }
    }

    /// Runs a worker for each queued request, at once. A message that is
    /// not a request is logged and dropped (retrying cannot fix it); a
    /// worker that fails is retried by the queue.
    async fn queued(&self, event: &SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let runs = event.records.iter().map(|message| async move {
            let body = message.body.as_deref().unwrap_or_default();
            let request = match CatchUpRequest::from_body(body) {
                Ok(request) => request,
                Err(error) => {
                    tracing::error!(%error, message_id = message.message_id.as_deref(),
                        "catch-up message is not a request; dropped");
                    return None;
                }
            };
            match self.catch_up(&request.catch_up.shard, deadline).await {
                Ok(_) => None,
                Err(error) => {
                    tracing::error!(%error, shard = %request.catch_up.shard, "catch-up failed");
                    message.message_id.clone()
                }
            }
        });
        let mut response = SqsBatchResponse::default();
        for failed in join_all(runs).await.into_iter().flatten() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = failed;
            response.batch_item_failures.push(failure);
        }
        response
    }

    async fn redrive_matching(
        &self,
        which: &str,
        deadline: Instant,
    ) -> Result<StreamResponse, RequestError> {
        let subscriptions = self.subscriptions().await?;
        let chosen: Vec<_> = subscriptions
            .iter()
            .filter(|s| which == "*" || s.id.as_str() == which)
            .collect();
        if chosen.is_empty() && which != "*" {
            return Err(RequestError::UnknownSubscription {
                transport: self.config().transport,
                id: which.to_owned(),
            });
        }
        let redriven =
            join_all(chosen.iter().map(|s| async move {
                RedriveSummary::new(&s.id, self.redrive(s, deadline).await)
            }))
            .await;
        Ok(StreamResponse::Redrive { redriven })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn sample(name: &str) -> StreamRequest {
        let path = format!(
            "{}/../events/stream-kinesis/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn each_sample_event_is_read_as_its_request() {
        let StreamRequest::Batch(batch) = sample("batch.json") else {
            panic!("not a batch");
        };
        let record = crate::DplRecord::from_json(&batch.records[0].kinesis.data).unwrap();
        assert_eq!(record.partition_key(), "AC000W000000001");
        let StreamRequest::Queue(queue) = sample("catch-up.json") else {
            panic!("not a queue event");
        };
        assert_eq!(queue.records.len(), 1);
        assert_eq!(
            sample("sweep.json"),
            StreamRequest::Sweep(SweepRequest {
                catch_up: Star::All
            })
        );
        assert_eq!(
            sample("redrive.json"),
            StreamRequest::Redrive(RedriveRequest {
                redrive: "*".into()
            })
        );
        let by_hand: StreamRequest =
            serde_json::from_str(r#"{"catch_up": {"shard": "shardId-000000000001"}}"#).unwrap();
        assert_eq!(
            by_hand,
            StreamRequest::CatchUp(CatchUpRequest::new("shardId-000000000001"))
        );
    }

    #[test]
    fn the_configuration_has_defaults_and_names_bad_values() {
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let required = [
            (SUBSCRIPTIONS_TABLE_VAR, "subs"),
            (DELIVERY_STATE_TABLE_VAR, "state"),
            (DPL_STREAM_VAR, "dpl"),
            (CATCH_UP_QUEUE_URL_VAR, "https://sqs/q"),
            ("BUCKET", "bucket"),
        ];
        let read = |v: HashMap<String, String>| {
            StreamConfig::from_lookup(Transport::EventHubs, |name| v.get(name).cloned())
        };
        let config = read(vars(&required)).unwrap();
        assert_eq!(config.engine, EngineConfig::new(Transport::EventHubs));
        assert_eq!(config.deadline_margin, DEFAULT_DEADLINE_MARGIN);
        assert_eq!(config.concurrency, None);
        assert_eq!(
            read(vars(&required[..3])),
            Err(ConfigError::Missing(CATCH_UP_QUEUE_URL_VAR))
        );
        assert!(matches!(
            read(vars(&required[..4])),
            Err(ConfigError::Storage(_))
        ));
        for (name, bad) in [
            (BUDGET_MS_VAR, "10s"),
            (CATCH_UP_READS_VAR, "6"),
            (CATCH_UP_BYTES_VAR, "0"),
            (CONCURRENCY_VAR, "0"),
            (DPL_RETENTION_HOURS_VAR, "12"),
        ] {
            let mut wrong = vars(&required);
            wrong.insert(name.into(), bad.into());
            assert!(
                matches!(read(wrong), Err(ConfigError::Invalid { name: n, .. }) if n == name),
                "{name}={bad}"
            );
        }
        let mut tuned = vars(&required);
        tuned.insert(CONCURRENCY_VAR.into(), "64".into());
        tuned.insert(CATCH_UP_READS_VAR.into(), "2".into());
        tuned.insert(DPL_RETENTION_HOURS_VAR.into(), "24".into());
        let config = read(tuned).unwrap();
        assert_eq!(config.concurrency, Some(64));
        assert_eq!(config.engine.catch_up.reads_per_second, 2.0);
        assert_eq!(
            config.engine.catch_up.retention,
            Duration::from_secs(86_400)
        );
    }
}
