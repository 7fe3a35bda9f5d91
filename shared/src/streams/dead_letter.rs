//! An event a subscription's destination refuses for good (pure; stored by
//! `super::state`): it holds only itself. It is kept with the reason until
//! an operator redrives it after a fix (`dplctl streams redrive`), while the
//! events after it, of its DSN and of every other, go on.

use super::delivery::Delivery;
use crate::position::Position;
use crate::{EventId, EventType, Timestamp};

/// The largest payload kept in a dead letter, in bytes. Larger ones are
/// read back from the DPL stream by position when redriven (DynamoDB items
/// are at most 400 KB, names and values included: DynamoDB developer guide,
/// "Service, account, and table quotas"; twin values are at most 128 KiB).
pub const MAX_KEPT_PAYLOAD: usize = 300 * 1024;

/// See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub position: Position,
    pub event_id: EventId,
    pub event_type: EventType,
    pub dsn: String,
    /// Why the destination refused it (never a secret).
    pub reason: String,
    pub at: Timestamp,
    /// The payload's size, kept or not.
    pub size: usize,
    /// The payload, unless larger than [`MAX_KEPT_PAYLOAD`].
    pub payload: Option<Vec<u8>>,
}

impl DeadLetter {
    pub fn new(delivery: &Delivery, reason: &str, at: Timestamp) -> Self {
        Self {
            position: delivery.position.clone(),
            event_id: delivery.event_id,
            event_type: delivery.event_type,
            dsn: delivery.dsn.clone(),
            reason: super::subscription::truncate_message(reason),
            at,
            size: delivery.payload.len(),
            payload: (delivery.payload.len() <= MAX_KEPT_PAYLOAD).then(|| delivery.payload.clone()),
        }
    }

    /// The event to send again, if its payload was kept.
    pub fn delivery(&self) -> Option<Delivery> {
        self.payload.as_ref().map(|payload| Delivery {
            position: self.position.clone(),
            arrival: self.at,
            event_id: self.event_id,
            event_type: self.event_type,
            dsn: self.dsn.clone(),
            payload: payload.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(size: usize) -> Delivery {
        Delivery {
            position: Position::new("shardId-000000000000", "42").unwrap(),
            arrival: Timestamp::from_millis(1_000).unwrap(),
            event_id: EventId::derive("x", EventType::Datapoint),
            event_type: EventType::Datapoint,
            dsn: "AC000W000000001".into(),
            payload: vec![b'x'; size],
        }
    }

    #[test]
    fn a_dead_letter_keeps_the_payload_unless_it_is_too_large() {
        let at = Timestamp::from_millis(2_000).unwrap();
        let small = DeadLetter::new(&delivery(10), "413 Request Entity Too Large", at);
        assert_eq!(small.delivery().unwrap().payload.len(), 10);
        assert_eq!(small.delivery().unwrap().position, delivery(10).position);
        let large = DeadLetter::new(&delivery(MAX_KEPT_PAYLOAD + 1), "too large", at);
        assert_eq!(
            (large.payload.as_ref(), large.size),
            (None, MAX_KEPT_PAYLOAD + 1)
        );
        assert!(large.delivery().is_none());
    }
}
