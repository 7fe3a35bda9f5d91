//! `dplctl`: operator commands. `dplctl export --hour 2020-08-28T09`
//! re-exports an hour through the same driver as the `hourly-export`
//! function ([`dpl::export::Exporter`]). See `docs/export.md`.

#![recursion_limit = "256"]

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use dpl::export::keys::parse_hour;
use dpl::export::run::{Progress, DEFAULT_MAX_FAN_IN, DEFAULT_PART_SIZE};
use dpl::export::s3::S3Store;
use dpl::export::{
    DirStore, ExportOptions, Exporter, Layout, ObjectStore, PartitionOutcome, Selection,
};
use indicatif::{ProgressBar, ProgressStyle};

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
    /// Export one hour again (every partition of it, or one OEM's).
    Export {
        /// The hour, UTC: `2020-08-28T09`.
        #[arg(long)]
        hour: String,
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
        /// Multipart part size in MiB (5 to 5120).
        #[arg(long, default_value_t = DEFAULT_PART_SIZE / (1024 * 1024))]
        part_size_mib: usize,
        /// Where staging objects are downloaded.
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
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
            PartitionOutcome::Failed(p, error) => self.0.println(format!("{p}: FAILED: {error}")),
        }
        self.0.inc(1);
    }
}

async fn export<S: ObjectStore>(
    store: S,
    options: ExportOptions,
    hour: &str,
    selection: Selection,
) -> anyhow::Result<()> {
    let hour = parse_hour(hour)?;
    let exporter = Exporter::new(store, Layout::default(), options)?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .context("progress style")?,
    );
    let mut progress = Bar(bar.clone());
    let outcomes = exporter.run(&[hour], &selection, &mut progress).await?;
    bar.finish();
    let (mut exported, mut failed, mut rows) = (0, 0, 0);
    for outcome in &outcomes {
        match outcome {
            PartitionOutcome::Exported(e) => {
                exported += 1;
                rows += e.csv.rows;
            }
            PartitionOutcome::Failed(..) => failed += 1,
            PartitionOutcome::UpToDate(_) => {}
        }
    }
    println!(
        "{}: {} partitions, {exported} exported ({rows} rows), {failed} failed",
        hour.folder_name(),
        outcomes.len()
    );
    if failed > 0 {
        bail!("{failed} partitions failed");
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Command::Export {
        hour,
        to,
        oem,
        changed_only,
        part_size_mib,
        work_dir,
    } = Cli::parse().command;
    let options = ExportOptions {
        part_size: part_size_mib * 1024 * 1024,
        max_fan_in: DEFAULT_MAX_FAN_IN,
        work_dir: work_dir.unwrap_or_else(std::env::temp_dir),
    };
    let selection = Selection {
        oem_id: oem,
        force: !changed_only,
    };
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
            export(store, options, &hour, selection).await
        }
        None => export(DirStore::new(to), options, &hour, selection).await,
    }
}
