//! [`SubscriptionError`]: why a subscription, or one of its parts, is refused.

use super::arn::ArnError;
use super::id::Transport;
use crate::event::UnknownEventType;

/// Why a subscription, or one of its parts, is refused. Messages name the
/// field and quote the value; no variant ever carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("subscription id `{0}` is not `sub-` followed by 16 lowercase hex digits")]
    InvalidId(String),
    #[error("transport `{0}` is not kinesis or eventhubs")]
    UnknownTransport(String),
    #[error("status `{0}` is not enabled or disabled")]
    UnknownStatus(String),
    #[error("stream_arn: {0}")]
    StreamArn(ArnError),
    #[error("role_arn `{value}`: {reason}")]
    RoleArn { value: String, reason: &'static str },
    #[error("external_id `{value}`: {reason}")]
    ExternalId { value: String, reason: &'static str },
    #[error("namespace `{value}`: {reason}")]
    Namespace { value: String, reason: &'static str },
    #[error("hub `{value}`: {reason}")]
    Hub { value: String, reason: &'static str },
    #[error("credentials `{credentials}` do not fit transport `{transport}`: {expected}")]
    CredentialsMismatch {
        transport: Transport,
        credentials: &'static str,
        expected: &'static str,
    },
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is required: {reason}")]
    Required {
        field: &'static str,
        reason: &'static str,
    },
    #[error("{field} is {len} characters long: at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} `{value}`: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{field} is an empty list: give `*` for all, or at least one value")]
    EmptySelection { field: &'static str },
    #[error("{field} item `{item}`: {reason}")]
    SelectionItem {
        field: &'static str,
        item: String,
        reason: &'static str,
    },
    #[error("event_types: {0}")]
    UnknownEventType(UnknownEventType),
    #[error("{field} can never match: {reason}")]
    NeverMatches { field: &'static str, reason: String },
}

// The causes are part of the message (not `#[source]`), so that a report
// printing the chain does not say the same thing twice.
impl From<ArnError> for SubscriptionError {
    fn from(error: ArnError) -> Self {
        SubscriptionError::StreamArn(error)
    }
}

impl From<UnknownEventType> for SubscriptionError {
    fn from(error: UnknownEventType) -> Self {
        SubscriptionError::UnknownEventType(error)
    }
}
