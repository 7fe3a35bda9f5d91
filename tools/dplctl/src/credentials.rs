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
use clap::{Args, Subcommand};
use dpl::export::access::{
    self, partition, read_policy, AccessError, ExportAccess, NewKey, MAX_URL_SECONDS,
};
use dpl::export::keys::{check_oem_id, parse_hour};
use dpl::export::Partition;
use dpl::EventType;

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
    Ok(access::user_name(oem)?)
}

/// The export type named on the command line (`connectivity` is taken for
/// `connection`).
pub fn parse_type(text: &str) -> anyhow::Result<EventType> {
    access::parse_type(text).map_err(|e| anyhow::anyhow!("--type {e}"))
}

fn bucket_name(flag: Option<String>) -> anyhow::Result<String> {
    flag.or_else(|| std::env::var(dpl::export::config::BUCKET_VAR).ok())
        .filter(|b| !b.trim().is_empty())
        .context("no export bucket: pass --bucket or set BUCKET")
}

/// The one-time display of a new access key.
fn print_key(key: &NewKey) {
    println!("user:              {}", key.user);
    println!("access key id:     {}", key.access_key_id);
    println!("secret access key: {}", key.secret_access_key);
    eprintln!(
        "The secret access key is shown this once and stored nowhere: hand it to the \
         customer over a secure channel now. Lost? `dplctl export credentials refresh`."
    );
}

async fn create(access: &ExportAccess, user: &str, policy: &str, oem: &str) -> anyhow::Result<()> {
    match access.create(user, policy, oem).await {
        Ok(key) => {
            eprintln!("created {user}");
            print_key(&key);
            Ok(())
        }
        Err(AccessError::Exists { .. }) => bail!(
            "{user} exists already: `dplctl export credentials refresh --oem {oem}` gives it a \
             new key"
        ),
        Err(e) => Err(e.into()),
    }
}

async fn refresh(access: &ExportAccess, user: &str, policy: &str, oem: &str) -> anyhow::Result<()> {
    match access.refresh(user, policy, oem).await {
        Ok((key, old)) => {
            eprintln!(
                "{user}: new access key; old key(s) deleted: {}",
                old.join(", ")
            );
            print_key(&key);
            Ok(())
        }
        Err(AccessError::NoUser { .. }) => {
            bail!("{user} does not exist: create it with `dplctl export credentials create`")
        }
        Err(e @ AccessError::TooManyKeys { .. }) => {
            bail!("{e}: revoke and create the credentials again")
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn run(command: ExportCommand) -> anyhow::Result<()> {
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
    let layout = crate::layout()?;
    match command {
        ExportCommand::Credentials { action } => {
            let boundary = std::env::var(access::BOUNDARY_VAR)
                .ok()
                .filter(|b| !b.trim().is_empty());
            let iam = ExportAccess::from_sdk_config(&aws).with_boundary(boundary);
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
                    iam.revoke(&user, &oem).await?;
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
            let url = dpl::export::s3::presigned_url(&store, &key, Duration::from_secs(expires_in))
                .await?;
            println!("{url}");
            Ok(())
        }
    }
}
