//! ARNs: Kinesis stream ARNs ([`KinesisStreamArn`]) and IAM role ARNs
//! ([`validate_role_arn`]), every part checked.

use super::error::SubscriptionError;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Kinesis stream names: 1 to 128 of `[a-zA-Z0-9_.-]` (Kinesis API
/// reference, `CreateStream`, `StreamName`).
pub const MAX_STREAM_NAME_LEN: usize = 128;

/// IAM role names: 1 to 64 of `[\w+=,.@-]`; role paths up to 512
/// characters (IAM API reference, `CreateRole`, `RoleName` and `Path`).
pub const MAX_ROLE_NAME_LEN: usize = 64;
pub const MAX_ROLE_PATH_LEN: usize = 512;

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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::streams::subscription::fixtures::{ARN, ROLE};

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

    proptest! {
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
