//! The AWS SDK configuration every function and tool builds once at start.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Connecting to an AWS endpoint takes milliseconds inside a region; a
/// connection not made in 2 s is retried rather than waited for.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The SDK's default configuration (region, credentials, and the standard
/// `AWS_ENDPOINT_URL` for local emulators) with bounded timeouts: a hung
/// call must not eat an invocation. `attempt_timeout` bounds one attempt of
/// one call; each function picks it for its largest request.
pub async fn load(attempt_timeout: Duration) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt_timeout)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}
