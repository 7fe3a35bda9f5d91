//! [`send`]: deliver messages to an event hub in batches, in order, retrying
//! what is worth retrying until a deadline; and [`SendBatchApi`], the port it
//! sends through ([`super::http::HttpSender`] for the service,
//! [`super::memory::InMemoryEventHub`] for tests).

use std::future::Future;

use bytes::Bytes;
use tokio::time::{sleep, timeout_at, Instant};

use super::batch::{self, Message, MessageTooLarge};
use super::retry::{classify, Backoff, Disposition, Refused, SendError};

/// The port to Event Hubs: one "Send batch events" request.
pub trait SendBatchApi {
    /// Posts `body` (a JSON array of messages, see [`super::batch`]) to the
    /// event hub. `Ok` means the service answered 201.
    fn send_batch(&self, body: Bytes) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Why [`send`] stopped before every batch was delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stopped {
    /// The deadline came, or the next wait would have passed it.
    #[error("deadline reached{}", .last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Deadline { last_error: Option<SendError> },
    /// The service refused a batch in a way retrying does not fix.
    #[error("{0}")]
    Refused(Refused),
}

/// Counters of one [`send`], for the log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Requests made, retries included.
    pub requests: usize,
    /// Requests that were retries.
    pub retries: usize,
    /// Total time spent waiting between attempts.
    pub waited: std::time::Duration,
}

/// What [`send`] achieved. Messages are sent in `send_order` (input
/// positions: batches of one DSN each, see [`super::batch`]); the first
/// [`accepted_count`](Self::accepted_count) of them were accepted, the rest
/// were not sent or not accepted and are to be parked in that order, which
/// keeps each DSN's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    send_order: Vec<usize>,
    accepted: usize,
    /// Messages too large for any batch: never sent.
    pub too_large: Vec<MessageTooLarge>,
    pub stats: SendStats,
    /// `None` when every batch was delivered.
    pub stopped: Option<Stopped>,
}

impl SendOutcome {
    /// Every batch delivered (messages too large aside).
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none()
    }

    /// How many leading messages of the sending order were accepted.
    pub fn accepted_count(&self) -> usize {
        self.accepted
    }

    /// Input positions of the accepted messages, in sending order.
    pub fn accepted(&self) -> &[usize] {
        &self.send_order[..self.accepted]
    }

    /// Input positions of the messages not accepted (too large ones
    /// excepted), in sending order: park them in this order.
    pub fn pending(&self) -> &[usize] {
        &self.send_order[self.accepted..]
    }

    /// Input positions in sending order.
    pub fn send_order(&self) -> &[usize] {
        &self.send_order
    }
}

/// Sends `messages` through `api`:
///
/// - packs them into batches of one partition key ([`batch::pack`]) and
///   sends the batches one after the other, in order;
/// - retries a batch after a retryable failure ([`classify`]), waiting per
///   [`Backoff`] (full jitter, at least 4 s after ServerBusy);
/// - stops at the first batch refused for good, or when the deadline comes:
///   a request in flight at the deadline is abandoned (and its batch counts
///   as not accepted, though the service may have taken it: consumers
///   deduplicate by `event_id`), and no wait that would pass the deadline is
///   started.
///
/// Nothing accepted is sent again, and nothing after a batch that was not
/// accepted is sent, so the accepted messages are a prefix of the sending
/// order.
pub async fn send<A: SendBatchApi>(
    api: &A,
    messages: &[Message],
    deadline: Instant,
    backoff: &Backoff,
) -> SendOutcome {
    let packing = batch::pack(messages);
    let mut outcome = SendOutcome {
        send_order: packing.send_order(),
        accepted: 0,
        too_large: packing.too_large,
        stats: SendStats::default(),
        stopped: None,
    };
    for batch in &packing.batches {
        let body = Bytes::from(batch::body(messages, batch));
        match deliver(api, body, deadline, backoff, &mut outcome.stats).await {
            Ok(()) => outcome.accepted += batch.indexes.len(),
            Err(stopped) => {
                tracing::debug!(%stopped, accepted = outcome.accepted, "Event Hubs: sending stopped");
                outcome.stopped = Some(stopped);
                break;
            }
        }
    }
    outcome
}

/// Sends one batch until it is accepted, refused, or time runs out.
async fn deliver<A: SendBatchApi>(
    api: &A,
    body: Bytes,
    deadline: Instant,
    backoff: &Backoff,
    stats: &mut SendStats,
) -> Result<(), Stopped> {
    let mut retry = 0u32;
    let mut last_error = None;
    loop {
        if Instant::now() >= deadline {
            return Err(Stopped::Deadline { last_error });
        }
        stats.requests += 1;
        let error = match timeout_at(deadline, api.send_batch(body.clone())).await {
            Err(_elapsed) => return Err(Stopped::Deadline { last_error }),
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
        };
        let min_wait = match classify(&error) {
            Disposition::Refuse(refused) => return Err(Stopped::Refused(refused)),
            Disposition::Retry { min_wait } => min_wait,
        };
        retry += 1;
        let wait = backoff.delay(retry, min_wait, fastrand::f64());
        if Instant::now() + wait >= deadline {
            return Err(Stopped::Deadline {
                last_error: Some(error),
            });
        }
        tracing::debug!(%error, retry, wait_ms = wait.as_millis() as u64, "Event Hubs: retrying batch");
        last_error = Some(error);
        stats.retries += 1;
        stats.waited += wait;
        sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::memory::InMemoryEventHub;
    use super::super::retry::SERVER_BUSY_MIN_WAIT;
    use super::*;

    const FAST: Backoff = Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(4),
    };

    fn messages(keys: &[&str]) -> Vec<Message> {
        keys.iter()
            .enumerate()
            .map(|(i, key)| {
                Message::new(
                    &format!("{{\"n\":{i}}}"),
                    key,
                    &format!("e{i}"),
                    "datapoint",
                )
            })
            .collect()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn busy() -> SendError {
        SendError::Status {
            status: 503,
            server_busy: true,
        }
    }

    fn status(status: u16) -> SendError {
        SendError::Status {
            status,
            server_busy: false,
        }
    }

    #[tokio::test]
    async fn every_batch_is_delivered_once_in_order() {
        let input = messages(&["A", "B", "A", "C"]);
        let hub = InMemoryEventHub::new();
        let outcome = send(&hub, &input, soon(), &FAST).await;
        assert!(outcome.is_complete());
        assert_eq!(outcome.send_order(), [0, 2, 1, 3]);
        assert_eq!(outcome.accepted(), [0, 2, 1, 3]);
        assert!(outcome.pending().is_empty());
        assert_eq!(outcome.stats.requests, 3);
        let ids: Vec<String> = hub.messages().iter().map(|m| m.event_id.clone()).collect();
        assert_eq!(ids, ["e0", "e2", "e1", "e3"]);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_delivered_once() {
        let input = messages(&["A", "A"]);
        let hub = InMemoryEventHub::new().failing_next([status(503), status(500), status(429)]);
        let outcome = send(&hub, &input, soon(), &FAST).await;
        assert!(outcome.is_complete());
        assert_eq!(outcome.stats.requests, 4);
        assert_eq!(outcome.stats.retries, 3);
        assert_eq!(hub.messages().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn server_busy_waits_at_least_four_seconds() {
        let input = messages(&["A"]);
        let hub = InMemoryEventHub::new().failing_next([busy()]);
        let start = Instant::now();
        let outcome = send(&hub, &input, start + Duration::from_secs(60), &FAST).await;
        assert!(outcome.is_complete());
        assert!(
            start.elapsed() >= SERVER_BUSY_MIN_WAIT,
            "{:?}",
            start.elapsed()
        );
        assert!(outcome.stats.waited >= SERVER_BUSY_MIN_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn server_busy_with_less_than_four_seconds_left_stops_without_resending() {
        let input = messages(&["A"]);
        let hub = InMemoryEventHub::new().failing_next([busy()]);
        let outcome = send(&hub, &input, Instant::now() + Duration::from_secs(3), &FAST).await;
        assert_eq!(
            outcome.stopped,
            Some(Stopped::Deadline {
                last_error: Some(busy())
            })
        );
        assert_eq!(outcome.stats.requests, 1);
        assert_eq!(outcome.accepted_count(), 0);
        assert!(hub.messages().is_empty());
    }

    #[tokio::test]
    async fn a_refusal_stops_without_retry_and_reports_the_rest_in_order() {
        let input = messages(&["A", "B", "A", "C"]);
        // Batch A goes through, batch B is refused.
        let hub = InMemoryEventHub::new().answering([Ok(()), Err(status(401))]);
        let outcome = send(&hub, &input, soon(), &FAST).await;
        assert_eq!(
            outcome.stopped,
            Some(Stopped::Refused(Refused::Unauthorized))
        );
        assert_eq!(outcome.stats.requests, 2);
        assert_eq!(outcome.accepted(), [0, 2]);
        assert_eq!(outcome.pending(), [1, 3]);
        assert!(outcome
            .stopped
            .unwrap()
            .to_string()
            .starts_with("401 Unauthorized: the SAS key was refused"));
    }

    #[tokio::test]
    async fn payload_too_large_is_not_retried() {
        let hub = InMemoryEventHub::new().failing_next([status(413)]);
        let outcome = send(&hub, &messages(&["A"]), soon(), &FAST).await;
        assert_eq!(outcome.stopped, Some(Stopped::Refused(Refused::TooLarge)));
        assert_eq!(outcome.stats.requests, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_deadline() {
        let hub = InMemoryEventHub::new().failing_next(std::iter::repeat_n(status(500), 10_000));
        let backoff = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        let start = Instant::now();
        let deadline = start + Duration::from_secs(5);
        let outcome = send(&hub, &messages(&["A", "B"]), deadline, &backoff).await;
        assert_eq!(
            outcome.stopped,
            Some(Stopped::Deadline {
                last_error: Some(status(500))
            })
        );
        assert!(Instant::now() <= deadline);
        assert!(outcome.stats.requests > 1);
        assert_eq!(outcome.pending(), [0, 1]);
    }

    #[tokio::test]
    async fn too_large_messages_are_reported_and_the_rest_sent() {
        let mut input = messages(&["A", "A"]);
        input.insert(
            1,
            Message::new(&"x".repeat(1_000_000), "A", "huge", "datapoint"),
        );
        let hub = InMemoryEventHub::new();
        let outcome = send(&hub, &input, soon(), &FAST).await;
        assert!(outcome.is_complete());
        assert_eq!(outcome.accepted(), [0, 2]);
        assert_eq!(outcome.too_large.len(), 1);
        assert_eq!(outcome.too_large[0].event_id, "huge");
    }
}
