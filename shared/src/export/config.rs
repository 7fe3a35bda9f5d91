//! Configuration shared by the export functions and tools: the bucket and
//! the prefixes of [`Layout`], read through a lookup (the environment in
//! Lambda, a map in tests).

use super::keys::Layout;

/// Bucket holding staging, quarantine, manifests and exports.
pub const BUCKET_VAR: &str = "BUCKET";
/// Prefix of staging objects (default `staging`).
pub const STAGING_PREFIX_VAR: &str = "STAGING_PREFIX";
/// Prefix of the customer-visible exports (default `exports`).
pub const EXPORT_PREFIX_VAR: &str = "EXPORT_PREFIX";
/// Prefix of manifests (default `manifests`).
pub const MANIFEST_PREFIX_VAR: &str = "MANIFEST_PREFIX";
/// Prefix of quarantined malformed records (default `quarantine`).
pub const QUARANTINE_PREFIX_VAR: &str = "QUARANTINE_PREFIX";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set (or empty)")]
    Missing(&'static str),
    #[error("environment variable {name} = {value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Where the export's objects live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    pub bucket: String,
    pub layout: Layout,
}

/// A non-empty, trimmed variable.
pub fn value(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A variable parsed by `FromStr`, or `default` when unset.
pub fn parsed<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    reason: &'static str,
) -> Result<T, ConfigError> {
    match value(lookup, name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| ConfigError::Invalid {
            name,
            value: text,
            reason,
        }),
    }
}

fn prefix(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let text = value(lookup, name).unwrap_or_else(|| default.to_owned());
    let trimmed = text.trim_matches('/');
    if trimmed.is_empty() || trimmed.contains("//") {
        return Err(ConfigError::Invalid {
            name,
            value: text,
            reason: "a key prefix like `exports` or `data/exports`",
        });
    }
    Ok(trimmed.to_owned())
}

impl StorageConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let layout = layout_from_lookup(&lookup)?;
        Ok(Self {
            bucket: value(&lookup, BUCKET_VAR).ok_or(ConfigError::Missing(BUCKET_VAR))?,
            layout,
        })
    }
}

/// The four prefixes of [`Layout`] (`STAGING_PREFIX`, `EXPORT_PREFIX`,
/// `MANIFEST_PREFIX`, `QUARANTINE_PREFIX`, each defaulting to
/// [`Layout::default`]'s), checked: what the functions and `dplctl` both
/// read, so that they agree on every key.
pub fn layout_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Layout, ConfigError> {
    let defaults = Layout::default();
    let layout = Layout {
        staging: prefix(&lookup, STAGING_PREFIX_VAR, &defaults.staging)?,
        exports: prefix(&lookup, EXPORT_PREFIX_VAR, &defaults.exports)?,
        manifests: prefix(&lookup, MANIFEST_PREFIX_VAR, &defaults.manifests)?,
        quarantine: prefix(&lookup, QUARANTINE_PREFIX_VAR, &defaults.quarantine)?,
    };
    let prefixes = [
        &layout.staging,
        &layout.exports,
        &layout.manifests,
        &layout.quarantine,
    ];
    // Nested prefixes would mix object kinds in one listing (and would
    // let an OEM's export credentials reach staging or manifests).
    for a in prefixes {
        for b in prefixes {
            if !std::ptr::eq(a, b) && format!("{b}/").starts_with(&format!("{a}/")) {
                return Err(ConfigError::Invalid {
                    name: EXPORT_PREFIX_VAR,
                    value: format!("{a} / {b}"),
                    reason: "the four prefixes must not contain one another",
                });
            }
        }
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<StorageConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StorageConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = config(&[(BUCKET_VAR, "b")]).unwrap();
        assert_eq!(c.layout, Layout::default());
        let c = config(&[(BUCKET_VAR, "b"), (EXPORT_PREFIX_VAR, "/data/out/")]).unwrap();
        assert_eq!(c.layout.exports, "data/out");
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(config(&[]), Err(ConfigError::Missing(BUCKET_VAR)));
        assert!(config(&[(BUCKET_VAR, "b"), (STAGING_PREFIX_VAR, "/")]).is_err());
        assert!(config(&[(BUCKET_VAR, "b"), (EXPORT_PREFIX_VAR, "staging/x")]).is_err());
    }
}
