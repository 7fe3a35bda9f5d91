//! `hourly-export`: on the hourly schedule, export every partition (OEM,
//! event type, hour) whose staging changed since its last export, as a
//! headerless CSV file, here or through a queue of per-partition export
//! tasks. See `docs/export.md`.
//!
//! - [`config`]: typed configuration from the environment;
//! - [`request`]: what the function is invoked with (the schedule's event,
//!   one hour, or an SQS event of export tasks);
//! - [`handler`]: one invocation, through [`dpl::export::Exporter`];
//! - [`queue`]: the task-queue port and its in-memory adapter;
//! - [`fan_out`]: sending tasks in batches, resending failed entries;
//! - [`sqs`]: the task-queue adapter for Amazon SQS.

pub mod config;
pub mod fan_out;
pub mod handler;
pub mod queue;
pub mod request;
pub mod sqs;

pub use config::Config;
pub use handler::Handler;
