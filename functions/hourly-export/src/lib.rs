//! `hourly-export`: on the hourly schedule, export every partition (OEM,
//! event type, hour) whose staging changed since its last export, as a
//! headerless CSV file. See `docs/export.md`.
//!
//! - [`config`]: typed configuration from the environment;
//! - [`request`]: what the function is invoked with (the schedule's event,
//!   or one hour);
//! - [`handler`]: one invocation, through [`dpl::export::Exporter`].

pub mod config;
pub mod handler;
pub mod request;

pub use config::Config;
pub use handler::Handler;
