//! `dpl`: the domain of the data pipeline.
//!
//! - [`event`]: the six device event types, shaped as the vendor documents them;
//! - [`record`]: their two JSON renderings (internal DPL record, customer payload);
//! - [`time`]: instants and the vendor's three ways of printing them;
//! - [`twin`]: the twin table's item schema and the derivation of events
//!   from one DynamoDB Streams record;
//! - [`csv`]: headerless CSV rows of the hourly export;
//! - [`examples`]: events holding the values of the vendor's examples;
//! - [`export`]: staging, merge, manifests and driver of the hourly export;
//! - `kinesis` (feature `aws`): packing, retrying and ordering PutRecords.
//! - `deadline` (features `aws`, `streams`): the invocation deadline on the
//!   tokio clock;
//! - [`eventhubs`]: Azure Event Hubs delivery over REST: connection string,
//!   SAS tokens, batch bodies (pure); the HTTP sender behind feature `eventhubs`.
//! - [`measure`]: heap and resident-memory figures for the benchmarks;
//! - [`position`]: a record's shard and sequence number, read from the
//!   Lambda event source in one place;
//! - [`backoff`]: exponential backoff with full jitter, for every retry loop;
//! - [`streams`]: customer stream subscriptions: model and validation
//!   (pure); DynamoDB store and Secrets Manager adapters behind feature `streams`.
//!
//! The domain modules (`event`, `record`, `time`, `csv`, the export's keys,
//! merge and manifests) are pure. AWS adapters sit behind small traits and
//! cargo features (`aws` for Kinesis, `s3` for the export's object store),
//! so the pure crate builds without the SDK. `twin` reads the
//! `aws_lambda_events` record types, the shape Lambda delivers, and nothing
//! else of AWS.

pub mod backoff;
pub mod csv;
#[cfg(any(feature = "aws", feature = "streams"))]
pub mod deadline;
pub mod event;
pub mod eventhubs;
pub mod examples;
pub mod export;
#[cfg(feature = "aws")]
pub mod kinesis;
pub mod measure;
pub mod position;
pub mod record;
#[cfg(any(feature = "aws", feature = "s3", feature = "streams"))]
pub mod sdk;
pub mod status;
pub mod streams;
pub mod time;
pub mod twin;

pub use event::{BaseType, DeviceEvent, EventType};
pub use record::{CustomerPayload, DplRecord, EventId};
pub use time::Timestamp;
