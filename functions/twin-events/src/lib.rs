//! `twin-events`: DynamoDB Streams batches of the twins table -> device
//! events -> the internal DPL Kinesis stream. See `docs/twin-events.md`.
//!
//! - [`config`]: typed configuration from the environment;
//! - [`batch`]: the pure part: records -> entries to publish, rejected
//!   records, and where the batch must be retried from;
//! - [`dead_letter`]: the dead-letter queue for malformed records;
//! - [`handler`]: one invocation: derive, publish, dead-letter, report.

pub mod batch;
pub mod config;
pub mod dead_letter;
pub mod handler;

pub use config::Config;
pub use handler::Handler;
