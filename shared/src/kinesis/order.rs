//! The rule that keeps records of one partition key in order while several
//! `PutRecords` requests are in flight and failed entries are retried.
//!
//! Kinesis keeps the order of records with the same partition key only in
//! the order they are accepted, and it answers `PutRecords` per entry: inside
//! one request it may reject an earlier entry of key `K` and accept a later
//! one, and two requests in flight may be applied in either order. So
//! [`Lanes`] sends, per key, only the earliest entry not yet accepted, and
//! only while no other entry of that key is in flight:
//!
//! - a request carries at most one entry per key;
//! - the next entry of `K` becomes ready once the earlier one is accepted;
//! - a failed entry of `K` waits for its retry time, and `K`'s later entries
//!   wait behind it; other keys go on;
//! - entries already accepted are never sent again.
//!
//! A later entry of a key is therefore never accepted before an earlier one.
//! Requests for different keys go out concurrently, so a batch over many
//! devices costs about one round trip per entry of its busiest key.

use std::collections::{BTreeSet, HashMap, VecDeque};

use tokio::time::Instant;

use super::batch::RequestBudget;
use super::Entry;

/// The entries of one publish, by key.
#[derive(Debug)]
pub struct Lanes<'a> {
    entries: &'a [Entry],
    /// Per key, the entries not accepted yet, in order.
    queues: HashMap<&'a str, VecDeque<usize>>,
    /// Keys whose first entry may be sent now, by that entry's index.
    ready: BTreeSet<usize>,
    /// Keys whose first entry failed, and when it may go again.
    waiting: HashMap<&'a str, Instant>,
    /// How many times each key's first entry failed (backoff grows with it).
    failures: HashMap<&'a str, u32>,
    unaccepted: usize,
}

impl<'a> Lanes<'a> {
    /// Lanes over `pending`: indexes into `entries`, in increasing order.
    pub fn new(entries: &'a [Entry], pending: impl IntoIterator<Item = usize>) -> Self {
        let mut queues: HashMap<&str, VecDeque<usize>> = HashMap::new();
        let mut unaccepted = 0;
        for index in pending {
            queues
                .entry(entries[index].partition_key())
                .or_default()
                .push_back(index);
            unaccepted += 1;
        }
        let ready = queues.values().filter_map(|q| q.front().copied()).collect();
        Self {
            entries,
            queues,
            ready,
            waiting: HashMap::new(),
            failures: HashMap::new(),
            unaccepted,
        }
    }

    /// The next request: the ready entries in input order, as many as one
    /// request takes (one per key, by construction). They count as in
    /// flight until [`Self::accepted`] or [`Self::failed`]. Empty when
    /// nothing is ready.
    pub fn next_request(&mut self) -> Vec<usize> {
        let mut budget = RequestBudget::default();
        let mut request = Vec::new();
        while let Some(&index) = self.ready.first() {
            if !budget.try_take(self.entries[index].size()) {
                break;
            }
            self.ready.pop_first();
            request.push(index);
        }
        request
    }

    /// Entry `index` (in flight) was accepted: its key's next entry is ready.
    pub fn accepted(&mut self, index: usize) {
        let key = self.entries[index].partition_key();
        let queue = self.queues.get_mut(key).expect("a key in flight");
        debug_assert_eq!(queue.front(), Some(&index));
        queue.pop_front();
        self.unaccepted -= 1;
        self.failures.remove(key);
        if let Some(&next) = queue.front() {
            self.ready.insert(next);
        }
    }

    /// Entry `index` (in flight) failed: it and its key's later entries
    /// wait; `retry_at` gives when, from the number of failures so far.
    pub fn failed(&mut self, index: usize, retry_at: impl FnOnce(u32) -> Instant) {
        let key = self.entries[index].partition_key();
        let failures = self.failures.entry(key).or_insert(0);
        *failures += 1;
        self.waiting.insert(key, retry_at(*failures));
    }

    /// Makes the failed entries whose retry time has come ready again.
    pub fn wake(&mut self, now: Instant) {
        let queues = &self.queues;
        let ready = &mut self.ready;
        self.waiting.retain(|key, at| {
            if *at > now {
                return true;
            }
            if let Some(&head) = queues[key].front() {
                ready.insert(head);
            }
            false
        });
    }

    /// When the next waiting entry may go again.
    pub fn next_wake(&self) -> Option<Instant> {
        self.waiting.values().min().copied()
    }

    pub fn is_done(&self) -> bool {
        self.unaccepted == 0
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entries(keys: &[&str]) -> Vec<Entry> {
        keys.iter()
            .map(|key| Entry::new(*key, vec![0; 10]).unwrap())
            .collect()
    }

    #[test]
    fn a_request_carries_one_entry_per_key_the_next_waits_for_its_acceptance() {
        let entries = entries(&["A", "B", "A", "C"]);
        let mut lanes = Lanes::new(&entries, 0..4);
        assert_eq!(lanes.next_request(), vec![0, 1, 3]);
        assert!(
            lanes.next_request().is_empty(),
            "A's second entry waits for the first"
        );
        lanes.accepted(1);
        lanes.accepted(3);
        assert!(lanes.next_request().is_empty());
        lanes.accepted(0);
        assert_eq!(lanes.next_request(), vec![2]);
        lanes.accepted(2);
        assert!(lanes.is_done());
    }

    #[test]
    fn a_failed_key_waits_for_its_retry_time_and_blocks_only_itself() {
        let entries = entries(&["X", "Y", "X", "Z"]);
        let mut lanes = Lanes::new(&entries, 0..4);
        assert_eq!(lanes.next_request(), vec![0, 1, 3]);
        let start = Instant::now();
        lanes.failed(0, |failures| start + Duration::from_millis(100) * failures);
        lanes.accepted(1);
        lanes.accepted(3);
        assert!(lanes.next_request().is_empty(), "X waits, Y and Z are done");
        assert_eq!(lanes.next_wake(), Some(start + Duration::from_millis(100)));
        lanes.wake(start + Duration::from_millis(50));
        assert!(!lanes.has_ready());
        lanes.wake(start + Duration::from_millis(100));
        assert_eq!(
            lanes.next_request(),
            vec![0],
            "the failed entry before X's next one"
        );
        lanes.accepted(0);
        assert_eq!(lanes.next_request(), vec![2]);
    }

    #[test]
    fn a_full_request_leaves_the_rest_ready_in_order() {
        let keys: Vec<String> = (0..600).map(|i| format!("K{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let entries = entries(&keys);
        let mut lanes = Lanes::new(&entries, 0..600);
        assert_eq!(lanes.next_request(), (0..500).collect::<Vec<_>>());
        assert_eq!(lanes.next_request(), (500..600).collect::<Vec<_>>());
    }
}
