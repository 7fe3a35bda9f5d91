//! `event-store`: batches of the DPL Kinesis stream -> staging objects on
//! S3, one per (OEM, event type, hour) of the batch, sorted and keyed by the
//! batch's sequence range. See `docs/export.md`.
//!
//! - [`config`]: typed configuration from the environment;
//! - [`batch`]: the pure part: records -> staging objects and quarantined
//!   records, each knowing the first record it covers;
//! - [`handler`]: one invocation: write, report batch item failures.

pub mod batch;
pub mod config;
pub mod handler;

pub use config::Config;
pub use handler::Handler;
