//! Limits of the Kinesis Data Streams `PutRecords` API.
//!
//! Source: Amazon Kinesis Data Streams API Reference, `PutRecords`
//! (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html>)
//! and the developer guide's "Quotas and limits"
//! (<https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).

/// At most 500 records per `PutRecords` request.
///
/// API Reference, `PutRecords`: "Each PutRecords request can support up to
/// 500 records."
pub const MAX_RECORDS_PER_REQUEST: usize = 500;

/// At most 5 MiB per `PutRecords` request, partition keys included.
///
/// API Reference, `PutRecords`: "... up to a limit of 5 MiB for the entire
/// request, including partition keys."
pub const MAX_BYTES_PER_REQUEST: usize = 5 * 1024 * 1024;

/// At most 1 MiB per record, data blob and partition key together.
///
/// API Reference, `PutRecords`: "Each record in the request can be as large
/// as 1 MiB"; `PutRecordsRequestEntry`: "the total size of the data blob and
/// the partition key ... must not exceed the maximum record size (1 MiB)".
pub const MAX_BYTES_PER_RECORD: usize = 1024 * 1024;

/// A partition key has 1 to 256 Unicode characters.
///
/// API Reference, `PutRecordsRequestEntry.PartitionKey`: "Length
/// Constraints: Minimum length of 1. Maximum length of 256."; "Partition keys
/// are Unicode strings with a maximum length limit of 256 characters".
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
