//! The rule that keeps records of one partition key in order across retries.
//!
//! Kinesis keeps the order of records with the same partition key only in
//! the order they are accepted. Once an entry of key `K` has failed, a later
//! entry of `K` that is accepted before the failed one is resent would
//! overtake it. So within a retry round, after an entry of `K` fails, no
//! further entry of `K` is sent in that round: they are held back, and the
//! next round sends the failed entry and the held ones in their original
//! order. Entries already accepted are never sent again.
//!
//! One limit this rule cannot lift: inside one request, Kinesis may accept a
//! later entry of `K` while rejecting an earlier one (the answer is per
//! entry). Sending one entry per key per request would rule that out at the
//! cost of batching; we accept it, and consumers that need strict order
//! within such a rare pair sort by the event's timestamp.

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
    /// has not failed in this round, as many as one request takes. Entries of
    /// failed keys met on the way are held back for the next round. Empty
    /// when the round is over.
    pub fn next_request(&mut self) -> Vec<usize> {
        let mut budget = RequestBudget::default();
        let mut request = Vec::new();
        while let Some(&index) = self.queue.front() {
            let entry = &self.entries[index];
            if self.blocked.contains(entry.partition_key()) {
                self.queue.pop_front();
                continue;
            }
            if !budget.try_take(entry.size()) {
                break;
            }
            request.push(index);
            self.queue.pop_front();
        }
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
    fn without_failures_a_round_sends_everything_in_order() {
        let entries = entries(&["A", "B", "A", "C"]);
        let mut round = Round::new(&entries, 0..4);
        assert_eq!(round.next_request(), vec![0, 1, 2, 3]);
        assert!(round.next_request().is_empty());
        assert!(!round.had_failures());
    }

    #[test]
    fn after_a_failure_later_entries_of_that_key_wait_for_the_next_round() {
        // 1 000 entries: two requests of 500. Key "X" fails in the first
        // request; its entries in the second request are held back, the
        // other keys go on, and relative order is kept.
        let keys: Vec<String> = (0..1_000)
            .map(|i| {
                if i % 10 == 0 {
                    "X".into()
                } else {
                    format!("K{i}")
                }
            })
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let entries = entries(&keys);
        let mut round = Round::new(&entries, 0..1_000);
        let first = round.next_request();
        assert_eq!(first, (0..500).collect::<Vec<_>>());
        round.failed(20);
        let second = round.next_request();
        assert!(second.iter().all(|&i| keys[i] != "X"));
        assert_eq!(second.len(), 450);
        assert!(second.windows(2).all(|w| w[0] < w[1]));
        assert!(round.next_request().is_empty());
        assert!(round.had_failures());
    }

    #[test]
    fn a_next_round_over_failed_and_held_entries_keeps_their_order() {
        let entries = entries(&["X", "Y", "X", "X", "Y"]);
        // Round 1 sent [0, 1, 2]; 0 (X) failed, 1 and 2 were accepted:
        // 2 overtook 0 inside one request, the documented limit. Round 2
        // sends 0, then the X entry held back (3), and Y's last entry.
        let mut round = Round::new(&entries, [0, 3, 4]);
        assert_eq!(round.next_request(), vec![0, 3, 4]);
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
