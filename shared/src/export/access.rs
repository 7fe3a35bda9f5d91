//! Customers' download access to their OEM's export files: an IAM user per
//! OEM, `dpl-export-{oem}`, whose only permission is an inline policy
//! ([`read_policy`]): list the bucket under `exports/{oem}/` and read
//! objects there. Nothing else of the bucket (other OEMs, staging,
//! manifests) is readable with it. A new secret access key is handed to the
//! caller once ([`NewKey`]) and stored nowhere by us.
//!
//! Used by `dplctl export credentials` and the HTTP API (`functions/api`).
//! The naming and the policy are pure; [`ExportAccess`] (feature `iam`)
//! makes the IAM calls.

use crate::csv::export_name;
use crate::export::keys::check_oem_id;
use crate::export::Layout;
use crate::EventType;

/// IAM user names: 1 to 64 of `[\w+=,.@-]` (IAM API Reference,
/// `CreateUser`, `UserName`).
pub const MAX_USER_NAME: usize = 64;

/// Prefix of the per-OEM users.
pub const USER_PREFIX: &str = "dpl-export-";

/// Name of the inline policy.
pub const POLICY_NAME: &str = "dpl-export-read";

/// IAM allows two access keys per user (IAM User Guide, "IAM and AWS STS
/// quotas": access keys assigned to an IAM user, 2).
pub const MAX_ACCESS_KEYS: usize = 2;

/// The managed policy every download user is bounded by (optional; the
/// deployed API sets it, `template.yaml` `ExportUserBoundary`).
pub const BOUNDARY_VAR: &str = "EXPORT_USER_BOUNDARY_ARN";

/// Longest lifetime of a pre-signed URL signed with SigV4: 7 days (Amazon S3
/// User Guide, "Sharing objects with presigned URLs").
pub const MAX_URL_SECONDS: u64 = 7 * 24 * 3600;

/// Why download access could not be given, changed or taken away. Messages
/// never hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error(
        "OEM id {0:?} cannot be part of an IAM user name ({USER_PREFIX}OEM: at most \
         {MAX_USER_NAME} characters of letters, digits and _+=,.@-)"
    )]
    BadOem(String),
    #[error("{user} exists already")]
    Exists { user: String },
    #[error("{user} does not exist")]
    NoUser { user: String },
    #[error("{user} has {count} access keys, the most IAM allows")]
    TooManyKeys { user: String, count: usize },
    #[error("{what}: {message}")]
    Service { what: String, message: String },
}

/// The IAM user of `oem`'s download credentials.
pub fn user_name(oem: &str) -> Result<String, AccessError> {
    check_oem_id(oem).map_err(|_| AccessError::BadOem(oem.to_owned()))?;
    let name = format!("{USER_PREFIX}{oem}");
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    if name.len() > MAX_USER_NAME || !name.chars().all(allowed) {
        return Err(AccessError::BadOem(oem.to_owned()));
    }
    Ok(name)
}

/// The AWS partition of a region (`aws-cn` for `cn-*`, `aws-us-gov` for
/// `us-gov-*`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The inline policy of `oem`'s user: `s3:ListBucket` on the bucket for
/// prefixes under `{exports}/{oem}/` only, `s3:GetObject` on objects there.
pub fn read_policy(aws_partition: &str, bucket: &str, layout: &Layout, oem: &str) -> String {
    let folder = format!("{}/{oem}/", layout.exports);
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListOwnExports",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": format!("arn:{aws_partition}:s3:::{bucket}"),
                "Condition": {"StringLike": {"s3:prefix": [folder.clone(), format!("{folder}*")]}}
            },
            {
                "Sid": "ReadOwnExports",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": format!("arn:{aws_partition}:s3:::{bucket}/{folder}*")
            }
        ]
    })
    .to_string()
}

/// An export type by its export name (`connection`) or event type name
/// (`connectivity`); the error lists the export names.
pub fn parse_type(text: &str) -> Result<EventType, String> {
    EventType::ALL
        .into_iter()
        .find(|t| export_name(*t) == text || t.as_str() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = EventType::ALL.into_iter().map(export_name).collect();
            format!("{text}: not one of {}", names.join(", "))
        })
}

/// A new access key: shown once, then forgotten. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct NewKey {
    pub user: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("user", &self.user)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

#[cfg(feature = "iam")]
pub use self::iam::ExportAccess;

#[cfg(feature = "iam")]
mod iam {
    use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

    use super::{AccessError, NewKey, MAX_ACCESS_KEYS, POLICY_NAME};

    fn service<E>(what: impl Into<String>, error: SdkError<E>) -> AccessError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        AccessError::Service {
            what: what.into(),
            message: DisplayErrorContext(&error).to_string(),
        }
    }

    fn is_code<E: ProvideErrorMetadata>(error: &SdkError<E>, code: &str) -> bool {
        error
            .as_service_error()
            .and_then(ProvideErrorMetadata::code)
            == Some(code)
    }

    /// The IAM calls of download access.
    #[derive(Clone, Debug)]
    pub struct ExportAccess {
        iam: aws_sdk_iam::Client,
        boundary: Option<String>,
    }

    impl ExportAccess {
        pub fn new(iam: aws_sdk_iam::Client) -> Self {
            Self {
                iam,
                boundary: None,
            }
        }

        /// Users are created with this permissions boundary (a managed
        /// policy's ARN): whatever their inline policy says, they can do
        /// no more than it allows. The deployed API may create users only
        /// with it (`template.yaml`, `ExportUserBoundary`), so that its
        /// IAM rights cannot be turned into wider ones.
        pub fn with_boundary(mut self, boundary: Option<String>) -> Self {
            self.boundary = boundary;
            self
        }

        pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
            Self::new(aws_sdk_iam::Client::new(sdk))
        }

        /// The ids of the user's access keys; [`AccessError::NoUser`] if it
        /// does not exist.
        pub async fn keys(&self, user: &str) -> Result<Vec<String>, AccessError> {
            let listed = self.iam.list_access_keys().user_name(user).send().await;
            match listed {
                Ok(listed) => Ok(listed
                    .access_key_metadata()
                    .iter()
                    .filter_map(|k| k.access_key_id().map(str::to_owned))
                    .collect()),
                Err(e) if is_code(&e, "NoSuchEntity") => Err(AccessError::NoUser {
                    user: user.to_owned(),
                }),
                Err(e) => Err(service(format!("listing the access keys of {user}"), e)),
            }
        }

        async fn put_policy(&self, user: &str, policy: &str) -> Result<(), AccessError> {
            self.iam
                .put_user_policy()
                .user_name(user)
                .policy_name(POLICY_NAME)
                .policy_document(policy)
                .send()
                .await
                .map_err(|e| service(format!("attaching the policy to {user}"), e))?;
            Ok(())
        }

        async fn new_key(&self, user: &str) -> Result<NewKey, AccessError> {
            let key = self
                .iam
                .create_access_key()
                .user_name(user)
                .send()
                .await
                .map_err(|e| service(format!("creating an access key of {user}"), e))?
                .access_key
                .ok_or_else(|| AccessError::Service {
                    what: format!("creating an access key of {user}"),
                    message: "CreateAccessKey answered without a key".into(),
                })?;
            Ok(NewKey {
                user: user.to_owned(),
                access_key_id: key.access_key_id().to_owned(),
                secret_access_key: key.secret_access_key().to_owned(),
            })
        }

        /// Creates the user (tagged `dpl:oem`), its policy and a key. If
        /// the policy or the key fails, the user is deleted again; the
        /// error says whether that worked.
        pub async fn create(
            &self,
            user: &str,
            policy: &str,
            oem: &str,
        ) -> Result<NewKey, AccessError> {
            let tag = aws_sdk_iam::types::Tag::builder()
                .key("dpl:oem")
                .value(oem)
                .build()
                .map_err(|e| AccessError::Service {
                    what: format!("tagging {user}"),
                    message: e.to_string(),
                })?;
            match self
                .iam
                .create_user()
                .user_name(user)
                .tags(tag)
                .set_permissions_boundary(self.boundary.clone())
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is_code(&e, "EntityAlreadyExists") => {
                    return Err(AccessError::Exists {
                        user: user.to_owned(),
                    })
                }
                Err(e) => return Err(service(format!("creating {user}"), e)),
            }
            let key = async {
                self.put_policy(user, policy).await?;
                self.new_key(user).await
            }
            .await;
            match key {
                Ok(key) => Ok(key),
                Err(error) => match self.revoke(user).await {
                    Ok(()) => Err(AccessError::Service {
                        what: format!("{error}"),
                        message: format!("{user} was deleted again"),
                    }),
                    Err(cleanup) => Err(AccessError::Service {
                        what: format!("{error}"),
                        message: format!(
                            "deleting {user} again failed too ({cleanup}): revoke the \
                             credentials"
                        ),
                    }),
                },
            }
        }

        /// A new key (the policy put again, in case the bucket or layout
        /// changed); the old keys are deleted. Returns the new key and the
        /// ids of the deleted ones.
        pub async fn refresh(
            &self,
            user: &str,
            policy: &str,
        ) -> Result<(NewKey, Vec<String>), AccessError> {
            let old = self.keys(user).await?;
            if old.len() >= MAX_ACCESS_KEYS {
                return Err(AccessError::TooManyKeys {
                    user: user.to_owned(),
                    count: old.len(),
                });
            }
            self.put_policy(user, policy).await?;
            let key = self.new_key(user).await?;
            for id in &old {
                self.iam
                    .delete_access_key()
                    .user_name(user)
                    .access_key_id(id)
                    .send()
                    .await
                    .map_err(|e| {
                        service(
                            format!(
                                "new key made, but deleting the old key {id} of {user} failed: \
                                 delete it by hand"
                            ),
                            e,
                        )
                    })?;
            }
            Ok((key, old))
        }

        /// Deletes the user's keys, policy and the user; a policy already
        /// gone is skipped. [`AccessError::NoUser`] if there is no user.
        pub async fn revoke(&self, user: &str) -> Result<(), AccessError> {
            for id in &self.keys(user).await? {
                self.iam
                    .delete_access_key()
                    .user_name(user)
                    .access_key_id(id)
                    .send()
                    .await
                    .map_err(|e| service(format!("deleting the access key {id} of {user}"), e))?;
            }
            match self
                .iam
                .delete_user_policy()
                .user_name(user)
                .policy_name(POLICY_NAME)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is_code(&e, "NoSuchEntity") => {}
                Err(e) => return Err(service(format!("deleting the policy of {user}"), e)),
            }
            self.iam
                .delete_user()
                .user_name(user)
                .send()
                .await
                .map_err(|e| service(format!("deleting {user}"), e))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_the_oem_folder_only() {
        let policy: serde_json::Value =
            serde_json::from_str(&read_policy("aws", "b", &Layout::default(), "abcd1234")).unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0]["Action"], "s3:ListBucket");
        assert_eq!(statements[0]["Resource"], "arn:aws:s3:::b");
        assert_eq!(
            statements[0]["Condition"]["StringLike"]["s3:prefix"],
            serde_json::json!(["exports/abcd1234/", "exports/abcd1234/*"])
        );
        assert_eq!(statements[1]["Action"], "s3:GetObject");
        assert_eq!(
            statements[1]["Resource"],
            "arn:aws:s3:::b/exports/abcd1234/*"
        );
        for statement in statements {
            assert_eq!(statement["Effect"], "Allow");
        }
    }

    #[test]
    fn user_names_fit_iam() {
        assert_eq!(user_name("abcd1234").unwrap(), "dpl-export-abcd1234");
        for bad in ["", "a/b", "a b", "ä", &"x".repeat(54)] {
            assert!(user_name(bad).is_err(), "{bad:?}");
        }
        assert!(user_name(&"x".repeat(53)).is_ok());
    }

    #[test]
    fn partitions_follow_the_region() {
        assert_eq!(partition("eu-west-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }

    #[test]
    fn types_are_export_names_or_event_types() {
        assert_eq!(parse_type("connection").unwrap(), EventType::Connectivity);
        assert_eq!(parse_type("connectivity").unwrap(), EventType::Connectivity);
        assert_eq!(parse_type("datapointack").unwrap(), EventType::DatapointAck);
        let error = parse_type("datapoints").unwrap_err();
        assert!(
            error.contains("not one of activation, connection"),
            "{error}"
        );
    }

    #[test]
    fn a_new_key_never_prints_its_secret() {
        let key = NewKey {
            user: "u".into(),
            access_key_id: "AKIA".into(),
            secret_access_key: "very-secret".into(),
        };
        assert!(!format!("{key:?}").contains("very-secret"));
    }
}
