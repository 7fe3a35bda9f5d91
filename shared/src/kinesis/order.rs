//! The rule that keeps records of one partition key in order across retries.
//!
//! Kinesis keeps the order of records with the same partition key only in
//! the order they are accepted, and it answers PutRecords per entry: inside
//! one request it may reject an earlier entry of key `K` and accept a later
//! one. So:
//!
//! - a request carries at most one entry per key; the next entry of `K` goes
//!   in a later request, once the earlier one has been answered;
//! - after an entry of `K` fails, no further entry of `K` is sent in that
//!   round: they are held back, and the next round sends the failed entry
//!   and the held ones in their original order;
//! - entries already accepted are never sent again.
//!
//! A later entry of a key is therefore never accepted before an earlier one.
//! The cost is one request per entry of the busiest key of a batch: with
//! many devices per batch (the usual case) requests stay full, 2 calls per
//! 1,000 events in the twin-events benchmark; a single device with `k`
//! events in one batch needs `k` sequential calls.

use std::collections::{HashSet, VecDeque};

use super::batch::RequestBudget;
use super::Entry;

/// One retry round over the entries not accepted yet.
#[derive(Debug)]
pub struct Round<'a> {
    entries: &'a [Entry],
    /// Entries still to consider this round, in original order.
    queue: VecDeque<usize>,
    /// Keys with an entry that failed in this round.
    blocked: HashSet<&'a str>,
}

impl<'a> Round<'a> {
    /// A round over `pending`: indexes into `entries`, in increasing order.
    pub fn new(entries: &'a [Entry], pending: impl IntoIterator<Item = usize>) -> Self {
        Self {
            entries,
            queue: pending.into_iter().collect(),
            blocked: HashSet::new(),
        }
    }

    /// The next request of this round: the earliest queued entries whose key
    /// has not failed in this round and is not in the request yet, as many
    /// as one request takes. Entries of failed keys met on the way are held
    /// back for the next round; entries of keys already in the request wait
    /// for a later request of this round. Empty when the round is over.
    pub fn next_request(&mut self) -> Vec<usize> {
        let mut budget = RequestBudget::default();
        let mut request = Vec::new();
        let mut in_request = HashSet::new();
        let mut waiting = VecDeque::new();
        while let Some(index) = self.queue.pop_front() {
            let entry = &self.entries[index];
            let key = entry.partition_key();
            if self.blocked.contains(key) {
                continue;
            }
            if in_request.contains(key) {
                waiting.push_back(index);
                continue;
            }
            if !budget.try_take(entry.size()) {
                waiting.push_back(index);
                break;
            }
            in_request.insert(key);
            request.push(index);
        }
        waiting.append(&mut self.queue);
        self.queue = waiting;
        request
    }

    /// Entry `index` failed: hold back the rest of its key for this round.
    pub fn failed(&mut self, index: usize) {
        self.blocked.insert(self.entries[index].partition_key());
    }

    /// Whether any entry failed in this round.
    pub fn had_failures(&self) -> bool {
        !self.blocked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(keys: &[&str]) -> Vec<Entry> {
        keys.iter()
            .map(|key| Entry::new(*key, vec![0; 10]).unwrap())
            .collect()
    }

    #[test]
    fn a_request_carries_one_entry_per_key_the_next_waits_for_a_later_request() {
        let entries = entries(&["A", "B", "A", "C"]);
        let mut round = Round::new(&entries, 0..4);
        assert_eq!(round.next_request(), vec![0, 1, 3]);
        assert_eq!(round.next_request(), vec![2]);
        assert!(round.next_request().is_empty());
        assert!(!round.had_failures());
    }

    #[test]
    fn after_a_failure_later_entries_of_that_key_wait_for_the_next_round() {
        // 1 000 entries, key "X" at 10 and 700, every other key distinct:
        // two requests. X fails in the first; its entry in the second
        // request is held back, the other keys go on, order is kept.
        let keys: Vec<String> = (0..1_000)
            .map(|i| match i {
                10 | 700 => "X".into(),
                _ => format!("K{i}"),
            })
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let entries = entries(&keys);
        let mut round = Round::new(&entries, 0..1_000);
        assert_eq!(round.next_request(), (0..500).collect::<Vec<_>>());
        round.failed(10);
        let second = round.next_request();
        assert_eq!(
            second,
            (500..1_000).filter(|&i| i != 700).collect::<Vec<_>>()
        );
        assert!(round.next_request().is_empty());
        assert!(round.had_failures());
    }

    #[test]
    fn a_next_round_over_failed_and_held_entries_keeps_their_order() {
        let entries = entries(&["X", "Y", "X", "X", "Y"]);
        // Round 1 got 1 and 2 accepted; 0 (X) failed and 3 (X) was held
        // back. Round 2 sends 0 with Y's last entry, then 3.
        let mut round = Round::new(&entries, [0, 3, 4]);
        assert_eq!(round.next_request(), vec![0, 4]);
        assert_eq!(round.next_request(), vec![3]);
        assert!(round.next_request().is_empty());
    }

    #[test]
    fn a_failed_key_blocks_only_itself() {
        let entries = entries(&["X", "Y", "X", "Z"]);
        // Entry 0 (X) failed in an earlier request of this round.
        let mut round = Round::new(&entries, 1..4);
        round.failed(0);
        assert_eq!(round.next_request(), vec![1, 3]);
    }
}
