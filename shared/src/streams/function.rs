//! What the two stream functions (`stream-kinesis`, `stream-eventhubs`)
//! share: their configuration, the requests they answer, and the handler
//! around [`Dispatcher`]. Each function's `main` only picks its transport's
//! [`Destinations`] and wires the clients.

use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::destination::Destinations;
use super::dispatch::{DispatchConfig, DispatchError, Dispatcher};
use super::dynamo::SubscriptionStore;
use super::parking::ParkingLot;
use super::redrive::Redriven;
use super::subscription::{SubscriptionId, Transport};

/// DynamoDB table of the subscriptions.
pub const SUBSCRIPTIONS_TABLE_VAR: &str = "SUBSCRIPTIONS_TABLE";
/// DynamoDB table of the parked events.
pub const PARKED_EVENTS_TABLE_VAR: &str = "PARKED_EVENTS_TABLE";
/// Time one subscription may take per batch, in ms (default 10000).
pub const BUDGET_MS_VAR: &str = "SUBSCRIPTION_BUDGET_MS";
/// How long the subscription list is reused, in ms (default 30000).
pub const CACHE_TTL_MS_VAR: &str = "SUBSCRIPTION_CACHE_TTL_MS";
/// Time kept free before the invocation deadline, in ms (default 2000).
pub const DEADLINE_MARGIN_MS_VAR: &str = "DEADLINE_MARGIN_MS";

/// Default [`DEADLINE_MARGIN_MS_VAR`]: room to park what is left, answer
/// and flush the logs.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set (or empty)")]
    Missing(&'static str),
    #[error("environment variable {name} must be a number of milliseconds, found {value:?}")]
    NotMillis { name: &'static str, value: String },
}

/// A stream function's configuration; see the `*_VAR` constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    pub subscriptions_table: String,
    pub parked_events_table: String,
    pub dispatch: DispatchConfig,
    pub deadline_margin: Duration,
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
        let millis = |name, default: Duration| match value(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse()
                .map(Duration::from_millis)
                .map_err(|_| ConfigError::NotMillis { name, value: text }),
        };
        let defaults = DispatchConfig::new(transport);
        Ok(Self {
            subscriptions_table: required(SUBSCRIPTIONS_TABLE_VAR)?,
            parked_events_table: required(PARKED_EVENTS_TABLE_VAR)?,
            dispatch: DispatchConfig {
                transport,
                budget: millis(BUDGET_MS_VAR, defaults.budget)?,
                cache_ttl: millis(CACHE_TTL_MS_VAR, defaults.cache_ttl)?,
            },
            deadline_margin: millis(DEADLINE_MARGIN_MS_VAR, DEFAULT_DEADLINE_MARGIN)?,
        })
    }
}

/// A redrive asked for by hand: one subscription, or all of them.
/// Sample: `events/stream-kinesis/redrive.json`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// A subscription id, or `*` for every subscription of the transport.
    pub redrive: String,
}

/// What a stream function is invoked with.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum StreamRequest {
    /// A batch of the DPL stream (event source mapping).
    Batch(KinesisEvent),
    /// `dplctl streams redrive`, or a test.
    Redrive(RedriveRequest),
    /// The redrive schedule (EventBridge Scheduler).
    Scheduled(Box<EventBridgeEvent<serde_json::Value>>),
}

/// One subscription's redrive, as answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RedriveSummary {
    pub subscription: String,
    pub delivered: usize,
    pub remaining: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RedriveSummary {
    fn new(id: &SubscriptionId, redriven: Redriven) -> Self {
        Self {
            subscription: id.to_string(),
            delivered: redriven.delivered,
            remaining: redriven.remaining,
            error: redriven.error,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StreamResponse {
    Batch(KinesisEventResponse),
    Redrive { redriven: Vec<RedriveSummary> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    #[error("no enabled {transport} subscription has the id {id}")]
    UnknownSubscription { transport: Transport, id: String },
}

impl<S, P, D> Dispatcher<S, P, D>
where
    S: SubscriptionStore,
    P: ParkingLot,
    D: Destinations,
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
            StreamRequest::Scheduled(_) => self.redrive_matching("*", deadline).await,
            StreamRequest::Redrive(RedriveRequest { redrive }) => {
                self.redrive_matching(redrive, deadline).await
            }
        }
    }

    async fn redrive_matching(
        &self,
        which: &str,
        deadline: Instant,
    ) -> Result<StreamResponse, RequestError> {
        let redriven = if which == "*" {
            self.redrive_all(deadline).await?
        } else {
            let subscriptions = self.subscriptions().await?;
            let subscription = subscriptions
                .iter()
                .find(|s| s.id.to_string() == which)
                .ok_or_else(|| RequestError::UnknownSubscription {
                    transport: self.config().transport,
                    id: which.to_owned(),
                })?;
            vec![(
                subscription.id.clone(),
                self.redrive(subscription, deadline).await,
            )]
        };
        Ok(StreamResponse::Redrive {
            redriven: redriven
                .into_iter()
                .map(|(id, r)| RedriveSummary::new(&id, r))
                .collect(),
        })
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
        assert_eq!(
            sample("redrive.json"),
            StreamRequest::Redrive(RedriveRequest {
                redrive: "*".into()
            })
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
        let tables = [
            (SUBSCRIPTIONS_TABLE_VAR, "subs"),
            (PARKED_EVENTS_TABLE_VAR, "parked"),
        ];
        let read = |v: HashMap<String, String>| {
            StreamConfig::from_lookup(Transport::EventHubs, |name| v.get(name).cloned())
        };
        let config = read(vars(&tables)).unwrap();
        assert_eq!(config.dispatch, DispatchConfig::new(Transport::EventHubs));
        assert_eq!(config.deadline_margin, DEFAULT_DEADLINE_MARGIN);
        assert_eq!(
            read(vars(&tables[..1])),
            Err(ConfigError::Missing(PARKED_EVENTS_TABLE_VAR))
        );
        let mut bad = vars(&tables);
        bad.insert(BUDGET_MS_VAR.into(), "10s".into());
        assert_eq!(
            read(bad),
            Err(ConfigError::NotMillis {
                name: BUDGET_MS_VAR,
                value: "10s".into()
            })
        );
    }
}
