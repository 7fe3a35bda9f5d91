//! `dplctl`: operator commands. `dplctl export --hour 2020-08-28T09`
//! re-exports an hour through the same driver as the `hourly-export`
//! function ([`dpl::export::Exporter`]). See `docs/export.md`.
//! `dplctl streams create|list|show|enable|disable|delete|test|redrive|replay`
//! manages customer stream subscriptions. See `docs/streams.md`.
//! `dplctl status` shows subscription health and recent exports.
//! `dplctl export credentials|url` gives customers download access.

#![recursion_limit = "256"]

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use dpl::export::keys::parse_hour;
use dpl::export::local::DEFAULT_MAX_FAN_IN;
use dpl::export::run::{default_concurrency, Progress};
use dpl::export::s3::S3Store;
use dpl::export::upload::DEFAULT_PART_SIZE;
use dpl::export::{
    DirStore, ExportError, ExportOptions, Exported, Exporter, Layout, ObjectStore,
    PartitionOutcome, Selection,
};
use dpl::Timestamp;
use indicatif::{ProgressBar, ProgressStyle};

mod credentials;
mod delivery;
mod replay;
mod status;
mod streams;

/// The bucket's layout, read from the same variables as the functions read
/// (`STAGING_PREFIX`, `EXPORT_PREFIX`, `MANIFEST_PREFIX`,
/// `QUARANTINE_PREFIX`; unset: `staging`, `exports`, `manifests`,
/// `quarantine`) with the same checks: with a non-default layout, `dplctl`
/// reads and writes the keys the functions do.
pub(crate) fn layout() -> anyhow::Result<Layout> {
    layout_of(|name| std::env::var(name).ok())
}

fn layout_of(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Layout> {
    dpl::export::config::layout_from_lookup(lookup).context("the bucket's prefixes")
}

/// Per-attempt limit of one S3 call, a 16 MiB part upload included.
const S3_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Parser)]
#[command(version, about = "Operator commands of the data pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Customer stream subscriptions (`docs/streams.md`).
    Streams(streams::StreamsArgs),
    /// Subscription health (state, live or behind and for how long, last
    /// delivery, dead letters, last error) and the export's files, rows and
    /// bytes per recent hour, read from the manifests.
    Status(status::StatusArgs),
    /// Export one hour, or a range of hours, again (every partition of
    /// each, or one OEM's); or, with a subcommand, manage customers'
    /// download access.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Export {
        #[command(subcommand)]
        access: Option<credentials::ExportCommand>,
        #[command(flatten)]
        run: ExportRun,
    },
}

/// `dplctl export --hour ...`: what to export again, where, and how.
#[derive(clap::Args)]
struct ExportRun {
    /// The hour, UTC: `2020-08-28T09`.
    #[arg(long, required = true)]
    hour: Option<String>,
    /// Export every hour from `--hour` to this one, inclusive.
    #[arg(long)]
    until: Option<String>,
    /// Where staging is read and the export written: `s3://BUCKET` or a
    /// local directory with the same layout. Default: `s3://$BUCKET`.
    #[arg(long)]
    to: Option<String>,
    /// Only this OEM's partitions.
    #[arg(long)]
    oem: Option<String>,
    /// Only partitions whose staging changed since their export
    /// (default: export every partition of the hour).
    #[arg(long)]
    changed_only: bool,
    /// Replace a partition's file even when staging objects it was made
    /// from are gone (expired or deleted): the file shrinks, the rows of
    /// those objects are lost. Without it such a partition is refused with
    /// the objects named, and its file left as it is.
    #[arg(long)]
    allow_shrink: bool,
    /// Multipart part size in MiB (5 to 5120).
    #[arg(long, default_value_t = DEFAULT_PART_SIZE / (1024 * 1024))]
    part_size_mib: usize,
    /// Where staging objects are downloaded.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Partitions exported at once, each encoding on its own thread
    /// (default: the CPUs available).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    jobs: Option<usize>,
}

/// The longest range one command exports: the 12 months exports are kept.
const MAX_HOURS: i64 = 366 * 24;

/// Every hour from `from` to `until` (inclusive), as hour starts.
fn hours(from: &str, until: Option<&str>) -> anyhow::Result<Vec<Timestamp>> {
    hour_range(from, until, ("--hour", "--until"))
}

/// Every hour from `from` to `until` (inclusive), as hour starts; errors
/// name the two `flags`.
pub(crate) fn hour_range(
    from: &str,
    until: Option<&str>,
    (from_flag, until_flag): (&str, &str),
) -> anyhow::Result<Vec<Timestamp>> {
    const HOUR_MS: i64 = 3_600_000;
    let first = parse_hour(from)?;
    let last = until.map(parse_hour).transpose()?.unwrap_or(first);
    let count = (last.millis() - first.millis()) / HOUR_MS + 1;
    if count < 1 {
        bail!(
            "{until_flag} {} is before {from_flag} {from}",
            until.unwrap_or_default()
        );
    }
    if count > MAX_HOURS {
        bail!("{count} hours: at most {MAX_HOURS} hours at a time");
    }
    (0..count)
        .map(|n| Ok(Timestamp::from_millis(first.millis() + n * HOUR_MS)?))
        .collect()
}

/// A progress bar over partitions.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn planned(&mut self, partitions: usize) {
        self.0.set_length(partitions as u64);
    }

    fn finished(&mut self, outcome: &PartitionOutcome) {
        match outcome {
            PartitionOutcome::Exported(e) => self.0.set_message(format!(
                "{}: {} rows, {} bytes",
                e.partition, e.csv.rows, e.csv.bytes
            )),
            PartitionOutcome::UpToDate(p) => self.0.set_message(format!("{p}: up to date")),
            PartitionOutcome::Kept(..) => {}
            PartitionOutcome::Failed(p, error) => self.0.println(format!("{p}: FAILED: {error}")),
        }
        self.0.inc(1);
    }
}

async fn export<S: ObjectStore>(
    store: S,
    options: ExportOptions,
    hours: &[Timestamp],
    selection: Selection,
) -> anyhow::Result<()> {
    let exporter = Exporter::new(store, layout()?, options)?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .context("progress style")?,
    );
    let mut progress = Bar(bar.clone());
    let outcomes: Vec<PartitionOutcome> = exporter
        .run(hours, &selection, &mut progress)
        .await?
        .into_iter()
        .map(PartitionOutcome::kept_as_error)
        .collect();
    bar.finish();
    let (mut exported, mut failed, mut rows) = (0, 0, 0);
    for outcome in &outcomes {
        match outcome {
            PartitionOutcome::Exported(e) => {
                exported += 1;
                rows += e.csv.rows;
                warn_if_shrunk(e);
            }
            PartitionOutcome::Failed(p, error) => {
                failed += 1;
                if matches!(error, ExportError::StagingGone { .. }) {
                    eprintln!("{p}: REFUSED: {error}");
                }
            }
            PartitionOutcome::UpToDate(_) | PartitionOutcome::Kept(..) => {}
        }
    }
    let first = hours.first().map(|h| h.folder_name().to_string());
    println!(
        "{} ({} hours): {} partitions, {exported} exported ({rows} rows), {failed} failed",
        first.unwrap_or_default(),
        hours.len(),
        outcomes.len()
    );
    if failed > 0 {
        bail!("{failed} partitions failed");
    }
    Ok(())
}

/// Says loudly, on stderr, which objects an `--allow-shrink` export left out.
fn warn_if_shrunk(exported: &Exported) {
    if exported.missing_staging.is_empty() {
        return;
    }
    eprintln!(
        "WARNING {}: replaced with {} rows from fewer staging objects than its previous file; \
         the rows of these {} objects are gone from it:",
        exported.partition,
        exported.csv.rows,
        exported.missing_staging.len()
    );
    for key in &exported.missing_staging {
        eprintln!("  {key}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    dpl::export::alloc::map_parts_separately();
    let run = match Cli::parse().command {
        Command::Streams(args) => return streams::run(args).await,
        Command::Status(args) => return status::run(args).await,
        Command::Export {
            access: Some(command),
            ..
        } => return credentials::run(command).await,
        Command::Export { access: None, run } => run,
    };
    let ExportRun {
        hour,
        until,
        to,
        oem,
        changed_only,
        allow_shrink,
        part_size_mib,
        work_dir,
        jobs,
    } = run;
    let options = ExportOptions {
        part_size: part_size_mib * 1024 * 1024,
        max_fan_in: DEFAULT_MAX_FAN_IN,
        work_dir: work_dir.unwrap_or_else(std::env::temp_dir),
        concurrency: jobs.unwrap_or_else(default_concurrency),
        split_bytes: dpl::export::split::DEFAULT_SPLIT_BYTES,
    };
    let selection = Selection {
        oem_id: oem,
        force: !changed_only,
        allow_shrink,
    };
    let hours = hours(&hour.context("--hour is required")?, until.as_deref())?;
    let to = match to {
        Some(to) => to,
        None => format!(
            "s3://{}",
            std::env::var("BUCKET").context("--to or BUCKET")?
        ),
    };
    match to.strip_prefix("s3://") {
        Some(bucket) => {
            let aws = dpl::sdk::load(S3_ATTEMPT_TIMEOUT).await;
            let store = S3Store::from_sdk_config(&aws, bucket);
            export(store, options, &hours, selection).await
        }
        None => export(DirStore::new(to), options, &hours, selection).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_read_from_the_functions_prefix_variables() {
        let vars = std::collections::HashMap::from([
            ("STAGING_PREFIX", "raw/in"),
            ("EXPORT_PREFIX", "/customers/"),
            ("MANIFEST_PREFIX", "meta"),
            ("QUARANTINE_PREFIX", "bad"),
        ]);
        let layout = layout_of(|n| vars.get(n).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(
            (
                layout.staging.as_str(),
                layout.exports.as_str(),
                layout.manifests.as_str(),
                layout.quarantine.as_str()
            ),
            ("raw/in", "customers", "meta", "bad")
        );
        assert_eq!(layout_of(|_| None).unwrap(), Layout::default());
        let nested = layout_of(|n| (n == "EXPORT_PREFIX").then(|| "staging/x".to_owned()));
        assert!(format!("{:#}", nested.unwrap_err()).contains("EXPORT_PREFIX"));
    }

    fn names(hours: &[Timestamp]) -> Vec<String> {
        hours.iter().map(|h| h.folder_name().to_string()).collect()
    }

    #[test]
    fn one_hour_or_an_inclusive_range_across_midnight() {
        assert_eq!(
            names(&hours("2020-08-28T09", None).unwrap()),
            ["2020-08-28-09:00:00"]
        );
        assert_eq!(
            names(&hours("2020-08-28T23", Some("2020-08-29T01")).unwrap()),
            [
                "2020-08-28-23:00:00",
                "2020-08-29-00:00:00",
                "2020-08-29-01:00:00"
            ]
        );
    }

    #[test]
    fn a_backwards_or_too_long_range_is_refused() {
        let backwards = hours("2020-08-28T09", Some("2020-08-28T08")).unwrap_err();
        assert!(
            backwards.to_string().contains("before --hour"),
            "{backwards}"
        );
        let long = hours("2020-01-01T00", Some("2022-01-01T00")).unwrap_err();
        assert!(long.to_string().contains("at most"), "{long}");
        assert!(hours("yesterday", None).is_err());
    }

    #[test]
    fn jobs_is_a_positive_number_of_partitions() {
        let parse = |jobs: &str| {
            Cli::try_parse_from([
                "dplctl",
                "export",
                "--hour",
                "2020-08-28T09",
                "--jobs",
                jobs,
            ])
        };
        match parse("3").unwrap().command {
            Command::Export { run, .. } => assert_eq!(run.jobs, Some(3)),
            _ => panic!("not an export"),
        }
        for bad in ["0", "two"] {
            let error = parse(bad).err().expect(bad).to_string();
            assert!(error.contains("--jobs"), "{error}");
        }
    }
}
