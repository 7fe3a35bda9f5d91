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
}
