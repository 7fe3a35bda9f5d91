//! The DPL history older than the stream keeps: the staging objects the
//! event-store function writes (`staging/{hour}/{oem}/{type}/...`), read
//! hour by hour in the export's order. A catch-up that fell further behind
//! than the stream's retention delivers that part from here
//! (`super::catchup`), and `dplctl streams replay` replays from here.
//!
//! The port is [`Archive`]; [`StagingArchive`] implements it on the export's
//! object store (S3 in the functions, a local directory in tests). An hour
//! is downloaded to a temporary directory and merged as the export merges
//! it ([`Merge`], with [`reduce_fan_in`] for many objects): events in (event
//! time, stream order, event id) order, each once, memory one reader per merged file.

use std::future::Future;
use std::path::PathBuf;

use crate::event::EventType;
use crate::export::local::{download, open_all, reduce_fan_in, FileReader, DEFAULT_MAX_FAN_IN};
use crate::export::merge::{Merge, MergeError};
use crate::export::staging::StagingError;
use crate::export::store::DirStore;
use crate::export::ExportError;
use crate::export::{Layout, ObjectStore};
use crate::record::DplRecord;
use crate::streams::subscription::Selection;
use crate::Timestamp;

/// Why the archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive of {oem} at {hour}: {source}")]
    Export {
        oem: String,
        hour: String,
        #[source]
        source: ExportError,
    },
    #[error("archive work directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One hour of one OEM's staged events, in export order; the downloaded
/// files live as long as it does.
pub struct StagedHour {
    merge: Merge<FileReader, DplRecord>,
    _dir: tempfile::TempDir,
}

impl Iterator for StagedHour {
    type Item = Result<DplRecord, MergeError<StagingError>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.merge.next()
    }
}

/// See the module docs.
pub trait Archive: Send + Sync {
    /// The staged events of `oem` in `hour` whose type `types` allows.
    fn hour(
        &self,
        oem: &str,
        hour: Timestamp,
        types: &Selection<EventType>,
    ) -> impl Future<Output = Result<StagedHour, ArchiveError>> + Send;
}

/// [`Archive`] on the staging objects of an object store.
pub struct StagingArchive<S> {
    store: S,
    layout: Layout,
    work_dir: PathBuf,
}

impl<S: ObjectStore> StagingArchive<S> {
    /// Downloads go to a temporary directory in `work_dir` (Lambda: `/tmp`).
    pub fn new(store: S, layout: Layout, work_dir: impl Into<PathBuf>) -> Self {
        Self {
            store,
            layout,
            work_dir: work_dir.into(),
        }
    }

    /// The staging keys of `oem` in `hour` of the types `types` allows.
    pub async fn keys(
        &self,
        oem: &str,
        hour: Timestamp,
        types: &Selection<EventType>,
    ) -> Result<Vec<String>, ExportError> {
        let prefix = format!("{}{oem}/", self.layout.staging_hour_prefix(hour));
        let mut keys: Vec<String> = self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter(|o| {
                self.layout
                    .parse_staging_key(&o.key)
                    .is_ok_and(|p| p.oem_id == oem && types.allows(&p.event_type))
            })
            .map(|o| o.key)
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn open(
        &self,
        oem: &str,
        hour: Timestamp,
        types: &Selection<EventType>,
    ) -> Result<StagedHour, ArchiveError> {
        let failed = |source| ArchiveError::Export {
            oem: oem.to_owned(),
            hour: hour.folder_name().to_string(),
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix("dpl-archive-")
            .tempdir_in(&self.work_dir)
            .map_err(|source| ArchiveError::WorkDir {
                path: self.work_dir.clone(),
                source,
            })?;
        let keys = self.keys(oem, hour, types).await.map_err(failed)?;
        let files = download(&self.store, keys.iter().map(String::as_str), dir.path())
            .await
            .map_err(failed)?;
        let (files, _) = reduce_fan_in(files, DEFAULT_MAX_FAN_IN, dir.path()).map_err(failed)?;
        let readers = open_all(&files).map_err(failed)?;
        Ok(StagedHour {
            merge: Merge::new(readers),
            _dir: dir,
        })
    }
}

impl Archive for StagingArchive<DirStore> {
    fn hour(
        &self,
        oem: &str,
        hour: Timestamp,
        types: &Selection<EventType>,
    ) -> impl Future<Output = Result<StagedHour, ArchiveError>> + Send {
        self.open(oem, hour, types)
    }
}

#[cfg(feature = "s3")]
impl Archive for StagingArchive<crate::export::s3::S3Store> {
    fn hour(
        &self,
        oem: &str,
        hour: Timestamp,
        types: &Selection<EventType>,
    ) -> impl Future<Output = Result<StagedHour, ArchiveError>> + Send {
        self.open(oem, hour, types)
    }
}

/// No archive: catch-up beyond the stream's retention is not possible
/// (tools and tests that never reach it).
pub struct NoArchive;

impl Archive for NoArchive {
    async fn hour(
        &self,
        oem: &str,
        hour: Timestamp,
        _types: &Selection<EventType>,
    ) -> Result<StagedHour, ArchiveError> {
        Err(ArchiveError::WorkDir {
            path: PathBuf::from(format!("(no archive for {oem} at {})", hour.folder_name())),
            source: std::io::Error::other("this engine has no archive"),
        })
    }
}
