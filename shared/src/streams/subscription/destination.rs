//! Where a subscription delivers ([`Destination`]).

use serde::{Deserialize, Serialize};

use super::arn::KinesisStreamArn;
use super::error::SubscriptionError;
use super::eventhubs_names::{validate_hub, validate_namespace};
use super::id::Transport;

/// Where a subscription delivers. The transport follows from the variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "lowercase")]
pub enum Destination {
    Kinesis {
        stream_arn: KinesisStreamArn,
    },
    /// `namespace` is the bare namespace name (`contoso-events`), not its
    /// host name (`contoso-events.servicebus.windows.net`).
    EventHubs {
        namespace: String,
        hub: String,
    },
}

impl Destination {
    pub fn transport(&self) -> Transport {
        match self {
            Destination::Kinesis { .. } => Transport::Kinesis,
            Destination::EventHubs { .. } => Transport::EventHubs,
        }
    }

    /// A human-readable target: the stream ARN, or `namespace/hub`.
    pub fn target(&self) -> String {
        match self {
            Destination::Kinesis { stream_arn } => stream_arn.to_string(),
            Destination::EventHubs { namespace, hub } => format!("{namespace}/{hub}"),
        }
    }

    pub fn validate(&self) -> Result<(), SubscriptionError> {
        match self {
            // Valid by construction.
            Destination::Kinesis { .. } => Ok(()),
            Destination::EventHubs { namespace, hub } => {
                validate_namespace(namespace)?;
                validate_hub(hub)
            }
        }
    }
}
