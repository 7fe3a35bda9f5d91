//! `dplctl streams replay`: sends a subscription's events of past hours
//! again, from the stored events (the staging objects of its OEM), through
//! the normal delivery path (the subscription's [`Destination`]).
//!
//! Per hour it reads the archive ([`dpl::streams::archive`], the same the
//! catch-up worker reads past the DPL stream's retention): the staging
//! objects of the OEM and of the types the subscription takes, merged the
//! way the export merges them, in (event time, stream order, event id)
//! order, each event once. The events the subscription
//! [accepts](Subscription::accepts) are sent in chunks of
//! [`REPLAY_CHUNK`], in that order, each chunk after the previous one was
//! accepted whole. Memory is one chunk plus one reader per merged file.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use dpl::export::keys::HourLabel;
use dpl::position::Position;
use dpl::streams::archive::{Archive, StagingArchive};
use dpl::streams::delivery::Delivery;
use dpl::streams::destination::{Destination, Destinations, Outcome};
use dpl::streams::subscription::{Status, Subscription};
use dpl::{EventType, Timestamp};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

/// Events per send: one Kinesis `PutRecords` call holds at most 500
/// records (Kinesis API Reference, `PutRecords`).
pub const REPLAY_CHUNK: usize = 500;

/// How long one chunk may take, retries included.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(120);

/// What a replay sent (or, dry, would send), per type.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub per_type: BTreeMap<EventType, u64>,
    /// Staged events of the OEM read (before filtering), duplicates dropped.
    pub read: u64,
}

impl Replayed {
    pub fn total(&self) -> u64 {
        self.per_type.values().sum()
    }
}

/// Sends `chunk` and empties it; fails unless every event was accepted.
async fn flush<D: Destination>(
    destination: &D,
    chunk: &mut Vec<Delivery>,
    sent: &mut u64,
) -> anyhow::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let refs: Vec<&Delivery> = chunk.iter().collect();
    let report = destination
        .send(&refs, Instant::now() + CHUNK_TIMEOUT)
        .await;
    let delivered = report.delivered();
    if delivered < chunk.len() {
        let first = report
            .outcomes
            .iter()
            .position(|o| *o != Outcome::Accepted)
            .map_or(&chunk[0], |n| &chunk[n]);
        bail!(
            "replay stopped: {} events sent before; of the next {}, {delivered} were accepted \
             (first not accepted: event {} of {}): {}",
            *sent,
            chunk.len(),
            first.event_id,
            first.dsn,
            report.error.unwrap_or_else(|| "no answer".into())
        );
    }
    *sent += delivered as u64;
    chunk.clear();
    Ok(())
}

/// Replays `hours` of `subscription` from `archive` to `destinations`, or
/// only counts (`dry_run`).
pub async fn replay<A: Archive, D: Destinations>(
    archive: &A,
    destinations: &D,
    subscription: &Subscription,
    hours: &[Timestamp],
    dry_run: bool,
) -> anyhow::Result<Replayed> {
    if subscription.status != Status::Enabled {
        bail!(
            "subscription {} is disabled: it accepts no event; enable it first",
            subscription.id
        );
    }
    let destination = if dry_run {
        None
    } else {
        Some(destinations.destination(subscription).await.map_err(|e| {
            anyhow::anyhow!("{}: cannot reach the destination: {e}", subscription.id)
        })?)
    };
    let bar = ProgressBar::new(hours.len() as u64).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} hours {msg}")
            .context("progress style")?,
    );
    let mut replayed = Replayed::default();
    let mut chunk: Vec<Delivery> = Vec::with_capacity(REPLAY_CHUNK);
    let mut sent = 0u64;
    for &hour in hours {
        let staged = archive
            .hour(
                &subscription.oem_id,
                hour,
                &subscription.filters.event_types,
            )
            .await?;
        for record in staged {
            let record = record.with_context(|| format!("staging of {}", HourLabel(hour)))?;
            replayed.read += 1;
            if !subscription.accepts(&record.dpl_event) {
                continue;
            }
            *replayed
                .per_type
                .entry(record.dpl_event.event_type())
                .or_default() += 1;
            if let Some(destination) = &destination {
                let position = Position::new("replay", &replayed.read.to_string())?;
                chunk.push(Delivery::new(position, Timestamp::now(), &record));
                if chunk.len() == REPLAY_CHUNK {
                    flush(destination.as_ref(), &mut chunk, &mut sent).await?;
                }
            }
        }
        if let Some(destination) = &destination {
            flush(destination.as_ref(), &mut chunk, &mut sent).await?;
        }
        bar.set_message(format!(
            "{}: {} matching events{}",
            hour.folder_name(),
            replayed.total(),
            if dry_run { " (dry run)" } else { " sent" }
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(replayed)
}

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
    let replayed = replay(&archive, &destinations, subscription, hours, dry_run).await?;
    print!("{}", summary_text(subscription, hours, &replayed, dry_run));
    Ok(())
}
