//! Customer stream subscriptions: which events go to which Kinesis stream or
//! event hub, with which credentials, and how they get there. See
//! `docs/streams.md`.
//!
//! The model (pure): [`subscription`] (one concern per file), and for
//! delivery [`delivery`] (an event ready for any transport), [`cursor`]
//! (where a subscription that fell behind stands on a shard) and
//! [`dead_letter`] (an event refused for good).
//!
//! Ports and adapters (feature `streams`):
//!
//! - `store`: stored subscriptions (DynamoDB, in memory);
//! - `state`: cursors, dead letters and worker leases (DynamoDB, in memory);
//! - `reader`: the DPL stream read from a position (Kinesis, in memory);
//! - `queue`: catch-up requests (SQS, in memory);
//! - `archive`: the DPL history beyond the stream's retention (staging);
//! - `destination`: customer endpoints, `kinesis` (with feature `aws`) and
//!   `eventhubs` (with feature `eventhubs`); `secrets`: their credentials.
//!
//! The engine (feature `streams`): `engine` (ports, configuration,
//! subscription list, health), `live` (each DPL batch), `catchup` (the
//! worker that delivers what a subscription missed, and the sweep),
//! `redrive` (dead letters again), `function` (the stream functions'
//! configuration and requests), `build` (what the functions and `dplctl`
//! build it with).

pub mod check;
pub mod cursor;
pub mod dead_letter;
pub mod delivery;
pub mod subscription;
pub mod summary;

#[cfg(feature = "streams")]
pub mod archive;
#[cfg(all(
    feature = "streams",
    feature = "aws",
    feature = "eventhubs",
    feature = "s3"
))]
pub mod build;
#[cfg(feature = "streams")]
pub mod catchup;
#[cfg(feature = "streams")]
pub mod destination;
#[cfg(feature = "streams")]
pub mod engine;
#[cfg(all(feature = "streams", feature = "eventhubs"))]
pub mod eventhubs;
#[cfg(feature = "streams")]
pub mod function;
#[cfg(all(feature = "streams", feature = "aws"))]
pub mod kinesis;
#[cfg(feature = "streams")]
pub mod live;
#[cfg(feature = "streams")]
pub mod local;
#[cfg(feature = "streams")]
pub mod manage;
#[cfg(all(
    feature = "streams",
    feature = "aws",
    feature = "eventhubs",
    feature = "s3"
))]
pub mod operate;
#[cfg(feature = "streams")]
pub mod queue;
#[cfg(feature = "streams")]
pub mod reader;
#[cfg(feature = "streams")]
pub mod redrive;
#[cfg(feature = "streams")]
pub mod request;
#[cfg(feature = "streams")]
pub mod secrets;
#[cfg(feature = "streams")]
pub mod state;
#[cfg(feature = "streams")]
pub mod store;

pub use subscription::{
    Credentials, Destination, Filters, Health, KinesisStreamArn, LastError, Selection, Status,
    Subscription, SubscriptionError, SubscriptionId, SubscriptionSpec, Transport,
};

#[cfg(all(test, feature = "streams"))]
pub(crate) mod testing;
