//! `dpl`: the domain of the data pipeline.
//!
//! - [`event`]: the six device event types, shaped as the vendor documents them;
//! - [`record`]: their two JSON renderings (internal DPL record, customer payload);
//! - [`time`]: instants and the vendor's three ways of printing them;
//! - [`twin`]: the twin table's item schema and the derivation of events
//!   from one DynamoDB Streams record;
//! - [`csv`]: headerless CSV rows of the hourly export.
//!
//! Nothing here talks to AWS: adapters live in the functions and tools.

pub mod csv;
pub mod event;
pub mod record;
pub mod time;
pub mod twin;

pub use event::{BaseType, DeviceEvent, EventType};
pub use record::{CustomerPayload, DplRecord, EventId};
pub use time::Timestamp;
