//! Sending export tasks: batches of [`MAX_BATCH_ENTRIES`], and resending
//! only the entries a batch answer says failed.
//!
//! Retry rule, in one place ([`sort_answer`]): an entry the queue took is
//! never sent again; an entry that failed through the service's fault (or
//! that the answer does not mention) is resent, up to [`SEND_ATTEMPTS`]
//! calls per batch with a doubling pause; an entry failed as the sender's
//! fault is not (it would fail again). A whole call that fails has already
//! been retried by the SDK and ends the fan-out. Whatever is left unsent
//! fails the invocation, so the schedule's retry plans again and queues what
//! still needs exporting: a task queued twice is harmless, the export is
//! idempotent and the second task finds its partition up to date.

use std::collections::HashSet;
use std::time::Duration;

use crate::queue::{BatchAnswer, FailedEntry, QueueError, TaskMessage, TaskQueue};

/// Most entries of one `SendMessageBatch` call: 10 (Amazon SQS API
/// Reference, "SendMessageBatch": "send up to 10 messages"). A task body is
/// about 100 bytes, far below the 256 KiB payload limit of a batch.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Calls per batch: the first and up to three resends of its failed entries.
pub const SEND_ATTEMPTS: u32 = 4;
/// Pause before the first resend; doubles before each next one (100, 200,
/// 400 ms). A single sender needs no jitter.
pub const FIRST_RESEND_DELAY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FanOutError {
    #[error("{unsent} of {total} export tasks could not be queued; the first: {first}")]
    Unsent {
        unsent: usize,
        total: usize,
        first: String,
    },
    #[error("{sent} of {total} export tasks queued, then: {source}")]
    Call {
        sent: usize,
        total: usize,
        #[source]
        source: QueueError,
    },
}

/// One batch answer, sorted by what to do next.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sorted {
    /// Taken by the queue.
    pub sent: usize,
    /// To send again (service-side failures, or not in the answer).
    pub resend: Vec<TaskMessage>,
    /// Failed for good (the sender's fault).
    pub rejected: Vec<FailedEntry>,
}

/// Sorts the entries of `batch` by `answer`: taken, to resend, rejected.
pub fn sort_answer(batch: &[TaskMessage], answer: &BatchAnswer) -> Sorted {
    let successful: HashSet<&str> = answer.successful.iter().map(String::as_str).collect();
    let mut sorted = Sorted::default();
    for message in batch {
        if successful.contains(message.id.as_str()) {
            sorted.sent += 1;
            continue;
        }
        match answer.failed.iter().find(|f| f.id == message.id) {
            Some(failed) if failed.sender_fault => sorted.rejected.push(failed.clone()),
            _ => sorted.resend.push(message.clone()),
        }
    }
    sorted
}

/// The messages of `bodies`, with ids unique across them (their position).
pub fn messages(bodies: Vec<String>) -> Vec<TaskMessage> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(n, body)| TaskMessage {
            id: n.to_string(),
            body,
        })
        .collect()
}

/// Queues every body, [`MAX_BATCH_ENTRIES`] per call, resending failed
/// entries; returns how many were queued (all, or an error).
pub async fn send_tasks(queue: &impl TaskQueue, bodies: Vec<String>) -> Result<usize, FanOutError> {
    send_tasks_pausing(queue, bodies, FIRST_RESEND_DELAY).await
}

/// [`send_tasks`] with another first pause (zero in tests).
pub async fn send_tasks_pausing(
    queue: &impl TaskQueue,
    bodies: Vec<String>,
    first_delay: Duration,
) -> Result<usize, FanOutError> {
    let all = messages(bodies);
    let total = all.len();
    let mut sent = 0;
    let mut unsent: Vec<String> = Vec::new();
    for batch in all.chunks(MAX_BATCH_ENTRIES) {
        let mut pending = batch.to_vec();
        let mut delay = first_delay;
        for attempt in 1..=SEND_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            let answer = queue
                .send_batch(&pending)
                .await
                .map_err(|source| FanOutError::Call {
                    sent,
                    total,
                    source,
                })?;
            let sorted = sort_answer(&pending, &answer);
            sent += sorted.sent;
            for entry in &sorted.rejected {
                tracing::error!(
                    code = %entry.code,
                    message = %entry.message,
                    "export task rejected by the queue"
                );
                unsent.push(format!("{}: {}", entry.code, entry.message));
            }
            for entry in &answer.failed {
                if !entry.sender_fault {
                    tracing::warn!(
                        attempt,
                        code = %entry.code,
                        message = %entry.message,
                        "export task not queued"
                    );
                }
            }
            pending = sorted.resend;
            if pending.is_empty() {
                break;
            }
        }
        unsent.extend(
            pending
                .iter()
                .map(|m| format!("not queued after {SEND_ATTEMPTS} calls: {}", m.body)),
        );
    }
    match unsent.first() {
        None => Ok(sent),
        Some(first) => Err(FanOutError::Unsent {
            unsent: unsent.len(),
            total,
            first: first.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{InMemoryTaskQueue, Script};

    fn message(id: &str) -> TaskMessage {
        TaskMessage {
            id: id.into(),
            body: format!("body-{id}"),
        }
    }

    fn failed(id: &str, sender_fault: bool) -> FailedEntry {
        FailedEntry {
            id: id.into(),
            code: if sender_fault {
                "InvalidMessageContents"
            } else {
                "InternalError"
            }
            .into(),
            message: "m".into(),
            sender_fault,
        }
    }

    #[test]
    fn an_answer_sorts_entries_into_sent_resend_and_rejected() {
        let batch: Vec<TaskMessage> = ["a", "b", "c", "d", "e"].map(message).to_vec();
        let answer = BatchAnswer {
            successful: vec!["a".into(), "d".into()],
            // "e" is in neither list: resent.
            failed: vec![failed("b", false), failed("c", true)],
        };
        assert_eq!(
            sort_answer(&batch, &answer),
            Sorted {
                sent: 2,
                resend: vec![message("b"), message("e")],
                rejected: vec![failed("c", true)],
            }
        );
        let all_taken = BatchAnswer {
            successful: vec!["a".into()],
            failed: vec![],
        };
        assert_eq!(
            sort_answer(&batch[..1], &all_taken),
            Sorted {
                sent: 1,
                ..Sorted::default()
            }
        );
    }

    #[test]
    fn message_ids_are_unique_and_valid_for_sqs() {
        let all = messages((0..25).map(|n| format!("t{n}")).collect());
        let ids: HashSet<&str> = all.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids.len(), 25);
        assert!(ids
            .iter()
            .all(|id| id.len() <= 80 && id.chars().all(|c| c.is_ascii_alphanumeric())));
    }

    fn bodies(n: usize) -> Vec<String> {
        (0..n).map(|n| format!("task-{n}")).collect()
    }

    #[tokio::test]
    async fn tasks_go_out_ten_per_call() {
        let queue = InMemoryTaskQueue::new();
        let sent = send_tasks_pausing(&queue, bodies(23), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(sent, 23);
        let sizes: Vec<usize> = queue.batches().iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);
        assert_eq!(queue.accepted(), bodies(23));
    }

    #[tokio::test]
    async fn only_failed_entries_are_resent_until_taken() {
        // Call 0 fails entries 2 and 5 of the first batch, call 1 fails 5
        // again; call 2 takes it; call 3 is the second batch.
        let fail = |ids: &'static [&'static str]| -> Script {
            Box::new(move |m| ids.contains(&m.id.as_str()).then(|| failed(&m.id, false)))
        };
        let queue = InMemoryTaskQueue::scripted(vec![fail(&["2", "5"]), fail(&["5"])]);
        let sent = send_tasks_pausing(&queue, bodies(12), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(sent, 12);
        let ids: Vec<Vec<String>> = queue
            .batches()
            .iter()
            .map(|b| b.iter().map(|m| m.id.clone()).collect())
            .collect();
        assert_eq!(ids[1], ["2", "5"]);
        assert_eq!(ids[2], ["5"]);
        assert_eq!(ids[3], ["10", "11"]);
        let mut accepted = queue.accepted();
        accepted.sort();
        let mut want = bodies(12);
        want.sort();
        assert_eq!(accepted, want, "each task queued once");
    }

    #[tokio::test]
    async fn entries_still_failing_after_every_attempt_fail_the_fan_out() {
        let queue = InMemoryTaskQueue::refusing(SEND_ATTEMPTS as usize);
        let err = send_tasks_pausing(&queue, bodies(3), Duration::ZERO)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                FanOutError::Unsent {
                    unsent: 3,
                    total: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(queue.batches().len(), SEND_ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn an_entry_rejected_as_the_senders_fault_is_not_resent() {
        let reject: Script = Box::new(|m| (m.id == "1").then(|| failed("1", true)));
        let queue = InMemoryTaskQueue::scripted(vec![reject]);
        let err = send_tasks_pausing(&queue, bodies(3), Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            FanOutError::Unsent {
                unsent: 1,
                total: 3,
                first: "InvalidMessageContents: m".into()
            }
        );
        assert_eq!(queue.batches().len(), 1);
        assert_eq!(queue.accepted(), ["task-0", "task-2"]);
    }
}
