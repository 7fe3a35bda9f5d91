//! Who a subscription is ([`SubscriptionId`]) and which transport it uses
//! ([`Transport`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::SubscriptionError;

/// `sub-` followed by 16 lowercase hex digits (64 random bits).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(String);

impl SubscriptionId {
    pub const PREFIX: &'static str = "sub-";
    const HEX_DIGITS: usize = 16;

    /// A fresh random id. The bits come from std's randomly keyed SipHash
    /// (`RandomState`, seeded from the OS) over the clock: unpredictable
    /// enough for an identifier, not a secret. Creation is conditional on
    /// the id being new, so a collision fails loudly rather than overwrites.
    pub fn generate() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.write_u128(nanos);
        Self::from_bits(hasher.finish())
    }

    /// The id spelling `bits` (for tests and reproducible fixtures).
    pub fn from_bits(bits: u64) -> Self {
        Self(format!("{}{bits:016x}", Self::PREFIX))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SubscriptionId {
    type Err = SubscriptionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = text.strip_prefix(Self::PREFIX).is_some_and(|hex| {
            hex.len() == Self::HEX_DIGITS
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(SubscriptionError::InvalidId(text.to_owned()))
        }
    }
}

impl Serialize for SubscriptionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SubscriptionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where events go: an Amazon Kinesis data stream or an Azure event hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Kinesis,
    EventHubs,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Kinesis, Transport::EventHubs];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Kinesis => "kinesis",
            Transport::EventHubs => "eventhubs",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = SubscriptionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Transport::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| SubscriptionError::UnknownTransport(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = SubscriptionId::generate();
        let b = SubscriptionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().parse::<SubscriptionId>().unwrap(), a);
        assert_eq!(
            SubscriptionId::from_bits(0xab).to_string(),
            "sub-00000000000000ab"
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "sub-",
            "sub-0123456789abcdeF",
            "sub-0123456789abcde",
            "sub-0123456789abcdef0",
            "SUB-0123456789abcdef",
            "x-0123456789abcdef",
        ] {
            assert_eq!(
                bad.parse::<SubscriptionId>(),
                Err(SubscriptionError::InvalidId(bad.to_owned())),
                "{bad}"
            );
        }
    }
}
