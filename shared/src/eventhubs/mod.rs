//! Delivering events to Azure Event Hubs over its REST API ("Send batch
//! events"), mirroring the layout of [`crate::kinesis`]: one concern per file.
//!
//! - [`connection`]: the connection string (namespace, key name, key, hub);
//!   the key is redacted from `Debug`;
//! - [`sas`]: Shared Access Signature tokens and a small token cache;
//! - [`limits`]: the service limits, with their sources;
//! - [`batch`]: the JSON body of a batch and packing events within 1 MB;
//! - [`retry`]: classifying responses as delivered, retryable or refused;
//!   full-jitter backoff; the ServerBusy floor;
//! - `client` (feature `eventhubs`): the `SendBatchApi` port and `send`,
//!   which delivers batches in order, deadline-bounded;
//! - `http` (feature `eventhubs`): the adapter on hyper 1 + rustls;
//! - `memory` (feature `eventhubs`): an in-memory event hub for tests.
//!
//! Format, auth, retry table and the local endpoint: `docs/eventhubs.md`.

pub mod batch;
#[cfg(feature = "eventhubs")]
pub mod client;
pub mod connection;
#[cfg(feature = "eventhubs")]
pub mod http;
pub mod limits;
#[cfg(feature = "eventhubs")]
pub mod memory;
pub mod retry;
pub mod sas;

pub use batch::{pack, Message, MessageTooLarge, Packing};
#[cfg(feature = "eventhubs")]
pub use client::{send, MessageOutcome, SendBatchApi, SendOutcome, SendStats, Stopped};
pub use connection::{ConnectionString, ConnectionStringError};
#[cfg(feature = "eventhubs")]
pub use http::HttpSender;
#[cfg(feature = "eventhubs")]
pub use memory::InMemoryEventHub;
pub use retry::{classify, Backoff, Disposition, Refused, SendError};
pub use sas::{SasToken, TokenCache};
