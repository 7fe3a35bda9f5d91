//! The report printed at the end of a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use dpl::export::ObjectStore;
use dpl::streams::state::{DeliveryState, DynamoState};
use dpl::streams::store::{DynamoSubscriptions, SubscriptionStore};
use dpl::streams::summary::DeliverySummary;
use dpl::{EventType, Timestamp};

use crate::customers::{self, customer_kinesis, role_arn};
use crate::output::OnDisk;
use crate::pipeline::Outcome;

const ALL_TYPES: [EventType; 6] = [
    EventType::Activation,
    EventType::Connectivity,
    EventType::Datapoint,
    EventType::DatapointAck,
    EventType::Location,
    EventType::Registration,
];

/// CSV rows shown per file.
const ROWS_SHOWN: usize = 2;
/// Longest CSV row shown, in characters.
const ROW_WIDTH: usize = 150;

fn counts<'a>(types: impl Iterator<Item = EventType> + 'a) -> BTreeMap<EventType, usize> {
    let mut out = BTreeMap::new();
    for t in types {
        *out.entry(t).or_insert(0) += 1;
    }
    out
}

fn by_type(counts: &BTreeMap<EventType, usize>) -> String {
    ALL_TYPES
        .iter()
        .filter_map(|t| counts.get(t).map(|n| format!("{t} {n}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(width).collect::<String>())
    }
}

/// The report's last section: where the run left its files, relative to
/// `cwd` when under it.
pub fn left_on_disk(on_disk: &OnDisk, cwd: &Path) -> String {
    let shown = |path: &Path| path.strip_prefix(cwd).unwrap_or(path).display().to_string();
    let exports = format!("{}/", shown(&on_disk.exports));
    let rows: Vec<(String, String)> = std::iter::once((
        exports,
        format!(
            "the export tree: {} CSV files, as on S3",
            on_disk.csv_files.len()
        ),
    ))
    .chain(
        on_disk
            .files
            .iter()
            .map(|f| (shown(&f.path), f.what.clone())),
    )
    .collect();
    let width = rows.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    let mut out = format!(
        "\n== Left on disk until the next run empties {}/\n",
        shown(&on_disk.root)
    );
    for (path, what) in rows {
        out.push_str(&format!("  {path:<width$}  {what}\n"));
    }
    if let Some(first) = on_disk.csv_files.first() {
        out.push_str(&format!("  e.g. less {}\n", shown(first)));
    }
    out
}

/// The report, as text; it ends with [`left_on_disk`].
pub async fn render(outcome: &Outcome, on_disk: &OnDisk) -> anyhow::Result<String> {
    let mut out = String::new();
    let stack = &outcome.stack;
    let fleet = &outcome.fleet;

    writeln!(
        out,
        "\n== Stack (from template.yaml, prefix {:?})",
        stack.prefix
    )?;
    for (id, resource) in &stack.resources {
        writeln!(
            out,
            "  {:<22} {:<33} {}",
            resource.kind, id, resource.reference
        )?;
    }
    writeln!(
        out,
        "  ({} more resources, e.g. functions, roles, schedules, alarms, are not needed in-process)",
        stack.skipped.len()
    )?;

    writeln!(
        out,
        "\n== Fleet: {} devices of 2 OEMs, {} simulated hours played {} times faster, {} to {} (UTC)",
        fleet.devices,
        fleet.hours,
        fleet.playback.speed,
        fleet.start.iso_seconds(),
        fleet.end.iso_seconds()
    )?;
    for (change, n) in fleet.changes() {
        writeln!(out, "  {n:>5}  {}", change.describe())?;
    }
    writeln!(
        out,
        "  {:>5}  twin item writes in all, each made when its time came (at most {} ms later)",
        fleet.writes.len(),
        outcome.write_trail.as_millis()
    )?;

    writeln!(out, "\n== Events on the DPL stream")?;
    let events = counts(outcome.dpl_records.iter().map(|r| r.dpl_event.event_type()));
    for t in ALL_TYPES {
        writeln!(
            out,
            "  {:<13} {:>5}",
            t.as_str(),
            events.get(&t).unwrap_or(&0)
        )?;
    }
    writeln!(
        out,
        "  {:<13} {:>5}   (the simulator expected {})",
        "total",
        outcome.dpl_records.len(),
        fleet.expected_count()
    )?;
    writeln!(
        out,
        "  dead letters (malformed twin records): {}",
        outcome.dead_letters
    )?;

    writeln!(
        out,
        "\n== Event source mappings (batch sizes from template.yaml)"
    )?;
    for (name, stats) in &outcome.mappings {
        writeln!(
            out,
            "  {name:<17} {:>5} records in {:>3} invocations, {} retried, {} given up",
            stats.records, stats.invocations, stats.retries, stats.given_up
        )?;
    }

    writeln!(out, "\n== Customer subscriptions")?;
    let store = DynamoSubscriptions::from_sdk_config(
        &outcome.aws,
        &stack.resource("SubscriptionsTable")?.reference,
    );
    let state = DynamoState::new(
        aws_sdk_dynamodb::Client::new(&outcome.aws),
        &stack.resource("DeliveryStateTable")?.reference,
    );
    let c = &outcome.customers;
    let client = customer_kinesis(&outcome.aws, &role_arn()).await?;
    let records = customers::read_stream(&client, &c.stream_name).await?;
    let delivered = records
        .iter()
        .filter_map(|(_, r)| dpl::DeviceEvent::from_customer_json(r.data().as_ref()).ok())
        .map(|e| e.event_type());
    let kinesis_counts = counts(delivered);
    let messages = c.hubs.messages();
    let hub_counts = counts(
        messages
            .iter()
            .filter_map(|m| m.user_properties.get("event_type")?.as_str()?.parse().ok()),
    );
    for (subscription, total, counts, target) in [
        (
            &c.kinesis,
            records.len(),
            &kinesis_counts,
            format!(
                "Kinesis stream {} ({})",
                c.stream_name,
                customers::CUSTOMER_REGION
            ),
        ),
        (
            &c.eventhubs,
            messages.len(),
            &hub_counts,
            format!(
                "event hub {}/{} (local endpoint)",
                customers::NAMESPACE,
                customers::HUB
            ),
        ),
    ] {
        let health = store
            .get(&subscription.id)
            .await?
            .map(|s| s.health)
            .unwrap_or_default();
        let cursors = state.cursors_of(&subscription.id).await?;
        let delivery =
            DeliverySummary::new(&cursors, state.count_dead_letters(&subscription.id).await?);
        writeln!(
            out,
            "  {} OEM {} {:?}\n    -> {target}: {total} delivered ({}); {}, {} dead letters, last error: {}",
            subscription.id,
            subscription.oem_id,
            subscription.name,
            by_type(counts),
            delivery.line(Timestamp::now()),
            delivery.dead_letters,
            health.last_error.map_or("none".to_owned(), |e| e.message),
        )?;
    }

    if let Some((shard, record)) = records.iter().find(|(_, r)| {
        dpl::DeviceEvent::from_customer_json(r.data().as_ref())
            .is_ok_and(|e| e.event_type() == EventType::Datapoint)
    }) {
        let data = base64::engine::general_purpose::STANDARD.encode(record.data().as_ref());
        // The bytes as they are on the stream, laid out in their own key
        // order: the vendor's, which customers compare the record with.
        let decoded = crate::pretty::pretty(
            std::str::from_utf8(record.data().as_ref()).context("a customer record's data")?,
        )?;
        writeln!(
            out,
            "\n== One record of Acme's stream, read as the customer reads it\n  \
             $ aws kinesis get-shard-iterator --shard-id {shard} --shard-iterator-type TRIM_HORIZON \
             --stream-name {} --region {}\n  \
             $ aws kinesis get-records --shard-iterator AAAAAAAAAAH...\n  {{\n    \"Records\": [\n      {{\n        \
             \"SequenceNumber\": \"{}\",\n        \"Data\": \"{}\",\n        \"PartitionKey\": \"{}\"\n      }}, ...\n  \
             Data, base64-decoded:",
            c.stream_name,
            customers::CUSTOMER_REGION,
            record.sequence_number(),
            cut(&data, 64),
            record.partition_key().unwrap_or_default(),
        )?;
        for line in decoded.lines() {
            writeln!(out, "  {line}")?;
        }
    }

    writeln!(
        out,
        "\n== Hourly export (s3://{}/{}/)",
        outcome.bucket, outcome.layout.exports
    )?;
    writeln!(
        out,
        "  An event's hour is its stream record's time, which moto stamps with the real time of\n  \
         the write (an activation's is its activated_at). The twin items hold the times of their\n  \
         writes, so a row's dates fall in its hour folder. Every hour holding an event was\n  \
         exported with an hour request (as `dplctl export --hour`)."
    )?;
    for summary in &outcome.exports {
        writeln!(
            out,
            "  hour {}: {} files, {} rows, {} bytes",
            summary.hours.join(","),
            summary.exported + summary.up_to_date,
            summary.rows,
            summary.bytes
        )?;
    }
    let s3 = outcome.store();
    let listed = s3
        .list(&format!("{}/", outcome.layout.exports))
        .await
        .context("listing the export")?;
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    for object in &listed {
        writeln!(out, "  {}  ({} bytes)", object.key, object.size)?;
        let kind = object.key.rsplit('/').next().unwrap_or_default().to_owned();
        shown.entry(kind).or_insert_with(|| object.key.clone());
    }
    writeln!(
        out,
        "\n== First rows of one CSV per type (headerless, as exported)"
    )?;
    for key in shown.values() {
        let bytes = s3.get(key).await?.unwrap_or_default();
        writeln!(out, "  {key}")?;
        for row in String::from_utf8_lossy(&bytes).lines().take(ROWS_SHOWN) {
            writeln!(out, "    {}", cut(row, ROW_WIDTH))?;
        }
    }

    writeln!(
        out,
        "\n== Where next\n  \
         - docs/twin-table.md: the twin items the simulator wrote, and which change makes which event\n  \
         - docs/streams.md, docs/eventhubs.md: subscriptions, filters, delivery, catch-up and dead letters\n  \
         - docs/export.md, docs/csv-format.md: staging, the hourly export and its CSV columns\n  \
         - make emulator: a moto server that stays up, for `cargo lambda invoke` on events/*/\n  \
         - scripts/with-moto.sh cargo run -p demo -- --devices 200 --hours 3 --seed 7: a bigger fleet\n  \
         - make test: the end-to-end test of this pipeline (tools/demo/tests/end_to_end.rs) and the rest"
    )?;
    out.push_str(&left_on_disk(
        on_disk,
        &std::env::current_dir().unwrap_or_default(),
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Saved;
    use std::path::PathBuf;

    fn on_disk(root: &str) -> OnDisk {
        let root = PathBuf::from(root);
        OnDisk {
            exports: root.join("exports"),
            csv_files: vec![
                root.join("exports/0dfc7900/connection/2026-12-01-12:00:00/connection.csv"),
                root.join("exports/0dfc7900/datapoint/2026-12-01-12:00:00/datapoint.csv"),
            ],
            files: vec![
                Saved {
                    path: root.join("streams/dpl.jsonl"),
                    what: "the DPL stream's records (3), one a line".to_owned(),
                },
                Saved {
                    path: root.join("logs/functions.log"),
                    what: "the functions' logs".to_owned(),
                },
            ],
            root,
        }
    }

    #[test]
    fn the_files_are_shown_relative_to_the_working_directory() {
        let text = left_on_disk(&on_disk("/repo/target/demo"), Path::new("/repo"));
        assert_eq!(
            text,
            "\n== Left on disk until the next run empties target/demo/\n  \
             target/demo/exports/            the export tree: 2 CSV files, as on S3\n  \
             target/demo/streams/dpl.jsonl   the DPL stream's records (3), one a line\n  \
             target/demo/logs/functions.log  the functions' logs\n  \
             e.g. less target/demo/exports/0dfc7900/connection/2026-12-01-12:00:00/connection.csv\n"
        );
    }

    #[test]
    fn files_outside_the_working_directory_are_shown_in_full() {
        let text = left_on_disk(&on_disk("/tmp/run"), Path::new("/repo"));
        assert!(text.contains("  /tmp/run/exports/ "), "{text}");
        assert!(text.contains("  /tmp/run/logs/functions.log "), "{text}");
    }
}
