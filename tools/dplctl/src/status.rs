//! `dplctl status`: the health of every stream subscription (state, live or
//! behind and for how long, last delivery, dead letters, last error) and
//! what the export wrote per
//! hour (files, rows, bytes), read from the manifests
//! (`manifests/{oem}/{type}/{YYYY-MM-DD-HH}.json`, `docs/export.md`).
//!
//! Reading is the only thing it does. The summaries are pure functions of
//! the subscriptions, the manifests and the current time, tested here.

use std::collections::BTreeMap;

use anyhow::Context;
use aws_sdk_s3::error::DisplayErrorContext;
use clap::Args;
use dpl::csv::export_name;
use dpl::export::keys::HourLabel;
use dpl::export::s3::S3Store;
use dpl::export::{Layout, Manifest};
use dpl::streams::state::DynamoState;
use dpl::streams::store::{DynamoSubscriptions, SubscriptionStore};
use dpl::streams::subscription::Subscription;
use dpl::streams::summary::DeliverySummary;
use dpl::{EventType, Timestamp};
use serde::Serialize;

use crate::streams::{state_table_name, table_name, STATE_TABLE_VAR, TABLE_VAR};

/// Per-attempt limit of one DynamoDB or S3 call.
const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The most hours one `status` reads: the 12 months exports are kept.
const MAX_STATUS_HOURS: u32 = 366 * 24;

/// Longest last error shown in the table (the JSON has all of it).
const TABLE_ERROR_CHARS: usize = 60;

const HOUR_MS: i64 = 3_600_000;

#[derive(Args)]
pub struct StatusArgs {
    /// DynamoDB table of the subscriptions (default: $SUBSCRIPTIONS_TABLE).
    #[arg(long)]
    pub table: Option<String>,
    /// DynamoDB table of the delivery state: cursors and dead letters
    /// (default: $DELIVERY_STATE_TABLE).
    #[arg(long)]
    pub state_table: Option<String>,
    /// The export bucket (default: $BUCKET).
    #[arg(long)]
    pub bucket: Option<String>,
    /// How many hours of exports to show: the last N hours that have ended,
    /// newest first.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=MAX_STATUS_HOURS as i64))]
    pub hours: u32,
    /// Only this OEM's subscriptions and exports.
    #[arg(long)]
    pub oem: Option<String>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// One subscription's delivery health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionStatus {
    pub id: String,
    pub oem_id: String,
    pub name: String,
    pub state: String,
    /// `live`, or `behind on N shards for ...`.
    pub delivery: String,
    /// Shards where the subscription is behind (catching up).
    pub behind_shards: usize,
    /// How long the oldest event not yet delivered has waited, in seconds;
    /// `None` when the subscription is live on every shard.
    pub lag_seconds: Option<i64>,
    pub last_delivery: Option<String>,
    /// Events its destination refused for good, kept for a redrive.
    pub dead_letters: u64,
    pub last_error_at: Option<String>,
    pub last_error: Option<String>,
}

/// What the manifests of one hour say.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HourStatus {
    /// The hour's folder name, `2020-08-28-09:00:00`.
    pub hour: String,
    /// Partitions exported (one CSV file each).
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Per OEM and type: `{"abcd1234/datapoint": {"rows": 3, "bytes": 512}}`.
    pub partitions: BTreeMap<String, PartitionCounts>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PartitionCounts {
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    now: String,
    subscriptions: Vec<SubscriptionStatus>,
    exports: Vec<HourStatus>,
}

/// The health of `subscription` at `now`, given its delivery state.
pub fn subscription_status(
    subscription: &Subscription,
    delivery: &DeliverySummary,
    now: Timestamp,
) -> SubscriptionStatus {
    let health = &subscription.health;
    SubscriptionStatus {
        id: subscription.id.to_string(),
        oem_id: subscription.oem_id.clone(),
        name: subscription.name.clone(),
        state: subscription.status.to_string(),
        delivery: delivery.line(now),
        behind_shards: delivery.behind_shards,
        lag_seconds: delivery.lag_seconds(now),
        last_delivery: health.last_success.map(|t| t.iso_seconds().to_string()),
        dead_letters: delivery.dead_letters,
        last_error_at: health
            .last_error
            .as_ref()
            .map(|e| e.at.iso_seconds().to_string()),
        last_error: health.last_error.as_ref().map(|e| e.message.clone()),
    }
}

/// The last `count` hours that have ended at `now`, newest first.
pub fn recent_hours(now: Timestamp, count: u32) -> anyhow::Result<Vec<Timestamp>> {
    let current = now.hour_start().millis();
    (1..=i64::from(count))
        .map(|n| Ok(Timestamp::from_millis(current - n * HOUR_MS)?))
        .collect()
}

/// Sums `manifests` per hour, one entry for every hour of `hours` (in that
/// order), empty when no manifest names it. Manifests of other hours are
/// ignored.
pub fn summarize(hours: &[Timestamp], manifests: &[Manifest]) -> Vec<HourStatus> {
    let mut by_hour: BTreeMap<String, HourStatus> = hours
        .iter()
        .map(|h| {
            let name = h.folder_name().to_string();
            let status = HourStatus {
                hour: name.clone(),
                ..HourStatus::default()
            };
            (name, status)
        })
        .collect();
    for manifest in manifests {
        let Some(status) = by_hour.get_mut(&manifest.hour) else {
            continue;
        };
        status.files += 1;
        status.rows += manifest.rows;
        status.bytes += manifest.bytes;
        status.partitions.insert(
            format!("{}/{}", manifest.oem_id, manifest.event_type),
            PartitionCounts {
                rows: manifest.rows,
                bytes: manifest.bytes,
            },
        );
    }
    hours
        .iter()
        .filter_map(|h| by_hour.remove(&h.folder_name().to_string()))
        .collect()
}

/// Rows padded to their widest cell, two spaces apart.
pub(crate) fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn short(text: &str) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= TABLE_ERROR_CHARS {
        return one_line;
    }
    let cut: String = one_line.chars().take(TABLE_ERROR_CHARS - 1).collect();
    format!("{cut}…")
}

pub fn subscriptions_table(statuses: &[SubscriptionStatus]) -> String {
    let header = [
        "ID",
        "OEM",
        "NAME",
        "STATE",
        "DELIVERY",
        "LAST DELIVERY",
        "DEAD LETTERS",
        "LAST ERROR",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 8]> = std::iter::once(header)
        .chain(statuses.iter().map(|s| {
            [
                s.id.clone(),
                s.oem_id.clone(),
                s.name.clone(),
                s.state.clone(),
                s.delivery.clone(),
                s.last_delivery.clone().unwrap_or_else(|| "never".into()),
                s.dead_letters.to_string(),
                match (&s.last_error_at, &s.last_error) {
                    (Some(at), Some(message)) => format!("{at} {}", short(message)),
                    _ => "none".into(),
                },
            ]
        }))
        .collect();
    aligned(&rows)
}

pub fn exports_table(hours: &[HourStatus]) -> String {
    let header = ["HOUR", "FILES", "ROWS", "BYTES"].map(str::to_owned);
    let rows: Vec<[String; 4]> = std::iter::once(header)
        .chain(hours.iter().map(|h| {
            [
                h.hour.clone(),
                h.files.to_string(),
                h.rows.to_string(),
                h.bytes.to_string(),
            ]
        }))
        .collect();
    aligned(&rows)
}

/// The OEMs that have manifests: the common prefixes under `manifests/`.
async fn manifest_oems(store: &S3Store, layout: &Layout) -> anyhow::Result<Vec<String>> {
    let prefix = format!("{}/", layout.manifests);
    let mut pages = store
        .client()
        .list_objects_v2()
        .bucket(store.bucket())
        .prefix(&prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    let mut oems = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| anyhow::anyhow!("listing {prefix}: {}", DisplayErrorContext(&e)))?;
        oems.extend(page.common_prefixes().iter().filter_map(|p| {
            p.prefix()?
                .strip_prefix(&prefix)?
                .strip_suffix('/')
                .map(str::to_owned)
        }));
    }
    Ok(oems)
}

/// The manifests of `oem` from `first` on: one listing per type, starting
/// after the keys of earlier hours, then one GET per manifest.
async fn manifests_since(
    store: &S3Store,
    layout: &Layout,
    oem: &str,
    first: Timestamp,
) -> anyhow::Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    for event_type in EventType::ALL {
        let prefix = format!("{}/{oem}/{}/", layout.manifests, export_name(event_type));
        // `{prefix}{hour}` sorts just before `{prefix}{hour}.json`.
        let start_after = format!("{prefix}{}", HourLabel(first));
        let mut pages = store
            .client()
            .list_objects_v2()
            .bucket(store.bucket())
            .prefix(&prefix)
            .start_after(&start_after)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| anyhow::anyhow!("listing {prefix}: {}", DisplayErrorContext(&e)))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let body = store
                    .client()
                    .get_object()
                    .bucket(store.bucket())
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("reading {key}: {}", DisplayErrorContext(&e)))?
                    .body
                    .collect()
                    .await
                    .with_context(|| format!("reading {key}"))?
                    .into_bytes();
                manifests.push(Manifest::from_json(key, &body)?);
            }
        }
    }
    Ok(manifests)
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let table = table_name(args.table, std::env::var(TABLE_VAR).ok())?;
    let state_table = state_table_name(args.state_table, std::env::var(STATE_TABLE_VAR).ok())?;
    let bucket = args
        .bucket
        .or_else(|| std::env::var(dpl::export::config::BUCKET_VAR).ok())
        .filter(|b| !b.trim().is_empty())
        .context("no export bucket: pass --bucket or set BUCKET")?;
    let now = Timestamp::now();
    let hours = recent_hours(now, args.hours)?;
    let aws = dpl::sdk::load(ATTEMPT_TIMEOUT).await;
    let listing = DynamoSubscriptions::from_sdk_config(&aws, table)
        .list(args.oem.as_deref())
        .await?;
    crate::streams::warn_corrupt(&listing);
    let state = DynamoState::new(aws_sdk_dynamodb::Client::new(&aws), state_table);
    let mut statuses = Vec::new();
    for subscription in &listing.subscriptions {
        let delivery = crate::streams::delivery_summary(&state, &subscription.id).await?;
        statuses.push(subscription_status(subscription, &delivery, now));
    }
    let store = S3Store::from_sdk_config(&aws, bucket);
    let layout = crate::layout()?;
    let oems = match &args.oem {
        Some(oem) => vec![oem.clone()],
        None => manifest_oems(&store, &layout).await?,
    };
    let oldest = *hours.last().expect("at least one hour");
    let mut manifests = Vec::new();
    for oem in &oems {
        manifests.extend(manifests_since(&store, &layout, oem, oldest).await?);
    }
    let report = Report {
        now: now.iso_seconds().to_string(),
        subscriptions: statuses,
        exports: summarize(&hours, &manifests),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("Subscriptions ({}):", report.subscriptions.len());
    print!("{}", subscriptions_table(&report.subscriptions));
    println!();
    println!(
        "Exports, last {} hours{} (UTC, newest first):",
        hours.len(),
        args.oem
            .as_deref()
            .map(|o| format!(" of OEM {o}"))
            .unwrap_or_default()
    );
    print!("{}", exports_table(&report.exports));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpl::streams::subscription::{
        Credentials, Destination, Filters, LastError, SubscriptionId, SubscriptionSpec,
    };

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn manifest(oem: &str, event_type: &str, hour: &str, rows: u64, bytes: u64) -> Manifest {
        Manifest {
            format_version: 1,
            oem_id: oem.into(),
            event_type: event_type.into(),
            hour: hour.into(),
            export_key: String::new(),
            export_etag: String::new(),
            rows,
            bytes,
            sha256: String::new(),
            duplicates_dropped: 0,
            staging: Vec::new(),
        }
    }

    fn subscription() -> Subscription {
        Subscription::new(
            SubscriptionId::from_bits(1),
            SubscriptionSpec {
                oem_id: "abcd1234".into(),
                name: "n".into(),
                description: String::new(),
                destination: Destination::Kinesis {
                    stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/s"
                        .parse()
                        .unwrap(),
                },
                credentials: Credentials::AssumeRole {
                    role_arn: "arn:aws:iam::123456789012:role/r".into(),
                    external_id: Some("dpl-test".to_owned()),
                },
                filters: Filters::all(),
            },
            at("2020-08-28T00:00:00Z"),
        )
        .unwrap()
    }

    #[test]
    fn hours_are_the_ended_ones_newest_first() {
        let hours = recent_hours(at("2020-08-28T10:15:00Z"), 3).unwrap();
        let names: Vec<String> = hours.iter().map(|h| h.folder_name().to_string()).collect();
        assert_eq!(
            names,
            [
                "2020-08-28-09:00:00",
                "2020-08-28-08:00:00",
                "2020-08-28-07:00:00"
            ]
        );
    }

    #[test]
    fn manifests_are_summed_per_hour_and_empty_hours_are_shown() {
        let hours = recent_hours(at("2020-08-28T10:15:00Z"), 3).unwrap();
        let manifests = [
            manifest("a", "datapoint", "2020-08-28-09:00:00", 10, 1000),
            manifest("b", "datapoint", "2020-08-28-09:00:00", 5, 200),
            manifest("a", "location", "2020-08-28-07:00:00", 1, 30),
            manifest("a", "location", "2020-08-27-07:00:00", 99, 99),
        ];
        let summary = summarize(&hours, &manifests);
        let counts: Vec<(&str, u64, u64, u64)> = summary
            .iter()
            .map(|h| (h.hour.as_str(), h.files, h.rows, h.bytes))
            .collect();
        assert_eq!(
            counts,
            [
                ("2020-08-28-09:00:00", 2, 15, 1200),
                ("2020-08-28-08:00:00", 0, 0, 0),
                ("2020-08-28-07:00:00", 1, 1, 30),
            ]
        );
        assert_eq!(
            summary[0].partitions["b/datapoint"],
            PartitionCounts {
                rows: 5,
                bytes: 200
            }
        );
    }

    #[test]
    fn lag_is_how_long_the_oldest_undelivered_event_waited() {
        let mut s = subscription();
        let now = at("2020-08-28T10:00:00Z");
        let live = subscription_status(&s, &DeliverySummary::default(), now);
        assert_eq!((live.last_delivery, live.lag_seconds), (None, None));
        assert_eq!(live.delivery, "live");
        s.health.last_success = Some(at("2020-08-28T09:55:30Z"));
        s.health.last_error = Some(LastError {
            at: at("2020-08-28T09:59:00Z"),
            message: "throttled\nagain".into(),
        });
        let behind = DeliverySummary {
            behind_shards: 1,
            behind_since: Some(at("2020-08-28T09:55:30Z")),
            dead_letters: 4,
            ..DeliverySummary::default()
        };
        let status = subscription_status(&s, &behind, now);
        assert_eq!(status.lag_seconds, Some(270));
        assert_eq!(
            status.last_delivery.as_deref(),
            Some("2020-08-28T09:55:30Z")
        );
        let table = subscriptions_table(&[status]);
        let row = table.lines().nth(1).unwrap();
        assert!(row.contains("behind on 1 shard for 4m 30s"), "{row}");
        assert!(row.contains("  4  "), "dead letters: {row}");
        assert!(
            row.contains("2020-08-28T09:59:00Z throttled again"),
            "{row}"
        );
        assert!(row.contains("enabled"), "{row}");
    }
}
