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

async fn create(
    iam: &aws_sdk_iam::Client,
    user: &str,
    policy: &str,
    oem: &str,
) -> anyhow::Result<()> {
    match iam
        .create_user()
        .user_name(user)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("dpl:oem")
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

async fn refresh(iam: &aws_sdk_iam::Client, user: &str, policy: &str) -> anyhow::Result<()> {
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
                    refresh(&iam, &user, &policy).await
                }
                CredentialsAction::Revoke { oem, yes } => {
                    let user = user_name(&oem)?;
                    if !yes {
                        bail!(
                            "this deletes {user} and its access keys: the OEM's downloads stop; \
                             pass --yes to confirm"
                        );
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
        let error = parse_type("datapoints").unwrap_err().to_string();
        assert!(
            error.contains("not one of activation, connection"),
            "{error}"
        );
    }
}
