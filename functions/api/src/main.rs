//! Lambda entry point: wiring only. See `docs/api.md`.

#![recursion_limit = "256"]

use std::time::Duration;

use api::services::Services;
use api::{Api, Config};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};

/// Per-attempt limit of one AWS call: the whole request has 30 seconds
/// (API Gateway HTTP API integration timeout).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
    let api = Api {
        auth: config.auth.clone(),
        services: Services::new(&aws, &config),
    };
    let api = &api;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(api.handle(event.payload).await)
        },
    ))
    .await
}
