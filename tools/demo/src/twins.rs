//! Writes the simulated twin changes to the twins table, in order, each
//! at its time.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use dpl::Timestamp;

use crate::fleet::TwinWrite;

/// Items per `BatchWriteItem` call (DynamoDB API reference, BatchWriteItem).
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;

/// How many of `pending`'s first writes go in the next `BatchWriteItem`:
/// those whose time has come by `now`, at most [`MAX_BATCH_WRITE_ITEMS`],
/// each key once (BatchWriteItem refuses a key twice), so that writing the
/// batches one after the other keeps every key's order. 0 when the first
/// is not due yet.
pub fn due(pending: &[TwinWrite], now: Timestamp) -> usize {
    let mut keys = HashSet::new();
    pending
        .iter()
        .take(MAX_BATCH_WRITE_ITEMS)
        .take_while(|w| w.at <= now && keys.insert(w.key()))
        .count()
}

/// Writes `writes` (in time order) to `table` in order, each once its time
/// has come, never before: the item's times are then never later than the
/// time the table's stream stamps its record with (see
/// [`crate::fleet::Playback`]). `progress` gets the number written after
/// each call. Answers how far behind its time a write was made at most.
pub async fn play(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    writes: &[TwinWrite],
    progress: impl Fn(usize),
) -> anyhow::Result<Duration> {
    let mut pending = writes;
    let mut trail = 0;
    while let Some(first) = pending.first() {
        let wait = first.at.millis() - Timestamp::now().millis();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
        }
        let (batch, rest) = pending.split_at(due(pending, Timestamp::now()));
        if batch.is_empty() {
            continue;
        }
        write_batch(client, table, batch).await?;
        trail = trail.max(Timestamp::now().millis() - first.at.millis());
        progress(batch.len());
        pending = rest;
    }
    Ok(Duration::from_millis(trail.unsigned_abs()))
}

async fn write_batch(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    batch: &[TwinWrite],
) -> anyhow::Result<()> {
    let mut requests: Vec<WriteRequest> = batch
        .iter()
        .map(|w| {
            let put = PutRequest::builder()
                .set_item(Some(w.item.clone()))
                .build()
                .expect("an item is set");
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    for _attempt in 0..10 {
        let answer = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .with_context(|| format!("writing twin items to {table}"))?;
        requests = answer
            .unprocessed_items
            .and_then(|mut u| u.remove(table))
            .unwrap_or_default();
        if requests.is_empty() {
            return Ok(());
        }
    }
    anyhow::bail!(
        "{table}: {} items still unprocessed after 10 attempts",
        requests.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{simulate, Playback};

    fn fleet() -> crate::fleet::Fleet {
        let start = Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
        simulate(20, 1, Playback { start, speed: 1 }, 3)
    }

    /// The batches `due` makes of `writes` once all are due.
    fn batches(writes: &[TwinWrite]) -> Vec<&[TwinWrite]> {
        let (mut out, mut rest) = (Vec::new(), writes);
        let end = writes.last().unwrap().at;
        while !rest.is_empty() {
            let (batch, after) = rest.split_at(due(rest, end));
            assert!(!batch.is_empty());
            out.push(batch);
            rest = after;
        }
        out
    }

    #[test]
    fn batches_keep_every_write_once_in_order_and_each_key_once_per_batch() {
        let fleet = fleet();
        let batches = batches(&fleet.writes);
        let flat: Vec<_> = batches.iter().flat_map(|b| b.iter()).collect();
        assert_eq!(flat.len(), fleet.writes.len());
        for batch in &batches {
            assert!(batch.len() <= MAX_BATCH_WRITE_ITEMS);
            let keys: HashSet<_> = batch.iter().map(TwinWrite::key).collect();
            assert_eq!(keys.len(), batch.len());
        }
    }

    #[test]
    fn a_write_is_not_due_before_its_time() {
        let fleet = fleet();
        let writes = &fleet.writes;
        let before = Timestamp::from_millis(writes[0].at.millis() - 1).unwrap();
        assert_eq!(due(writes, before), 0);
        for now in writes.iter().map(|w| w.at).take(40) {
            let n = due(writes, now);
            assert!(n >= 1, "the first write is due at its time");
            assert!(writes[..n].iter().all(|w| w.at <= now));
        }
    }
}
