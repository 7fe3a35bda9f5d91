//! One event on its way to customer streams: the customer payload, with
//! what the transports put beside it (partition key, event id and type),
//! and its position on the DPL stream, the order parked events keep.

use std::fmt;

use crate::{CustomerPayload, DplRecord, EventId, EventType};

/// Kinesis sequence numbers are decimal strings of at most 129 digits.
///
/// Kinesis API Reference, `Record.SequenceNumber` (and `GetShardIterator`'s
/// `StartingSequenceNumber`): "Pattern: `0|([1-9]\d{0,128})`".
pub const MAX_SEQUENCE_DIGITS: usize = 129;

/// Where an event sits on the DPL stream: `{shard id}#{sequence number}`,
/// the sequence number zero-padded to [`MAX_SEQUENCE_DIGITS`], so that
/// positions sort as the stream orders records. A DSN's events share a
/// shard (the DSN is the partition key), so sorting by position keeps each
/// DSN's order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error("`{0}` is not a Kinesis sequence number (1 to 129 decimal digits)")]
    BadSequenceNumber(String),
    #[error("`{0}` is not a Kinesis event id (`shardId-...:sequence number`)")]
    BadEventId(String),
    #[error("`{0}` is not a stream position (`shard#sequence`)")]
    BadPosition(String),
}

impl Position {
    pub fn new(shard_id: &str, sequence_number: &str) -> Result<Self, PositionError> {
        let digits = sequence_number.len();
        if digits == 0
            || digits > MAX_SEQUENCE_DIGITS
            || !sequence_number.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PositionError::BadSequenceNumber(sequence_number.to_owned()));
        }
        Ok(Self(format!(
            "{shard_id}#{sequence_number:0>width$}",
            width = MAX_SEQUENCE_DIGITS
        )))
    }

    /// From a Kinesis event source record's `eventID`
    /// (`shardId-000000000000:4958...`).
    pub fn from_event_id(event_id: &str) -> Result<Self, PositionError> {
        let (shard, sequence) = event_id
            .split_once(':')
            .ok_or_else(|| PositionError::BadEventId(event_id.to_owned()))?;
        Self::new(shard, sequence)
    }

    /// A position read back from storage.
    pub fn parse(text: &str) -> Result<Self, PositionError> {
        let (shard, sequence) = text
            .split_once('#')
            .ok_or_else(|| PositionError::BadPosition(text.to_owned()))?;
        let position = Self::new(shard, sequence.trim_start_matches('0'))
            .or_else(|_| Self::new(shard, "0"))
            .map_err(|_| PositionError::BadPosition(text.to_owned()))?;
        if position.0 != text {
            return Err(PositionError::BadPosition(text.to_owned()));
        }
        Ok(position)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event ready for any transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub position: Position,
    pub event_id: EventId,
    pub event_type: EventType,
    /// The partition key on customer streams.
    pub dsn: String,
    /// The customer payload's compact JSON: Kinesis data, Event Hubs body.
    pub payload: Vec<u8>,
}

impl Delivery {
    pub fn new(position: Position, record: &DplRecord) -> Self {
        Self {
            position,
            event_id: record.event_id,
            event_type: record.dpl_event.event_type(),
            dsn: record.partition_key().to_owned(),
            payload: CustomerPayload(&record.dpl_event).to_json(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn positions_sort_as_sequence_numbers_do() {
        let a = Position::new("shardId-000000000000", "9").unwrap();
        let b = Position::new("shardId-000000000000", "10").unwrap();
        assert!(a < b);
        assert_eq!(
            a.as_str(),
            format!("shardId-000000000000#{}9", "0".repeat(128))
        );
    }

    #[test]
    fn a_position_comes_from_the_event_id() {
        let position = Position::from_event_id(
            "shardId-000000000001:49590338271490256608559692538361571095921575989136588898",
        )
        .unwrap();
        assert_eq!(
            position,
            Position::new(
                "shardId-000000000001",
                "49590338271490256608559692538361571095921575989136588898"
            )
            .unwrap()
        );
        assert_eq!(
            Position::from_event_id("no-colon"),
            Err(PositionError::BadEventId("no-colon".into()))
        );
        assert_eq!(
            Position::new("s", "12a"),
            Err(PositionError::BadSequenceNumber("12a".into()))
        );
        assert!(Position::new("s", &"1".repeat(130)).is_err());
    }

    #[test]
    fn a_stored_position_must_be_one_we_wrote() {
        let position = Position::new("shardId-000000000000", "0").unwrap();
        assert_eq!(Position::parse(position.as_str()), Ok(position));
        assert!(Position::parse("shardId-000000000000#12").is_err());
        assert!(Position::parse("shardId-000000000000").is_err());
    }

    proptest! {
        #[test]
        fn position_order_is_sequence_order(a in 0u128.., b in 0u128..) {
            let pa = Position::new("shardId-000000000003", &a.to_string()).unwrap();
            let pb = Position::new("shardId-000000000003", &b.to_string()).unwrap();
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            prop_assert_eq!(Position::parse(pa.as_str()).unwrap(), pa);
        }
    }
}
