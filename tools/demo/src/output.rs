//! What a run leaves on disk, for the user to open after it exits, all
//! under one directory (`make demo`: `target/demo/`), which the next run
//! empties first:
//!
//! - `exports/...`: the export tree, each object under the bucket's export
//!   prefix at its own key (`exports/{oem}/{type}/{hour}/{type}.csv`);
//! - `streams/*.jsonl`: the records of the DPL stream and of the two
//!   customers' streams, one record's data a line, byte for byte;
//! - `logs/functions.log`: the functions' logs, written by the subscriber
//!   the functions install in Lambda; `logs/moto.log`: a copy of the
//!   emulator's log, when `scripts/with-moto.sh` names it (`MOTO_LOG`).

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use dpl::export::ObjectStore;

use crate::customers::{self, customer_kinesis, role_arn};
use crate::pipeline::Outcome;

/// Where `make demo` leaves its files, under the repository root.
pub const DEMO_DIR: &str = "target/demo";
pub const FUNCTIONS_LOG: &str = "logs/functions.log";

/// One file the run left, and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    pub path: PathBuf,
    pub what: String,
}

/// Everything the run left under `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnDisk {
    pub root: PathBuf,
    /// The export tree's root, and its CSV files.
    pub exports: PathBuf,
    pub csv_files: Vec<PathBuf>,
    /// Stream records and logs.
    pub files: Vec<Saved>,
}

/// Empties `root` (the previous run's files) and creates it, with its
/// `logs/`.
pub fn prepare(root: &Path) -> anyhow::Result<PathBuf> {
    if root.exists() {
        fs::remove_dir_all(root).with_context(|| format!("emptying {}", root.display()))?;
    }
    fs::create_dir_all(root.join("logs"))
        .with_context(|| format!("creating {}", root.display()))?;
    root.canonicalize()
        .with_context(|| format!("resolving {}", root.display()))
}

/// Sends every log line of the process to `root`'s [`FUNCTIONS_LOG`],
/// through the subscriber the functions' mains install
/// (`lambda_runtime::tracing::init_default_subscriber_with_writer`:
/// `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`, INFO by default; JSON when
/// `AWS_LAMBDA_LOG_FORMAT=JSON`). Once per process.
pub fn log_functions(root: &Path) -> anyhow::Result<()> {
    let path = root.join(FUNCTIONS_LOG);
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    lambda_runtime::tracing::init_default_subscriber_with_writer(Mutex::new(file));
    Ok(())
}

/// Where the object at `key` goes under `root`: `None` for a key that
/// would leave it (`..`, an absolute path).
pub fn local_path(root: &Path, key: &str) -> Option<PathBuf> {
    let relative = Path::new(key);
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| root.join(relative))
}

/// Writes the export tree and the stream records under `root` (made by
/// [`prepare`]), copies the emulator's log at `moto_log` if given, and
/// says what is where.
pub async fn save(
    outcome: &Outcome,
    root: &Path,
    moto_log: Option<&Path>,
) -> anyhow::Result<OnDisk> {
    let store = outcome.store();
    let prefix = format!("{}/", outcome.layout.exports);
    let mut csv_files = Vec::new();
    for object in store.list(&prefix).await.context("listing the export")? {
        let path = local_path(root, &object.key)
            .with_context(|| format!("an export key that leaves the tree: {}", object.key))?;
        let bytes = store.get(&object.key).await?.unwrap_or_default();
        write(&path, &bytes)?;
        // Beside them, each file's customer manifest (`_manifests/`).
        if object.key.ends_with(".csv") {
            csv_files.push(path);
        }
    }

    let c = &outcome.customers;
    let client = customer_kinesis(&outcome.aws, &role_arn()).await?;
    let kinesis: Vec<Vec<u8>> = customers::read_stream(&client, &c.stream_name)
        .await?
        .into_iter()
        .map(|(_, r)| r.data().as_ref().to_vec())
        .collect();
    let hub: Vec<Vec<u8>> = c
        .hubs
        .messages()
        .into_iter()
        .map(|m| m.body.into_bytes())
        .collect();
    let mut files = Vec::new();
    for (name, records, what) in [
        (
            "streams/dpl.jsonl",
            &outcome.dpl_data,
            "the DPL stream's records",
        ),
        (
            "streams/customer-kinesis.jsonl",
            &kinesis,
            "Acme's Kinesis stream's records",
        ),
        (
            "streams/customer-eventhub.jsonl",
            &hub,
            "Breeze Air's event hub's messages",
        ),
    ] {
        let path = root.join(name);
        write(&path, &lines(records))?;
        files.push(Saved {
            path,
            what: format!("{} ({}), one a line", what, records.len()),
        });
    }
    files.push(Saved {
        path: root.join(FUNCTIONS_LOG),
        what: "the functions' logs".to_owned(),
    });
    if let Some(moto_log) = moto_log {
        let path = root.join("logs/moto.log");
        fs::copy(moto_log, &path).with_context(|| format!("copying {}", moto_log.display()))?;
        files.push(Saved {
            path,
            what: "the emulator's requests (moto_server's log)".to_owned(),
        });
    }
    Ok(OnDisk {
        root: root.to_owned(),
        exports: root.join(&outcome.layout.exports),
        csv_files,
        files,
    })
}

/// `records`, each followed by a line feed.
fn lines(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
    for record in records {
        out.extend_from_slice(record);
        out.push(b'\n');
    }
    out
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    File::create(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_key_goes_under_the_root_at_its_own_path() {
        let root = Path::new("/tmp/demo");
        assert_eq!(
            local_path(
                root,
                "exports/0dfc7900/connection/2026-12-01-07:00:00/connection.csv"
            ),
            Some(PathBuf::from(
                "/tmp/demo/exports/0dfc7900/connection/2026-12-01-07:00:00/connection.csv"
            ))
        );
    }

    #[test]
    fn a_key_that_would_leave_the_root_is_refused() {
        let root = Path::new("/tmp/demo");
        for key in ["../x.csv", "exports/../../x.csv", "/etc/passwd", "./x"] {
            assert_eq!(local_path(root, key), None, "{key}");
        }
    }

    #[test]
    fn records_are_written_one_a_line() {
        assert_eq!(lines(&[b"{}".to_vec(), b"[1]".to_vec()]), b"{}\n[1]\n");
        assert_eq!(lines(&[]), b"");
    }

    #[test]
    fn prepare_empties_the_previous_run() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("demo");
        fs::create_dir_all(root.join("exports/old")).unwrap();
        fs::write(root.join("exports/old/file.csv"), "old").unwrap();
        let prepared = prepare(&root).unwrap();
        assert!(prepared.join("logs").is_dir());
        assert!(!prepared.join("exports").exists());
    }
}
