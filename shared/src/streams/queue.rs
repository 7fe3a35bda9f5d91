//! Asking for a catch-up: the port [`CatchUpQueue`], its SQS adapter and an
//! in-memory one. The live path asks when a subscription falls behind on a
//! shard, the sweep (`super::catchup`) when a shard has subscriptions behind
//! and no worker, and a worker when its invocation ends before it is done.
//! Each message names one shard; the function's SQS event source runs one
//! worker per message, and the shard's lease keeps a second one idle.

use std::future::Future;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The body of a catch-up message (`events/stream-kinesis/catch-up.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatchUpRequest {
    pub catch_up: CatchUpShard,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatchUpShard {
    /// A DPL shard id.
    pub shard: String,
}

impl CatchUpRequest {
    pub fn new(shard: &str) -> Self {
        Self {
            catch_up: CatchUpShard {
                shard: shard.to_owned(),
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a request serializes")
    }

    /// Reads a message body; the error names the line and column where it
    /// stopped (serde_json).
    pub fn from_body(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

/// See the module docs.
pub trait CatchUpQueue: Send + Sync {
    /// Asks for a worker on `shard`; the message says why it failed.
    fn request(&self, shard: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// Catch-up requests in memory: tests and simulations take them out and
/// run the worker themselves.
#[derive(Debug, Default)]
pub struct InMemoryQueue {
    requests: Mutex<Vec<String>>,
}

impl InMemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The shards asked for since the last call, in order, each once.
    pub fn take(&self) -> Vec<String> {
        let mut requests =
            std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()));
        let mut seen = std::collections::HashSet::new();
        requests.retain(|shard| seen.insert(shard.clone()));
        requests
    }
}

impl CatchUpQueue for InMemoryQueue {
    async fn request(&self, shard: &str) -> Result<(), String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(shard.to_owned());
        Ok(())
    }
}

/// Catch-up requests on an SQS queue (`StreamKinesisCatchUpQueue` and
/// `StreamEventHubsCatchUpQueue` in `template.yaml`).
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl CatchUpQueue for SqsQueue {
    async fn request(&self, shard: &str) -> Result<(), String> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(CatchUpRequest::new(shard).to_json())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_the_sample_event() {
        let path = format!(
            "{}/../events/stream-kinesis/catch-up.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let sample: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let body = sample["Records"][0]["body"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<CatchUpRequest>(body).unwrap(),
            CatchUpRequest::new("shardId-000000000000")
        );
        assert_eq!(CatchUpRequest::new("shardId-000000000000").to_json(), body);
    }

    #[tokio::test]
    async fn requests_are_taken_once_each() {
        let queue = InMemoryQueue::new();
        for shard in ["a", "b", "a"] {
            queue.request(shard).await.unwrap();
        }
        assert_eq!(queue.take(), ["a", "b"]);
        assert!(queue.take().is_empty());
    }
}
