//! The function's configuration, read once at start from the environment.

use std::path::PathBuf;
use std::time::Duration;

use dpl::export::config::{parsed, value, ConfigError, StorageConfig};
use dpl::export::local::DEFAULT_MAX_FAN_IN;
use dpl::export::plan::{DEFAULT_GRACE, DEFAULT_LOOKBACK_HOURS};
use dpl::export::run::default_concurrency;
use dpl::export::split::DEFAULT_SPLIT_BYTES;
use dpl::export::upload::DEFAULT_PART_SIZE;
use dpl::export::{ExportOptions, Window};

/// Seconds to wait after an hour ends before exporting it (default 600).
pub const GRACE_SECONDS_VAR: &str = "EXPORT_GRACE_SECONDS";
/// Earlier hours re-checked for late data each run (default 24).
pub const LOOKBACK_HOURS_VAR: &str = "EXPORT_LOOKBACK_HOURS";
/// Multipart part size in MiB, 5 to 5120 (default 16).
pub const PART_SIZE_MIB_VAR: &str = "EXPORT_PART_SIZE_MIB";
/// Files merged at once (default 64).
pub const MAX_FAN_IN_VAR: &str = "EXPORT_MAX_FAN_IN";
/// Partitions an in-process run exports at once, each encoding on its own
/// thread (default: the CPUs the process sees). Lambda's CPU share grows with
/// its memory, 1,769 MB being one vCPU (Lambda quotas, "Function memory"),
/// so more than one at a time only pays from there up.
pub const CONCURRENCY_VAR: &str = "EXPORT_CONCURRENCY";
/// Where staging objects are downloaded (default the system temp dir,
/// `/tmp` in Lambda).
pub const WORK_DIR_VAR: &str = "EXPORT_WORK_DIR";
/// Staging bytes of a partition (compressed, as listed) above which it is
/// split into time ranges exported by several tasks writing one multipart
/// upload (default 2 GiB; `docs/export.md`, "Partitions of any size").
pub const SPLIT_BYTES_VAR: &str = "EXPORT_SPLIT_BYTES";
/// URL of the SQS queue of export tasks. Set: the scheduled run queues one
/// task per partition to export, and the queue's event source mapping runs
/// them. Unset: the scheduled run exports in-process (docs/export.md,
/// "Fan-out").
pub const TASK_QUEUE_URL_VAR: &str = "EXPORT_TASK_QUEUE_URL";

const MIB: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub storage: StorageConfig,
    pub window: Window,
    pub options: ExportOptions,
    /// [`TASK_QUEUE_URL_VAR`], if set.
    pub task_queue_url: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let storage = StorageConfig::from_lookup(&lookup)?;
        let grace: u64 = parsed(
            &lookup,
            GRACE_SECONDS_VAR,
            DEFAULT_GRACE.as_secs(),
            "whole seconds",
        )?;
        let lookback_hours = parsed(
            &lookup,
            LOOKBACK_HOURS_VAR,
            DEFAULT_LOOKBACK_HOURS,
            "whole hours",
        )?;
        let part_mib: usize = parsed(
            &lookup,
            PART_SIZE_MIB_VAR,
            DEFAULT_PART_SIZE / MIB,
            "MiB, 5 to 5120",
        )?;
        if !(5..=5120).contains(&part_mib) {
            return Err(ConfigError::Invalid {
                name: PART_SIZE_MIB_VAR,
                value: part_mib.to_string(),
                reason: "S3 parts are 5 MiB to 5 GiB",
            });
        }
        let max_fan_in = parsed(
            &lookup,
            MAX_FAN_IN_VAR,
            DEFAULT_MAX_FAN_IN,
            "a number of files, at least 2",
        )?;
        let concurrency = parsed(
            &lookup,
            CONCURRENCY_VAR,
            default_concurrency(),
            "a number of partitions, at least 1",
        )?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: CONCURRENCY_VAR,
                value: "0".into(),
                reason: "at least one partition at a time",
            });
        }
        let split_bytes: u64 = parsed(
            &lookup,
            SPLIT_BYTES_VAR,
            DEFAULT_SPLIT_BYTES,
            "bytes of staging, at least 1",
        )?;
        if split_bytes == 0 {
            return Err(ConfigError::Invalid {
                name: SPLIT_BYTES_VAR,
                value: "0".into(),
                reason: "at least one byte of staging per task",
            });
        }
        let work_dir = value(&lookup, WORK_DIR_VAR).map_or_else(std::env::temp_dir, PathBuf::from);
        let task_queue_url = value(&lookup, TASK_QUEUE_URL_VAR);
        if let Some(url) = &task_queue_url {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(ConfigError::Invalid {
                    name: TASK_QUEUE_URL_VAR,
                    value: url.clone(),
                    reason: "an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)",
                });
            }
        }
        Ok(Self {
            storage,
            window: Window {
                grace: Duration::from_secs(grace),
                lookback_hours,
            },
            options: ExportOptions {
                part_size: part_mib * MIB,
                max_fan_in,
                work_dir,
                concurrency,
                split_bytes,
            },
            task_queue_url,
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

    #[test]
    fn defaults() {
        let c = config(&[("BUCKET", "b")]).unwrap();
        assert_eq!(c.window, Window::default());
        assert_eq!(c.options.part_size, DEFAULT_PART_SIZE);
        assert_eq!(c.options.max_fan_in, DEFAULT_MAX_FAN_IN);
        assert_eq!(c.options.concurrency, default_concurrency());
        assert_eq!(c.options.split_bytes, DEFAULT_SPLIT_BYTES);
        assert_eq!(c.task_queue_url, None, "in-process by default");
    }

    #[test]
    fn a_task_queue_url_turns_on_the_fan_out() {
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/tasks";
        let c = config(&[("BUCKET", "b"), (TASK_QUEUE_URL_VAR, url)]).unwrap();
        assert_eq!(c.task_queue_url.as_deref(), Some(url));
        let blank = config(&[("BUCKET", "b"), (TASK_QUEUE_URL_VAR, " ")]).unwrap();
        assert_eq!(blank.task_queue_url, None);
        let err = config(&[("BUCKET", "b"), (TASK_QUEUE_URL_VAR, "tasks")]).unwrap_err();
        assert!(err.to_string().contains(TASK_QUEUE_URL_VAR), "{err}");
    }

    #[test]
    fn tuning_and_its_errors() {
        let c = config(&[
            ("BUCKET", "b"),
            (GRACE_SECONDS_VAR, "60"),
            (LOOKBACK_HOURS_VAR, "3"),
            (PART_SIZE_MIB_VAR, "5"),
            (CONCURRENCY_VAR, "3"),
            (SPLIT_BYTES_VAR, "300000"),
        ])
        .unwrap();
        assert_eq!(c.options.split_bytes, 300_000);
        assert_eq!(c.options.concurrency, 3);
        assert_eq!(c.window.grace, Duration::from_secs(60));
        assert_eq!(c.window.lookback_hours, 3);
        assert_eq!(c.options.part_size, 5 * MIB);
        for (name, bad) in [
            (PART_SIZE_MIB_VAR, "4"),
            (LOOKBACK_HOURS_VAR, "-1"),
            (GRACE_SECONDS_VAR, "10m"),
            (CONCURRENCY_VAR, "0"),
            (CONCURRENCY_VAR, "two"),
            (SPLIT_BYTES_VAR, "0"),
            (SPLIT_BYTES_VAR, "2GiB"),
        ] {
            let err = config(&[("BUCKET", "b"), (name, bad)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
