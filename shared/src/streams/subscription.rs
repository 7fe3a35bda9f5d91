//! A customer's stream subscription: where to deliver which events, with
//! which credentials. Pure: no AWS types, no cargo feature.
//!
//! Every value is checked by [`Subscription::validate`] (and the parsers it
//! relies on) with a [`SubscriptionError`] that names the field and the
//! value. The rules, and why, are in `docs/streams.md`.
//!
//! # Filter semantics ([`Filters::matches`])
//!
//! An event matches when every dimension allows it: its event type is in
//! `event_types`, its `oem_model` in `models`, its DSN in `dsns`, and, for
//! datapoint and datapointack events only, its `property_name` in
//! `properties`. Device-level events (activation, connectivity, location,
//! registration) have no property: the properties filter does not apply to
//! them, so `--properties temp` with every event type delivers every device
//! event plus the datapoints and acks of `temp`.
//!
//! [`Filters::validate`] refuses filters that cannot be meant:
//! - a list (`Only`) that is empty, or holds an empty, blank or `*` item;
//! - a properties list while `event_types` is a list holding neither
//!   `datapoint` nor `datapointack`: no event the subscription receives has
//!   a property, so the list would never be consulted (and the operator who
//!   wrote it expected fewer events than they would get).
//!
//! Every other combination matches some possible event: the dimensions are
//! independent and each allowed value can occur.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::{DeviceEvent, EventType, UnknownEventType};
use crate::time::Timestamp;

/// Longest subscription name we accept (our limit: it is a label in tables).
pub const MAX_NAME_LEN: usize = 128;
/// Longest description we accept (our limit).
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Longest model, property or DSN in a filter list (our limit; the vendor's
/// identifiers are far shorter).
pub const MAX_FILTER_ITEM_LEN: usize = 256;
/// Longest [`LastError::message`] kept; longer messages are cut (our limit,
/// well under DynamoDB's 400 KB item size).
pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;

/// Kinesis stream names: 1 to 128 of `[a-zA-Z0-9_.-]` (Kinesis API
/// reference, `CreateStream`, `StreamName`).
pub const MAX_STREAM_NAME_LEN: usize = 128;
/// Event Hubs namespace names: 6 to 50 characters, alphanumerics and
/// hyphens, starting with a letter and ending with a letter or number
/// ("Naming rules and restrictions for Azure resources", Microsoft.EventHub
/// `namespaces`, <https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsofteventhub>).
pub const NAMESPACE_LEN: std::ops::RangeInclusive<usize> = 6..=50;
/// Event hub names: 1 to 256 characters, alphanumerics, periods, hyphens
/// and underscores, starting and ending with a letter or number (same page,
/// `namespaces / eventhubs`).
pub const MAX_HUB_LEN: usize = 256;
/// IAM role names: 1 to 64 of `[\w+=,.@-]`; role paths up to 512
/// characters (IAM API reference, `CreateRole`, `RoleName` and `Path`).
pub const MAX_ROLE_NAME_LEN: usize = 64;
pub const MAX_ROLE_PATH_LEN: usize = 512;
/// STS external ids: 2 to 1224 of `[\w+=,.@:/-]` (STS API reference,
/// `AssumeRole`, `ExternalId`).
pub const EXTERNAL_ID_LEN: std::ops::RangeInclusive<usize> = 2..=1224;

/// Why a subscription, or one of its parts, is refused. Messages name the
/// field and quote the value; no variant ever carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("subscription id `{0}` is not `sub-` followed by 16 lowercase hex digits")]
    InvalidId(String),
    #[error("transport `{0}` is not kinesis or eventhubs")]
    UnknownTransport(String),
    #[error("status `{0}` is not enabled or disabled")]
    UnknownStatus(String),
    #[error("stream_arn: {0}")]
    StreamArn(ArnError),
    #[error("role_arn `{value}`: {reason}")]
    RoleArn { value: String, reason: &'static str },
    #[error("external_id `{value}`: {reason}")]
    ExternalId { value: String, reason: &'static str },
    #[error("namespace `{value}`: {reason}")]
    Namespace { value: String, reason: &'static str },
    #[error("hub `{value}`: {reason}")]
    Hub { value: String, reason: &'static str },
    #[error("credentials `{credentials}` do not fit transport `{transport}`: {expected}")]
    CredentialsMismatch {
        transport: Transport,
        credentials: &'static str,
        expected: &'static str,
    },
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is {len} characters long: at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} `{value}`: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{field} is an empty list: give `*` for all, or at least one value")]
    EmptySelection { field: &'static str },
    #[error("{field} item `{item}`: {reason}")]
    SelectionItem {
        field: &'static str,
        item: String,
        reason: &'static str,
    },
    #[error("event_types: {0}")]
    UnknownEventType(UnknownEventType),
    #[error("{field} can never match: {reason}")]
    NeverMatches { field: &'static str, reason: String },
}

// The causes are part of the message (not `#[source]`), so that a report
// printing the chain does not say the same thing twice.
impl From<ArnError> for SubscriptionError {
    fn from(error: ArnError) -> Self {
        SubscriptionError::StreamArn(error)
    }
}

impl From<UnknownEventType> for SubscriptionError {
    fn from(error: UnknownEventType) -> Self {
        SubscriptionError::UnknownEventType(error)
    }
}

// ---------------------------------------------------------------------------
// Identity

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

// ---------------------------------------------------------------------------
// Transport and destination

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

/// The AWS partitions a Kinesis stream can live in.
pub const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// Why a text is not a Kinesis stream ARN, part by part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("`{0}` is not an ARN like arn:aws:kinesis:eu-west-1:123456789012:stream/NAME")]
    Shape(String),
    #[error("`{arn}`: partition `{partition}` is not aws, aws-cn or aws-us-gov")]
    Partition { arn: String, partition: String },
    #[error("`{arn}`: service `{service}` is not kinesis")]
    Service { arn: String, service: String },
    #[error("`{arn}`: region `{region}` is not a region name like eu-west-1")]
    Region { arn: String, region: String },
    #[error("`{arn}`: region `{region}` is not in partition `{partition}`")]
    RegionPartition {
        arn: String,
        region: String,
        partition: String,
    },
    #[error("`{arn}`: account id `{account_id}` is not 12 digits")]
    AccountId { arn: String, account_id: String },
    #[error("`{arn}`: resource `{resource}` is not stream/NAME")]
    Resource { arn: String, resource: String },
    #[error("`{arn}`: stream name `{name}` is not 1 to 128 letters, digits, `_`, `.` or `-`")]
    StreamName { arn: String, name: String },
}

/// `arn:PARTITION:kinesis:REGION:ACCOUNT_ID:stream/NAME`, each part checked.
/// Fields are private so that every value is a valid ARN.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KinesisStreamArn {
    partition: String,
    region: String,
    account_id: String,
    stream_name: String,
}

impl KinesisStreamArn {
    pub fn partition(&self) -> &str {
        &self.partition
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }
}

/// `eu-west-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-4`: two
/// letters, one or more lowercase words, a number.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return false;
    };
    !middle.is_empty()
        && first.len() == 2
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && middle
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.len() <= 2
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `region` belongs to `partition` (the China and GovCloud
/// partitions hold only their own regions).
fn region_in_partition(region: &str, partition: &str) -> bool {
    let china = region.starts_with("cn-");
    let gov = region.starts_with("us-gov-");
    match partition {
        "aws-cn" => china,
        "aws-us-gov" => gov,
        _ => !china && !gov,
    }
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

impl FromStr for KinesisStreamArn {
    type Err = ArnError;

    fn from_str(arn: &str) -> Result<Self, Self::Err> {
        let owned = || arn.to_owned();
        let mut parts = arn.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(ArnError::Shape(owned()));
        };
        if !PARTITIONS.contains(&partition) {
            return Err(ArnError::Partition {
                arn: owned(),
                partition: partition.to_owned(),
            });
        }
        if service != "kinesis" {
            return Err(ArnError::Service {
                arn: owned(),
                service: service.to_owned(),
            });
        }
        if !is_region(region) {
            return Err(ArnError::Region {
                arn: owned(),
                region: region.to_owned(),
            });
        }
        if !region_in_partition(region, partition) {
            return Err(ArnError::RegionPartition {
                arn: owned(),
                region: region.to_owned(),
                partition: partition.to_owned(),
            });
        }
        if !is_account_id(account) {
            return Err(ArnError::AccountId {
                arn: owned(),
                account_id: account.to_owned(),
            });
        }
        let Some(name) = resource.strip_prefix("stream/") else {
            return Err(ArnError::Resource {
                arn: owned(),
                resource: resource.to_owned(),
            });
        };
        let name_ok = (1..=MAX_STREAM_NAME_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !name_ok {
            return Err(ArnError::StreamName {
                arn: owned(),
                name: name.to_owned(),
            });
        }
        Ok(Self {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account_id: account.to_owned(),
            stream_name: name.to_owned(),
        })
    }
}

impl fmt::Display for KinesisStreamArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:kinesis:{}:{}:stream/{}",
            self.partition, self.region, self.account_id, self.stream_name
        )
    }
}

impl Serialize for KinesisStreamArn {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KinesisStreamArn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a subscription delivers. The transport follows from the variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "lowercase")]
pub enum Destination {
    Kinesis {
        stream_arn: KinesisStreamArn,
    },
    /// `namespace` is the bare namespace name (`contoso-events`), not its
    /// host name (`contoso-events.servicebus.windows.net`).
    EventHubs {
        namespace: String,
        hub: String,
    },
}

impl Destination {
    pub fn transport(&self) -> Transport {
        match self {
            Destination::Kinesis { .. } => Transport::Kinesis,
            Destination::EventHubs { .. } => Transport::EventHubs,
        }
    }

    /// A human-readable target: the stream ARN, or `namespace/hub`.
    pub fn target(&self) -> String {
        match self {
            Destination::Kinesis { stream_arn } => stream_arn.to_string(),
            Destination::EventHubs { namespace, hub } => format!("{namespace}/{hub}"),
        }
    }

    pub fn validate(&self) -> Result<(), SubscriptionError> {
        match self {
            // Valid by construction.
            Destination::Kinesis { .. } => Ok(()),
            Destination::EventHubs { namespace, hub } => {
                validate_namespace(namespace)?;
                validate_hub(hub)
            }
        }
    }
}

/// See [`NAMESPACE_LEN`].
pub fn validate_namespace(namespace: &str) -> Result<(), SubscriptionError> {
    let error = |reason| {
        Err(SubscriptionError::Namespace {
            value: namespace.to_owned(),
            reason,
        })
    };
    if namespace.contains('.') {
        return error("give the namespace name, not its host name");
    }
    if !NAMESPACE_LEN.contains(&namespace.len()) {
        return error("must be 6 to 50 characters");
    }
    if !namespace
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return error("may hold only letters, digits and hyphens");
    }
    if !namespace.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return error("must start with a letter");
    }
    if !namespace.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return error("must end with a letter or digit");
    }
    Ok(())
}

/// See [`MAX_HUB_LEN`].
pub fn validate_hub(hub: &str) -> Result<(), SubscriptionError> {
    let error = |reason| {
        Err(SubscriptionError::Hub {
            value: hub.to_owned(),
            reason,
        })
    };
    if hub.is_empty() || hub.len() > MAX_HUB_LEN {
        return error("must be 1 to 256 characters");
    }
    if !hub
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return error("may hold only letters, digits, `.`, `-` and `_`");
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if !hub.starts_with(alnum) || !hub.ends_with(alnum) {
        return error("must start and end with a letter or digit");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Credentials

/// How we authenticate to the destination. Secret material is never held
/// here, only the id (name or ARN) of the Secrets Manager secret holding it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credentials {
    /// Kinesis: assume a role in the customer's account.
    AssumeRole {
        role_arn: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_id: Option<String>,
    },
    /// Kinesis: a secret holding `{"access_key_id","secret_access_key"}`.
    AccessKeySecret { secret_id: String },
    /// Event Hubs: a secret holding the connection string.
    ConnectionStringSecret { secret_id: String },
}

impl Credentials {
    /// `assume_role`, `access_key_secret` or `connection_string_secret`:
    /// the serde tag and the DynamoDB `credentials` attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::AssumeRole { .. } => "assume_role",
            Credentials::AccessKeySecret { .. } => "access_key_secret",
            Credentials::ConnectionStringSecret { .. } => "connection_string_secret",
        }
    }

    /// The Secrets Manager secret these credentials read, if any.
    pub fn secret_id(&self) -> Option<&str> {
        match self {
            Credentials::AssumeRole { .. } => None,
            Credentials::AccessKeySecret { secret_id }
            | Credentials::ConnectionStringSecret { secret_id } => Some(secret_id),
        }
    }

    /// Whether these credentials can authenticate to `transport`, and their
    /// own fields are well formed.
    pub fn validate_for(&self, transport: Transport) -> Result<(), SubscriptionError> {
        let fits = matches!(
            (transport, self),
            (
                Transport::Kinesis,
                Credentials::AssumeRole { .. } | Credentials::AccessKeySecret { .. }
            ) | (
                Transport::EventHubs,
                Credentials::ConnectionStringSecret { .. }
            )
        );
        if !fits {
            return Err(SubscriptionError::CredentialsMismatch {
                transport,
                credentials: self.kind(),
                expected: match transport {
                    Transport::Kinesis => "Kinesis takes assume_role or access_key_secret",
                    Transport::EventHubs => "Event Hubs takes connection_string_secret",
                },
            });
        }
        match self {
            Credentials::AssumeRole {
                role_arn,
                external_id,
            } => {
                validate_role_arn(role_arn)?;
                external_id.as_deref().map_or(Ok(()), validate_external_id)
            }
            Credentials::AccessKeySecret { secret_id }
            | Credentials::ConnectionStringSecret { secret_id } => validate_secret_id(secret_id),
        }
    }
}

/// `arn:PARTITION:iam::ACCOUNT_ID:role/[PATH/]NAME`. IAM is global: the
/// region part is empty.
pub fn validate_role_arn(role_arn: &str) -> Result<(), SubscriptionError> {
    let error = |reason| {
        Err(SubscriptionError::RoleArn {
            value: role_arn.to_owned(),
            reason,
        })
    };
    let mut parts = role_arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return error("is not an ARN like arn:aws:iam::123456789012:role/NAME");
    };
    if !PARTITIONS.contains(&partition) {
        return error("partition is not aws, aws-cn or aws-us-gov");
    }
    if service != "iam" {
        return error("service is not iam");
    }
    if !region.is_empty() {
        return error("IAM ARNs have an empty region (arn:aws:iam::ACCOUNT:role/NAME)");
    }
    if !is_account_id(account) {
        return error("account id is not 12 digits");
    }
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return error("resource is not role/NAME");
    };
    let (path, name) = match path_and_name.rsplit_once('/') {
        Some((path, name)) => (path, name),
        None => ("", path_and_name),
    };
    let role_char = |b: u8| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b);
    if name.is_empty() || name.len() > MAX_ROLE_NAME_LEN || !name.bytes().all(role_char) {
        return error("role name is not 1 to 64 of letters, digits and _+=,.@-");
    }
    if path.len() + 2 > MAX_ROLE_PATH_LEN
        || !path.bytes().all(|b| role_char(b) || b == b'/')
        || path_and_name.contains("//")
    {
        return error("role path is not /-separated words of letters, digits and _+=,.@-");
    }
    Ok(())
}

/// See [`EXTERNAL_ID_LEN`].
pub fn validate_external_id(external_id: &str) -> Result<(), SubscriptionError> {
    let ok = EXTERNAL_ID_LEN.contains(&external_id.len())
        && external_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SubscriptionError::ExternalId {
            value: external_id.to_owned(),
            reason: "is not 2 to 1224 of letters, digits and _+=,.@:/-",
        })
    }
}

fn validate_secret_id(secret_id: &str) -> Result<(), SubscriptionError> {
    if secret_id.is_empty() {
        return Err(SubscriptionError::Empty { field: "secret_id" });
    }
    if secret_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(SubscriptionError::Invalid {
            field: "secret_id",
            value: secret_id.to_owned(),
            reason: "holds whitespace",
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Filters

/// Everything (`*`) or a non-empty set of values.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Selection<T> {
    #[default]
    All,
    Only(BTreeSet<T>),
}

impl<T: Ord> Selection<T> {
    pub fn is_all(&self) -> bool {
        matches!(self, Selection::All)
    }

    /// Whether `item` is selected.
    pub fn allows<Q>(&self, item: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            Selection::All => true,
            Selection::Only(items) => items.contains(item),
        }
    }

    /// A selection of exactly `items` (`Only`, even when empty: see
    /// [`Filters::validate`]).
    pub fn only(items: impl IntoIterator<Item = T>) -> Self {
        Selection::Only(items.into_iter().collect())
    }

    /// Parses `*` or a comma-separated list (items trimmed), each item
    /// through `item`. An empty list, an empty item or a `*` among other
    /// items is refused.
    pub fn parse_with(
        field: &'static str,
        text: &str,
        item: impl Fn(&str) -> Result<T, SubscriptionError>,
    ) -> Result<Self, SubscriptionError> {
        let text = text.trim();
        if text == "*" {
            return Ok(Selection::All);
        }
        if text.is_empty() {
            return Err(SubscriptionError::EmptySelection { field });
        }
        text.split(',')
            .map(|raw| {
                let raw = raw.trim();
                if raw.is_empty() {
                    Err(SubscriptionError::SelectionItem {
                        field,
                        item: raw.to_owned(),
                        reason: "is empty (two commas in a row, or a trailing comma?)",
                    })
                } else if raw == "*" {
                    Err(SubscriptionError::SelectionItem {
                        field,
                        item: raw.to_owned(),
                        reason: "`*` must stand alone",
                    })
                } else {
                    item(raw)
                }
            })
            .collect::<Result<BTreeSet<T>, _>>()
            .map(Selection::Only)
    }
}

impl Selection<EventType> {
    /// `*` or a list of event type names.
    pub fn parse_event_types(text: &str) -> Result<Self, SubscriptionError> {
        Self::parse_with("event_types", text, |t| Ok(t.parse::<EventType>()?))
    }
}

impl Selection<String> {
    /// `*` or a list of names for `field` (`models`, `properties`, `dsns`).
    pub fn parse_names(field: &'static str, text: &str) -> Result<Self, SubscriptionError> {
        Self::parse_with(field, text, |t| {
            validate_filter_item(field, t)?;
            Ok(t.to_owned())
        })
    }
}

/// A model, property or DSN in a filter list: no whitespace or control
/// characters, no `*` or `,`, at most [`MAX_FILTER_ITEM_LEN`] characters.
fn validate_filter_item(field: &'static str, item: &str) -> Result<(), SubscriptionError> {
    let reason = if item.is_empty() {
        Some("is empty")
    } else if item.chars().count() > MAX_FILTER_ITEM_LEN {
        Some("is longer than 256 characters")
    } else if item.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("holds whitespace")
    } else if item.contains(['*', ',']) {
        Some("holds `*` or `,` (wildcards are not supported; `*` alone selects all)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SubscriptionError::SelectionItem {
            field,
            item: item.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl<T: fmt::Display> fmt::Display for Selection<T> {
    /// `*`, or the items joined by `,` (sorted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::All => f.write_str("*"),
            Selection::Only(items) => {
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        f.write_str(",")?;
                    }
                    item.fmt(f)?;
                }
                Ok(())
            }
        }
    }
}

/// JSON: `"*"` or an array.
impl<T: Serialize> Serialize for Selection<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Selection::All => serializer.serialize_str("*"),
            Selection::Only(items) => items.serialize(serializer),
        }
    }
}

impl<'de, T: Deserialize<'de> + Ord> Deserialize<'de> for Selection<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw<T: Ord> {
            Star(String),
            List(BTreeSet<T>),
        }
        match Raw::<T>::deserialize(deserializer)? {
            Raw::Star(star) if star == "*" => Ok(Selection::All),
            Raw::Star(other) => Err(serde::de::Error::custom(format!(
                "`{other}` is neither \"*\" nor a list"
            ))),
            Raw::List(items) => Ok(Selection::Only(items)),
        }
    }
}

/// Which events a subscription receives. See the module docs for the
/// semantics and the rules of [`Filters::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    pub event_types: Selection<EventType>,
    pub models: Selection<String>,
    /// Applies to datapoint and datapointack events only.
    pub properties: Selection<String>,
    pub dsns: Selection<String>,
}

impl Filters {
    /// Every event (of the subscription's OEM).
    pub fn all() -> Self {
        Self::default()
    }

    /// Whether `event` passes every dimension. The properties filter
    /// applies to datapoint and datapointack events only: events without a
    /// property pass it.
    pub fn matches(&self, event: &DeviceEvent) -> bool {
        let key = event.key();
        self.event_types.allows(&key.event_type)
            && self.models.allows(key.oem_model)
            && self.dsns.allows(key.dsn)
            && key
                .property_name
                .is_none_or(|property| self.properties.allows(property))
    }

    /// Refuses empty lists, malformed items, and filters that can never
    /// match (module docs).
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        if let Selection::Only(types) = &self.event_types {
            if types.is_empty() {
                return Err(SubscriptionError::EmptySelection {
                    field: "event_types",
                });
            }
        }
        for (field, selection) in [
            ("models", &self.models),
            ("properties", &self.properties),
            ("dsns", &self.dsns),
        ] {
            if let Selection::Only(items) = selection {
                if items.is_empty() {
                    return Err(SubscriptionError::EmptySelection { field });
                }
                for item in items {
                    validate_filter_item(field, item)?;
                }
            }
        }
        if let (Selection::Only(properties), Selection::Only(types)) =
            (&self.properties, &self.event_types)
        {
            let property_events = [EventType::Datapoint, EventType::DatapointAck];
            if !property_events.iter().any(|t| types.contains(t)) {
                return Err(SubscriptionError::NeverMatches {
                    field: "properties",
                    reason: format!(
                        "it lists {} but event_types ({}) include neither datapoint nor \
                         datapointack, the only events with a property",
                        Selection::Only(properties.clone()),
                        self.event_types
                    ),
                });
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Status and health

/// Whether the subscription delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Enabled,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = SubscriptionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "enabled" => Ok(Status::Enabled),
            "disabled" => Ok(Status::Disabled),
            _ => Err(SubscriptionError::UnknownStatus(text.to_owned())),
        }
    }
}

/// The last delivery failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub at: Timestamp,
    /// At most [`MAX_ERROR_MESSAGE_LEN`] characters ([`truncate_message`]).
    /// Must never hold secret material.
    pub message: String,
}

/// Cuts `message` to [`MAX_ERROR_MESSAGE_LEN`] characters.
pub fn truncate_message(message: &str) -> String {
    match message.char_indices().nth(MAX_ERROR_MESSAGE_LEN) {
        Some((end, _)) => message[..end].to_owned(),
        None => message.to_owned(),
    }
}

/// What delivery reports; written by the delivery engine, never by
/// configuration changes.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    pub last_success: Option<Timestamp>,
    pub last_error: Option<LastError>,
    /// Events waiting in the parking lot for redelivery.
    pub parked: u64,
}

// ---------------------------------------------------------------------------
// Subscription

/// One customer stream subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub oem_id: String,
    pub name: String,
    pub description: String,
    pub destination: Destination,
    pub credentials: Credentials,
    pub filters: Filters,
    pub status: Status,
    pub health: Health,
    pub created_at: Timestamp,
}

impl Subscription {
    /// A new, enabled subscription with empty health, validated.
    pub fn new(
        id: SubscriptionId,
        spec: SubscriptionSpec,
        created_at: Timestamp,
    ) -> Result<Self, SubscriptionError> {
        let subscription = Self {
            id,
            oem_id: spec.oem_id,
            name: spec.name,
            description: spec.description,
            destination: spec.destination,
            credentials: spec.credentials,
            filters: spec.filters,
            status: Status::Enabled,
            health: Health::default(),
            created_at,
        };
        subscription.validate()?;
        Ok(subscription)
    }

    pub fn transport(&self) -> Transport {
        self.destination.transport()
    }

    /// Whether `event` is delivered: the subscription is enabled, the event
    /// is of its OEM, and the filters match.
    pub fn accepts(&self, event: &DeviceEvent) -> bool {
        self.status == Status::Enabled
            && event.oem_id() == self.oem_id
            && self.filters.matches(event)
    }

    /// Checks every field: names, destination, credentials against the
    /// transport, filters.
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        validate_text("oem_id", &self.oem_id, MAX_FILTER_ITEM_LEN, true)?;
        validate_text("name", &self.name, MAX_NAME_LEN, true)?;
        validate_text("description", &self.description, MAX_DESCRIPTION_LEN, false)?;
        self.destination.validate()?;
        self.credentials.validate_for(self.transport())?;
        self.filters.validate()
    }
}

/// What an operator gives to create a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionSpec {
    pub oem_id: String,
    pub name: String,
    pub description: String,
    pub destination: Destination,
    pub credentials: Credentials,
    pub filters: Filters,
}

fn validate_text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), SubscriptionError> {
    if required && value.trim().is_empty() {
        return Err(SubscriptionError::Empty { field });
    }
    let len = value.chars().count();
    if len > max {
        return Err(SubscriptionError::TooLong { field, len, max });
    }
    if value.chars().any(char::is_control) {
        return Err(SubscriptionError::Invalid {
            field,
            value: value.to_owned(),
            reason: "holds control characters",
        });
    }
    if field == "oem_id" && value.chars().any(char::is_whitespace) {
        return Err(SubscriptionError::Invalid {
            field,
            value: value.to_owned(),
            reason: "holds whitespace",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{
        AckValue, Activation, Connection, Datapoint, DatapointAck, DatapointMetadata,
        DeviceMetadata, Location, PropertyMetadata, Registration,
    };
    use crate::BaseType;
    use proptest::prelude::*;

    const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/ayla-events";
    const ROLE: &str = "arn:aws:iam::123456789012:role/dpl-stream-writer";

    fn kinesis() -> Destination {
        Destination::Kinesis {
            stream_arn: ARN.parse().unwrap(),
        }
    }

    fn spec() -> SubscriptionSpec {
        SubscriptionSpec {
            oem_id: "0dfc7900".to_owned(),
            name: "all events".to_owned(),
            description: String::new(),
            destination: kinesis(),
            credentials: Credentials::AssumeRole {
                role_arn: ROLE.to_owned(),
                external_id: Some("dpl-0dfc7900".to_owned()),
            },
            filters: Filters::all(),
        }
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn subscription(filters: Filters) -> Subscription {
        let mut spec = spec();
        spec.filters = filters;
        Subscription::new(SubscriptionId::from_bits(1), spec, at(0)).unwrap()
    }

    fn names(items: &[&str]) -> Selection<String> {
        Selection::only(items.iter().map(|s| s.to_string()))
    }

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

    #[test]
    fn stream_arns_of_the_three_partitions_parse() {
        for arn in [
            ARN,
            "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a",
            "arn:aws-us-gov:kinesis:us-gov-west-1:123456789012:stream/a.b_c-d",
        ] {
            let parsed: KinesisStreamArn = arn.parse().unwrap();
            assert_eq!(parsed.to_string(), arn);
        }
        let parsed: KinesisStreamArn = ARN.parse().unwrap();
        assert_eq!(
            (
                parsed.partition(),
                parsed.region(),
                parsed.account_id(),
                parsed.stream_name()
            ),
            ("aws", "eu-west-1", "123456789012", "ayla-events")
        );
    }

    #[test]
    fn each_bad_part_of_a_stream_arn_is_named() {
        let long = format!(
            "arn:aws:kinesis:eu-west-1:123456789012:stream/{}",
            "a".repeat(129)
        );
        let cases: &[(&str, &str)] = &[
            ("ayla-events", "is not an ARN"),
            ("arn:aws:kinesis:eu-west-1:123456789012", "is not an ARN"),
            (
                "arm:aws:kinesis:eu-west-1:123456789012:stream/a",
                "is not an ARN",
            ),
            (
                "arn:aws-eu:kinesis:eu-west-1:123456789012:stream/a",
                "partition `aws-eu`",
            ),
            (
                "arn:aws:firehose:eu-west-1:123456789012:stream/a",
                "service `firehose`",
            ),
            (
                "arn:aws:kinesis:eu-west:123456789012:stream/a",
                "region `eu-west`",
            ),
            ("arn:aws:kinesis::123456789012:stream/a", "region ``"),
            (
                "arn:aws:kinesis:EU-WEST-1:123456789012:stream/a",
                "region `EU-WEST-1`",
            ),
            (
                "arn:aws:kinesis:cn-north-1:123456789012:stream/a",
                "not in partition `aws`",
            ),
            (
                "arn:aws-cn:kinesis:eu-west-1:123456789012:stream/a",
                "not in partition `aws-cn`",
            ),
            (
                "arn:aws:kinesis:eu-west-1:12345678901:stream/a",
                "account id `12345678901`",
            ),
            (
                "arn:aws:kinesis:eu-west-1:12345678901x:stream/a",
                "account id",
            ),
            (
                "arn:aws:kinesis:eu-west-1:123456789012:table/a",
                "resource `table/a`",
            ),
            (
                "arn:aws:kinesis:eu-west-1:123456789012:stream/",
                "stream name ``",
            ),
            (
                "arn:aws:kinesis:eu-west-1:123456789012:stream/a/consumer/c:1",
                "stream name",
            ),
            (
                "arn:aws:kinesis:eu-west-1:123456789012:stream/a b",
                "stream name `a b`",
            ),
            (&long, "stream name"),
        ];
        for (arn, expected) in cases {
            let error = arn.parse::<KinesisStreamArn>().unwrap_err().to_string();
            assert!(error.contains(expected), "{arn}: {error}");
            assert!(error.contains(&format!("`{arn}`")), "{arn}: {error}");
        }
    }

    #[test]
    fn each_bad_part_of_a_role_arn_is_named() {
        for good in [
            ROLE,
            "arn:aws:iam::123456789012:role/service-role/dpl+writer=1,a.b@c",
            "arn:aws-us-gov:iam::123456789012:role/a",
        ] {
            validate_role_arn(good).unwrap();
        }
        let cases = [
            ("dpl-stream-writer", "not an ARN"),
            ("arn:aws:iam::123456789012", "not an ARN"),
            ("arn:aws-x:iam::123456789012:role/a", "partition"),
            ("arn:aws:sts::123456789012:role/a", "service is not iam"),
            ("arn:aws:iam:eu-west-1:123456789012:role/a", "empty region"),
            ("arn:aws:iam::1234:role/a", "account id"),
            ("arn:aws:iam::123456789012:user/a", "role/NAME"),
            ("arn:aws:iam::123456789012:role/", "role name"),
            ("arn:aws:iam::123456789012:role/a b", "role name"),
            ("arn:aws:iam::123456789012:role/a//b", "role path"),
        ];
        for (arn, expected) in cases {
            let error = validate_role_arn(arn).unwrap_err();
            assert!(matches!(error, SubscriptionError::RoleArn { .. }));
            let text = error.to_string();
            assert!(text.contains(expected), "{arn}: {text}");
            assert!(text.starts_with(&format!("role_arn `{arn}`")), "{text}");
        }
        let long_name = format!("arn:aws:iam::123456789012:role/{}", "r".repeat(65));
        assert!(validate_role_arn(&long_name).is_err());
    }

    #[test]
    fn event_hubs_names_follow_the_azure_rules() {
        for good in ["contoso", "a-1-b2", &"n".repeat(50)] {
            validate_namespace(good).unwrap();
        }
        let cases = [
            ("short", "6 to 50"),
            ("contoso.servicebus.windows.net", "host name"),
            ("1contoso", "start with a letter"),
            ("contoso-", "end with a letter or digit"),
            ("cont_oso", "letters, digits and hyphens"),
        ];
        for (namespace, expected) in cases {
            let error = validate_namespace(namespace).unwrap_err().to_string();
            assert!(error.contains(expected), "{namespace}: {error}");
            assert!(
                error.contains(&format!("namespace `{namespace}`")),
                "{error}"
            );
        }
        assert!(validate_namespace(&"n".repeat(51)).is_err());

        for good in ["h", "device.events_v2-eu", &"h".repeat(256)] {
            validate_hub(good).unwrap();
        }
        let cases = [
            ("", "1 to 256"),
            ("-hub", "start and end"),
            ("hub_", "start and end"),
            ("hub/x", "letters, digits"),
        ];
        for (hub, expected) in cases {
            let error = validate_hub(hub).unwrap_err().to_string();
            assert!(error.contains(expected), "{hub}: {error}");
        }
        assert!(validate_hub(&"h".repeat(257)).is_err());
    }

    #[test]
    fn credentials_must_fit_the_transport() {
        let secret = |f: fn(String) -> Credentials| f("dpl/streams/sub-1".to_owned());
        let hubs = Destination::EventHubs {
            namespace: "contoso-events".to_owned(),
            hub: "devices".to_owned(),
        };
        let cases = [
            (
                kinesis(),
                secret(|s| Credentials::ConnectionStringSecret { secret_id: s }),
                "connection_string_secret",
            ),
            (
                hubs.clone(),
                secret(|s| Credentials::AccessKeySecret { secret_id: s }),
                "access_key_secret",
            ),
            (
                hubs.clone(),
                Credentials::AssumeRole {
                    role_arn: ROLE.to_owned(),
                    external_id: None,
                },
                "assume_role",
            ),
        ];
        for (destination, credentials, kind) in cases {
            let mut spec = spec();
            spec.destination = destination;
            spec.credentials = credentials;
            let error = Subscription::new(SubscriptionId::from_bits(1), spec, at(0)).unwrap_err();
            assert!(
                matches!(error, SubscriptionError::CredentialsMismatch { .. }),
                "{error}"
            );
            assert!(error.to_string().contains(&format!("`{kind}`")), "{error}");
        }
        let mut spec = spec();
        spec.destination = hubs;
        spec.credentials = secret(|s| Credentials::ConnectionStringSecret { secret_id: s });
        Subscription::new(SubscriptionId::from_bits(1), spec, at(0)).unwrap();
    }

    #[test]
    fn every_field_error_is_typed_and_names_the_field() {
        type Edit = fn(&mut SubscriptionSpec);
        let cases: &[(Edit, &str)] = &[
            (|s| s.oem_id = String::new(), "oem_id is empty"),
            (|s| s.oem_id = "0d fc".to_owned(), "oem_id `0d fc`"),
            (|s| s.name = "  ".to_owned(), "name is empty"),
            (
                |s| s.name = "n".repeat(129),
                "name is 129 characters long: at most 128",
            ),
            (|s| s.description = "d".repeat(1025), "description is 1025"),
            (|s| s.name = "a\nb".to_owned(), "control characters"),
            (
                |s| {
                    s.credentials = Credentials::AssumeRole {
                        role_arn: ROLE.to_owned(),
                        external_id: Some("x".to_owned()),
                    }
                },
                "external_id `x`",
            ),
            (
                |s| {
                    s.credentials = Credentials::AccessKeySecret {
                        secret_id: String::new(),
                    }
                },
                "secret_id is empty",
            ),
            (
                |s| {
                    s.destination = Destination::EventHubs {
                        namespace: "contoso-events".to_owned(),
                        hub: "-".to_owned(),
                    }
                },
                "hub `-`",
            ),
            (
                |s| s.filters.models = Selection::Only(BTreeSet::new()),
                "models is an empty list",
            ),
            (
                |s| s.filters.event_types = Selection::Only(BTreeSet::new()),
                "event_types is an empty list",
            ),
            (
                |s| s.filters.dsns = names(&["AC000W 1"]),
                "dsns item `AC000W 1`",
            ),
            (
                |s| {
                    s.filters.event_types = Selection::only([EventType::Connectivity]);
                    s.filters.properties = names(&["temp"]);
                },
                "properties can never match",
            ),
        ];
        for (edit, expected) in cases {
            let mut spec = spec();
            edit(&mut spec);
            let error = Subscription::new(SubscriptionId::from_bits(1), spec, at(0))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected),
                "expected {expected:?} in {error:?}"
            );
        }
    }

    #[test]
    fn selections_parse_star_or_a_list() {
        assert_eq!(Selection::parse_event_types("*").unwrap(), Selection::All);
        assert_eq!(
            Selection::parse_event_types(" datapoint , location,datapoint").unwrap(),
            Selection::only([EventType::Datapoint, EventType::Location])
        );
        assert_eq!(
            Selection::parse_names("models", "a,b").unwrap(),
            names(&["a", "b"])
        );
        let cases = [
            ("", "event_types is an empty list"),
            ("datapoint,", "item ``"),
            ("datapoint,,location", "item ``"),
            ("*,datapoint", "`*` must stand alone"),
            ("connection", "`connection` is not an event type"),
        ];
        for (text, expected) in cases {
            let error = Selection::parse_event_types(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let error = Selection::parse_event_types("bogus").unwrap_err();
        assert!(matches!(error, SubscriptionError::UnknownEventType(_)));
        assert!(error.to_string().starts_with("event_types: "), "{error}");
        for (text, expected) in [
            ("a b", "whitespace"),
            ("temp*", "wildcards"),
            ("", "empty list"),
        ] {
            let error = Selection::parse_names("properties", text)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.starts_with("properties"), "{error}");
        }
    }

    #[test]
    fn selections_serialize_as_star_or_array() {
        let filters = Filters {
            event_types: Selection::only([EventType::DatapointAck, EventType::Datapoint]),
            properties: names(&["temp"]),
            ..Filters::all()
        };
        let json = serde_json::to_string(&filters).unwrap();
        assert_eq!(
            json,
            r#"{"event_types":["datapoint","datapointack"],"models":"*","properties":["temp"],"dsns":"*"}"#
        );
        assert_eq!(serde_json::from_str::<Filters>(&json).unwrap(), filters);
        assert!(serde_json::from_str::<Selection<String>>(r#""all""#).is_err());
        assert_eq!(filters.event_types.to_string(), "datapoint,datapointack");
    }

    #[test]
    fn properties_filter_applies_to_property_events_only() {
        let filters = Filters {
            properties: names(&["Blue_LED"]),
            ..Filters::all()
        };
        let datapoint = event(EventType::Datapoint, "ledevb", "AC000W1", "Blue_LED");
        let connectivity = event(EventType::Connectivity, "ledevb", "AC000W1", "");
        assert_eq!(datapoint.key().property_name, Some("Blue_LED"));
        assert!(filters.matches(&datapoint));
        assert!(filters.matches(&connectivity));
        let other = Filters {
            properties: names(&["Green_LED"]),
            ..Filters::all()
        };
        assert!(!other.matches(&datapoint));
        assert!(other.matches(&connectivity));
    }

    #[test]
    fn accepts_needs_enabled_same_oem_and_matching_filters() {
        let event = event(EventType::Datapoint, "ledevb", "AC000W1", "temp");
        let mut subscription = subscription(Filters::all());
        subscription.oem_id = event.oem_id().to_owned();
        assert!(subscription.accepts(&event));
        subscription.status = Status::Disabled;
        assert!(!subscription.accepts(&event));
        subscription.status = Status::Enabled;
        subscription.oem_id = "another".to_owned();
        assert!(!subscription.accepts(&event));
        subscription.oem_id = event.oem_id().to_owned();
        subscription.filters.dsns = names(&["nobody"]);
        assert!(!subscription.accepts(&event));
    }

    #[test]
    fn subscriptions_round_trip_through_json() {
        let mut subscription = subscription(Filters {
            event_types: Selection::only([EventType::Datapoint]),
            properties: names(&["temp"]),
            ..Filters::all()
        });
        subscription.health = Health {
            last_success: Some(at(1_000)),
            last_error: Some(LastError {
                at: at(2_000),
                message: "throttled".to_owned(),
            }),
            parked: 3,
        };
        let json = serde_json::to_value(&subscription).unwrap();
        assert_eq!(json["destination"]["transport"], "kinesis");
        assert_eq!(json["destination"]["stream_arn"], ARN);
        assert_eq!(json["credentials"]["type"], "assume_role");
        assert_eq!(
            serde_json::from_value::<Subscription>(json).unwrap(),
            subscription
        );
    }

    #[test]
    fn long_error_messages_are_cut_on_a_character_boundary() {
        let message = "é".repeat(MAX_ERROR_MESSAGE_LEN + 5);
        assert_eq!(
            truncate_message(&message).chars().count(),
            MAX_ERROR_MESSAGE_LEN
        );
        assert_eq!(truncate_message("short"), "short");
    }

    fn event_type() -> impl Strategy<Value = EventType> {
        proptest::sample::select(EventType::ALL.to_vec())
    }

    fn selection<T: Ord + Clone + std::fmt::Debug + 'static>(
        item: impl Strategy<Value = T> + 'static,
    ) -> impl Strategy<Value = Selection<T>> {
        prop_oneof![
            Just(Selection::All),
            proptest::collection::btree_set(item, 1..4).prop_map(Selection::Only),
        ]
    }

    fn filters() -> impl Strategy<Value = Filters> {
        let name =
            || proptest::sample::select(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]);
        (
            selection(event_type()),
            selection(name()),
            selection(name()),
            selection(name()),
        )
            .prop_map(|(event_types, models, properties, dsns)| Filters {
                event_types,
                models,
                properties,
                dsns,
            })
    }

    fn t0() -> Timestamp {
        at(1_600_000_000_000)
    }

    fn device(event_type: EventType, model: &str, dsn: &str) -> DeviceMetadata {
        DeviceMetadata {
            oem_id: "0dfc7900".to_owned(),
            oem_model: model.to_owned(),
            dsn: dsn.to_owned(),
            event_type,
        }
    }

    fn property(event_type: EventType, model: &str, dsn: &str, name: &str) -> PropertyMetadata {
        PropertyMetadata {
            oem_id: "0dfc7900".to_owned(),
            oem_model: model.to_owned(),
            dsn: dsn.to_owned(),
            property_name: name.to_owned(),
            display_name: name.to_owned(),
            base_type: BaseType::Integer,
            resource_tags: None,
            event_type,
        }
    }

    /// An event of `event_type` with the given model, DSN and property
    /// (ignored by device-level events).
    fn event(event_type: EventType, model: &str, dsn: &str, name: &str) -> DeviceEvent {
        let metadata = device(event_type, model, dsn);
        match event_type {
            EventType::Activation => DeviceEvent::Activation {
                metadata,
                activation: Activation {
                    id: "1".to_owned(),
                    device_type: "Wifi".to_owned(),
                    status: "activated".to_owned(),
                    event_time: t0(),
                },
            },
            EventType::Connectivity => DeviceEvent::Connectivity {
                metadata: metadata.clone(),
                timestamp: t0(),
                connection: Connection {
                    event_time: t0(),
                    user_uuid: None,
                    status: "Online".to_owned(),
                    metadata,
                },
            },
            EventType::Datapoint => DeviceEvent::Datapoint {
                metadata: property(event_type, model, dsn, name),
                datapoint: Datapoint {
                    id: "1".to_owned(),
                    updated_at: t0(),
                    created_at: t0(),
                    echo: false,
                    closed: false,
                    value: "1".to_owned(),
                    metadata: DatapointMetadata::default(),
                    user_uuid: None,
                    discarded: false,
                    scope: "user".to_owned(),
                    direction: "input".to_owned(),
                },
                timestamp: t0(),
            },
            EventType::DatapointAck => DeviceEvent::DatapointAck {
                metadata: property(event_type, model, dsn, name),
                datapointack: DatapointAck {
                    id: "1".to_owned(),
                    created_at_from_device: None,
                    updated_at: t0(),
                    created_at: t0(),
                    user_uuid: None,
                    echo: false,
                    closed: true,
                    value: AckValue::Number(1.into()),
                    ack_message: 0,
                    ack_status: 200,
                    ack_id: "a".to_owned(),
                    acked_at: t0(),
                    metadata: DatapointMetadata::default(),
                },
                timestamp: t0(),
            },
            EventType::Location => DeviceEvent::Location {
                metadata,
                location_event: Location {
                    user_uuid: None,
                    dsn: dsn.to_owned(),
                    ip: None,
                    lat: " 1.000000".to_owned(),
                    provider: "ip-based".to_owned(),
                    created_at: t0(),
                    long: " 1.000000".to_owned(),
                },
                timestamp: t0(),
            },
            EventType::Registration => DeviceEvent::Registration {
                metadata,
                registration_event: Registration {
                    dsn: dsn.to_owned(),
                    user_uuid: None,
                    registered: true,
                    registration_type: "Dsn".to_owned(),
                    registered_at: Some(t0()),
                    unregistered_at: None,
                },
                timestamp: t0(),
            },
        }
    }

    proptest! {
        #[test]
        fn matches_is_the_conjunction_of_the_dimensions(
            filters in filters(),
            event_type in event_type(),
            model in "[abcd]",
            dsn in "[abcd]",
            property in "[abcd]",
        ) {
            let event = event(event_type, &model, &dsn, &property);
            let has_property = matches!(event_type, EventType::Datapoint | EventType::DatapointAck);
            let expected = filters.event_types.allows(&event_type)
                && filters.models.allows(model.as_str())
                && filters.dsns.allows(dsn.as_str())
                && (!has_property || filters.properties.allows(property.as_str()));
            prop_assert_eq!(filters.matches(&event), expected);
        }

        /// A filter that validates matches some event; one that is refused
        /// only for never matching indeed matches no property event.
        #[test]
        fn valid_filters_match_some_event(filters in filters()) {
            let some = |f: &Filters| EventType::ALL.into_iter().any(|t| {
                ["a", "b", "c"].iter().any(|m| ["a", "b", "c"].iter().any(|d| {
                    ["a", "b", "c"].iter().any(|p| f.matches(&event(t, m, d, p)))
                }))
            });
            match filters.validate() {
                Ok(()) => prop_assert!(some(&filters)),
                Err(SubscriptionError::NeverMatches { .. }) => {
                    let mut all_properties = filters.clone();
                    all_properties.properties = Selection::All;
                    // The properties list changes nothing: it is dead.
                    let dead = EventType::ALL.into_iter().all(|t| {
                        ["a", "d"].iter().all(|p| {
                            let e = event(t, "a", "a", p);
                            filters.matches(&e) == all_properties.matches(&e)
                        })
                    });
                    prop_assert!(dead);
                }
                Err(other) => prop_assert!(false, "unexpected {}", other),
            }
        }

        #[test]
        fn selection_text_round_trips(selection in selection(event_type())) {
            let text = selection.to_string();
            prop_assert_eq!(Selection::parse_event_types(&text).unwrap(), selection);
        }

        #[test]
        fn valid_stream_arns_round_trip(
            partition in proptest::sample::select(vec!["aws", "aws-cn", "aws-us-gov"]),
            word in "[a-z]{4,9}",
            number in 1u8..20,
            account in "[0-9]{12}",
            name in "[a-zA-Z0-9_.-]{1,128}",
        ) {
            let region = match partition {
                "aws-cn" => format!("cn-{word}-{number}"),
                "aws-us-gov" => format!("us-gov-{word}-{number}"),
                _ => format!("eu-{word}-{number}"),
            };
            let text = format!("arn:{partition}:kinesis:{region}:{account}:stream/{name}");
            let arn: KinesisStreamArn = text.parse().unwrap();
            prop_assert_eq!(arn.region(), region.as_str());
            prop_assert_eq!(arn.stream_name(), name.as_str());
            prop_assert_eq!(arn.to_string(), text);
        }

        #[test]
        fn arn_parsing_never_panics_and_accepts_only_what_it_prints(text in "\\PC{0,80}") {
            if let Ok(arn) = text.parse::<KinesisStreamArn>() {
                prop_assert_eq!(arn.to_string(), text);
            }
        }

        #[test]
        fn mutated_arns_are_refused(
            position in 0usize..60,
            replacement in proptest::sample::select(vec![':', ' ', '/', 'X']),
        ) {
            let mut chars: Vec<char> = ARN.chars().collect();
            let position = position % chars.len();
            let original = chars[position];
            chars[position] = replacement;
            let text: String = chars.into_iter().collect();
            let parsed = text.parse::<KinesisStreamArn>();
            // Replacing a character by itself, or an `X` in the stream name
            // (`ayla-events` -> `aylaXevents`), keeps it valid; `:` and
            // ` ` never are, and `/` only where one already is.
            let in_name = position >= ARN.len() - "ayla-events".len();
            let still_valid = original == replacement || (replacement == 'X' && in_name);
            prop_assert_eq!(parsed.is_ok(), still_valid, "{}", text);
        }
    }
}
