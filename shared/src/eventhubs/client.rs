//! [`send`]: deliver messages to an event hub, each DSN's batches in order
//! and different DSNs concurrently, retrying what is worth retrying until a
//! deadline; and [`SendBatchApi`], the port it sends through
//! ([`super::http::HttpSender`] for the service,
//! [`super::memory::InMemoryEventHub`] for tests).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::stream::StreamExt;
use tokio::time::{sleep, timeout_at, Instant};

use super::batch::{self, Batch, Message};
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
    /// Total time spent waiting between attempts (summed over DSNs).
    pub waited: std::time::Duration,
    /// The most DSNs in flight at once.
    pub max_in_flight: usize,
}

/// What became of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageOutcome {
    Accepted,
    /// Refused for good (over the size limit, 413, 400) after
    /// [`POISON_ATTEMPTS`] tries alone: the reason, for the dead letter.
    Rejected(String),
    /// Not delivered: the hub is down, throttling, refused the key, or time
    /// ran out. Per DSN, pending messages follow the delivered ones.
    Pending,
}

/// Tries of a message alone, refused as too large or malformed, before it
/// is given up as refused for good. The answer is the same each time unless
/// something in between changed (a hub's limit raised, a proxy's fault),
/// so a few tries are enough.
pub const POISON_ATTEMPTS: u32 = 3;

/// What [`send`] achieved: one outcome per input message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub outcomes: Vec<MessageOutcome>,
    pub stats: SendStats,
    /// Why messages are pending (the first stop seen); `None` when none is.
    pub stopped: Option<Stopped>,
}

impl SendOutcome {
    /// Every message delivered or rejected.
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none()
    }

    /// Input positions of the accepted messages, in order.
    pub fn accepted(&self) -> Vec<usize> {
        self.positions(|o| matches!(o, MessageOutcome::Accepted))
    }

    /// Input positions of the pending messages, in order.
    pub fn pending(&self) -> Vec<usize> {
        self.positions(|o| matches!(o, MessageOutcome::Pending))
    }

    fn positions(&self, which: impl Fn(&MessageOutcome) -> bool) -> Vec<usize> {
        (0..self.outcomes.len())
            .filter(|&n| which(&self.outcomes[n]))
            .collect()
    }
}

/// Sends `messages` through `api`, up to `concurrency` DSNs at a time:
///
/// - packs them into batches of one partition key ([`batch::pack`]); each
///   DSN's batches go out one after the other, in order, so at most one
///   request per DSN is in flight and its order holds; different DSNs go
///   out concurrently (the connection pool reuses connections);
/// - retries a batch after a retryable failure ([`classify`]), waiting per
///   [`Backoff`] (full jitter, at least 4 s after ServerBusy);
/// - a batch refused as too large or malformed (413, 400) is tried message
///   by message; a message refused so [`POISON_ATTEMPTS`] times is
///   [`MessageOutcome::Rejected`] and its DSN's later messages go on; a
///   message over the size limit by itself is rejected without a request;
/// - a refusal that concerns the hub, not the message (401, 403, 404),
///   stops every DSN before its next request;
/// - nothing waits past the deadline: a request in flight at the deadline is
///   abandoned (its batch counts as not accepted, though the service may
///   have taken it: consumers deduplicate by `event_id`).
///
/// Nothing accepted is sent again.
pub async fn send<A: SendBatchApi + Sync>(
    api: &A,
    messages: &[Message],
    deadline: Instant,
    backoff: &Backoff,
    concurrency: usize,
) -> SendOutcome {
    let packing = batch::pack(messages);
    let mut outcomes = vec![MessageOutcome::Pending; messages.len()];
    for too_large in &packing.too_large {
        outcomes[too_large.index] = MessageOutcome::Rejected(too_large.to_string());
    }
    let halt = AtomicBool::new(false);
    let in_flight = AtomicUsize::new(0);
    let context = Lane {
        api,
        messages,
        deadline,
        backoff,
        halt: &halt,
        in_flight: &in_flight,
    };
    let mut stats = SendStats::default();
    let mut stopped = None;
    // The lanes' futures are made up front (a plain list, not a mapping
    // stream) so that `send` stays `Send` for the callers that need it.
    let runs: Vec<_> = lanes(messages, &packing.batches)
        .into_iter()
        .map(|batches| context.run(batches))
        .collect();
    let mut runs = futures_util::stream::iter(runs).buffer_unordered(concurrency.max(1));
    while let Some(run) = runs.next().await {
        for (index, outcome) in run.outcomes {
            outcomes[index] = outcome;
        }
        stats.requests += run.stats.requests;
        stats.retries += run.stats.retries;
        stats.waited += run.stats.waited;
        stats.max_in_flight = stats.max_in_flight.max(run.stats.max_in_flight);
        if stopped.is_none() {
            stopped = run.stopped;
        }
    }
    if let Some(stopped) = &stopped {
        tracing::debug!(%stopped, "Event Hubs: sending stopped");
    }
    SendOutcome {
        outcomes,
        stats,
        stopped,
    }
}

/// The batches of each partition key, in sending order; keys in the order
/// of their first batch.
fn lanes<'b>(messages: &[Message], batches: &'b [Batch]) -> Vec<Vec<&'b Batch>> {
    let mut lanes: Vec<Vec<&Batch>> = Vec::new();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for batch in batches {
        let key = messages[batch.indexes[0]].partition_key();
        let lane = *by_key.entry(key).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[lane].push(batch);
    }
    lanes
}

/// What the DSNs' lanes share.
struct Lane<'a, A> {
    api: &'a A,
    messages: &'a [Message],
    deadline: Instant,
    backoff: &'a Backoff,
    /// Set when the hub refused in a way that concerns every DSN.
    halt: &'a AtomicBool,
    in_flight: &'a AtomicUsize,
}

/// What one DSN's lane came to.
struct LaneRun {
    outcomes: Vec<(usize, MessageOutcome)>,
    stats: SendStats,
    stopped: Option<Stopped>,
}

impl LaneRun {
    fn accept(&mut self, indexes: &[usize]) {
        self.outcomes
            .extend(indexes.iter().map(|&i| (i, MessageOutcome::Accepted)));
    }
}

impl<A: SendBatchApi + Sync> Lane<'_, A> {
    async fn run(&self, batches: Vec<&Batch>) -> LaneRun {
        let mut run = LaneRun {
            outcomes: Vec::new(),
            stats: SendStats::default(),
            stopped: None,
        };
        run.stats.max_in_flight = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        for batch in batches {
            if self.halt.load(Ordering::Relaxed) {
                break;
            }
            let body = Bytes::from(batch::body(self.messages, &batch.indexes));
            let sent = deliver(self.api, body, self.deadline, self.backoff, &mut run.stats).await;
            let result = match sent {
                Ok(()) => {
                    run.accept(&batch.indexes);
                    Ok(())
                }
                Err(Stopped::Refused(refused)) if refused.is_about_the_event() => {
                    self.one_by_one(batch, &mut run).await
                }
                Err(stopped) => Err(stopped),
            };
            if let Err(stopped) = result {
                if matches!(stopped, Stopped::Refused(_)) {
                    self.halt.store(true, Ordering::Relaxed);
                }
                run.stopped = Some(stopped);
                break;
            }
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        run
    }

    /// Sends a refused batch's messages alone, in order, rejecting those
    /// refused [`POISON_ATTEMPTS`] times.
    async fn one_by_one(&self, batch: &Batch, run: &mut LaneRun) -> Result<(), Stopped> {
        for &index in &batch.indexes {
            for attempt in 1.. {
                let body = Bytes::from(batch::body(self.messages, &[index]));
                match deliver(self.api, body, self.deadline, self.backoff, &mut run.stats).await {
                    Ok(()) => {
                        run.accept(&[index]);
                        break;
                    }
                    Err(Stopped::Refused(refused)) if refused.is_about_the_event() => {
                        if attempt >= POISON_ATTEMPTS {
                            let reason = format!("{refused} (the event alone, {attempt} tries)");
                            run.outcomes.push((index, MessageOutcome::Rejected(reason)));
                            break;
                        }
                        let wait = self.backoff.delay(attempt, fastrand::f64());
                        if Instant::now() + wait >= self.deadline {
                            return Err(Stopped::Deadline { last_error: None });
                        }
                        run.stats.waited += wait;
                        sleep(wait).await;
                    }
                    Err(stopped) => return Err(stopped),
                }
            }
        }
        Ok(())
    }
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
        let wait = backoff.delay_at_least(retry, min_wait, fastrand::f64());
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

    /// The event ids a hub received for `key`, in order.
    fn ids_of(hub: &InMemoryEventHub, key: &str) -> Vec<String> {
        hub.messages()
            .iter()
            .filter(|m| m.partition_key == key)
            .map(|m| m.event_id.clone())
            .collect()
    }

    #[tokio::test]
    async fn every_message_is_delivered_once_and_each_dsn_in_order() {
        let input = messages(&["A", "B", "A", "C"]);
        let hub = InMemoryEventHub::new();
        let outcome = send(&hub, &input, soon(), &FAST, 8).await;
        assert!(outcome.is_complete());
        assert_eq!(outcome.accepted(), [0, 1, 2, 3]);
        assert_eq!(outcome.stats.requests, 3, "one batch per DSN");
        assert_eq!(ids_of(&hub, "A"), ["e0", "e2"]);
        assert_eq!(hub.messages().len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn different_dsns_are_in_flight_at_once_one_request_per_dsn() {
        let keys: Vec<String> = (0..40).map(|n| format!("D{}", n % 20)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        // Each DSN's two messages fit one batch: 20 requests of 30 ms each.
        let hub = InMemoryEventHub::new().with_latency(Duration::from_millis(30));
        let start = Instant::now();
        let outcome = send(&hub, &messages(&keys), soon(), &FAST, 8).await;
        assert!(outcome.is_complete());
        assert_eq!(hub.max_in_flight(), 8);
        assert_eq!(hub.max_in_flight_per_key(), 1);
        // 20 requests, 8 at a time: 3 rounds of 30 ms, not 20.
        assert_eq!(start.elapsed(), Duration::from_millis(90));
        let sequential = InMemoryEventHub::new().with_latency(Duration::from_millis(30));
        let start = Instant::now();
        send(&sequential, &messages(&keys), soon(), &FAST, 1).await;
        assert_eq!(start.elapsed(), Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dsn_whose_requests_keep_failing_holds_only_itself() {
        // B's batch keeps answering 503: B is retried until the deadline,
        // while A and C are delivered.
        let input = messages(&["A", "B", "C", "B", "A"]);
        let hub = InMemoryEventHub::new().refusing_event("e1", 503);
        let start = Instant::now();
        let outcome = send(&hub, &input, start + Duration::from_secs(5), &FAST, 4).await;
        assert_eq!(outcome.accepted(), [0, 2, 4]);
        assert_eq!(outcome.pending(), [1, 3]);
        assert!(
            matches!(outcome.stopped, Some(Stopped::Deadline { .. })),
            "{:?}",
            outcome.stopped
        );
        assert_eq!(ids_of(&hub, "A"), ["e0", "e4"]);
        assert_eq!(ids_of(&hub, "C"), ["e2"]);
        assert!(ids_of(&hub, "B").is_empty());
        assert!(
            outcome.stats.retries > 10,
            "B was retried: {:?}",
            outcome.stats
        );
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_delivered_once() {
        let input = messages(&["A", "A"]);
        let hub = InMemoryEventHub::new().failing_next([status(503), status(500), status(429)]);
        let outcome = send(&hub, &input, soon(), &FAST, 4).await;
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
        let outcome = send(&hub, &input, start + Duration::from_secs(60), &FAST, 4).await;
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
        let outcome = send(
            &hub,
            &input,
            Instant::now() + Duration::from_secs(3),
            &FAST,
            4,
        )
        .await;
        assert_eq!(
            outcome.stopped,
            Some(Stopped::Deadline {
                last_error: Some(busy())
            })
        );
        assert_eq!(outcome.stats.requests, 1);
        assert_eq!(outcome.pending(), [0]);
        assert!(hub.messages().is_empty());
    }

    #[tokio::test]
    async fn a_refused_key_stops_every_dsn_and_leaves_the_rest_pending_in_order() {
        let input = messages(&["A", "B", "A", "C"]);
        // Batch A goes through, batch B is refused; C is not sent after it.
        let hub = InMemoryEventHub::new().answering([Ok(()), Err(status(401))]);
        let outcome = send(&hub, &input, soon(), &FAST, 1).await;
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
    async fn an_event_the_hub_refuses_for_good_is_rejected_alone_after_bounded_tries() {
        // DSN A's second message is refused (413) whenever it is sent; A's
        // other messages and DSN B are delivered, in order.
        let input = messages(&["A", "A", "B", "A"]);
        let hub = InMemoryEventHub::new().refusing_event("e1", 413);
        let outcome = send(&hub, &input, soon(), &FAST, 4).await;
        assert!(outcome.is_complete(), "{:?}", outcome.stopped);
        assert_eq!(outcome.accepted(), [0, 2, 3]);
        match &outcome.outcomes[1] {
            MessageOutcome::Rejected(reason) => {
                assert!(
                    reason.starts_with("413 Request Entity Too Large"),
                    "{reason}"
                );
                assert!(reason.contains("3 tries"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ids_of(&hub, "A"), ["e0", "e3"]);
        // The batch of A, then e0, e1 three times, e3 alone; and B.
        assert_eq!(hub.requests(), 7);
    }

    #[tokio::test]
    async fn a_malformed_event_is_rejected_like_a_large_one() {
        let hub = InMemoryEventHub::new().refusing_event("e0", 400);
        let outcome = send(&hub, &messages(&["A"]), soon(), &FAST, 4).await;
        assert!(
            matches!(&outcome.outcomes[0], MessageOutcome::Rejected(r) if r.starts_with("HTTP 400"))
        );
        assert_eq!(hub.requests(), 1 + POISON_ATTEMPTS as usize);
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
        let outcome = send(&hub, &messages(&["A", "B"]), deadline, &backoff, 2).await;
        assert!(matches!(outcome.stopped, Some(Stopped::Deadline { .. })));
        assert!(Instant::now() <= deadline);
        assert!(outcome.stats.requests > 2);
        assert_eq!(outcome.pending(), [0, 1]);
    }

    #[tokio::test]
    async fn a_message_over_the_limit_is_rejected_unsent_and_the_rest_go_on() {
        let mut input = messages(&["A", "A"]);
        input.insert(
            1,
            Message::new(&"x".repeat(1_000_000), "A", "huge", "datapoint"),
        );
        let hub = InMemoryEventHub::new();
        let outcome = send(&hub, &input, soon(), &FAST, 4).await;
        assert!(outcome.is_complete());
        assert_eq!(outcome.accepted(), [0, 2]);
        assert!(matches!(&outcome.outcomes[1], MessageOutcome::Rejected(r) if r.contains("huge")));
        assert_eq!(ids_of(&hub, "A"), ["e0", "e1"]);
    }
}
