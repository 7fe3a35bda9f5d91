//! How a subscription authenticates to its destination ([`Credentials`]):
//! an assumed role, or the id of a Secrets Manager secret, never its value.
//!
//! An assumed role always carries an external id: without one, anyone who
//! can create a subscription could point us at any role that trusts our
//! stream function (the confused-deputy problem; IAM User Guide, "The
//! confused deputy problem": "use an external ID ... in the role's trust
//! policy"). The customer's trust policy requires it with the
//! `sts:ExternalId` condition (`docs/streams.md`, "Trust policy").

use serde::{Deserialize, Serialize};

use super::arn::validate_role_arn;
use super::error::SubscriptionError;
use super::id::Transport;

/// STS external ids: 2 to 1224 of `[\w+=,.@:/-]` (STS API reference,
/// `AssumeRole`, `ExternalId`).
pub const EXTERNAL_ID_LEN: std::ops::RangeInclusive<usize> = 2..=1224;

/// How we authenticate to the destination. Secret material is never held
/// here, only the id (name or ARN) of the Secrets Manager secret holding it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credentials {
    /// Kinesis: assume a role in the customer's account. `external_id` is
    /// required ([`Credentials::validate_for`]); it is an `Option` so that
    /// an item stored without one still reads, and is then refused by name.
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
                validate_external_id(required_external_id(external_id.as_deref())?)
            }
            Credentials::AccessKeySecret { secret_id }
            | Credentials::ConnectionStringSecret { secret_id } => validate_secret_id(secret_id),
        }
    }
}

/// The external id of an assumed role, or the error naming the field when
/// there is none (see the module docs).
pub fn required_external_id(external_id: Option<&str>) -> Result<&str, SubscriptionError> {
    external_id.ok_or(SubscriptionError::Required {
        field: "external_id",
        reason: "an assumed role needs the external id its trust policy requires \
                 (sts:ExternalId), so that no one can make us assume a role that is not theirs",
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::subscription::fixtures::{at, kinesis, spec, ROLE};
    use crate::streams::subscription::{Destination, Subscription, SubscriptionId};

    #[test]
    fn an_assumed_role_without_external_id_is_refused_naming_the_field() {
        let mut spec = spec();
        spec.credentials = Credentials::AssumeRole {
            role_arn: ROLE.to_owned(),
            external_id: None,
        };
        let error =
            Subscription::new(SubscriptionId::from_bits(1), spec.clone(), at(0)).unwrap_err();
        assert!(
            matches!(
                error,
                SubscriptionError::Required {
                    field: "external_id",
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error.to_string().starts_with("external_id is required"),
            "{error}"
        );
        // A stored item without one reads, and is refused when validated.
        let mut stored = serde_json::to_value(
            Subscription::new(
                SubscriptionId::from_bits(1),
                super::super::fixtures::spec(),
                at(0),
            )
            .unwrap(),
        )
        .unwrap();
        stored["credentials"]
            .as_object_mut()
            .unwrap()
            .remove("external_id");
        let read: Subscription = serde_json::from_value(stored).unwrap();
        assert!(read.validate().is_err());
        // With one it is accepted.
        spec.credentials = Credentials::AssumeRole {
            role_arn: ROLE.to_owned(),
            external_id: Some("dpl-0dfc7900".to_owned()),
        };
        Subscription::new(SubscriptionId::from_bits(1), spec, at(0)).unwrap();
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
}
