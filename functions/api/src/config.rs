//! The function's configuration, read once at start from the environment.

use std::time::Duration;

use dpl::export::config::{parsed, value, ConfigError, StorageConfig};

use crate::auth::AuthMode;

/// `jwt` (default) or `iam`: how API Gateway authenticates callers.
pub const AUTH_MODE_VAR: &str = "AUTH_MODE";
/// The JWT claim naming the caller's OEM (default `oem_id`).
pub const OEM_CLAIM_VAR: &str = "OEM_CLAIM";
/// With `AUTH_MODE=iam`: the prefix of the per-OEM roles (default `dpl-oem-`).
pub const IAM_ROLE_PREFIX_VAR: &str = "IAM_ROLE_PREFIX";
/// How long a download URL works, in seconds (default 300, at most 3600).
pub const DOWNLOAD_URL_SECONDS_VAR: &str = "DOWNLOAD_URL_SECONDS";
/// With `AUTH_MODE=dev-hs256` (local runs): the HS256 secret of the tokens.
pub const DEV_JWT_SECRET_VAR: &str = "DEV_JWT_SECRET";
/// An HS256 key as long as the hash (RFC 7518, section 3.2).
pub const MIN_DEV_SECRET_LEN: usize = 32;
pub const SUBSCRIPTIONS_TABLE_VAR: &str = "SUBSCRIPTIONS_TABLE";
pub const DELIVERY_STATE_TABLE_VAR: &str = dpl::streams::function::DELIVERY_STATE_TABLE_VAR;
pub const DPL_STREAM_VAR: &str = dpl::streams::function::DPL_STREAM_VAR;

/// Download URLs are short-lived: one hour at most (a leaked link soon
/// stops working), well under SigV4's 7 days.
pub const MAX_DOWNLOAD_URL_SECONDS: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub auth: AuthMode,
    pub subscriptions_table: String,
    pub state_table: String,
    pub storage: StorageConfig,
    /// For dead letters whose payload was too large to keep (redrive).
    pub dpl_stream: String,
    pub download_url_expiry: Duration,
    /// [`dpl::export::access::BOUNDARY_VAR`]: the permissions boundary of
    /// download users.
    pub export_user_boundary: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let auth = match value(&lookup, AUTH_MODE_VAR).as_deref() {
            None | Some("jwt") => AuthMode::Jwt {
                claim: value(&lookup, OEM_CLAIM_VAR).unwrap_or_else(|| "oem_id".into()),
            },
            // Local runs only (docs/api.md, "Local runs"): the template
            // allows jwt and iam alone.
            Some("dev-hs256") => {
                let secret = value(&lookup, DEV_JWT_SECRET_VAR).unwrap_or_default();
                if secret.len() < MIN_DEV_SECRET_LEN {
                    return Err(ConfigError::Invalid {
                        name: DEV_JWT_SECRET_VAR,
                        value: "(not shown)".into(),
                        reason: "at least 32 characters",
                    });
                }
                AuthMode::DevHs256 {
                    claim: value(&lookup, OEM_CLAIM_VAR).unwrap_or_else(|| "oem_id".into()),
                    secret,
                }
            }
            Some("iam") => AuthMode::Iam {
                role_prefix: value(&lookup, IAM_ROLE_PREFIX_VAR)
                    .unwrap_or_else(|| "dpl-oem-".into()),
            },
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: AUTH_MODE_VAR,
                    value: other.into(),
                    reason: "jwt, iam (or dev-hs256 for local runs)",
                })
            }
        };
        let required = |name: &'static str| value(&lookup, name).ok_or(ConfigError::Missing(name));
        let seconds: u64 = parsed(&lookup, DOWNLOAD_URL_SECONDS_VAR, 300, "whole seconds")?;
        if seconds == 0 || seconds > MAX_DOWNLOAD_URL_SECONDS {
            return Err(ConfigError::Invalid {
                name: DOWNLOAD_URL_SECONDS_VAR,
                value: seconds.to_string(),
                reason: "1 to 3600 seconds",
            });
        }
        Ok(Self {
            auth,
            subscriptions_table: required(SUBSCRIPTIONS_TABLE_VAR)?,
            state_table: required(DELIVERY_STATE_TABLE_VAR)?,
            storage: StorageConfig::from_lookup(&lookup)?,
            dpl_stream: value(&lookup, DPL_STREAM_VAR).unwrap_or_default(),
            download_url_expiry: Duration::from_secs(seconds),
            export_user_boundary: value(&lookup, dpl::export::access::BOUNDARY_VAR),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("SUBSCRIPTIONS_TABLE", "subs"),
        ("DELIVERY_STATE_TABLE", "state"),
        ("BUCKET", "b"),
    ];

    #[test]
    fn jwt_with_the_oem_id_claim_and_five_minute_urls_by_default() {
        let c = config(&BASE).unwrap();
        assert_eq!(
            c.auth,
            AuthMode::Jwt {
                claim: "oem_id".into()
            }
        );
        assert_eq!(c.download_url_expiry, Duration::from_secs(300));
    }

    #[test]
    fn bad_or_missing_settings_fail_fast() {
        assert!(config(&BASE[..2]).is_err());
        let mut vars = BASE.to_vec();
        vars.push(("AUTH_MODE", "basic"));
        assert!(config(&vars).unwrap_err().to_string().contains("AUTH_MODE"));
        let mut vars = BASE.to_vec();
        vars.push(("DOWNLOAD_URL_SECONDS", "86400"));
        assert!(config(&vars).is_err());
        let mut vars = BASE.to_vec();
        vars.extend([("AUTH_MODE", "iam"), ("IAM_ROLE_PREFIX", "oem-")]);
        assert_eq!(
            config(&vars).unwrap().auth,
            AuthMode::Iam {
                role_prefix: "oem-".into()
            }
        );
    }
}
