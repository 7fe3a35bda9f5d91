//! Writes the simulated twin changes to the twins table, in order.

use std::collections::HashSet;

use anyhow::Context;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use crate::fleet::TwinWrite;

/// Items per `BatchWriteItem` call (DynamoDB API reference, BatchWriteItem).
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;

/// Batches of consecutive writes, each at most [`MAX_BATCH_WRITE_ITEMS`]
/// long and holding each key once (BatchWriteItem refuses a key twice), so
/// that writing the batches one after the other keeps every key's order.
pub fn batches(writes: &[TwinWrite]) -> Vec<&[TwinWrite]> {
    let mut out = Vec::new();
    let (mut first, mut keys) = (0, HashSet::new());
    for (n, write) in writes.iter().enumerate() {
        if n - first == MAX_BATCH_WRITE_ITEMS || !keys.insert(write.key()) {
            out.push(&writes[first..n]);
            first = n;
            keys = HashSet::from([write.key()]);
        }
    }
    if first < writes.len() {
        out.push(&writes[first..]);
    }
    out
}

/// Writes `writes` to `table` in order; `progress` gets the number written
/// after each call.
pub async fn write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    writes: &[TwinWrite],
    progress: impl Fn(usize),
) -> anyhow::Result<()> {
    for batch in batches(writes) {
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
                break;
            }
        }
        anyhow::ensure!(
            requests.is_empty(),
            "{table}: {} items still unprocessed after 10 attempts",
            requests.len()
        );
        progress(batch.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::simulate;
    use dpl::Timestamp;

    #[test]
    fn batches_keep_every_write_once_in_order_and_each_key_once_per_batch() {
        let fleet = simulate(20, 1, Timestamp::parse("2020-08-28T09:00:00Z").unwrap(), 3);
        let batches = batches(&fleet.writes);
        let flat: Vec<_> = batches.iter().flat_map(|b| b.iter()).collect();
        assert_eq!(flat.len(), fleet.writes.len());
        for batch in &batches {
            assert!(batch.len() <= MAX_BATCH_WRITE_ITEMS);
            let keys: HashSet<_> = batch.iter().map(TwinWrite::key).collect();
            assert_eq!(keys.len(), batch.len());
        }
    }
}
