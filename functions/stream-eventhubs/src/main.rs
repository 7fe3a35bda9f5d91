//! Lambda entry point: wiring only. The engine is `dpl::streams`; see
//! `docs/streams.md`.
//!
//! Invoked with a DPL stream batch (event source mapping), the redrive
//! schedule's event, or `{"redrive": "sub-..."}` / `{"redrive": "*"}`.

#![recursion_limit = "256"]

use std::time::Duration;

use dpl::eventhubs::retry::Backoff;
use dpl::streams::dispatch::Dispatcher;
use dpl::streams::dynamo::DynamoSubscriptions;
use dpl::streams::eventhubs::{EventHubDestinations, ENDPOINT_URL_VAR};
use dpl::streams::function::{StreamConfig, StreamRequest};
use dpl::streams::parking_dynamo::DynamoParking;
use dpl::streams::secrets::SecretsManager;
use dpl::streams::Transport;
use lambda_runtime::{service_fn, Error, LambdaEvent};

/// Per-attempt limit of one AWS call (subscriptions, parking, secrets).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = StreamConfig::from_env(Transport::EventHubs)?;
    let endpoint_url = std::env::var(ENDPOINT_URL_VAR)
        .ok()
        .filter(|v| !v.is_empty());
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let dispatcher = Dispatcher::new(
        DynamoSubscriptions::new(dynamodb.clone(), &config.subscriptions_table),
        DynamoParking::new(dynamodb, &config.parked_events_table),
        EventHubDestinations::new(
            SecretsManager::from_sdk_config(&aws),
            endpoint_url,
            Backoff::default(),
        ),
        config.dispatch,
    );
    let (dispatcher, margin) = (&dispatcher, config.deadline_margin);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<StreamRequest>| async move {
            let deadline = dpl::deadline::invocation_deadline(event.context.deadline, margin);
            dispatcher
                .handle(&event.payload, deadline)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
