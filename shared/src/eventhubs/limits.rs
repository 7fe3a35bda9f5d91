//! Limits and protocol constants of the Event Hubs REST "Send batch events"
//! API.
//!
//! Sources: "Send batch events" (Event Hubs REST reference,
//! <https://learn.microsoft.com/rest/api/eventhub/send-batch-events>),
//! "Event Hubs quotas and limits"
//! (<https://learn.microsoft.com/azure/event-hubs/event-hubs-quotas>), and
//! `shared/reference/limits.md`, section "Azure Event Hubs (REST)".

/// The REST API version of the send endpoints ("Common parameters and
/// headers": "Replace {api-version} with 2014-01").
pub const API_VERSION: &str = "2014-01";

/// The content type of a batch ("Send batch events": "Set the Content-Type
/// header to application/vnd.microsoft.servicebus.json").
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";

/// At most this many bytes per request body, envelope included.
///
/// Quotas: Standard tier, "Maximum size of Event Hubs event/batch: 1 MB".
/// We read "1 MB" as the smaller 1,000,000 bytes (not 1,048,576), and count
/// the whole JSON body we send: brackets, commas, `Body` as an escaped
/// string, broker and user properties.
pub const MAX_BATCH_BYTES: usize = 1_000_000;

/// Bytes we set aside per message on top of its JSON, for what the service
/// adds when it stores the message (enqueued time, sequence number, offset,
/// the partition key as an AMQP annotation). Not a documented number: our
/// own margin, so that a batch that fits our count also fits the service's.
pub const RESERVED_BYTES_PER_MESSAGE: usize = 128;
