//! Lambda entry point: wiring only. See `docs/export.md`.

#![recursion_limit = "256"]

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use dpl::export::s3::S3Store;
use event_store::{Config, Handler};
use lambda_runtime::{service_fn, Error, LambdaEvent};

/// Per-attempt limit of one S3 call; the SDK retries within its policy and
/// the batch is retried by Lambda after that.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build();
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    let store = S3Store::new(aws_sdk_s3::Client::new(&aws), &config.storage.bucket);
    let handler = Handler::new(store, &config);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        handler.handle(event).await.map_err(Error::from)
    }))
    .await
}
