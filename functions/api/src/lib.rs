//! The HTTP API of OEM self-service (`docs/api.md`, `docs/openapi.yaml`):
//! streams, exports and status, every request scoped to the OEM of the
//! caller's token.
//!
//! - [`auth`]: the caller's OEM from the JWT claims or the IAM role (pure);
//! - [`routes`]: method and path to a [`routes::Route`] (pure);
//! - [`handler`]: scoping and rendering (pure), and [`handler::Api`];
//! - [`services`]: the routes' work on AWS, through `dpl`;
//! - [`config`]: the environment, read once;
//! - [`console`]: the web console's static pages, served by the same function.

pub mod auth;
pub mod config;
pub mod console;
pub mod error;
pub mod handler;
pub mod routes;
pub mod services;

pub use config::Config;
pub use handler::Api;

/// Per-attempt limit of one AWS call: the whole request has 30 seconds
/// (API Gateway HTTP API integration timeout).
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The function: configuration from the environment, clients built once,
/// then the Lambda runtime loop. `main` calls it, and `make demo` runs it
/// for its local console (`tools/demo`).
pub async fn run() -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
    use lambda_runtime::{service_fn, Error, LambdaEvent};

    let config = Config::from_env()?;
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
    let api = Api {
        auth: config.auth.clone(),
        services: services::Services::new(&aws, &config),
    };
    let api = &api;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(api.handle(event.payload).await)
        },
    ))
    .await
}
