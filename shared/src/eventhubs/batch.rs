//! The body of a "Send batch events" request and packing messages into
//! batches within [`MAX_BATCH_BYTES`].
//!
//! Body ("Send batch events", REST reference): a JSON array of
//!
//! ```json
//! {"Body": "<customer payload JSON, as a string>",
//!  "BrokerProperties": {"PartitionKey": "<dsn>"},
//!  "UserProperties": {"event_id": "<uuid>", "event_type": "<type>"}}
//! ```
//!
//! **One partition key per batch.** The REST reference does not say whether
//! messages of one batch may carry different `PartitionKey`s. The service
//! stores a batch in one partition: "A batch can only be committed to a
//! single partition. If more than one event in a batch has a different
//! partition, the batch will fail" (Event Hubs maintainer,
//! <https://github.com/Azure/azure-event-hubs-go/issues/127>), and the SDKs'
//! batches carry one partition key (e.g. .NET `CreateBatchOptions.PartitionKey`,
//! JS `SendBatchOptions.partitionKey`). So [`pack`] groups messages by
//! partition key (the DSN): every batch holds one key, in input order, and
//! batches are ordered by their first message, so per-DSN order is kept when
//! batches are sent one after the other.

use std::collections::HashMap;

use serde::Serialize;

use super::limits::{MAX_BATCH_BYTES, RESERVED_BYTES_PER_MESSAGE};
use crate::record::{CustomerPayload, DplRecord};

/// One message, already encoded as its JSON object in the batch array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    json: Vec<u8>,
    partition_key: String,
    event_id: String,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "Body")]
    body: &'a str,
    #[serde(rename = "BrokerProperties")]
    broker: Broker<'a>,
    #[serde(rename = "UserProperties")]
    user: User<'a>,
}

#[derive(Serialize)]
struct Broker<'a> {
    #[serde(rename = "PartitionKey")]
    partition_key: &'a str,
}

#[derive(Serialize)]
struct User<'a> {
    event_id: &'a str,
    event_type: &'a str,
}

impl Message {
    /// A message with `body` (sent as a JSON string), the partition key and
    /// the two user properties.
    pub fn new(body: &str, partition_key: &str, event_id: &str, event_type: &str) -> Message {
        let wire = Wire {
            body,
            broker: Broker { partition_key },
            user: User {
                event_id,
                event_type,
            },
        };
        Message {
            json: serde_json::to_vec(&wire).expect("strings always serialize"),
            partition_key: partition_key.to_owned(),
            event_id: event_id.to_owned(),
        }
    }

    /// The message of one DPL record: the customer payload as body, the DSN
    /// as partition key, its event id and type as user properties.
    pub fn from_record(record: &DplRecord) -> Message {
        let payload = CustomerPayload(&record.dpl_event).to_json();
        let body = String::from_utf8(payload).expect("serde_json writes UTF-8");
        Message::new(
            &body,
            record.partition_key(),
            &record.event_id.to_string(),
            record.dpl_event.event_type().as_str(),
        )
    }

    pub fn partition_key(&self) -> &str {
        &self.partition_key
    }

    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// The JSON object of this message in the batch array.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// What this message counts against a batch: its JSON plus
    /// [`RESERVED_BYTES_PER_MESSAGE`] (the separating comma is counted by
    /// [`batch_cost`]).
    pub fn cost(&self) -> usize {
        self.json.len() + RESERVED_BYTES_PER_MESSAGE
    }
}

/// What a batch of messages with the given costs counts against the limit:
/// `[` and `]`, a comma between messages, and each message's cost.
pub fn batch_cost(costs: impl IntoIterator<Item = usize>) -> usize {
    let (count, sum) = costs
        .into_iter()
        .fold((0usize, 0usize), |(n, s), c| (n + 1, s + c));
    2 + sum + count.saturating_sub(1)
}

/// A message that does not fit even a batch of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event_id} (message {index}) counts {cost} bytes alone, over the {limit}-byte batch limit")]
pub struct MessageTooLarge {
    /// Position in the input.
    pub index: usize,
    pub event_id: String,
    /// [`batch_cost`] of a batch holding only this message.
    pub cost: usize,
    pub limit: usize,
}

/// One batch: positions in the input, all with the same partition key, in
/// input order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub indexes: Vec<usize>,
    /// [`batch_cost`] of the batch.
    pub cost: usize,
}

/// The batches of an input and the messages too large for any batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packing {
    /// In sending order: ordered by their first message.
    pub batches: Vec<Batch>,
    pub too_large: Vec<MessageTooLarge>,
}

impl Packing {
    /// Input positions in sending order.
    pub fn send_order(&self) -> Vec<usize> {
        self.batches
            .iter()
            .flat_map(|batch| batch.indexes.iter().copied())
            .collect()
    }
}

/// Packs `messages` into batches of one partition key within
/// [`MAX_BATCH_BYTES`]; see the module docs.
pub fn pack(messages: &[Message]) -> Packing {
    pack_within(messages, MAX_BATCH_BYTES)
}

/// [`pack`] with another limit (tests).
pub fn pack_within(messages: &[Message], limit: usize) -> Packing {
    let mut packing = Packing::default();
    // Per partition key: the batch currently filled.
    let mut open: HashMap<&str, usize> = HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let alone = batch_cost([message.cost()]);
        if alone > limit {
            packing.too_large.push(MessageTooLarge {
                index,
                event_id: message.event_id.clone(),
                cost: alone,
                limit,
            });
            continue;
        }
        let key = message.partition_key();
        match open.get(key).map(|&b| &mut packing.batches[b]) {
            // One more message costs its own cost plus a comma.
            Some(batch) if batch.cost + 1 + message.cost() <= limit => {
                batch.cost += 1 + message.cost();
                batch.indexes.push(index);
            }
            _ => {
                open.insert(key, packing.batches.len());
                packing.batches.push(Batch {
                    indexes: vec![index],
                    cost: alone,
                });
            }
        }
    }
    packing
}

/// The request body of the messages at `indexes` (a batch's, or one
/// message alone): `[m1,m2,...]`.
pub fn body(messages: &[Message], indexes: &[usize]) -> Vec<u8> {
    let len = indexes
        .iter()
        .map(|&i| messages[i].json.len() + 1)
        .sum::<usize>()
        + 1;
    let mut out = Vec::with_capacity(len);
    out.push(b'[');
    for (n, &i) in indexes.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&messages[i].json);
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    fn message(i: usize, key: &str, body_len: usize) -> Message {
        Message::new(&"x".repeat(body_len), key, &format!("id-{i}"), "datapoint")
    }

    #[test]
    fn body_is_the_documented_json_array() {
        let messages = [
            Message::new(
                r#"{"dsn":"AC000W000000001","value":"a\"b"}"#,
                "AC000W000000001",
                "e1",
                "datapoint",
            ),
            Message::new("{}", "AC000W000000001", "e2", "connection"),
        ];
        let packing = pack(&messages);
        assert_eq!(packing.batches.len(), 1);
        let body: Value =
            serde_json::from_slice(&body(&messages, &packing.batches[0].indexes)).unwrap();
        assert_eq!(
            body,
            json!([
                {"Body": r#"{"dsn":"AC000W000000001","value":"a\"b"}"#,
                 "BrokerProperties": {"PartitionKey": "AC000W000000001"},
                 "UserProperties": {"event_id": "e1", "event_type": "datapoint"}},
                {"Body": "{}",
                 "BrokerProperties": {"PartitionKey": "AC000W000000001"},
                 "UserProperties": {"event_id": "e2", "event_type": "connection"}},
            ])
        );
    }

    #[test]
    fn record_message_carries_the_customer_payload_dsn_and_event_properties() {
        let (_, event) = crate::examples::seed_csv_examples()
            .into_iter()
            .find(|(_, e)| e.event_type() == crate::EventType::Datapoint)
            .unwrap();
        let record = DplRecord {
            dpl_event: event,
            event_id: crate::record::EventId::derive("stream-1", crate::EventType::Datapoint),
            stream_order: None,
        };
        let message = Message::from_record(&record);
        let wire: Value = serde_json::from_slice(message.json()).unwrap();
        let body = wire["Body"].as_str().unwrap();
        assert_eq!(
            body.as_bytes(),
            CustomerPayload(&record.dpl_event).to_json()
        );
        assert_eq!(
            wire["BrokerProperties"]["PartitionKey"],
            record.partition_key()
        );
        assert_eq!(
            wire["UserProperties"]["event_id"],
            record.event_id.to_string()
        );
        assert_eq!(wire["UserProperties"]["event_type"], "datapoint");
        assert_eq!(message.partition_key(), record.partition_key());
    }

    #[test]
    fn cost_counts_brackets_commas_and_reserve() {
        assert_eq!(batch_cost([]), 2);
        assert_eq!(batch_cost([10]), 12);
        assert_eq!(batch_cost([10, 20, 30]), 2 + 60 + 2);
        let m = message(0, "A", 5);
        assert_eq!(m.cost(), m.json().len() + RESERVED_BYTES_PER_MESSAGE);
    }

    #[test]
    fn batches_hold_one_key_and_follow_first_appearance() {
        let messages: Vec<Message> = ["A", "B", "A", "C", "B", "A"]
            .iter()
            .enumerate()
            .map(|(i, k)| message(i, k, 10))
            .collect();
        let packing = pack(&messages);
        let batches: Vec<Vec<usize>> = packing.batches.iter().map(|b| b.indexes.clone()).collect();
        assert_eq!(batches, vec![vec![0, 2, 5], vec![1, 4], vec![3]]);
        assert!(packing.too_large.is_empty());
    }

    #[test]
    fn a_full_batch_is_closed_and_the_key_continues_in_a_later_one() {
        let messages: Vec<Message> = (0..5)
            .map(|i| message(i, if i == 2 { "B" } else { "A" }, 100))
            .collect();
        let one = messages[0].cost();
        // Room for exactly two "A" messages per batch.
        let limit = batch_cost([one, one]);
        let packing = pack_within(&messages, limit);
        let batches: Vec<Vec<usize>> = packing.batches.iter().map(|b| b.indexes.clone()).collect();
        assert_eq!(batches, vec![vec![0, 1], vec![2], vec![3, 4]]);
        for batch in &packing.batches {
            assert_eq!(
                body(&messages, &batch.indexes).len()
                    + RESERVED_BYTES_PER_MESSAGE * batch.indexes.len(),
                batch.cost
            );
        }
    }

    #[test]
    fn a_message_over_the_limit_alone_is_a_typed_error_and_the_rest_is_packed() {
        let messages = vec![
            message(0, "A", 10),
            message(1, "A", MAX_BATCH_BYTES),
            message(2, "A", 10),
        ];
        let packing = pack(&messages);
        assert_eq!(packing.send_order(), vec![0, 2]);
        assert_eq!(packing.too_large.len(), 1);
        let error = &packing.too_large[0];
        assert_eq!(
            (error.index, error.event_id.as_str(), error.limit),
            (1, "id-1", MAX_BATCH_BYTES)
        );
        assert!(error.cost > MAX_BATCH_BYTES);
        assert!(error.to_string().contains("id-1"));
    }

    #[test]
    fn a_message_exactly_at_the_limit_fits() {
        let m = message(0, "A", 1);
        let limit = batch_cost([m.cost()]);
        assert_eq!(
            pack_within(std::slice::from_ref(&m), limit).batches.len(),
            1
        );
        assert_eq!(pack_within(&[m], limit - 1).too_large.len(), 1);
    }

    fn inputs() -> impl Strategy<Value = (Vec<(u8, usize)>, usize)> {
        (
            prop::collection::vec((0u8..5, 0usize..3_000), 0..200),
            1_000usize..20_000,
        )
    }

    proptest! {
        #[test]
        fn batches_are_within_the_limit_and_keep_per_key_order((specs, limit) in inputs()) {
            let messages: Vec<Message> = specs
                .iter()
                .enumerate()
                .map(|(i, (key, len))| message(i, &format!("DSN{key}"), *len))
                .collect();
            let packing = pack_within(&messages, limit);
            for batch in &packing.batches {
                let encoded = body(&messages, &batch.indexes);
                // The body we send, plus the reserve, is within the limit ...
                prop_assert!(encoded.len() + RESERVED_BYTES_PER_MESSAGE * batch.indexes.len() <= limit);
                prop_assert_eq!(encoded.len() + RESERVED_BYTES_PER_MESSAGE * batch.indexes.len(), batch.cost);
                // ... is a JSON array of the messages, all with one key.
                let parsed: Vec<Value> = serde_json::from_slice(&encoded).unwrap();
                prop_assert_eq!(parsed.len(), batch.indexes.len());
                let key = messages[batch.indexes[0]].partition_key();
                prop_assert!(batch.indexes.iter().all(|&i| messages[i].partition_key() == key));
            }
            // Every message is sent once or reported too large.
            let mut seen = packing.send_order();
            seen.extend(packing.too_large.iter().map(|e| e.index));
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..messages.len()).collect::<Vec<_>>());
            // Per key, the sending order is the input order.
            let order = packing.send_order();
            for key in 0u8..5 {
                let key = format!("DSN{key}");
                let sent: Vec<usize> = order.iter().copied().filter(|&i| messages[i].partition_key() == key).collect();
                prop_assert!(sent.windows(2).all(|w| w[0] < w[1]), "{}: {:?}", key, sent);
            }
            // With one key, concatenating the batches gives the input in order.
            let one_key: Vec<Message> = messages.iter().map(|m| Message { partition_key: "K".into(), ..m.clone() }).collect();
            let packing = pack_within(&one_key, limit);
            let mut expected: Vec<usize> = (0..one_key.len()).collect();
            expected.retain(|i| !packing.too_large.iter().any(|e| e.index == *i));
            prop_assert_eq!(packing.send_order(), expected);
        }
    }

    #[test]
    fn full_size_batches_stay_under_one_megabyte() {
        // Realistic payloads (~700 bytes) from many DSNs, enough for several
        // full batches per key.
        let messages: Vec<Message> = (0..6_000)
            .map(|i| message(i, &format!("DSN{}", i % 3), 700))
            .collect();
        let packing = pack(&messages);
        assert!(packing.batches.len() >= 6);
        for batch in &packing.batches {
            assert!(
                body(&messages, &batch.indexes).len()
                    + RESERVED_BYTES_PER_MESSAGE * batch.indexes.len()
                    <= MAX_BATCH_BYTES
            );
        }
    }
}
