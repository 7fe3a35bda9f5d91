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
    #[error(
        "OEM id {oem:?} collides with the existing user {other}: IAM user names ignore case, \
         so {user} would be that user; give this OEM's download credentials another way"
    )]
    Collides {
        oem: String,
        user: String,
        other: String,
    },
    #[error("{0}; nothing was changed")]
    NotOwned(String),
    #[error("{what}: {message}")]
    Service { what: String, message: String },
}

/// IAM user names are unique regardless of case, and IAM finds a user by
/// any casing of its name (IAM User Guide, "IAM identifiers": "user names
/// ... are not distinguished by case. For example, you cannot create
/// groups named both ADMINS and admins"). OEM ids are case-sensitive, so
/// two OEMs `abc` and `ABC` would share `dpl-export-abc`: the second is
/// refused at `create` ([`colliding_user`]), and `refresh` and `revoke`
/// act only on a user whose exact name and [`OEM_TAG`] are this OEM's
/// ([`check_owner`]).
///
/// The existing user, among `existing` names, that `user` would be in IAM
/// while being another name: an OEM id differing from another only in case.
pub fn colliding_user<'a>(user: &str, existing: &'a [String]) -> Option<&'a str> {
    existing
        .iter()
        .map(String::as_str)
        .find(|name| name.eq_ignore_ascii_case(user) && *name != user)
}

/// Tag naming the OEM of a download user.
pub const OEM_TAG: &str = "dpl:oem";

/// Refuses to act on the user IAM found for `oem` unless it is exactly
/// `user` and tagged with exactly `oem` (see [`colliding_user`]).
pub fn check_owner(
    user: &str,
    oem: &str,
    found_name: &str,
    found_oem_tag: Option<&str>,
) -> Result<(), AccessError> {
    if found_name != user {
        return Err(AccessError::NotOwned(format!(
            "OEM id {oem:?} finds the IAM user {found_name}, not {user}: IAM user names ignore \
             case, so that user belongs to another OEM id"
        )));
    }
    match found_oem_tag {
        Some(tag) if tag == oem => Ok(()),
        Some(tag) => Err(AccessError::NotOwned(format!(
            "{user} is tagged {OEM_TAG}={tag:?}, not {oem:?}: it is another OEM's user"
        ))),
        None => Err(AccessError::NotOwned(format!(
            "{user} has no {OEM_TAG} tag: not made by dplctl or the API"
        ))),
    }
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
/// prefixes under `{exports}/{oem}/` only, `s3:GetObject` on objects there;
/// and an explicit deny of listing any other prefix, so that no other
/// policy attached to the user (a group's, say) can widen it: an explicit
/// deny wins over every allow (IAM User Guide, "Policy evaluation logic").
/// A listing without a prefix is denied too (`StringNotLike` holds when
/// the key is absent).
pub fn read_policy(aws_partition: &str, bucket: &str, layout: &Layout, oem: &str) -> String {
    let folder = format!("{}/{oem}/", layout.exports);
    let own = [folder.clone(), format!("{folder}*")];
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListOwnExports",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": format!("arn:{aws_partition}:s3:::{bucket}"),
                "Condition": {"StringLike": {"s3:prefix": own.clone()}}
            },
            {
                "Sid": "ListNothingElse",
                "Effect": "Deny",
                "Action": "s3:ListBucket",
                "Resource": format!("arn:{aws_partition}:s3:::{bucket}"),
                "Condition": {"StringNotLike": {"s3:prefix": own}}
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

    use super::{
        check_owner, colliding_user, AccessError, NewKey, MAX_ACCESS_KEYS, OEM_TAG, POLICY_NAME,
        USER_PREFIX,
    };

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

        /// Every IAM user whose name starts with [`USER_PREFIX`] in any case.
        async fn download_users(&self) -> Result<Vec<String>, AccessError> {
            let mut names = Vec::new();
            let mut pages = self.iam.list_users().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| service("listing the IAM users", e))?;
                names.extend(
                    page.users()
                        .iter()
                        .map(|u| u.user_name().to_owned())
                        .filter(|n| {
                            n.get(..USER_PREFIX.len())
                                .is_some_and(|p| p.eq_ignore_ascii_case(USER_PREFIX))
                        }),
                );
            }
            Ok(names)
        }

        /// Checks that the user IAM finds for `user` is `oem`'s
        /// ([`check_owner`]); [`AccessError::NoUser`] when there is none.
        async fn check_owned(&self, user: &str, oem: &str) -> Result<(), AccessError> {
            let found = match self.iam.get_user().user_name(user).send().await {
                Ok(found) => found.user.ok_or_else(|| AccessError::Service {
                    what: format!("reading {user}"),
                    message: "GetUser answered without a user".into(),
                })?,
                Err(e) if is_code(&e, "NoSuchEntity") => {
                    return Err(AccessError::NoUser {
                        user: user.to_owned(),
                    })
                }
                Err(e) => return Err(service(format!("reading {user}"), e)),
            };
            let tags = self
                .iam
                .list_user_tags()
                .user_name(found.user_name())
                .send()
                .await
                .map_err(|e| service(format!("reading the tags of {}", found.user_name()), e))?;
            let tag = tags
                .tags()
                .iter()
                .find(|t| t.key() == OEM_TAG)
                .map(|t| t.value());
            check_owner(user, oem, found.user_name(), tag)
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
            if let Some(other) = colliding_user(user, &self.download_users().await?) {
                return Err(AccessError::Collides {
                    oem: oem.to_owned(),
                    user: user.to_owned(),
                    other: other.to_owned(),
                });
            }
            let tag = aws_sdk_iam::types::Tag::builder()
                .key(OEM_TAG)
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
                Err(error) => match self.remove(user).await {
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
            oem: &str,
        ) -> Result<(NewKey, Vec<String>), AccessError> {
            self.check_owned(user, oem).await?;
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

        /// Deletes `oem`'s user's keys, policy and the user, once it is
        /// checked to be `oem`'s; [`AccessError::NoUser`] if there is none.
        pub async fn revoke(&self, user: &str, oem: &str) -> Result<(), AccessError> {
            self.check_owned(user, oem).await?;
            self.remove(user).await
        }

        /// Deletes the user's keys, policy and the user; a policy already
        /// gone is skipped. [`AccessError::NoUser`] if there is no user.
        async fn remove(&self, user: &str) -> Result<(), AccessError> {
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
        assert_eq!(statements.len(), 3);
        let own = serde_json::json!(["exports/abcd1234/", "exports/abcd1234/*"]);
        assert_eq!(statements[0]["Action"], "s3:ListBucket");
        assert_eq!(statements[0]["Effect"], "Allow");
        assert_eq!(statements[0]["Resource"], "arn:aws:s3:::b");
        assert_eq!(statements[0]["Condition"]["StringLike"]["s3:prefix"], own);
        assert_eq!(statements[1]["Action"], "s3:ListBucket");
        assert_eq!(statements[1]["Effect"], "Deny");
        assert_eq!(statements[1]["Resource"], "arn:aws:s3:::b");
        assert_eq!(
            statements[1]["Condition"]["StringNotLike"]["s3:prefix"],
            own
        );
        assert_eq!(statements[2]["Action"], "s3:GetObject");
        assert_eq!(statements[2]["Effect"], "Allow");
        assert_eq!(
            statements[2]["Resource"],
            "arn:aws:s3:::b/exports/abcd1234/*"
        );
    }

    #[test]
    fn the_oem_credentials_cover_its_customer_manifests() {
        let layout = Layout::default();
        let partition = crate::export::Partition {
            hour: crate::Timestamp::parse("2020-08-28T09:00:00Z").unwrap(),
            oem_id: "abcd1234".into(),
            event_type: EventType::Location,
        };
        let policy: serde_json::Value =
            serde_json::from_str(&read_policy("aws", "b", &layout, "abcd1234")).unwrap();
        let readable = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Action"] == "s3:GetObject")
            .expect("a GetObject statement")["Resource"]
            .as_str()
            .unwrap()
            .trim_end_matches('*')
            .to_owned();
        let key = layout.customer_manifest_key(&partition);
        assert!(
            format!("arn:aws:s3:::b/{key}").starts_with(&readable),
            "{key} is outside {readable}"
        );
        // Not inside the hour folder, which holds the CSV file alone.
        let folder = layout.export_key(&partition);
        let folder = &folder[..folder.rfind('/').unwrap() + 1];
        assert!(!key.starts_with(folder), "{key} in {folder}");
    }

    #[test]
    fn oem_ids_differing_only_in_case_collide() {
        let existing = vec![
            "dpl-export-abcd1234".to_owned(),
            "dpl-export-other".to_owned(),
        ];
        assert_eq!(
            colliding_user("dpl-export-ABCD1234", &existing),
            Some("dpl-export-abcd1234")
        );
        assert_eq!(colliding_user("dpl-export-abcd1234", &existing), None);
        assert_eq!(colliding_user("dpl-export-new", &existing), None);
    }

    #[test]
    fn only_the_oems_own_user_is_changed() {
        let user = "dpl-export-ABCD1234";
        check_owner(user, "ABCD1234", user, Some("ABCD1234")).unwrap();
        // IAM found the user by another casing of its name.
        let other = check_owner(user, "ABCD1234", "dpl-export-abcd1234", Some("abcd1234"));
        assert!(other.unwrap_err().to_string().contains("ignore case"));
        let tagged = check_owner(user, "ABCD1234", user, Some("abcd1234"));
        assert!(tagged.unwrap_err().to_string().contains("another OEM"));
        assert!(check_owner(user, "ABCD1234", user, None).is_err());
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
