//! `dplctl streams replay`: sends a subscription's events of past hours
//! again, from the stored events (the staging objects of its OEM), through
//! the normal delivery path ([`dpl::streams::operate::replay`], shared with
//! the HTTP API), with a progress bar.
//!
//! Per hour it reads the archive ([`dpl::streams::archive`], the same the
//! catch-up worker reads past the DPL stream's retention): the staging
//! objects of the OEM and of the types the subscription takes, merged the
//! way the export merges them, in (event time, stream order, event id)
//! order, each event once. The events the subscription
//! [accepts](Subscription::accepts) are sent in chunks of
//! `dpl::streams::operate::REPLAY_CHUNK`, in that order, each chunk after the previous one was
//! accepted whole. Memory is one chunk plus one reader per merged file.

use anyhow::Context;
use dpl::streams::archive::StagingArchive;
use dpl::streams::operate::{replay as replay_hours, Replayed};
use dpl::streams::subscription::Subscription;
use dpl::{EventType, Timestamp};
use indicatif::{ProgressBar, ProgressStyle};

/// The summary printed after a replay.
pub fn summary_text(
    subscription: &Subscription,
    hours: &[Timestamp],
    replayed: &Replayed,
    dry_run: bool,
) -> String {
    let (first, last) = (
        hours.first().map(|h| h.folder_name().to_string()),
        hours.last().map(|h| h.folder_name().to_string()),
    );
    let mut out = format!(
        "{}: {} to {} ({} hours): {} staged events of OEM {} read, {} {}\n",
        subscription.id,
        first.unwrap_or_default(),
        last.unwrap_or_default(),
        hours.len(),
        replayed.read,
        subscription.oem_id,
        replayed.total(),
        if dry_run {
            "would be sent (dry run: nothing sent)"
        } else {
            "sent"
        }
    );
    let width = EventType::ALL
        .iter()
        .map(|t| t.as_str().len())
        .max()
        .unwrap_or(0);
    out.push_str(&format!("{:<width$}  EVENTS\n", "TYPE"));
    for (event_type, count) in &replayed.per_type {
        out.push_str(&format!("{:<width$}  {count}\n", event_type.as_str()));
    }
    out
}

/// `dplctl streams replay`: replays `hours` of `subscription` from the
/// staging objects in `bucket` through its transport's destinations.
pub async fn run(
    aws: &aws_config::SdkConfig,
    bucket: &str,
    subscription: &Subscription,
    hours: &[Timestamp],
    dry_run: bool,
) -> anyhow::Result<()> {
    let store = dpl::export::s3::S3Store::from_sdk_config(aws, bucket);
    let archive = StagingArchive::new(store, crate::layout()?, std::env::temp_dir());
    let destinations = crate::delivery::destinations(aws, subscription.transport());
    let bar = ProgressBar::new(hours.len() as u64).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} hours {msg}")
            .context("progress style")?,
    );
    let replayed = replay_hours(
        &archive,
        &destinations,
        subscription,
        hours,
        dry_run,
        |hour, replayed| {
            bar.set_message(format!(
                "{}: {} matching events{}",
                hour.folder_name(),
                replayed.total(),
                if dry_run { " (dry run)" } else { " sent" }
            ));
            bar.inc(1);
        },
    )
    .await?;
    bar.finish_and_clear();
    print!("{}", summary_text(subscription, hours, &replayed, dry_run));
    Ok(())
}
