//! One record to put: a partition key and its data, checked against the
//! per-record limits once, when it is made, so that every request we build
//! is one the service can take.

use super::limits::{MAX_BYTES_PER_RECORD, MAX_PARTITION_KEY_CHARS};
use crate::DplRecord;

/// Why a record can never be put.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("the partition key is empty")]
    EmptyPartitionKey,
    #[error("the partition key has {chars} characters, more than the {MAX_PARTITION_KEY_CHARS} Kinesis allows")]
    PartitionKeyTooLong { chars: usize },
    #[error("the record has {bytes} bytes (data + partition key), more than the {MAX_BYTES_PER_RECORD} Kinesis allows")]
    TooLarge { bytes: usize },
}

/// A record to put, within the per-record limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    partition_key: String,
    data: Vec<u8>,
}

impl Entry {
    pub fn new(partition_key: impl Into<String>, data: Vec<u8>) -> Result<Self, EntryError> {
        let partition_key = partition_key.into();
        if partition_key.is_empty() {
            return Err(EntryError::EmptyPartitionKey);
        }
        let chars = partition_key.chars().count();
        if chars > MAX_PARTITION_KEY_CHARS {
            return Err(EntryError::PartitionKeyTooLong { chars });
        }
        let bytes = partition_key.len() + data.len();
        if bytes > MAX_BYTES_PER_RECORD {
            return Err(EntryError::TooLarge { bytes });
        }
        Ok(Self {
            partition_key,
            data,
        })
    }

    /// A DPL record as written to the DPL stream: partition key = DSN,
    /// data = the record's compact JSON.
    pub fn from_dpl_record(record: &DplRecord) -> Result<Self, EntryError> {
        Self::new(record.partition_key(), record.to_json())
    }

    pub fn partition_key(&self) -> &str {
        &self.partition_key
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Bytes this entry counts for in the request limits (data + key).
    pub fn size(&self) -> usize {
        self.partition_key.len() + self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_at_the_size_limit_is_accepted_one_byte_more_is_rejected() {
        let key = "AC000W000000001";
        let fits = vec![b'x'; MAX_BYTES_PER_RECORD - key.len()];
        assert_eq!(
            Entry::new(key, fits.clone()).unwrap().size(),
            MAX_BYTES_PER_RECORD
        );
        let mut too_big = fits;
        too_big.push(b'x');
        assert_eq!(
            Entry::new(key, too_big),
            Err(EntryError::TooLarge {
                bytes: MAX_BYTES_PER_RECORD + 1
            })
        );
    }

    #[test]
    fn partition_key_is_counted_in_characters_not_bytes() {
        let key: String = "é".repeat(MAX_PARTITION_KEY_CHARS);
        assert!(Entry::new(key.clone(), vec![]).is_ok());
        assert_eq!(
            Entry::new(key + "é", vec![]),
            Err(EntryError::PartitionKeyTooLong {
                chars: MAX_PARTITION_KEY_CHARS + 1
            })
        );
        assert_eq!(Entry::new("", vec![1]), Err(EntryError::EmptyPartitionKey));
    }
}
