//! Streaming k-way merge of sorted row sources, dropping repeated rows.
//!
//! Each source yields rows in ascending key order (the staging order,
//! [`crate::record::SortKey`]: event time, stream order, event id). The merge keeps one row per source in a binary
//! heap, so memory is one row per source whatever the sources' lengths. A
//! row whose key equals the previous output row's is a duplicate (the same
//! event staged twice, by a retried or bisected batch) and is dropped: the
//! key starts with the event time, which an event id determines, so copies
//! of an event are adjacent in the merged order.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A row with a sort key.
pub trait Keyed {
    type Key: Ord + Clone + std::fmt::Debug;
    fn key(&self) -> Self::Key;
}

impl Keyed for crate::record::DplRecord {
    type Key = crate::record::SortKey;
    fn key(&self) -> Self::Key {
        self.sort_key()
    }
}

impl Keyed for super::staging::RawRow {
    type Key = crate::record::SortKey;
    fn key(&self) -> Self::Key {
        self.sort_key()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError<E> {
    #[error("source {source_index}: {error}")]
    Source { source_index: usize, error: E },
    #[error("source {source_index} is not sorted: {next} after {previous}")]
    Unsorted {
        source_index: usize,
        previous: String,
        next: String,
    },
}

/// Counts of a merge so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    pub rows_out: u64,
    pub duplicates: u64,
}

struct Head<K, T> {
    key: K,
    source: usize,
    row: T,
}

impl<K: Ord, T> PartialEq for Head<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K: Ord, T> Eq for Head<K, T> {}
impl<K: Ord, T> PartialOrd for Head<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, T> Ord for Head<K, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.key, self.source).cmp(&(&other.key, other.source))
    }
}

/// The merge; an iterator of rows in key order, each key once. It reads one
/// row ahead per source, so a source's error may come before the row that
/// preceded it; after an error it yields nothing more.
pub struct Merge<I, T: Keyed> {
    sources: Vec<I>,
    heap: BinaryHeap<Reverse<Head<T::Key, T>>>,
    last: Option<T::Key>,
    started: bool,
    failed: bool,
    stats: MergeStats,
}

impl<I, T, E> Merge<I, T>
where
    I: Iterator<Item = Result<T, E>>,
    T: Keyed,
{
    pub fn new(sources: Vec<I>) -> Self {
        let capacity = sources.len();
        Self {
            sources,
            heap: BinaryHeap::with_capacity(capacity),
            last: None,
            started: false,
            failed: false,
            stats: MergeStats::default(),
        }
    }

    pub fn stats(&self) -> MergeStats {
        self.stats
    }

    /// Pulls the next row of `source` into the heap, checking its order
    /// against `previous` (the row it follows).
    fn refill(&mut self, source: usize, previous: Option<&T::Key>) -> Result<(), MergeError<E>> {
        let Some(next) = self.sources[source].next() else {
            return Ok(());
        };
        let row = next.map_err(|error| MergeError::Source {
            source_index: source,
            error,
        })?;
        let key = row.key();
        if let Some(previous) = previous {
            if key < *previous {
                return Err(MergeError::Unsorted {
                    source_index: source,
                    previous: format!("{previous:?}"),
                    next: format!("{key:?}"),
                });
            }
        }
        self.heap.push(Reverse(Head { key, source, row }));
        Ok(())
    }

    fn step(&mut self) -> Result<Option<T>, MergeError<E>> {
        if !self.started {
            self.started = true;
            for source in 0..self.sources.len() {
                self.refill(source, None)?;
            }
        }
        while let Some(Reverse(head)) = self.heap.pop() {
            self.refill(head.source, Some(&head.key))?;
            if self.last.as_ref() == Some(&head.key) {
                self.stats.duplicates += 1;
                continue;
            }
            self.last = Some(head.key);
            self.stats.rows_out += 1;
            return Ok(Some(head.row));
        }
        Ok(None)
    }
}

impl<I, T, E> Iterator for Merge<I, T>
where
    I: Iterator<Item = Result<T, E>>,
    T: Keyed,
{
    type Item = Result<T, MergeError<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = self.step();
        if result.is_err() {
            self.failed = true;
        }
        result.transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::convert::Infallible;

    use proptest::prelude::*;

    use super::*;

    /// (time, id) pairs, the id determining the time as an event id does.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Row(u32);

    impl Row {
        fn time(&self) -> u32 {
            self.0 / 4
        }
    }

    impl Keyed for Row {
        type Key = (u32, u32);
        fn key(&self) -> (u32, u32) {
            (self.time(), self.0)
        }
    }

    fn sources(lists: &[&[u32]]) -> Vec<std::vec::IntoIter<Result<Row, Infallible>>> {
        lists
            .iter()
            .map(|l| {
                l.iter()
                    .map(|&n| Ok(Row(n)))
                    .collect::<Vec<_>>()
                    .into_iter()
            })
            .collect()
    }

    fn ids(lists: &[&[u32]]) -> Vec<u32> {
        Merge::new(sources(lists)).map(|r| r.unwrap().0).collect()
    }

    #[test]
    fn table() {
        let cases: &[(&[&[u32]], &[u32])] = &[
            (&[], &[]),
            (&[&[]], &[]),
            (&[&[1, 2, 3]], &[1, 2, 3]),
            (&[&[1, 5], &[2, 6], &[3]], &[1, 2, 3, 5, 6]),
            (&[&[1, 2], &[1, 2]], &[1, 2]),
            (&[&[1, 1, 2]], &[1, 2]),
            (&[&[4, 8], &[], &[8, 12], &[4]], &[4, 8, 12]),
        ];
        for (input, want) in cases {
            assert_eq!(ids(input), *want, "{input:?}");
        }
    }

    #[test]
    fn duplicates_are_counted() {
        let mut merge = Merge::new(sources(&[&[1, 2], &[2, 3], &[2]]));
        let out: Vec<_> = merge.by_ref().map(|r| r.unwrap().0).collect();
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(
            merge.stats(),
            MergeStats {
                rows_out: 3,
                duplicates: 2
            }
        );
    }

    #[test]
    fn an_unsorted_source_is_an_error_not_a_wrong_file() {
        // The merge reads one row ahead per source: the error comes as
        // soon as the out-of-order row is read.
        let mut merge = Merge::new(sources(&[&[8, 4]]));
        assert!(matches!(
            merge.next(),
            Some(Err(MergeError::Unsorted {
                source_index: 0,
                ..
            }))
        ));
        assert!(merge.next().is_none());
    }

    #[test]
    fn a_source_error_stops_the_merge() {
        let failing = vec![Ok(Row(1)), Err("disk"), Ok(Row(9))].into_iter();
        let mut merge = Merge::new(vec![failing]);
        assert!(matches!(
            merge.next(),
            Some(Err(MergeError::Source { error: "disk", .. }))
        ));
        assert!(merge.next().is_none());
    }

    proptest! {
        #[test]
        fn merged_output_is_sorted_and_holds_every_id_once(
            lists in prop::collection::vec(prop::collection::vec(0u32..400, 0..60), 0..8)
        ) {
            let sorted: Vec<Vec<u32>> = lists
                .into_iter()
                .map(|mut l| { l.sort_by_key(|&n| Row(n).key()); l })
                .collect();
            let refs: Vec<&[u32]> = sorted.iter().map(Vec::as_slice).collect();
            let out = ids(&refs);
            let keys: Vec<_> = out.iter().map(|&n| Row(n).key()).collect();
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "not strictly sorted: {:?}", out);
            let want: BTreeSet<u32> = sorted.iter().flatten().copied().collect();
            let got: BTreeSet<u32> = out.iter().copied().collect();
            prop_assert_eq!(got, want);
        }
    }
}
