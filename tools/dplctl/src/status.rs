//! `dplctl status`: the health of every stream subscription (state, live or
//! behind and for how long, last delivery, dead letters, last error) and
//! what the export wrote per
//! hour (files, rows, bytes), read from the manifests
//! (`manifests/{oem}/{type}/{YYYY-MM-DD-HH}.json`, `docs/export.md`).
//!
//! Reading is the only thing it does. The summaries are pure functions of
//! the subscriptions, the manifests and the current time, tested here.

use anyhow::Context;
use clap::Args;
use dpl::export::s3::{manifest_oems, manifests_since, S3Store};
pub use dpl::status::{
    recent_hours, subscription_status, summarize, HourStatus, SubscriptionStatus, MAX_STATUS_HOURS,
};
use dpl::streams::state::DynamoState;
use dpl::streams::store::{DynamoSubscriptions, SubscriptionStore};
use dpl::Timestamp;
use serde::Serialize;

use crate::streams::{state_table_name, table_name, STATE_TABLE_VAR, TABLE_VAR};

/// Per-attempt limit of one DynamoDB or S3 call.
const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest last error shown in the table (the JSON has all of it).
const TABLE_ERROR_CHARS: usize = 60;

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

#[derive(Debug, Serialize)]
struct Report {
    now: String,
    subscriptions: Vec<SubscriptionStatus>,
    exports: Vec<HourStatus>,
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
        Credentials, Destination, Filters, LastError, Subscription, SubscriptionId,
        SubscriptionSpec,
    };
    use dpl::streams::summary::DeliverySummary;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
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
