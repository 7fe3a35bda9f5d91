//! [`publish`]: put entries to a stream, resending only what failed, until
//! everything is accepted or time runs out.

use std::future::Future;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::{sleep_until, timeout_at, Instant};

use super::order::Lanes;
use super::retry::{failed_entries, is_retryable, is_retryable_entry_code, Backoff};
use super::{Entry, EntryResult, PutError};

/// The port to Kinesis: one `PutRecords` call. Implemented for
/// `aws_sdk_kinesis::Client` ([`super::sdk`]) and [`super::InMemoryKinesis`].
pub trait PutRecordsApi {
    /// Puts `entries` (at most one request's worth) to `stream`. On success,
    /// returns one result per entry, in order.
    fn put_records(
        &self,
        stream: &str,
        entries: &[&Entry],
    ) -> impl Future<Output = Result<Vec<EntryResult>, PutError>> + Send;
}

/// A shared port is a port (destinations hold their client behind an `Arc`).
impl<T: PutRecordsApi + Send + Sync> PutRecordsApi for std::sync::Arc<T> {
    fn put_records(
        &self,
        stream: &str,
        entries: &[&Entry],
    ) -> impl Future<Output = Result<Vec<EntryResult>, PutError>> + Send {
        self.as_ref().put_records(stream, entries)
    }
}

/// Why [`publish`] stopped before every entry was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The deadline came (or would have come during the next wait).
    Deadline,
    /// A call failed in a way retrying does not fix.
    Fatal(PutError),
    /// An entry failed with an undocumented error code.
    UnknownEntryError { code: String, message: String },
}

/// Counters of one [`publish`], for the batch log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// `PutRecords` calls made.
    pub put_calls: usize,
    /// Entries sent again after a failure, each after a backoff wait (an
    /// entry retried twice counts twice).
    pub resent: usize,
    /// The most calls in flight at once.
    pub max_in_flight: usize,
}

/// What [`publish`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    accepted: Vec<bool>,
    pub stats: PublishStats,
    /// `None` when every entry was accepted.
    pub stopped: Option<Stopped>,
}

impl PublishOutcome {
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none()
    }

    pub fn is_accepted(&self, index: usize) -> bool {
        self.accepted.get(index).copied().unwrap_or(false)
    }

    /// The first entry (by index) never accepted.
    pub fn first_unaccepted(&self) -> Option<usize> {
        self.accepted.iter().position(|accepted| !accepted)
    }

    /// Every entry never accepted, in order.
    pub fn unaccepted(&self) -> impl Iterator<Item = usize> + '_ {
        self.accepted
            .iter()
            .enumerate()
            .filter_map(|(index, accepted)| (!accepted).then_some(index))
    }
}

/// Puts `entries` to `stream`, with up to `in_flight` calls at once:
///
/// - requests carry the entries [`Lanes`] makes ready: per partition key
///   the earliest entry not yet accepted, and only while no other entry of
///   that key is in flight, so per key the order holds (see
///   [`super::order`]), while different keys go out concurrently;
/// - only entries whose answer carries an error code, or whose whole call
///   failed retryably, are sent again, after a full-jitter wait per key
///   ([`Backoff`]): nothing accepted is resent, so an invocation writes each
///   entry once (unless a call times out after Kinesis took it: then nobody
///   can know, and the entry is resent);
/// - it stops when the next wait or call would pass `deadline`, when a call
///   fails for good, or when an entry fails with an undocumented code;
///   calls in flight then finish (or are abandoned at the deadline: their
///   entries count as not accepted).
pub async fn publish<A: PutRecordsApi>(
    api: &A,
    stream: &str,
    entries: &[Entry],
    deadline: Instant,
    backoff: &Backoff,
    in_flight: usize,
) -> PublishOutcome {
    let mut run = Run {
        accepted: vec![false; entries.len()],
        stats: PublishStats::default(),
        stopped: None,
    };
    run.until_done(api, stream, entries, deadline, backoff, in_flight.max(1))
        .await;
    PublishOutcome {
        accepted: run.accepted,
        stats: run.stats,
        stopped: run.stopped,
    }
}

struct Run {
    accepted: Vec<bool>,
    stats: PublishStats,
    stopped: Option<Stopped>,
}

type Answer = Option<Result<Vec<EntryResult>, PutError>>;

impl Run {
    async fn until_done<A: PutRecordsApi>(
        &mut self,
        api: &A,
        stream: &str,
        entries: &[Entry],
        deadline: Instant,
        backoff: &Backoff,
        max_in_flight: usize,
    ) {
        let mut lanes = Lanes::new(entries, 0..entries.len());
        let mut calls = FuturesUnordered::new();
        loop {
            lanes.wake(Instant::now());
            while self.stopped.is_none() && calls.len() < max_in_flight && lanes.has_ready() {
                if Instant::now() >= deadline {
                    self.stop(Stopped::Deadline);
                    break;
                }
                let request = lanes.next_request();
                let batch: Vec<&Entry> = request.iter().map(|&i| &entries[i]).collect();
                self.stats.put_calls += 1;
                calls.push(async move {
                    let answer: Answer = timeout_at(deadline, api.put_records(stream, &batch))
                        .await
                        .ok();
                    (request, answer)
                });
                self.stats.max_in_flight = self.stats.max_in_flight.max(calls.len());
            }
            if calls.is_empty() {
                if lanes.is_done() || self.stopped.is_some() {
                    return;
                }
                match lanes.next_wake() {
                    Some(at) if at < deadline => {
                        sleep_until(at).await;
                        continue;
                    }
                    _ => {
                        self.stop(Stopped::Deadline);
                        return;
                    }
                }
            }
            let wake = lanes
                .next_wake()
                .filter(|_| calls.len() < max_in_flight && self.stopped.is_none());
            tokio::select! {
                Some((request, answer)) = calls.next() => {
                    self.apply(&request, answer, &mut lanes, backoff);
                }
                _ = sleep_until(wake.unwrap_or(deadline)), if wake.is_some() => {}
            }
        }
    }

    fn stop(&mut self, why: Stopped) {
        if self.stopped.is_none() {
            tracing::debug!(?why, "PutRecords: publishing stopped");
            self.stopped = Some(why);
        }
    }

    /// Records the answer to `request` (`None`: the deadline came first).
    fn apply(
        &mut self,
        request: &[usize],
        answer: Answer,
        lanes: &mut Lanes<'_>,
        backoff: &Backoff,
    ) {
        // One jitter draw per answer: the entries that failed together wait
        // together and go out again in one request, not one each.
        let unit = fastrand::f64();
        let retry = |lanes: &mut Lanes<'_>, index: usize, stats: &mut PublishStats| {
            stats.resent += 1;
            lanes.failed(index, |failures| {
                Instant::now() + backoff.delay(failures, unit)
            });
        };
        let results = match answer {
            None => return self.stop(Stopped::Deadline),
            Some(Ok(results)) if results.len() == request.len() => results,
            Some(Ok(results)) => {
                return self.stop(Stopped::Fatal(PutError::AnswerMismatch {
                    sent: request.len(),
                    answered: results.len(),
                }))
            }
            Some(Err(error)) if is_retryable(&error) => {
                tracing::debug!(%error, entries = request.len(), "PutRecords call failed, will retry");
                for &index in request {
                    retry(lanes, index, &mut self.stats);
                }
                return;
            }
            Some(Err(error)) => return self.stop(Stopped::Fatal(error)),
        };
        let failed = failed_entries(&results);
        let mut failures = failed.iter().map(|f| f.position).peekable();
        for (position, &index) in request.iter().enumerate() {
            if failures.peek() == Some(&position) {
                failures.next();
                continue;
            }
            self.accepted[index] = true;
            lanes.accepted(index);
        }
        for failure in &failed {
            if !is_retryable_entry_code(failure.code) {
                self.stop(Stopped::UnknownEntryError {
                    code: failure.code.to_owned(),
                    message: failure.message.to_owned(),
                });
            }
            retry(lanes, request[failure.position], &mut self.stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::super::retry::{INTERNAL_FAILURE, PROVISIONED_THROUGHPUT_EXCEEDED};
    use super::super::InMemoryKinesis;
    use super::*;

    const STREAM: &str = "dpl";
    const FAST: Backoff = Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(4),
    };

    /// Entry `i` has key `keys[i]` and data `i` (so it can be recognised).
    fn entries(keys: &[&str]) -> Vec<Entry> {
        keys.iter()
            .enumerate()
            .map(|(i, key)| Entry::new(*key, i.to_string().into_bytes()).unwrap())
            .collect()
    }

    fn index_of(entry: &Entry) -> usize {
        std::str::from_utf8(entry.data()).unwrap().parse().unwrap()
    }

    fn indexes(entries: &[Entry]) -> Vec<usize> {
        entries.iter().map(index_of).collect()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// Every entry appears once in the stream, and per key in original order.
    fn assert_once_and_in_key_order(sent: &[Entry], stream: &[Entry]) {
        let mut seen = indexes(stream);
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..sent.len()).collect::<Vec<_>>(),
            "each entry exactly once"
        );
        let mut per_key: HashMap<&str, Vec<usize>> = HashMap::new();
        for entry in stream {
            per_key
                .entry(entry.partition_key())
                .or_default()
                .push(index_of(entry));
        }
        for (key, order) in per_key {
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{key}: {order:?}");
        }
    }

    fn throttled() -> EntryResult {
        EntryResult::failed(PROVISIONED_THROUGHPUT_EXCEEDED, "Rate exceeded for shard")
    }

    #[tokio::test]
    async fn everything_accepted_takes_one_call_per_500_entries() {
        let keys: Vec<String> = (0..1_001).map(|i| format!("K{i}")).collect();
        let entries = entries(&keys.iter().map(String::as_str).collect::<Vec<_>>());
        let kinesis = InMemoryKinesis::new();
        let outcome = publish(&kinesis, STREAM, &entries, soon(), &FAST, 1).await;
        assert!(outcome.is_complete());
        assert_eq!(outcome.first_unaccepted(), None);
        assert_eq!(outcome.stats.put_calls, 3);
        assert_eq!(outcome.stats.resent, 0);
        assert_eq!(kinesis.records(STREAM), entries);
    }

    #[tokio::test]
    async fn one_busy_key_takes_one_call_per_entry_in_order() {
        let entries = entries(&["A"; 4]);
        let kinesis = InMemoryKinesis::new().recording_requests();
        let outcome = publish(&kinesis, STREAM, &entries, soon(), &FAST, 1).await;
        assert!(outcome.is_complete());
        let requests: Vec<Vec<usize>> = kinesis.requests().iter().map(|r| indexes(r)).collect();
        assert_eq!(requests, vec![vec![0], vec![1], vec![2], vec![3]]);
        assert_eq!(kinesis.records(STREAM), entries);
    }

    #[tokio::test]
    async fn only_failed_entries_are_resent_and_later_entries_of_their_key_wait() {
        // Call 0 takes the first entry of each key (0, 2, 3); call 1 the
        // next ones (1, 4), which are throttled; 5 (X) must wait for 1.
        let entries = entries(&["X", "X", "Y", "Z", "Y", "X"]);
        let kinesis = InMemoryKinesis::new()
            .recording_requests()
            .with_fault(|call, batch| {
                (call == 1).then(|| {
                    Ok(batch
                        .iter()
                        .map(|e| match index_of(e) {
                            1 | 4 => throttled(),
                            _ => EntryResult::Accepted,
                        })
                        .collect())
                })
            });
        let outcome = publish(&kinesis, STREAM, &entries, soon(), &FAST, 1).await;
        assert!(outcome.is_complete());
        let requests: Vec<Vec<usize>> = kinesis.requests().iter().map(|r| indexes(r)).collect();
        assert_eq!(
            requests,
            vec![vec![0, 2, 3], vec![1, 4], vec![1, 4], vec![5]]
        );
        // Sent again: 1 and 4 (5 waited for 1 and went once).
        assert_eq!(outcome.stats.resent, 2);
        // Nothing overtook, nothing was duplicated.
        assert_eq!(indexes(&kinesis.records(STREAM)), vec![0, 2, 3, 1, 4, 5]);
    }

    #[tokio::test]
    async fn a_failed_key_is_held_back_in_the_following_requests_of_the_round() {
        // 600 entries, key X at 0, 100, ..., 500, the others distinct. The
        // first request takes X's first entry (the others of X wait for a
        // later request) and is throttled for X; X's later entries are then
        // held back for the next round, where they go one per request.
        let keys: Vec<String> = (0..600)
            .map(|i| {
                if i % 100 == 0 {
                    "X".into()
                } else {
                    format!("K{i}")
                }
            })
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let entries = entries(&keys);
        let kinesis = InMemoryKinesis::new()
            .recording_requests()
            .with_fault(|call, batch| {
                (call == 0).then(|| {
                    Ok(batch
                        .iter()
                        .map(|e| match e.partition_key() {
                            "X" => throttled(),
                            _ => EntryResult::Accepted,
                        })
                        .collect())
                })
            });
        let outcome = publish(&kinesis, STREAM, &entries, soon(), &FAST, 1).await;
        assert!(outcome.is_complete());
        let requests: Vec<Vec<usize>> = kinesis.requests().iter().map(|r| indexes(r)).collect();
        let later_x = |i: &usize| !i.is_multiple_of(100) || *i == 0;
        assert_eq!(requests[0], (0..505).filter(later_x).collect::<Vec<_>>());
        // The second request takes the other keys (and X's first entry again,
        // if its jittered wait was already over); X's later entries then go
        // one per request, each after the one before was accepted.
        let second: Vec<usize> = requests[1].iter().copied().filter(|&i| i != 0).collect();
        assert_eq!(second, (505..600).collect::<Vec<_>>());
        let x_requests: Vec<Vec<usize>> = requests[1..]
            .iter()
            .map(|r| {
                r.iter()
                    .copied()
                    .filter(|i| i.is_multiple_of(100))
                    .collect::<Vec<_>>()
            })
            .filter(|r| !r.is_empty())
            .collect();
        let one_by_one: Vec<Vec<usize>> = (0..6).map(|i| vec![i * 100]).collect();
        assert_eq!(x_requests, one_by_one);
        assert_once_and_in_key_order(&entries, &kinesis.records(STREAM));
    }

    #[tokio::test]
    async fn random_partial_failures_never_duplicate_nor_reorder_across_requests() {
        for seed in 0..20 {
            let keys: Vec<String> = (0..700)
                .map(|i| format!("D{}", (i * 7 + seed) % 13))
                .collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let entries = entries(&keys);
            let mut rng = fastrand::Rng::with_seed(seed as u64);
            // Each answer fails a random tail of each key it touches (so that
            // no later entry of a key gets in beside a failed earlier one,
            // which Kinesis does too when a shard is over its quota).
            let kinesis = InMemoryKinesis::new().with_fault(move |_, batch| {
                let mut over_quota: HashMap<String, bool> = HashMap::new();
                Some(Ok(batch
                    .iter()
                    .map(|e| {
                        let key = e.partition_key().to_owned();
                        let over = *over_quota.entry(key).or_insert(false) || rng.u8(..) < 40;
                        over_quota.insert(e.partition_key().to_owned(), over);
                        if over {
                            throttled()
                        } else {
                            EntryResult::Accepted
                        }
                    })
                    .collect()))
            });
            let outcome = publish(&kinesis, STREAM, &entries, soon(), &FAST, 1).await;
            assert!(outcome.is_complete(), "seed {seed}: {:?}", outcome.stopped);
            assert_once_and_in_key_order(&entries, &kinesis.records(STREAM));
        }
    }

    #[tokio::test]
    async fn a_retryable_call_failure_resends_the_whole_request_once_more() {
        let entries = entries(&["A", "B"]);
        let kinesis = InMemoryKinesis::new().with_fault(|call, _| {
            (call == 0).then(|| Err(PutError::Dispatch("connection reset".into())))
        });
        let outcome = publish(&kinesis, STREAM, &entries, soon(), &FAST, 1).await;
        assert!(outcome.is_complete());
        assert_eq!(outcome.stats.put_calls, 2);
        assert_eq!(kinesis.records(STREAM), entries);
    }

    #[tokio::test]
    async fn when_time_runs_out_the_unaccepted_entries_are_reported() {
        let entries = entries(&["A", "B", "C"]);
        let kinesis = InMemoryKinesis::new().with_fault(|_, batch| {
            Some(Ok(batch
                .iter()
                .map(|e| match index_of(e) {
                    0 => EntryResult::Accepted,
                    _ => EntryResult::failed(INTERNAL_FAILURE, "Internal service failure."),
                })
                .collect()))
        });
        let deadline = Instant::now() + Duration::from_millis(100);
        let outcome = publish(&kinesis, STREAM, &entries, deadline, &FAST, 1).await;
        assert_eq!(outcome.stopped, Some(Stopped::Deadline));
        assert!(Instant::now() < deadline + Duration::from_millis(50));
        assert_eq!(outcome.first_unaccepted(), Some(1));
        assert_eq!(outcome.unaccepted().collect::<Vec<_>>(), vec![1, 2]);
        assert!(outcome.is_accepted(0));
        assert!(outcome.stats.resent >= 2);
        assert_eq!(indexes(&kinesis.records(STREAM)), vec![0]);
    }

    #[tokio::test]
    async fn a_call_still_in_flight_at_the_deadline_is_abandoned() {
        let entries = entries(&["A"]);
        let kinesis = InMemoryKinesis::new().with_latency(Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_millis(50);
        let outcome = publish(&kinesis, STREAM, &entries, deadline, &FAST, 1).await;
        assert_eq!(outcome.stopped, Some(Stopped::Deadline));
        assert_eq!(outcome.first_unaccepted(), Some(0));
    }

    #[tokio::test]
    async fn a_configuration_error_stops_at_once() {
        let entries = entries(&["A", "B"]);
        let missing = PutError::Service {
            status: 400,
            code: "ResourceNotFoundException".into(),
            message: "Stream dpl under account 123456789012 not found.".into(),
        };
        let answer = missing.clone();
        let kinesis = InMemoryKinesis::new().with_fault(move |_, _| Some(Err(answer.clone())));
        let outcome = publish(&kinesis, STREAM, &entries, soon(), &FAST, 1).await;
        assert_eq!(outcome.stopped, Some(Stopped::Fatal(missing)));
        assert_eq!(outcome.stats.put_calls, 1);
        assert_eq!(outcome.first_unaccepted(), Some(0));
    }

    #[tokio::test]
    async fn an_undocumented_entry_error_stops_and_keeps_the_other_answers() {
        let entries = entries(&["A", "B", "C"]);
        let kinesis = InMemoryKinesis::new().with_fault(|_, _| {
            Some(Ok(vec![
                EntryResult::Accepted,
                EntryResult::failed("KMSAccessDeniedException", "denied"),
                throttled(),
            ]))
        });
        let outcome = publish(&kinesis, STREAM, &entries, soon(), &FAST, 1).await;
        assert_eq!(
            outcome.stopped,
            Some(Stopped::UnknownEntryError {
                code: "KMSAccessDeniedException".into(),
                message: "denied".into()
            })
        );
        assert_eq!(outcome.unaccepted().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[tokio::test]
    async fn an_answer_with_the_wrong_number_of_results_stops() {
        let entries = entries(&["A", "B"]);
        let kinesis =
            InMemoryKinesis::new().with_fault(|_, _| Some(Ok(vec![EntryResult::Accepted])));
        let outcome = publish(&kinesis, STREAM, &entries, soon(), &FAST, 1).await;
        assert_eq!(
            outcome.stopped,
            Some(Stopped::Fatal(PutError::AnswerMismatch {
                sent: 2,
                answered: 1
            }))
        );
        assert_eq!(outcome.first_unaccepted(), Some(0));
    }

    #[tokio::test]
    async fn nothing_to_publish_makes_no_call() {
        let kinesis = InMemoryKinesis::new();
        let outcome = publish(&kinesis, STREAM, &[], soon(), &FAST, 1).await;
        assert!(outcome.is_complete());
        assert_eq!(kinesis.calls(), 0);
    }
}
