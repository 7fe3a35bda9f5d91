//! A DPL stream in memory, for tests: shards of records, read through
//! iterators as Kinesis reads them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{Page, ReadError, ShardReader, StreamRecord};
use crate::position::{HashRange, Position, SequenceNumber};
use crate::streams::cursor::Resume;
use crate::Timestamp;

/// See the module docs. Sequence numbers are the record's index on its
/// shard plus a large base, as decimal text.
#[derive(Debug, Default)]
pub struct InMemoryDplStream {
    shards: Mutex<HashMap<String, Vec<StreamRecord>>>,
    /// Per shard, how many of its oldest records are past retention.
    trimmed: Mutex<HashMap<String, usize>>,
    reads: Mutex<usize>,
}

/// Sequence numbers start here (real ones are 56 digits long).
const BASE: u128 = 49_590_338_271_490_256_608_559_692_538_000_000_000;

impl InMemoryDplStream {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<StreamRecord>>> {
        self.shards.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `data` to `shard`; returns the record's position.
    pub fn append(&self, shard: &str, data: Vec<u8>, arrival: Timestamp) -> Position {
        let mut shards = self.lock();
        let records = shards.entry(shard.to_owned()).or_default();
        let sequence = (BASE + records.len() as u128).to_string();
        let position = Position::new(shard, &sequence).expect("a sequence number");
        records.push(StreamRecord {
            position: position.clone(),
            arrival,
            data,
        });
        position
    }

    /// Every record of `shard`.
    pub fn records(&self, shard: &str) -> Vec<StreamRecord> {
        self.lock().get(shard).cloned().unwrap_or_default()
    }

    /// Drops the oldest `count` records of `shard`, as retention does.
    pub fn trim(&self, shard: &str, count: usize) {
        *self
            .trimmed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(shard.to_owned())
            .or_default() = count;
    }

    fn trimmed(&self, shard: &str) -> usize {
        self.trimmed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(shard)
            .copied()
            .unwrap_or(0)
    }

    /// `GetRecords` calls made.
    pub fn reads(&self) -> usize {
        *self.reads.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn index_of(sequence: &SequenceNumber) -> usize {
        let value: u128 = sequence.as_str().parse().unwrap_or(BASE);
        usize::try_from(value.saturating_sub(BASE)).unwrap_or(usize::MAX)
    }
}

impl ShardReader for InMemoryDplStream {
    async fn iterator(&self, shard: &str, from: &Resume) -> Result<String, ReadError> {
        let index = match from {
            Resume::At(sequence) => Self::index_of(sequence),
            Resume::After(sequence) => Self::index_of(sequence) + 1,
        };
        Ok(format!("{shard}|{index}"))
    }

    async fn read(&self, iterator: &str, limit: usize) -> Result<Page, ReadError> {
        *self.reads.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let (shard, index) = iterator
            .rsplit_once('|')
            .and_then(|(shard, index)| Some((shard, index.parse::<usize>().ok()?)))
            .ok_or_else(|| ReadError::Failed(format!("not an iterator: {iterator}")))?;
        let trimmed = self.trimmed(shard);
        let shards = self.lock();
        let records = shards.get(shard).map(Vec::as_slice).unwrap_or_default();
        // Reading before the trim horizon starts at it, as Kinesis does.
        let start = index.max(trimmed).min(records.len());
        let end = records.len().min(start + limit);
        let page: Vec<StreamRecord> = records[start..end].to_vec();
        let millis_behind = match (page.last(), records.last()) {
            (Some(last), Some(newest)) => {
                (newest.arrival.millis() - last.arrival.millis()).max(0) as u64
            }
            _ => 0,
        };
        Ok(Page {
            records: page,
            next: Some(format!("{shard}|{end}")),
            millis_behind: Some(if end == records.len() {
                0
            } else {
                millis_behind.max(1)
            }),
        })
    }

    async fn first_retained(&self, shard: &str) -> Result<Option<StreamRecord>, ReadError> {
        let trimmed = self.trimmed(shard);
        Ok(self.lock().get(shard).and_then(|r| r.get(trimmed)).cloned())
    }

    async fn hash_range(&self, _shard: &str) -> Result<HashRange, ReadError> {
        Ok(HashRange::ALL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reading_resumes_at_or_after_a_record_and_ends_at_the_tip() {
        let stream = InMemoryDplStream::new();
        let at = |ms| Timestamp::from_millis(ms).unwrap();
        let positions: Vec<Position> = (0..5)
            .map(|n| stream.append("shard-0", vec![n], at(i64::from(n) * 1_000)))
            .collect();
        let from = Resume::After(positions[1].sequence().clone());
        let iterator = stream.iterator("shard-0", &from).await.unwrap();
        let page = stream.read(&iterator, 2).await.unwrap();
        assert_eq!(
            page.records.iter().map(|r| r.data[0]).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(page.millis_behind, Some(1_000));
        let page = stream
            .read(page.next.as_deref().unwrap(), 10)
            .await
            .unwrap();
        assert_eq!((page.records.len(), page.at_tip()), (1, true));
        let at_third = stream
            .iterator("shard-0", &Resume::At(positions[2].sequence().clone()))
            .await
            .unwrap();
        assert_eq!(
            stream.read(&at_third, 1).await.unwrap().records[0].data,
            [2]
        );
    }
}
