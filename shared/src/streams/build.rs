//! Building what the stream functions and `dplctl` deliver with, in one
//! place: the destinations of a transport ([`destinations`]) and the whole
//! engine of a Lambda function ([`engine`]).

use std::sync::Arc;

use aws_config::SdkConfig;
use tokio::time::Instant;

use super::archive::StagingArchive;
use super::delivery::Delivery;
use super::destination::{Destination, Destinations, SendReport};
use super::engine::{Engine, Ports};
use super::eventhubs::{
    EventHubDestination, EventHubDestinations, EventHubSending, ENDPOINT_URL_VAR,
};
use super::function::StreamConfig;
use super::kinesis::{KinesisDestination, KinesisDestinations, KinesisSending};
use super::queue::SqsQueue;
use super::reader::KinesisReader;
use super::secrets::SecretsManager;
use super::state::DynamoState;
use super::store::DynamoSubscriptions;
use super::subscription::{Subscription, Transport};
use crate::eventhubs::http::HttpSender;
use crate::export::s3::S3Store;

/// What destinations are built with, besides the SDK configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationSettings {
    /// [`ENDPOINT_URL_VAR`]: a local Event Hubs endpoint instead of Azure.
    pub eventhubs_endpoint_url: Option<String>,
    /// `DESTINATION_CONCURRENCY`: requests in flight per destination; `None`
    /// keeps the transport's default.
    pub concurrency: Option<usize>,
}

impl DestinationSettings {
    /// From the environment: [`ENDPOINT_URL_VAR`]; the concurrency comes
    /// with the function's configuration ([`StreamConfig`]).
    pub fn from_env(concurrency: Option<usize>) -> Self {
        Self {
            eventhubs_endpoint_url: std::env::var(ENDPOINT_URL_VAR)
                .ok()
                .filter(|v| !v.is_empty()),
            concurrency,
        }
    }
}

/// The destinations of either transport (one per function: the size
/// difference of the variants does not matter).
#[allow(clippy::large_enum_variant)]
pub enum AnyDestinations {
    Kinesis(KinesisDestinations<SecretsManager>),
    EventHubs(EventHubDestinations<SecretsManager>),
}

/// The destination of either transport.
pub enum AnyDestination {
    Kinesis(Arc<KinesisDestination>),
    EventHubs(Arc<EventHubDestination<HttpSender>>),
}

/// The destinations of `transport`, credentials from Secrets Manager and
/// STS through `aws`.
pub fn destinations(
    transport: Transport,
    aws: &SdkConfig,
    settings: &DestinationSettings,
) -> AnyDestinations {
    let secrets = SecretsManager::from_sdk_config(aws);
    match transport {
        Transport::Kinesis => {
            let mut sending = KinesisSending::default();
            if let Some(n) = settings.concurrency {
                sending.in_flight = n;
            }
            AnyDestinations::Kinesis(KinesisDestinations::new(aws.clone(), secrets, sending))
        }
        Transport::EventHubs => {
            let mut sending = EventHubSending::default();
            if let Some(n) = settings.concurrency {
                sending.concurrency = n;
            }
            let endpoint = settings.eventhubs_endpoint_url.clone();
            AnyDestinations::EventHubs(EventHubDestinations::new(secrets, endpoint, sending))
        }
    }
}

impl Destination for AnyDestination {
    async fn send(&self, events: &[&Delivery], deadline: Instant) -> SendReport {
        match self {
            AnyDestination::Kinesis(d) => d.send(events, deadline).await,
            AnyDestination::EventHubs(d) => d.send(events, deadline).await,
        }
    }

    fn credentials_refused(&self) -> bool {
        match self {
            AnyDestination::Kinesis(d) => d.credentials_refused(),
            AnyDestination::EventHubs(d) => d.credentials_refused(),
        }
    }
}

impl Destinations for AnyDestinations {
    type Destination = AnyDestination;

    async fn destination(
        &self,
        subscription: &Subscription,
    ) -> Result<Arc<AnyDestination>, String> {
        Ok(Arc::new(match self {
            AnyDestinations::Kinesis(d) => {
                AnyDestination::Kinesis(d.destination(subscription).await?)
            }
            AnyDestinations::EventHubs(d) => {
                AnyDestination::EventHubs(d.destination(subscription).await?)
            }
        }))
    }
}

/// The engine a stream function runs: subscriptions and delivery state in
/// DynamoDB, the DPL stream read through Kinesis, catch-up requests on SQS.
pub type LambdaEngine = Engine<
    DynamoSubscriptions,
    DynamoState,
    AnyDestinations,
    KinesisReader,
    SqsQueue,
    StagingArchive<S3Store>,
>;

/// The engine of `config`'s transport, with clients from `aws`.
pub fn engine(
    config: &StreamConfig,
    aws: &SdkConfig,
    settings: &DestinationSettings,
) -> LambdaEngine {
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    Engine::new(
        Ports {
            subscriptions: DynamoSubscriptions::new(dynamodb.clone(), &config.subscriptions_table),
            state: DynamoState::new(dynamodb, &config.delivery_state_table),
            destinations: destinations(config.engine.transport, aws, settings),
            reader: KinesisReader::new(aws_sdk_kinesis::Client::new(aws), &config.dpl_stream),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(aws), &config.catch_up_queue_url),
            archive: StagingArchive::new(
                S3Store::from_sdk_config(aws, &config.storage.bucket),
                config.storage.layout.clone(),
                std::env::temp_dir(),
            ),
        },
        config.engine,
    )
}
