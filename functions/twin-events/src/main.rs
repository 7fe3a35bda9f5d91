//! Lambda entry point: wiring only. See `docs/twin-events.md`.

// The SDK and runtime futures nest deeply; the default limit (128) is
// exceeded computing the layout of `main`.
#![recursion_limit = "256"]

use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use twin_events::dead_letter::SqsDeadLetters;
use twin_events::{Config, Handler};

/// Per-attempt limit of one AWS call: a hung connection must not eat the
/// invocation; the publisher retries within the deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
    let handler = Handler::new(
        aws_sdk_kinesis::Client::new(&aws),
        SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(&aws),
            &config.dead_letter_queue_url,
        ),
        &config,
    );
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        handler.handle(event).await.map_err(Error::from)
    }))
    .await
}
