//! An in-memory event hub behind [`SendBatchApi`], for tests of callers:
//! scripted answers, and the messages of every accepted batch.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use serde::Deserialize;

use super::client::SendBatchApi;
use super::retry::SendError;

/// One accepted message, as read back from a batch body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub body: String,
    pub partition_key: String,
    pub event_id: String,
    pub event_type: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(rename = "Body")]
    body: String,
    #[serde(rename = "BrokerProperties")]
    broker: WireBroker,
    #[serde(rename = "UserProperties")]
    user: WireUser,
}

#[derive(Deserialize)]
struct WireBroker {
    #[serde(rename = "PartitionKey")]
    partition_key: String,
}

#[derive(Deserialize)]
struct WireUser {
    event_id: String,
    event_type: String,
}

/// Accepts every batch, unless an answer was scripted for it or it holds
/// an event it refuses; answers after a latency, if given, and counts the
/// requests in flight (overall and per partition key).
#[derive(Debug, Default)]
pub struct InMemoryEventHub {
    script: Mutex<VecDeque<Result<(), SendError>>>,
    messages: Mutex<Vec<ReceivedMessage>>,
    requests: Mutex<usize>,
    latency: std::time::Duration,
    /// Event ids refused with a status whenever a batch holds them.
    refused: Mutex<HashMap<String, u16>>,
    flight: Mutex<Flight>,
}

#[derive(Debug, Default)]
struct Flight {
    now: usize,
    max: usize,
    per_key: HashMap<String, usize>,
    max_per_key: usize,
}

impl InMemoryEventHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next requests answer these errors, in order.
    pub fn failing_next(self, errors: impl IntoIterator<Item = SendError>) -> Self {
        self.answering(errors.into_iter().map(Err))
    }

    /// The next requests answer these, in order (`Ok` accepts the batch).
    pub fn answering(self, answers: impl IntoIterator<Item = Result<(), SendError>>) -> Self {
        self.script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(answers);
        self
    }

    /// Messages of the accepted batches, in order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Answers every request after `latency` (tokio's clock).
    pub fn with_latency(mut self, latency: std::time::Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Refuses, with `status`, every batch that holds the event `event_id`
    /// (an event the hub cannot take, such as one over its size limit).
    pub fn refusing_event(self, event_id: &str, status: u16) -> Self {
        lock(&self.refused).insert(event_id.to_owned(), status);
        self
    }

    /// The most requests in flight at once.
    pub fn max_in_flight(&self) -> usize {
        lock(&self.flight).max
    }

    /// The most requests in flight at once for one partition key.
    pub fn max_in_flight_per_key(&self) -> usize {
        lock(&self.flight).max_per_key
    }

    /// Requests received, answered or not.
    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl InMemoryEventHub {
    fn enter(&self, key: &str) {
        let mut flight = lock(&self.flight);
        flight.now += 1;
        flight.max = flight.max.max(flight.now);
        let per_key = flight.per_key.entry(key.to_owned()).or_default();
        *per_key += 1;
        let per_key = *per_key;
        flight.max_per_key = flight.max_per_key.max(per_key);
    }

    fn leave(&self, key: &str) {
        let mut flight = lock(&self.flight);
        flight.now -= 1;
        if let Some(n) = flight.per_key.get_mut(key) {
            *n -= 1;
        }
    }
}

impl SendBatchApi for InMemoryEventHub {
    async fn send_batch(&self, body: Bytes) -> Result<(), SendError> {
        *lock(&self.requests) += 1;
        let batch: Result<Vec<Wire>, _> = serde_json::from_slice(&body);
        let key = batch
            .as_ref()
            .ok()
            .and_then(|b| b.first())
            .map(|m| m.broker.partition_key.clone())
            .unwrap_or_default();
        self.enter(&key);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.leave(&key);
        let scripted = lock(&self.script).pop_front();
        if let Some(Err(error)) = scripted {
            return Err(error);
        }
        let bad_request = SendError::Status {
            status: 400,
            server_busy: false,
        };
        let batch = batch.map_err(|_| bad_request)?;
        let refused = lock(&self.refused)
            .iter()
            .find(|(id, _)| batch.iter().any(|m| &m.user.event_id == *id))
            .map(|(_, status)| *status);
        if let Some(status) = refused {
            return Err(SendError::Status {
                status,
                server_busy: false,
            });
        }
        lock(&self.messages).extend(batch.into_iter().map(|m| ReceivedMessage {
            body: m.body,
            partition_key: m.broker.partition_key,
            event_id: m.user.event_id,
            event_type: m.user.event_type,
        }));
        Ok(())
    }
}
