//! One event on its way to customer streams: the customer payload, with
//! what the transports put beside it (partition key, event id and type),
//! and where it sits on the DPL stream (its position and arrival time),
//! which cursors and dead letters refer to.

use crate::position::Position;
use crate::{CustomerPayload, DplRecord, EventId, EventType, Timestamp};

/// An event ready for any transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub position: Position,
    /// When the DPL stream took the record (`ApproximateArrivalTimestamp`).
    pub arrival: Timestamp,
    pub event_id: EventId,
    pub event_type: EventType,
    /// The partition key on customer streams.
    pub dsn: String,
    /// The customer payload's compact JSON: Kinesis data, Event Hubs body.
    pub payload: Vec<u8>,
}

impl Delivery {
    pub fn new(position: Position, arrival: Timestamp, record: &DplRecord) -> Self {
        Self {
            position,
            arrival,
            event_id: record.event_id,
            event_type: record.dpl_event.event_type(),
            dsn: record.partition_key().to_owned(),
            payload: CustomerPayload(&record.dpl_event).to_json(),
        }
    }

    /// The payload with `"event_id":"<uuid>"` as its last field: what a
    /// Kinesis subscription that opted in
    /// (`Subscription::event_id_in_payload`) sends. Every other field keeps
    /// its bytes, so a consumer that ignores unknown fields reads the
    /// vendor's payload.
    pub fn payload_with_event_id(&self) -> Vec<u8> {
        let Some(body) = self.payload.strip_suffix(b"}") else {
            // Customer payloads are JSON objects; anything else is left as is.
            return self.payload.clone();
        };
        let id = self.event_id.to_string();
        let mut out = Vec::with_capacity(self.payload.len() + id.len() + 14);
        out.extend_from_slice(body);
        if body != b"{" {
            out.push(b',');
        }
        out.extend_from_slice(b"\"event_id\":\"");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\"}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_id_is_added_as_the_last_field_and_nothing_else_changes() {
        let record = crate::examples::seed_record(
            EventType::Location,
            "0dfc7900",
            "ledevb",
            "AC000W000000001",
            "p",
            3,
        );
        let delivery = Delivery::new(
            Position::new("shardId-000000000000", "1").unwrap(),
            Timestamp::from_millis(0).unwrap(),
            &record,
        );
        let with_id = delivery.payload_with_event_id();
        let id = format!(",\"event_id\":\"{}\"}}", record.event_id);
        assert_eq!(
            with_id,
            [
                &delivery.payload[..delivery.payload.len() - 1],
                id.as_bytes()
            ]
            .concat()
        );
        let value: serde_json::Value = serde_json::from_slice(&with_id).unwrap();
        assert_eq!(value["event_id"], record.event_id.to_string());
    }
}
