//! What can go wrong in an export, for every half of it (driver, encoder,
//! upload, local files).

use std::io;
use std::path::{Path, PathBuf};

use super::keys::Partition;
use super::manifest::{ManifestError, StagingGone};
use super::merge::MergeError;
use super::staging::StagingError;
use super::store::StoreError;
use super::upload::{MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE};
use crate::time::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Staging(#[from] MergeError<StagingError>),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("local file {path}: {source}")]
    LocalFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "a row of event {event_id} ({oem_id}, {event_type}, {time}) is staged under {partition}"
    )]
    Misplaced {
        partition: Partition,
        event_id: String,
        oem_id: String,
        event_type: String,
        time: Timestamp,
    },
    #[error(
        "the file needs more than {MAX_PARTS} parts of {part_size} bytes: raise the part size"
    )]
    TooManyParts { part_size: usize },
    #[error(
        "part size {0} is outside {MIN_PART_SIZE}..={MAX_PART_SIZE} bytes (S3 multipart limits)"
    )]
    PartSize(usize),
    #[error(
        "{partition}: refusing to export: {gone}. Staging expired (StagingRetentionDays) or \
         was deleted, and an export now would replace the file with fewer rows, so the file \
         is left as it is. To replace it anyway, losing those rows, rerun with --allow-shrink \
         (dplctl export) or \"allow_shrink\": true (an hour request)"
    )]
    StagingGone {
        partition: Partition,
        gone: StagingGone,
    },
    #[error("split export {key}: {reason}")]
    Split { key: String, reason: String },
    #[error("split export record {key} is unreadable: {source}")]
    SplitRecord {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the CSV encoder stopped before the end of the file")]
    EncoderStopped,
    #[error("the CSV encoder panicked: {0}")]
    EncoderPanicked(String),
}

pub(crate) fn local(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::LocalFile {
        path: path.to_owned(),
        source,
    }
}
