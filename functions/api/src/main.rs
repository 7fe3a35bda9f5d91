//! Lambda entry point: wiring only ([`api::run`]). See `docs/api.md`.

#![recursion_limit = "256"]

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    api::run().await
}
