//! Lambda entry point: wiring only. The engine is `dpl::streams`; see
//! `docs/streams.md`.
//!
//! Invoked with a DPL stream batch (event source mapping), catch-up
//! requests from its queue (event source mapping), the sweep's
//! `{"catch_up": "*"}` (schedule), or `{"redrive": "sub-..."}` by hand.

#![recursion_limit = "256"]

use std::time::Duration;

use dpl::streams::build::{engine, DestinationSettings};
use dpl::streams::function::{StreamConfig, StreamRequest};
use dpl::streams::Transport;
use lambda_runtime::{service_fn, Error, LambdaEvent};

/// Per-attempt limit of one AWS call: a hung endpoint must not eat its
/// subscription's budget in one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = StreamConfig::from_env(Transport::EventHubs)?;
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
    let engine = engine(
        &config,
        &aws,
        &DestinationSettings::from_env(config.concurrency),
    );
    let (engine, margin) = (&engine, config.deadline_margin);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<StreamRequest>| async move {
            let deadline = dpl::deadline::invocation_deadline(event.context.deadline, margin);
            engine
                .handle(&event.payload, deadline)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
