//! Lambda entry point: wiring only. See `docs/export.md`.

#![recursion_limit = "256"]

use std::time::Duration;

use dpl::export::s3::S3Store;
use hourly_export::sqs::SqsTaskQueue;
use hourly_export::{Config, Handler};
use lambda_runtime::{service_fn, Error, LambdaEvent};

/// Per-attempt limit of one S3 call (a 16 MiB part included).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    dpl::export::alloc::map_parts_separately();
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
    let store = S3Store::from_sdk_config(&aws, &config.storage.bucket);
    let queue = config
        .task_queue_url
        .as_deref()
        .map(|url| SqsTaskQueue::new(aws_sdk_sqs::Client::new(&aws), url));
    let handler = Handler::with_queue(store, queue, &config)?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        handler.handle(event).await.map_err(Error::from)
    }))
    .await
}
