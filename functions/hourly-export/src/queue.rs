//! The port to the export task queue ([`TaskQueue`]: one `SendMessageBatch`
//! call), what it answers, and its in-memory adapter for tests. The SQS
//! adapter is in [`crate::sqs`]; sending many tasks, with resends, is
//! [`crate::fan_out`].

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

/// One message of a batch: `id` is unique within the batch (SQS: up to 80
/// characters, alphanumeric, `-` or `_`), `body` is the task's JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMessage {
    pub id: String,
    pub body: String,
}

/// An entry the queue did not take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    pub code: String,
    pub message: String,
    /// SQS `SenderFault`: the entry itself is wrong (sending it again
    /// cannot help); otherwise the failure is the service's.
    pub sender_fault: bool,
}

/// The answer to one batch: which ids were taken, which failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchAnswer {
    pub successful: Vec<String>,
    pub failed: Vec<FailedEntry>,
}

/// The whole call failed (after the SDK's own retries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SQS SendMessageBatch failed: {0}")]
pub struct QueueError(pub String);

/// Where export tasks go.
pub trait TaskQueue {
    /// Sends one batch of at most [`crate::fan_out::MAX_BATCH_ENTRIES`]
    /// messages.
    fn send_batch(
        &self,
        messages: &[TaskMessage],
    ) -> impl Future<Output = Result<BatchAnswer, QueueError>>;
}

/// No queue: the handler exports in-process (the type of a handler built
/// without one).
#[derive(Clone, Copy, Debug)]
pub enum NoQueue {}

impl TaskQueue for NoQueue {
    async fn send_batch(&self, _: &[TaskMessage]) -> Result<BatchAnswer, QueueError> {
        match *self {}
    }
}

/// What the in-memory queue answers to a batch.
pub type Script = Box<dyn Fn(&TaskMessage) -> Option<FailedEntry> + Send + Sync>;

/// A queue in memory, for tests: it records every batch and keeps the
/// bodies it accepted. Scripted answers (one per call, in order) may fail
/// some entries; calls past the script accept everything.
#[derive(Default)]
pub struct InMemoryTaskQueue {
    batches: Mutex<Vec<Vec<TaskMessage>>>,
    accepted: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Script>>,
}

impl InMemoryTaskQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue whose `n`-th call answers entries as `script[n]` says.
    pub fn scripted(script: Vec<Script>) -> Self {
        Self {
            script: Mutex::new(script.into()),
            ..Self::default()
        }
    }

    /// A queue that fails every entry of every call (not the sender's
    /// fault), as many times as `calls`.
    pub fn refusing(calls: usize) -> Self {
        Self::scripted(
            (0..calls)
                .map(|_| -> Script {
                    Box::new(|m| {
                        Some(FailedEntry {
                            id: m.id.clone(),
                            code: "InternalError".into(),
                            message: "refused".into(),
                            sender_fault: false,
                        })
                    })
                })
                .collect(),
        )
    }

    /// Every batch sent, in order.
    pub fn batches(&self) -> Vec<Vec<TaskMessage>> {
        lock(&self.batches).clone()
    }

    /// The bodies of the messages taken, in order.
    pub fn accepted(&self) -> Vec<String> {
        lock(&self.accepted).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TaskQueue for InMemoryTaskQueue {
    async fn send_batch(&self, messages: &[TaskMessage]) -> Result<BatchAnswer, QueueError> {
        lock(&self.batches).push(messages.to_vec());
        let script = lock(&self.script).pop_front();
        let mut answer = BatchAnswer::default();
        for message in messages {
            match script.as_ref().and_then(|answer| answer(message)) {
                Some(failed) => answer.failed.push(failed),
                None => {
                    lock(&self.accepted).push(message.body.clone());
                    answer.successful.push(message.id.clone());
                }
            }
        }
        Ok(answer)
    }
}
