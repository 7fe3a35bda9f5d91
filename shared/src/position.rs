//! Where a record sits on a Kinesis shard: its shard id and sequence number,
//! read from what the Lambda event source delivers. This is the one place
//! that reads a Kinesis `eventID` (`shardId-000000000000:4959...`); the
//! stream functions, event-store and the catch-up reader all go through it.

use std::cmp::Ordering;
use std::fmt;

use aws_lambda_events::event::kinesis::KinesisEventRecord;

/// Kinesis sequence numbers are decimal strings of at most 129 digits.
///
/// Kinesis API Reference, `Record.SequenceNumber` (and `GetShardIterator`'s
/// `StartingSequenceNumber`): "Pattern: `0|([1-9]\d{0,128})`".
pub const MAX_SEQUENCE_DIGITS: usize = 129;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error("`{0}` is not a Kinesis sequence number (1 to 129 decimal digits)")]
    BadSequenceNumber(String),
    #[error("`{0}` is not a Kinesis event id (`shardId-...:sequence number`)")]
    BadEventId(String),
    #[error("the record has no eventID")]
    NoEventId,
    #[error("`{0}` is not a stored position (`shard#sequence`, 129 digits)")]
    BadKey(String),
}

/// A Kinesis sequence number, compared as the number it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SequenceNumber(String);

impl SequenceNumber {
    pub fn parse(text: &str) -> Result<Self, PositionError> {
        let digits = text.len();
        if digits == 0 || digits > MAX_SEQUENCE_DIGITS || !text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PositionError::BadSequenceNumber(text.to_owned()));
        }
        let canonical = text.trim_start_matches('0');
        Ok(Self(
            if canonical.is_empty() { "0" } else { canonical }.to_owned(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Zero-padded to [`MAX_SEQUENCE_DIGITS`]: sorts as the number does, for
    /// storage keys and conditions compared as strings.
    pub fn padded(&self) -> String {
        format!("{:0>width$}", self.0, width = MAX_SEQUENCE_DIGITS)
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.len(), &self.0).cmp(&(other.0.len(), &other.0))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A record's place on the DPL stream. Positions of one shard sort as the
/// shard orders its records; a DSN's records share a shard (the DSN is the
/// partition key), so sorting by position keeps each DSN's order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    shard: String,
    sequence: SequenceNumber,
}

impl Position {
    pub fn new(shard: &str, sequence: &str) -> Result<Self, PositionError> {
        Ok(Self {
            shard: shard.to_owned(),
            sequence: SequenceNumber::parse(sequence)?,
        })
    }

    /// From a Kinesis event source record's `eventID`
    /// (`shardId-000000000000:4958...`).
    pub fn from_event_id(event_id: &str) -> Result<Self, PositionError> {
        let (shard, sequence) = event_id
            .split_once(':')
            .filter(|(shard, _)| !shard.is_empty())
            .ok_or_else(|| PositionError::BadEventId(event_id.to_owned()))?;
        Self::new(shard, sequence).map_err(|_| PositionError::BadEventId(event_id.to_owned()))
    }

    /// The position of a record the Lambda event source delivered: the
    /// shard from its `eventID`, the sequence number from the record.
    pub fn of_record(record: &KinesisEventRecord) -> Result<Self, PositionError> {
        let event_id = record.event_id.as_deref().ok_or(PositionError::NoEventId)?;
        let from_id = Self::from_event_id(event_id)?;
        Ok(Self {
            sequence: SequenceNumber::parse(&record.kinesis.sequence_number)?,
            ..from_id
        })
    }

    pub fn shard(&self) -> &str {
        &self.shard
    }

    pub fn sequence(&self) -> &SequenceNumber {
        &self.sequence
    }

    /// `{shard}#{sequence, zero-padded}`: a storage key that sorts as
    /// positions do.
    pub fn key(&self) -> String {
        format!("{}#{}", self.shard, self.sequence.padded())
    }

    /// A key written by [`Self::key`].
    pub fn from_key(key: &str) -> Result<Self, PositionError> {
        let bad = || PositionError::BadKey(key.to_owned());
        let (shard, padded) = key.rsplit_once('#').ok_or_else(bad)?;
        if padded.len() != MAX_SEQUENCE_DIGITS || shard.is_empty() {
            return Err(bad());
        }
        Self::new(shard, padded).map_err(|_| bad())
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.shard, self.sequence)
    }
}

/// The 128-bit hash key Kinesis gives a partition key: "Kinesis Data
/// Streams uses MD5 to map partition keys to 128-bit integer values and to
/// map associated data records to shards" (Kinesis developer guide,
/// "Terminology and concepts", Partition key). A shard holds the keys of
/// its `HashKeyRange`.
pub fn hash_key(partition_key: &str) -> u128 {
    use md5::{Digest, Md5};
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// A shard's `HashKeyRange`: the hash keys it holds, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashRange {
    pub start: u128,
    pub end: u128,
}

impl HashRange {
    /// Every key (a stream of one shard).
    pub const ALL: HashRange = HashRange {
        start: 0,
        end: u128::MAX,
    };

    /// From `ListShards`' decimal `StartingHashKey` and `EndingHashKey`.
    pub fn parse(start: &str, end: &str) -> Option<Self> {
        Some(Self {
            start: start.parse().ok()?,
            end: end.parse().ok()?,
        })
    }

    /// Whether records of `partition_key` go to this shard.
    pub fn holds(&self, partition_key: &str) -> bool {
        (self.start..=self.end).contains(&hash_key(partition_key))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SEQUENCE: &str = "49590338271490256608559692538361571095921575989136588898";
    const HASH_OF_DSN_1: &str = "668d0367eb5842d2ab7fa57b75a75bc4";

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        let nine = SequenceNumber::parse("9").unwrap();
        let ten = SequenceNumber::parse("10").unwrap();
        assert!(nine < ten);
        assert_eq!(SequenceNumber::parse("007").unwrap().as_str(), "7");
        assert_eq!(SequenceNumber::parse("000").unwrap().as_str(), "0");
        assert_eq!(nine.padded(), format!("{}9", "0".repeat(128)));
        for bad in ["", "12a", "-1", " 1", &"1".repeat(130)] {
            assert_eq!(
                SequenceNumber::parse(bad),
                Err(PositionError::BadSequenceNumber(bad.to_owned()))
            );
        }
    }

    #[test]
    fn a_position_comes_from_the_event_id_and_the_record() {
        let position =
            Position::from_event_id(&format!("shardId-000000000001:{SEQUENCE}")).unwrap();
        assert_eq!(
            (position.shard(), position.sequence().as_str()),
            ("shardId-000000000001", SEQUENCE)
        );
        for bad in ["no-colon", ":123", "shardId-1:", "shardId-1:12a"] {
            assert_eq!(
                Position::from_event_id(bad),
                Err(PositionError::BadEventId(bad.into()))
            );
        }
        let mut record = KinesisEventRecord::default();
        assert_eq!(Position::of_record(&record), Err(PositionError::NoEventId));
        record.event_id = Some(format!("shardId-000000000002:{SEQUENCE}"));
        record.kinesis.sequence_number = SEQUENCE.to_owned();
        assert_eq!(
            Position::of_record(&record).unwrap().shard(),
            "shardId-000000000002"
        );
        record.kinesis.sequence_number = "x".into();
        assert!(Position::of_record(&record).is_err());
    }

    #[test]
    fn a_stored_key_must_be_one_we_wrote() {
        let position = Position::new("shardId-000000000000", "0").unwrap();
        assert_eq!(Position::from_key(&position.key()), Ok(position));
        for bad in [
            "shardId-000000000000#12",
            "shardId-000000000000",
            &format!("#{}", "0".repeat(129)),
        ] {
            assert!(Position::from_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hash_keys_are_the_md5_of_the_partition_key() {
        // Python: hashlib.md5(b"AC000W000000001").hexdigest()
        assert_eq!(
            format!("{:032x}", hash_key("AC000W000000001")),
            HASH_OF_DSN_1
        );
        let halves = [
            HashRange {
                start: 0,
                end: u128::MAX / 2,
            },
            HashRange {
                start: u128::MAX / 2 + 1,
                end: u128::MAX,
            },
        ];
        for dsn in ["AC000W000000001", "AC000W000000002", "x"] {
            assert_eq!(halves.iter().filter(|h| h.holds(dsn)).count(), 1, "{dsn}");
            assert!(HashRange::ALL.holds(dsn));
        }
        assert_eq!(
            HashRange::parse("0", "340282366920938463463374607431768211455"),
            Some(HashRange::ALL)
        );
        assert_eq!(HashRange::parse("0", "-1"), None);
    }

    proptest! {
        #[test]
        fn position_order_is_sequence_order(a in 0u128.., b in 0u128..) {
            let pa = Position::new("shardId-000000000003", &a.to_string()).unwrap();
            let pb = Position::new("shardId-000000000003", &b.to_string()).unwrap();
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            prop_assert_eq!(pa.key().cmp(&pb.key()), a.cmp(&b));
            prop_assert_eq!(Position::from_key(&pa.key()).unwrap(), pa);
        }

        #[test]
        fn any_event_id_text_parses_or_is_named(text in "\\PC{0,80}") {
            match Position::from_event_id(&text) {
                Ok(position) => prop_assert!(text.starts_with(position.shard())),
                Err(error) => prop_assert_eq!(error, PositionError::BadEventId(text.clone())),
            }
        }
    }
}
