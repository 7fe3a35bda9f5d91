//! Customer stream subscriptions: which events go to which Kinesis stream or
//! event hub, with which credentials. See `docs/streams.md`.
//!
//! - [`subscription`]: the model and its validation (pure);
//! - `dynamo` (feature `streams`): the `SubscriptionStore` port, its
//!   DynamoDB adapter and an in-memory adapter;
//! - `secrets` (feature `streams`): the `SecretStore` port for customer
//!   credentials, its Secrets Manager adapter, and the secret formats.
//!
//! Delivery (feature `streams`), the engine of the stream functions:
//!
//! - [`delivery`]: an event ready for any transport, and its stream position;
//! - `destination`: the port to customer endpoints;
//! - `parking`: the port to parked events, and an in-memory adapter;
//!   `parking_dynamo`: its DynamoDB adapter;
//! - `dispatch`: one DPL batch to every matching subscription, concurrently,
//!   each within its budget, parking what could not be delivered;
//! - `redrive`: delivering parked events once the destination accepts again;
//! - `function`: configuration, requests and answers of the stream functions;
//! - `kinesis` (features `streams` + `aws`): customer Kinesis streams as
//!   destinations, with assumed-role or stored-key credentials;
//! - `eventhubs` (features `streams` + `eventhubs`): customer event hubs as
//!   destinations, with a stored connection string.

pub mod delivery;
pub mod subscription;

#[cfg(feature = "streams")]
pub mod destination;
#[cfg(feature = "streams")]
pub mod dispatch;
#[cfg(feature = "streams")]
pub mod dynamo;
#[cfg(all(feature = "streams", feature = "eventhubs"))]
pub mod eventhubs;
#[cfg(feature = "streams")]
pub mod function;
#[cfg(all(feature = "streams", feature = "aws"))]
pub mod kinesis;
#[cfg(feature = "streams")]
pub mod parking;
#[cfg(feature = "streams")]
pub mod parking_dynamo;
#[cfg(feature = "streams")]
pub mod redrive;
#[cfg(feature = "streams")]
pub mod secrets;

pub use subscription::{
    Credentials, Destination, Filters, Health, KinesisStreamArn, LastError, Selection, Status,
    Subscription, SubscriptionError, SubscriptionId, SubscriptionSpec, Transport,
};
