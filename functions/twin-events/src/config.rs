//! The function's configuration, read once at start from the environment.

use std::time::Duration;

use dpl::kinesis::retry::DEFAULT_BACKOFF;
use dpl::kinesis::Backoff;

/// Name of the internal DPL Kinesis stream.
pub const STREAM_NAME_VAR: &str = "DPL_STREAM_NAME";
/// URL of the SQS queue receiving malformed records.
pub const DEAD_LETTER_QUEUE_URL_VAR: &str = "DEAD_LETTER_QUEUE_URL";
/// Time kept free before the invocation deadline, in ms (default 2000).
pub const DEADLINE_MARGIN_MS_VAR: &str = "PUBLISH_DEADLINE_MARGIN_MS";
/// First backoff ceiling between retry rounds, in ms (default 50).
pub const BACKOFF_BASE_MS_VAR: &str = "PUBLISH_BACKOFF_BASE_MS";
/// Largest backoff ceiling, in ms (default 2000).
pub const BACKOFF_CAP_MS_VAR: &str = "PUBLISH_BACKOFF_CAP_MS";

/// Default [`DEADLINE_MARGIN_MS_VAR`]: enough to build and return the
/// answer and flush the log line after the last `PutRecords` call.
const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set (or empty)")]
    Missing(&'static str),
    #[error("environment variable {name} must be a number of milliseconds, found {value:?}")]
    NotMillis { name: &'static str, value: String },
}

/// See the `*_VAR` constants for the variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub stream_name: String,
    pub dead_letter_queue_url: String,
    pub deadline_margin: Duration,
    pub backoff: Backoff,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let value = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
        let required = |name| value(name).ok_or(ConfigError::Missing(name));
        let millis = |name, default: Duration| match value(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse()
                .map(Duration::from_millis)
                .map_err(|_| ConfigError::NotMillis { name, value: text }),
        };
        let defaults = DEFAULT_BACKOFF;
        Ok(Self {
            stream_name: required(STREAM_NAME_VAR)?,
            dead_letter_queue_url: required(DEAD_LETTER_QUEUE_URL_VAR)?,
            deadline_margin: millis(DEADLINE_MARGIN_MS_VAR, DEFAULT_DEADLINE_MARGIN)?,
            backoff: Backoff {
                base: millis(BACKOFF_BASE_MS_VAR, defaults.base)?,
                cap: millis(BACKOFF_CAP_MS_VAR, defaults.cap)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    const REQUIRED: [(&str, &str); 2] = [
        (STREAM_NAME_VAR, "dpl"),
        (
            DEAD_LETTER_QUEUE_URL_VAR,
            "http://127.0.0.1:5555/123456789012/dlq",
        ),
    ];

    #[test]
    fn required_variables_with_defaults_for_tuning() {
        let config = config(&REQUIRED).unwrap();
        assert_eq!(config.stream_name, "dpl");
        assert_eq!(config.deadline_margin, DEFAULT_DEADLINE_MARGIN);
        assert_eq!(config.backoff, DEFAULT_BACKOFF);
    }

    #[test]
    fn a_missing_or_empty_variable_is_named() {
        assert_eq!(
            config(&REQUIRED[1..]),
            Err(ConfigError::Missing(STREAM_NAME_VAR))
        );
        assert_eq!(
            config(&[REQUIRED[0], (DEAD_LETTER_QUEUE_URL_VAR, " ")]),
            Err(ConfigError::Missing(DEAD_LETTER_QUEUE_URL_VAR))
        );
    }

    #[test]
    fn tuning_is_read_in_milliseconds() {
        let mut vars = REQUIRED.to_vec();
        vars.extend([
            (DEADLINE_MARGIN_MS_VAR, "500"),
            (BACKOFF_BASE_MS_VAR, "10"),
            (BACKOFF_CAP_MS_VAR, "400"),
        ]);
        let config = config(&vars).unwrap();
        assert_eq!(config.deadline_margin, Duration::from_millis(500));
        assert_eq!(config.backoff.base, Duration::from_millis(10));
        assert_eq!(config.backoff.cap, Duration::from_millis(400));
        let wrong = [REQUIRED[0], REQUIRED[1], (BACKOFF_CAP_MS_VAR, "2s")];
        assert_eq!(
            super::tests::config(&wrong),
            Err(ConfigError::NotMillis {
                name: BACKOFF_CAP_MS_VAR,
                value: "2s".into()
            })
        );
    }
}
