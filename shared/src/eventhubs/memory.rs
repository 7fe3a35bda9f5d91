//! An in-memory event hub behind [`SendBatchApi`], for tests of callers:
//! scripted answers, and the messages of every accepted batch.

use std::collections::VecDeque;
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

/// Accepts every batch, unless an answer was scripted for it.
#[derive(Debug, Default)]
pub struct InMemoryEventHub {
    script: Mutex<VecDeque<Result<(), SendError>>>,
    messages: Mutex<Vec<ReceivedMessage>>,
    requests: Mutex<usize>,
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

    /// Requests received, answered or not.
    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SendBatchApi for InMemoryEventHub {
    async fn send_batch(&self, body: Bytes) -> Result<(), SendError> {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let scripted = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        if let Some(Err(error)) = scripted {
            return Err(error);
        }
        let batch: Vec<Wire> = serde_json::from_slice(&body).map_err(|_| SendError::Status {
            status: 400,
            server_busy: false,
        })?;
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(batch.into_iter().map(|m| ReceivedMessage {
                body: m.body,
                partition_key: m.broker.partition_key,
                event_id: m.user.event_id,
                event_type: m.user.event_type,
            }));
        Ok(())
    }
}
