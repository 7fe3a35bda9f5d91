//! `dplctl export credentials create|refresh|revoke` and `dplctl export
//! url`: what a customer downloads its OEM's CSV files with.
//!
//! Credentials are an IAM user per OEM, `dpl-export-{oem}`, whose only
//! permission is an inline policy ([`read_policy`]): list the bucket under
//! `exports/{oem}/` and read objects there. Nothing else of the bucket
//! (other OEMs, staging, manifests) is readable with it. The secret access
//! key is printed once, by `create` and `refresh`, and stored nowhere by us.
//!
//! `url` pre-signs a GET of one hour's CSV file with the operator's own
//! credentials: the link works for its lifetime (at most 7 days, and never
//! longer than the signing credentials), without an IAM user.

use std::time::Duration;

use anyhow::{bail, Context};
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::presigning::PresigningConfig;
use clap::{Args, Subcommand};
use dpl::csv::export_name;
use dpl::export::keys::{check_oem_id, parse_hour};
use dpl::export::{Layout, Partition};
use dpl::EventType;

/// IAM user names: 1 to 64 of `[\w+=,.@-]` (IAM API Reference,
/// `CreateUser`, `UserName`).
const MAX_USER_NAME: usize = 64;

/// Prefix of the per-OEM users.
pub const USER_PREFIX: &str = "dpl-export-";

/// Name of the inline policy.
pub const POLICY_NAME: &str = "dpl-export-read";

/// Longest lifetime of a pre-signed URL signed with SigV4: 7 days (Amazon S3
/// User Guide, "Sharing objects with presigned URLs").
const MAX_URL_SECONDS: u64 = 7 * 24 * 3600;

/// Per-attempt limit of one IAM or S3 call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Subcommand)]
pub enum ExportCommand {
    /// Download credentials of one OEM: an IAM user `dpl-export-{oem}` that
    /// may only list and read `exports/{oem}/` of the bucket.
    Credentials {
        #[command(subcommand)]
        action: CredentialsAction,
    },
    /// Print a pre-signed HTTPS URL of one hour's CSV file of one OEM and
    /// type, signed with your own credentials.
    Url {
        /// The OEM.
        #[arg(long)]
        oem: String,
        /// The event type as exported: activation, connection, datapoint,
        /// datapointack, location, registration (`connectivity` is accepted
        /// for connection).
        #[arg(long = "type")]
        event_type: String,
        /// The hour, UTC: `2020-08-28T09`.
        #[arg(long)]
        hour: String,
        /// How long the URL works, in seconds (at most 604800, 7 days; and
        /// never longer than the credentials that sign it).
        #[arg(long, default_value_t = 3600)]
        expires_in: u64,
        /// The export bucket (default: $BUCKET).
        #[arg(long)]
        bucket: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum CredentialsAction {
    /// Create the OEM's IAM user, its read-only policy and an access key;
    /// print the key, once (it cannot be shown again).
    Create(OemArgs),
    /// Create a new access key and delete the old one(s); print the new
    /// key, once. The old key stops working at once.
    Refresh(OemArgs),
    /// Delete the OEM's access keys, policy and user: downloads stop at once.
    Revoke {
        /// The OEM.
        #[arg(long)]
        oem: String,
        /// Confirm the revocation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args)]
pub struct OemArgs {
    /// The OEM.
    #[arg(long)]
    pub oem: String,
    /// The export bucket (default: $BUCKET).
    #[arg(long)]
    pub bucket: Option<String>,
}

/// The IAM user of `oem`'s download credentials.
pub fn user_name(oem: &str) -> anyhow::Result<String> {
    check_oem_id(oem)?;
    let name = format!("{USER_PREFIX}{oem}");
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    if name.len() > MAX_USER_NAME || !name.chars().all(allowed) {
        bail!(
            "OEM id {oem:?} cannot be part of an IAM user name ({USER_PREFIX}OEM: at most \
             {MAX_USER_NAME} characters of letters, digits and _+=,.@-)"
        );
    }
    Ok(name)
}

/// IAM user names are unique regardless of case, and IAM finds a user by
/// any casing of its name (IAM User Guide, "IAM identifiers": "user names
/// ... are not distinguished by case. For example, you cannot create
/// groups named both ADMINS and admins"). OEM ids are case-sensitive, so
/// two OEMs `abc` and `ABC` would share `dpl-export-abc`: the second is
/// refused at `create` ([`colliding_user`]), and `refresh` and `revoke`
/// act only on a user whose exact name and `dpl:oem` tag are this OEM's
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
) -> anyhow::Result<()> {
    if found_name != user {
        bail!(
            "OEM id {oem:?} finds the IAM user {found_name}, not {user}: IAM user names ignore \
             case, so that user belongs to another OEM id; nothing was changed"
        );
    }
    match found_oem_tag {
        Some(tag) if tag == oem => Ok(()),
        Some(tag) => bail!(
            "{user} is tagged {OEM_TAG}={tag:?}, not {oem:?}: it is another OEM's user; nothing \
             was changed"
        ),
        None => bail!("{user} has no {OEM_TAG} tag: not made by dplctl; nothing was changed"),
    }
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

/// The export type named on the command line (`connectivity` is taken for
/// `connection`).
pub fn parse_type(text: &str) -> anyhow::Result<EventType> {
    EventType::ALL
        .into_iter()
        .find(|t| export_name(*t) == text || t.as_str() == text)
        .with_context(|| {
            let names: Vec<&str> = EventType::ALL.into_iter().map(export_name).collect();
            format!("--type {text}: not one of {}", names.join(", "))
        })
}

fn bucket_name(flag: Option<String>) -> anyhow::Result<String> {
    flag.or_else(|| std::env::var(dpl::export::config::BUCKET_VAR).ok())
        .filter(|b| !b.trim().is_empty())
        .context("no export bucket: pass --bucket or set BUCKET")
}

fn iam_error<E>(what: &str, error: aws_sdk_iam::error::SdkError<E>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    anyhow::anyhow!("{what}: {}", DisplayErrorContext(&error))
}

fn is_code<E: ProvideErrorMetadata>(error: &aws_sdk_iam::error::SdkError<E>, code: &str) -> bool {
    error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        == Some(code)
}

/// The one-time display of a new access key.
fn print_key(user: &str, key: &aws_sdk_iam::types::AccessKey) {
    println!("user:              {user}");
    println!("access key id:     {}", key.access_key_id());
    println!("secret access key: {}", key.secret_access_key());
    eprintln!(
        "The secret access key is shown this once and stored nowhere: hand it to the \
         customer over a secure channel now. Lost? `dplctl export credentials refresh`."
    );
}

async fn access_keys(iam: &aws_sdk_iam::Client, user: &str) -> anyhow::Result<Vec<String>> {
    let listed = iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map_err(|e| iam_error(&format!("listing the access keys of {user}"), e))?;
    Ok(listed
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id().map(str::to_owned))
        .collect())
}

async fn put_policy(iam: &aws_sdk_iam::Client, user: &str, policy: &str) -> anyhow::Result<()> {
    iam.put_user_policy()
        .user_name(user)
        .policy_name(POLICY_NAME)
        .policy_document(policy)
        .send()
        .await
        .map_err(|e| iam_error(&format!("attaching the policy to {user}"), e))?;
    Ok(())
}

async fn new_key(
    iam: &aws_sdk_iam::Client,
    user: &str,
) -> anyhow::Result<aws_sdk_iam::types::AccessKey> {
    iam.create_access_key()
        .user_name(user)
        .send()
        .await
        .map_err(|e| iam_error(&format!("creating an access key of {user}"), e))?
        .access_key
        .context("CreateAccessKey answered without a key")
}

/// Every IAM user whose name starts with [`USER_PREFIX`] in any case.
async fn download_users(iam: &aws_sdk_iam::Client) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut pages = iam.list_users().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| iam_error("listing the IAM users", e))?;
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

/// The user IAM finds for `user`, checked to be `oem`'s ([`check_owner`]);
/// `Ok(false)` when there is none.
async fn owned_user(iam: &aws_sdk_iam::Client, user: &str, oem: &str) -> anyhow::Result<bool> {
    let found = match iam.get_user().user_name(user).send().await {
        Ok(found) => found,
        Err(e) if is_code(&e, "NoSuchEntity") => return Ok(false),
        Err(e) => return Err(iam_error(&format!("reading {user}"), e)),
    };
    let found = found.user.context("GetUser answered without a user")?;
    let tags = iam
        .list_user_tags()
        .user_name(found.user_name())
        .send()
        .await
        .map_err(|e| iam_error(&format!("reading the tags of {}", found.user_name()), e))?;
    let tag = tags
        .tags()
        .iter()
        .find(|t| t.key() == OEM_TAG)
        .map(|t| t.value());
    check_owner(user, oem, found.user_name(), tag)?;
    Ok(true)
}

async fn create(
    iam: &aws_sdk_iam::Client,
    user: &str,
    policy: &str,
    oem: &str,
) -> anyhow::Result<()> {
    if let Some(other) = colliding_user(user, &download_users(iam).await?) {
        bail!(
            "OEM id {oem:?} collides with the existing user {other}: IAM user names ignore case, \
             so {user} would be that user; give this OEM's download credentials another way"
        );
    }
    match iam
        .create_user()
        .user_name(user)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key(OEM_TAG)
                .value(oem)
                .build()?,
        )
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if is_code(&e, "EntityAlreadyExists") => bail!(
            "{user} exists already: `dplctl export credentials refresh --oem {oem}` gives it a \
             new key"
        ),
        Err(e) => return Err(iam_error(&format!("creating {user}"), e)),
    }
    let key = async {
        put_policy(iam, user, policy).await?;
        new_key(iam, user).await
    }
    .await;
    match key {
        Ok(key) => {
            eprintln!("created {user}");
            print_key(user, &key);
            Ok(())
        }
        Err(error) => match revoke(iam, user).await {
            Ok(()) => Err(error.context(format!("{user} was deleted again"))),
            Err(cleanup) => Err(error.context(format!(
                "deleting {user} again failed too ({cleanup:#}): run `dplctl export credentials \
                 revoke --oem {oem} --yes`"
            ))),
        },
    }
}

async fn refresh(
    iam: &aws_sdk_iam::Client,
    user: &str,
    policy: &str,
    oem: &str,
) -> anyhow::Result<()> {
    if !owned_user(iam, user, oem).await? {
        bail!("{user} does not exist: create it with `dplctl export credentials create`");
    }
    let old = match access_keys(iam, user).await {
        Ok(keys) => keys,
        Err(e) if format!("{e:#}").contains("NoSuchEntity") => {
            bail!("{user} does not exist: create it with `dplctl export credentials create`")
        }
        Err(e) => return Err(e),
    };
    if old.len() >= 2 {
        bail!(
            "{user} has {} access keys, the most IAM allows: revoke and create the credentials \
             again",
            old.len()
        );
    }
    // The policy too, in case the bucket or the layout changed.
    put_policy(iam, user, policy).await?;
    let key = new_key(iam, user).await?;
    for id in &old {
        iam.delete_access_key()
            .user_name(user)
            .access_key_id(id)
            .send()
            .await
            .map_err(|e| {
                iam_error(
                    &format!("new key made, but deleting the old key {id} of {user} failed: delete it by hand"),
                    e,
                )
            })?;
    }
    eprintln!(
        "{user}: new access key; old key(s) deleted: {}",
        old.join(", ")
    );
    print_key(user, &key);
    Ok(())
}

/// Deletes the user's keys, policy and the user; a part already gone is
/// skipped.
async fn revoke(iam: &aws_sdk_iam::Client, user: &str) -> anyhow::Result<()> {
    let keys = match access_keys(iam, user).await {
        Ok(keys) => keys,
        Err(e) if format!("{e:#}").contains("NoSuchEntity") => bail!("{user} does not exist"),
        Err(e) => return Err(e),
    };
    for id in &keys {
        iam.delete_access_key()
            .user_name(user)
            .access_key_id(id)
            .send()
            .await
            .map_err(|e| iam_error(&format!("deleting the access key {id} of {user}"), e))?;
    }
    match iam
        .delete_user_policy()
        .user_name(user)
        .policy_name(POLICY_NAME)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if is_code(&e, "NoSuchEntity") => {}
        Err(e) => return Err(iam_error(&format!("deleting the policy of {user}"), e)),
    }
    iam.delete_user()
        .user_name(user)
        .send()
        .await
        .map_err(|e| iam_error(&format!("deleting {user}"), e))?;
    Ok(())
}

pub async fn run(command: ExportCommand) -> anyhow::Result<()> {
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
    let layout = crate::layout()?;
    match command {
        ExportCommand::Credentials { action } => {
            let iam = aws_sdk_iam::Client::new(&aws);
            let region = aws.region().map(|r| r.to_string()).unwrap_or_default();
            match action {
                CredentialsAction::Create(args) => {
                    let user = user_name(&args.oem)?;
                    let bucket = bucket_name(args.bucket)?;
                    let policy = read_policy(partition(&region), &bucket, &layout, &args.oem);
                    create(&iam, &user, &policy, &args.oem).await
                }
                CredentialsAction::Refresh(args) => {
                    let user = user_name(&args.oem)?;
                    let bucket = bucket_name(args.bucket)?;
                    let policy = read_policy(partition(&region), &bucket, &layout, &args.oem);
                    refresh(&iam, &user, &policy, &args.oem).await
                }
                CredentialsAction::Revoke { oem, yes } => {
                    let user = user_name(&oem)?;
                    if !yes {
                        bail!(
                            "this deletes {user} and its access keys: the OEM's downloads stop; \
                             pass --yes to confirm"
                        );
                    }
                    if !owned_user(&iam, &user, &oem).await? {
                        bail!("{user} does not exist");
                    }
                    revoke(&iam, &user).await?;
                    println!("revoked {user}: access keys, policy and user deleted");
                    Ok(())
                }
            }
        }
        ExportCommand::Url {
            oem,
            event_type,
            hour,
            expires_in,
            bucket,
        } => {
            if expires_in == 0 || expires_in > MAX_URL_SECONDS {
                bail!("--expires-in {expires_in}: 1 to {MAX_URL_SECONDS} seconds");
            }
            check_oem_id(&oem)?;
            let partition = Partition {
                hour: parse_hour(&hour)?,
                oem_id: oem,
                event_type: parse_type(&event_type)?,
            };
            let bucket = bucket_name(bucket)?;
            let store = dpl::export::s3::S3Store::from_sdk_config(&aws, &bucket);
            let key = layout.export_key(&partition);
            let head = store
                .client()
                .head_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await;
            if let Err(error) = head {
                if error.as_service_error().is_some_and(|e| e.is_not_found()) {
                    bail!("no export file s3://{bucket}/{key}: nothing exported for that hour");
                }
                bail!("s3://{bucket}/{key}: {}", DisplayErrorContext(&error));
            }
            let presigned = store
                .client()
                .get_object()
                .bucket(&bucket)
                .key(&key)
                .presigned(PresigningConfig::expires_in(Duration::from_secs(
                    expires_in,
                ))?)
                .await
                .with_context(|| format!("pre-signing s3://{bucket}/{key}"))?;
            println!("{}", presigned.uri());
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
        let partition = dpl::export::Partition {
            hour: dpl::Timestamp::parse("2020-08-28T09:00:00Z").unwrap(),
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
    fn user_names_fit_iam() {
        assert_eq!(user_name("abcd1234").unwrap(), "dpl-export-abcd1234");
        for bad in ["", "a/b", "a b", "ä", &"x".repeat(54)] {
            assert!(user_name(bad).is_err(), "{bad:?}");
        }
        assert!(user_name(&"x".repeat(53)).is_ok());
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
        let error = parse_type("datapoints").unwrap_err().to_string();
        assert!(
            error.contains("not one of activation, connection"),
            "{error}"
        );
    }
}
