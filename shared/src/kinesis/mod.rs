//! Publishing records to Amazon Kinesis Data Streams with `PutRecords`,
//! without losing, duplicating or reordering them (per partition key).
//!
//! One concern per file, after vector's `sinks/aws_kinesis`:
//!
//! - [`limits`]: the service limits, with their sources;
//! - [`entry`]: one record to put (partition key + data), checked against
//!   the per-record limits;
//! - [`batch`]: packing entries into requests within the per-request limits;
//! - [`retry`]: reading a `PutRecords` answer, classifying failures as
//!   retryable or not, exponential backoff with full jitter;
//! - [`order`]: the rule that keeps per-key order across retries;
//! - [`publisher`]: the [`PutRecordsApi`] port and [`publish`], which drives
//!   rounds of requests until every entry is accepted or time runs out;
//! - [`sdk`]: the adapter for `aws_sdk_kinesis::Client`;
//! - [`memory`]: an in-memory stream for tests and benchmarks.
//!
//! The guarantees, and their one limit, are spelled out on [`publish`].

pub mod batch;
pub mod entry;
pub mod limits;
pub mod memory;
pub mod order;
pub mod publisher;
pub mod retry;
pub mod sdk;

pub use entry::{Entry, EntryError};
pub use memory::InMemoryKinesis;
pub use publisher::{publish, PublishOutcome, PublishStats, PutRecordsApi, Stopped};
pub use retry::{Backoff, EntryResult, PutError};
