//! The HTTP API of OEM self-service (`docs/api.md`, `docs/openapi.yaml`):
//! streams, exports and status, every request scoped to the OEM of the
//! caller's token.
//!
//! - [`auth`]: the caller's OEM from the JWT claims or the IAM role (pure);
//! - [`routes`]: method and path to a [`routes::Route`] (pure);
//! - [`handler`]: scoping and rendering (pure), and [`handler::Api`];
//! - [`services`]: the routes' work on AWS, through `dpl`;
//! - [`config`]: the environment, read once;
//! - [`console`]: the web console's static pages, served by the same function.

pub mod auth;
pub mod config;
pub mod console;
pub mod error;
pub mod handler;
pub mod routes;
pub mod services;

pub use config::Config;
pub use handler::Api;
