//! The function's configuration, read once at start from the environment:
//! the bucket and prefixes of [`dpl::export::config`].

use dpl::export::config::{ConfigError, StorageConfig};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub storage: StorageConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            storage: StorageConfig::from_lookup(lookup)?,
        })
    }
}
