//! The export driver, shared by the `hourly-export` function and `dplctl`:
//! list an hour's staging objects, decide per partition, and export a
//! partition by downloading its staging objects to local files, merging
//! them, and streaming the CSV file to the store in parts. A run exports
//! [`ExportOptions::concurrency`] partitions at once; each merges and
//! encodes on a blocking thread while its parts upload ([`super::parts`]).
//!
//! Memory per partition in progress: at most two part buffers, plus one
//! decompressing reader per merged file (at most
//! [`ExportOptions::max_fan_in`] at once; more staging objects are first
//! merged in rounds into temporary files). It does not depend on the number
//! of rows.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;

use super::encode::{CsvParts, CsvSummary};
use super::keys::{Layout, Partition};
use super::manifest::{
    decide, Decision, Manifest, ManifestError, Reason, StagingGone, MANIFEST_FORMAT_VERSION,
};
use super::merge::{Merge, MergeError};
use super::parts::{self, Part, PartReceiver, PartSender};
use super::staging::{gzip_reader, RawReader, StagingError, StagingWriter, READ_BUFFER_BYTES};
use super::store::{ObjectInfo, ObjectStore, StoreError, UploadedPart};
use crate::csv::export_name;
use crate::record::DplRecord;
use crate::time::Timestamp;

const MIB: usize = 1024 * 1024;
/// Smallest part of a multipart upload but the last: 5 MiB (Amazon S3 User
/// Guide, "Amazon S3 multipart upload limits").
pub const MIN_PART_SIZE: usize = 5 * MIB;
/// Largest part: 5 GiB (same page).
pub const MAX_PART_SIZE: usize = 5 * 1024 * MIB;
/// Most parts of one upload: 10,000 (same page). With the default part size
/// a file may reach 160 GiB.
pub const MAX_PARTS: i32 = 10_000;
/// Default part size: a few parts for a busy hour, 16 MiB of memory.
pub const DEFAULT_PART_SIZE: usize = 16 * MIB;
/// Default number of files merged at once. Each open reader holds about
/// 100 KiB (gzip window and buffers), so 64 readers stay under 8 MiB.
pub const DEFAULT_MAX_FAN_IN: usize = 64;
/// Content type of the CSV files.
pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";
const MANIFEST_CONTENT_TYPE: &str = "application/json";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    pub part_size: usize,
    pub max_fan_in: usize,
    /// Where staging objects are downloaded (Lambda: `/tmp`).
    pub work_dir: PathBuf,
    /// Partitions [`Exporter::run`] exports at once, each encoding on its
    /// own thread (default: the CPUs available).
    pub concurrency: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            part_size: DEFAULT_PART_SIZE,
            max_fan_in: DEFAULT_MAX_FAN_IN,
            work_dir: std::env::temp_dir(),
            concurrency: default_concurrency(),
        }
    }
}

/// Allocations from this size up get their own mapping: every upload part
/// (at least [`MIN_PART_SIZE`]), and little else.
const OWN_MAPPING_BYTES: usize = 4 * MIB;

/// Makes glibc's malloc give every upload part its own mapping, returned to
/// the system when the part is freed, so the process's resident memory
/// follows the parts in flight instead of growing with the number of parts.
/// By default glibc raises its mmap threshold to the largest block freed
/// (up to 32 MiB on 64-bit), so after the first part every part comes from
/// a heap arena that keeps its high-water mark; a fixed threshold turns that
/// adjustment off (mallopt(3), `M_MMAP_THRESHOLD`). Process-wide: call once
/// at start in a binary that exports. Elsewhere than glibc, does nothing.
pub fn map_parts_separately() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc parameter; any value is valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_BYTES as libc::c_int);
    }
}

/// The CPUs this process may use, at least 1.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

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
    #[error("the CSV encoder stopped before the end of the file")]
    EncoderStopped,
    #[error("the CSV encoder panicked: {0}")]
    EncoderPanicked(String),
}

fn local(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::LocalFile {
        path: path.to_owned(),
        source,
    }
}

/// The result of exporting one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub partition: Partition,
    pub reason: Reason,
    pub staging_objects: usize,
    pub parts: i32,
    pub duplicates_dropped: u64,
    pub csv: CsvSummary,
    /// Staging objects the previous file was made from that this one was
    /// not (only with [`Reason::Shrinking`]).
    pub missing_staging: Vec<String>,
}

/// What happened to one partition in a run.
#[derive(Debug)]
pub enum PartitionOutcome {
    Exported(Exported),
    UpToDate(Partition),
    /// Not exported: staging objects its file was made from are gone, and
    /// the run does not allow the file to shrink.
    Kept(Partition, StagingGone),
    Failed(Partition, ExportError),
}

impl PartitionOutcome {
    /// A kept partition as the error an operator's run reports.
    pub fn kept_as_error(self) -> Self {
        match self {
            PartitionOutcome::Kept(partition, gone) => PartitionOutcome::Failed(
                partition.clone(),
                ExportError::StagingGone { partition, gone },
            ),
            other => other,
        }
    }
}

/// Progress callbacks of a run, for logs and progress bars.
pub trait Progress {
    fn planned(&mut self, _partitions: usize) {}
    fn finished(&mut self, _outcome: &PartitionOutcome) {}
}

impl Progress for () {}

/// Which partitions a run covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only this OEM's partitions.
    pub oem_id: Option<String>,
    /// Export even partitions whose manifest is current.
    pub force: bool,
    /// Export even partitions whose file was made from staging objects
    /// that are gone, replacing it with fewer rows (loud: logged, and the
    /// outcome names the objects).
    pub allow_shrink: bool,
}

pub struct Exporter<S> {
    store: S,
    layout: Layout,
    options: ExportOptions,
}

impl<S: ObjectStore> Exporter<S> {
    pub fn new(store: S, layout: Layout, options: ExportOptions) -> Result<Self, ExportError> {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&options.part_size) {
            return Err(ExportError::PartSize(options.part_size));
        }
        Ok(Self {
            store,
            layout,
            options: ExportOptions {
                max_fan_in: options.max_fan_in.max(2),
                concurrency: options.concurrency.max(1),
                ..options
            },
        })
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The staging objects of `hour`, by partition. Keys that are not
    /// staging keys are ignored.
    pub async fn staged(
        &self,
        hour: Timestamp,
    ) -> Result<BTreeMap<Partition, Vec<ObjectInfo>>, StoreError> {
        let listing = self
            .store
            .list(&self.layout.staging_hour_prefix(hour))
            .await?;
        let mut partitions: BTreeMap<Partition, Vec<ObjectInfo>> = BTreeMap::new();
        for object in listing {
            if let Ok(partition) = self.layout.parse_staging_key(&object.key) {
                partitions.entry(partition).or_default().push(object);
            }
        }
        for objects in partitions.values_mut() {
            objects.sort();
        }
        Ok(partitions)
    }

    /// Whether `partition`, staged as `listing`, needs exporting.
    pub async fn decide(
        &self,
        partition: &Partition,
        listing: &[ObjectInfo],
    ) -> Result<Decision, ExportError> {
        if listing.is_empty() {
            return Ok(Decision::NothingStaged);
        }
        let key = self.layout.manifest_key(partition);
        let manifest = match self.store.get(&key).await? {
            Some(bytes) => Some(Manifest::from_json(&key, &bytes)?),
            None => None,
        };
        let export = match &manifest {
            Some(m) if m.staging == listing => {
                self.store.head(&self.layout.export_key(partition)).await?
            }
            _ => None,
        };
        Ok(decide(listing, manifest.as_ref(), export.as_ref()))
    }

    /// The staging objects of one partition: one listing of its folder
    /// (not of the whole hour), sorted. Keys that are not staging keys of
    /// `partition` are ignored.
    pub async fn staged_partition(
        &self,
        partition: &Partition,
    ) -> Result<Vec<ObjectInfo>, StoreError> {
        let listing = self
            .store
            .list(&self.layout.staging_partition_prefix(partition))
            .await?;
        let mut objects: Vec<ObjectInfo> = listing
            .into_iter()
            .filter(|o| self.layout.parse_staging_key(&o.key).as_ref() == Ok(partition))
            .collect();
        objects.sort();
        Ok(objects)
    }

    /// The partitions of `hours` that `selection` covers, each with its
    /// staging objects, in hour order: what [`Exporter::run`] works on, and
    /// what a fanned-out run hands out one task each.
    pub async fn plan(
        &self,
        hours: &[Timestamp],
        selection: &Selection,
    ) -> Result<Vec<(Partition, Vec<ObjectInfo>)>, StoreError> {
        let mut work = Vec::new();
        for &hour in hours {
            let staged = self.staged(hour).await?;
            work.extend(
                staged
                    .into_iter()
                    .filter(|(p, _)| selection.oem_id.as_ref().is_none_or(|oem| *oem == p.oem_id)),
            );
        }
        Ok(work)
    }

    /// Runs the export of `hours`: every selected partition that needs it
    /// (or all, with `force`), [`ExportOptions::concurrency`] at a time.
    /// One partition's failure does not stop the others; it is in the
    /// outcomes, which are in plan order.
    pub async fn run(
        &self,
        hours: &[Timestamp],
        selection: &Selection,
        progress: &mut impl Progress,
    ) -> Result<Vec<PartitionOutcome>, StoreError> {
        let work = self.plan(hours, selection).await?;
        progress.planned(work.len());
        let mut outcomes = Vec::with_capacity(work.len());
        let mut running = futures_util::stream::iter(work)
            .map(|(partition, listing)| async move {
                self.run_planned(partition, &listing, selection).await
            })
            .buffered(self.options.concurrency);
        while let Some(outcome) = running.next().await {
            progress.finished(&outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Decides on one planned partition (staged as `listing`) and exports
    /// it if it needs it, or always with `force`; but never from fewer
    /// staging objects than its file was made from, unless `allow_shrink`.
    pub async fn run_planned(
        &self,
        partition: Partition,
        listing: &[ObjectInfo],
        selection: &Selection,
    ) -> PartitionOutcome {
        let (reason, missing) = match self.decide(&partition, listing).await {
            Ok(Decision::StagingGone(gone)) if !selection.allow_shrink => {
                return PartitionOutcome::Kept(partition, gone)
            }
            // The caller logs it: [`Exported::missing_staging`].
            Ok(Decision::StagingGone(gone)) => (Reason::Shrinking, gone.missing),
            Ok(_) if selection.force => (Reason::Forced, Vec::new()),
            Ok(Decision::Export(reason)) => (reason, Vec::new()),
            Ok(Decision::UpToDate | Decision::NothingStaged) => {
                return PartitionOutcome::UpToDate(partition)
            }
            // An unreadable manifest cannot say what is missing; an operator
            // who forces the export replaces it.
            Err(ExportError::Manifest(_)) if selection.force => (Reason::Forced, Vec::new()),
            Err(error) => return PartitionOutcome::Failed(partition, error),
        };
        match self.export(&partition, listing, reason).await {
            Ok(exported) => PartitionOutcome::Exported(Exported {
                missing_staging: missing,
                ..exported
            }),
            Err(error) => PartitionOutcome::Failed(partition, error),
        }
    }

    /// Exports `partition` from the staging objects `listing`: writes its
    /// CSV file (nothing if there are no rows) and then its manifest. The
    /// merge and encoding run on a blocking thread ([`EncodeJob`]) while
    /// this task uploads the parts.
    pub async fn export(
        &self,
        partition: &Partition,
        listing: &[ObjectInfo],
        reason: Reason,
    ) -> Result<Exported, ExportError> {
        let dir = tempfile::Builder::new()
            .prefix("dpl-export-")
            .tempdir_in(&self.options.work_dir)
            .map_err(local(&self.options.work_dir))?;
        let mut files = Vec::with_capacity(listing.len());
        for (n, object) in listing.iter().enumerate() {
            let path = dir.path().join(format!("{n}.ndjson.gz"));
            self.store.download(&object.key, &path).await?;
            files.push(path);
        }
        let (sender, mut parts) = parts::channel();
        let encoder = tokio::task::spawn_blocking({
            let job = EncodeJob {
                files,
                dir: dir.path().to_owned(),
                partition: partition.clone(),
                part_size: self.options.part_size,
                max_fan_in: self.options.max_fan_in,
            };
            move || job.run(&sender)
        });
        let key = self.layout.export_key(partition);
        let upload = self.upload(&key, &mut parts).await;
        // Stops an encoder still running after a failed upload.
        drop(parts);
        let encoded = encoder
            .await
            .map_err(|e| ExportError::EncoderPanicked(e.to_string()))?;
        // A failed encoder sent its error to the upload, which returns it.
        let upload = upload?;
        let encoded = encoded.ok_or(ExportError::EncoderStopped)?;
        let exported = Exported {
            partition: partition.clone(),
            reason,
            staging_objects: listing.len(),
            parts: upload.as_ref().map_or(0, |(_, parts)| *parts),
            duplicates_dropped: encoded.duplicates,
            missing_staging: Vec::new(),
            csv: match upload {
                Some(_) => encoded.csv.clone(),
                None => empty_summary(),
            },
        };
        if let Some((etag, _)) = upload {
            let manifest = Manifest {
                format_version: MANIFEST_FORMAT_VERSION,
                oem_id: partition.oem_id.clone(),
                event_type: export_name(partition.event_type).to_owned(),
                hour: partition.hour.folder_name().to_string(),
                export_key: key,
                export_etag: etag,
                rows: encoded.csv.rows,
                bytes: encoded.csv.bytes,
                sha256: encoded.csv.sha256,
                duplicates_dropped: encoded.duplicates,
                staging: listing.to_vec(),
            };
            // The customer's copy first: the manifest, written last, is what
            // makes a later run find the partition up to date.
            self.store
                .put(
                    &self.layout.customer_manifest_key(partition),
                    manifest.for_customer(partition).to_json(),
                    MANIFEST_CONTENT_TYPE,
                )
                .await?;
            self.store
                .put(
                    &self.layout.manifest_key(partition),
                    manifest.to_json(),
                    MANIFEST_CONTENT_TYPE,
                )
                .await?;
        }
        Ok(exported)
    }

    /// Streams the file to `key`: one `PutObject` if it fits in one part,
    /// else a multipart upload (aborted on failure). Returns the ETag and
    /// the number of parts; `None` if there were no rows.
    async fn upload(
        &self,
        key: &str,
        parts: &mut PartReceiver,
    ) -> Result<Option<(String, i32)>, ExportError> {
        let Some(first) = parts.next().await? else {
            return Ok(None);
        };
        if first.last {
            let etag = self.store.put(key, first.body, CSV_CONTENT_TYPE).await?;
            return Ok(Some((etag, 1)));
        }
        let upload_id = self.store.start_upload(key, CSV_CONTENT_TYPE).await?;
        let result = self.upload_parts(key, &upload_id, first, parts).await;
        if result.is_err() {
            // Best effort: the bucket's lifecycle rule removes what is left.
            let _ = self.store.abort_upload(key, &upload_id).await;
        }
        result.map(Some)
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Part,
        parts: &mut PartReceiver,
    ) -> Result<(String, i32), ExportError> {
        let mut uploaded: Vec<UploadedPart> = Vec::new();
        let mut next = Some(first);
        let mut number = 0;
        while let Some(part) = next {
            number += 1;
            if number > MAX_PARTS {
                return Err(ExportError::TooManyParts {
                    part_size: self.options.part_size,
                });
            }
            uploaded.push(
                self.store
                    .upload_part(key, upload_id, number, part.body)
                    .await?,
            );
            parts.uploaded();
            next = parts.next().await?;
        }
        let etag = self
            .store
            .complete_upload(key, upload_id, &uploaded)
            .await?;
        Ok((etag, number))
    }
}

/// The CPU half of a partition's export, run on a blocking thread: reduce
/// the fan-in, merge, encode the parts and hand them to the uploader.
struct EncodeJob {
    files: Vec<PathBuf>,
    dir: PathBuf,
    partition: Partition,
    part_size: usize,
    max_fan_in: usize,
}

/// What the encoder made of a partition.
struct Encoded {
    csv: CsvSummary,
    /// Duplicates dropped by the intermediate merges and the last one.
    duplicates: u64,
}

impl EncodeJob {
    /// Encodes the file into `out`. An error goes to the uploader, which
    /// ends the upload with it; then there is nothing to return.
    fn run(self, out: &PartSender) -> Option<Encoded> {
        match self.encode(out) {
            Ok(encoded) => Some(encoded),
            Err(error) => {
                out.send(Err(error));
                None
            }
        }
    }

    fn encode(self, out: &PartSender) -> Result<Encoded, ExportError> {
        let (files, fan_in_duplicates) = reduce_fan_in(self.files, self.max_fan_in, &self.dir)?;
        let mut merge = Merge::new(open_all(&files)?);
        let partition = &self.partition;
        let rows = merge.by_ref().map(|row| {
            row.map_err(ExportError::from)
                .and_then(|r| belongs(partition, r))
        });
        let mut csv = CsvParts::new(rows, self.part_size);
        while out.wait_for_room() {
            let Some(body) = csv.next_part()? else {
                break;
            };
            let part = Part {
                body,
                last: csv.is_done(),
            };
            if !out.send(Ok(part)) {
                break;
            }
        }
        let summary = csv.summary();
        drop(csv);
        Ok(Encoded {
            csv: summary,
            duplicates: fan_in_duplicates + merge.stats().duplicates,
        })
    }
}

fn empty_summary() -> CsvSummary {
    CsvSummary {
        rows: 0,
        bytes: 0,
        sha256: String::new(),
    }
}

/// Checks that a staged row belongs to the partition it is staged under.
fn belongs(partition: &Partition, record: DplRecord) -> Result<DplRecord, ExportError> {
    let event = &record.dpl_event;
    let time = event.time();
    if event.oem_id() == partition.oem_id
        && event.event_type() == partition.event_type
        && time.hour_start() == partition.hour
    {
        return Ok(record);
    }
    Err(ExportError::Misplaced {
        partition: partition.clone(),
        event_id: record.event_id.to_string(),
        oem_id: event.oem_id().to_owned(),
        event_type: event.event_type().to_string(),
        time,
    })
}

type FileReader =
    super::staging::StagingReader<io::BufReader<flate2::read::MultiGzDecoder<io::BufReader<File>>>>;

fn open_all(files: &[PathBuf]) -> Result<Vec<FileReader>, ExportError> {
    files
        .iter()
        .map(|path| {
            let file = File::open(path).map_err(local(path))?;
            Ok(gzip_reader(io::BufReader::new(file)))
        })
        .collect()
}

/// Merges `files`, at most `max_fan_in` at a time, into files of `dir`
/// until at most `max_fan_in` are left. Returns them and the duplicates
/// dropped on the way.
///
/// Each step merges the smallest files, and the first step only as many as
/// needed for every later step to be a full `max_fan_in` (the k-way form of
/// an optimal merge pattern): with 120 files and a fan-in of 64 it merges 57
/// into one and leaves 64, instead of rewriting all 120. Intermediate merges
/// copy staging lines as they are (see [`RawRow`]); only the final merge
/// decodes records.
pub fn reduce_fan_in(
    files: Vec<PathBuf>,
    max_fan_in: usize,
    dir: &Path,
) -> Result<(Vec<PathBuf>, u64), ExportError> {
    let max_fan_in = max_fan_in.max(2);
    if files.len() <= max_fan_in {
        return Ok((files, 0));
    }
    // Smallest first; ties in listing order, so the result is deterministic.
    let mut queue = BinaryHeap::with_capacity(files.len());
    for (n, path) in files.into_iter().enumerate() {
        let size = std::fs::metadata(&path).map_err(local(&path))?.len();
        queue.push(Reverse((size, n, path)));
    }
    let mut duplicates = 0;
    let mut step = 0;
    let mut order = queue.len();
    while queue.len() > max_fan_in {
        let take = if step == 0 {
            (queue.len() - 2) % (max_fan_in - 1) + 2
        } else {
            max_fan_in
        };
        step += 1;
        let group: Vec<PathBuf> = (0..take)
            .filter_map(|_| queue.pop().map(|Reverse((_, _, path))| path))
            .collect();
        let out = dir.join(format!("merged-{step}.ndjson.gz"));
        duplicates += merge_into(&group, &out)?;
        for path in &group {
            std::fs::remove_file(path).map_err(local(path))?;
        }
        let size = std::fs::metadata(&out).map_err(local(&out))?.len();
        queue.push(Reverse((size, order, out)));
        order += 1;
    }
    let mut left: Vec<(usize, PathBuf)> = queue
        .into_iter()
        .map(|Reverse((_, n, path))| (n, path))
        .collect();
    left.sort();
    Ok((left.into_iter().map(|(_, path)| path).collect(), duplicates))
}

type RawFileReader = RawReader<io::BufReader<flate2::read::MultiGzDecoder<io::BufReader<File>>>>;

fn open_raw(files: &[PathBuf]) -> Result<Vec<RawFileReader>, ExportError> {
    files
        .iter()
        .map(|path| {
            let file = File::open(path).map_err(local(path))?;
            Ok(RawReader::new(io::BufReader::with_capacity(
                READ_BUFFER_BYTES,
                flate2::read::MultiGzDecoder::new(io::BufReader::new(file)),
            )))
        })
        .collect()
}

fn merge_into(inputs: &[PathBuf], out: &Path) -> Result<u64, ExportError> {
    let file = File::create(out).map_err(local(out))?;
    let mut writer = StagingWriter::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file));
    let mut merge = Merge::new(open_raw(inputs)?);
    for row in merge.by_ref() {
        writer.write_line(&row?.line).map_err(local(out))?;
    }
    writer
        .finish()
        .and_then(|mut w| w.flush())
        .map_err(local(out))?;
    Ok(merge.stats().duplicates)
}

/// Output buffer of an intermediate merge.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::staging::tests::record;
    use crate::export::staging::StagingError;
    use crate::export::staging::{encode, sort_rows};
    use crate::export::DirStore;

    /// Reducing the fan-in (raw line merges) then merging gives the same
    /// rows as one merge of every file, each event once.
    #[test]
    fn reduced_fan_in_merges_to_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        let mut want = Vec::new();
        for f in 0..11u32 {
            // Files overlap: event n is staged in files n % 11 and (n + 1) % 11.
            let mut rows: Vec<DplRecord> = (0..200u32)
                .filter(|n| n % 11 == f || (n + 1) % 11 == f)
                .map(|n| record("a", 1_000 * i64::from(n % 37), n))
                .collect();
            want.extend(rows.iter().cloned());
            sort_rows(&mut rows);
            let path = dir.path().join(format!("{f}.ndjson.gz"));
            std::fs::write(&path, encode(&rows)).unwrap();
            files.push(path);
        }
        sort_rows(&mut want);
        for fan_in in [2, 3, 4, 10, 11, 64] {
            let work = tempfile::tempdir().unwrap();
            let copies: Vec<PathBuf> = files
                .iter()
                .map(|p| {
                    let to = work.path().join(p.file_name().unwrap());
                    std::fs::copy(p, &to).unwrap();
                    to
                })
                .collect();
            let (left, dropped) = reduce_fan_in(copies, fan_in, work.path()).unwrap();
            assert!(
                left.len() <= fan_in.max(2),
                "fan-in {fan_in}: {}",
                left.len()
            );
            let mut merge = Merge::new(open_all(&left).unwrap());
            let got: Vec<DplRecord> = merge.by_ref().map(Result::unwrap).collect();
            assert_eq!(got, want, "fan-in {fan_in}");
            assert_eq!(
                dropped + merge.stats().duplicates,
                400 - 200,
                "fan-in {fan_in}"
            );
        }
    }

    #[test]
    fn a_raw_row_has_the_records_sort_key() {
        let activation = DplRecord {
            dpl_event: crate::DeviceEvent::Activation {
                metadata: crate::event::DeviceMetadata {
                    oem_id: "a".into(),
                    oem_model: "m".into(),
                    dsn: "d".into(),
                    event_type: crate::EventType::Activation,
                },
                activation: crate::event::Activation {
                    id: "i".into(),
                    device_type: "Wifi".into(),
                    status: "Activated".into(),
                    event_time: Timestamp::from_millis(5_000).unwrap(),
                },
            },
            event_id: crate::EventId::derive("x", crate::EventType::Activation),
            stream_order: None,
        };
        for r in [activation, record("a", 7_000, 3)] {
            let raw = super::super::staging::RawRow::parse(&r.to_json()).unwrap();
            assert_eq!(raw.sort_key(), r.sort_key());
            assert_eq!(raw.line, r.to_json());
        }
    }

    /// A directory store whose downloads wait until `partners` downloads
    /// have started: exporting partitions one at a time would never get
    /// past the first.
    struct Gate {
        dir: DirStore,
        partners: tokio::sync::Barrier,
    }

    impl ObjectStore for Gate {
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
            self.dir.list(prefix).await
        }
        async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
            self.dir.head(key).await
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.dir.get(key).await
        }
        async fn download(&self, key: &str, to: &Path) -> Result<u64, StoreError> {
            self.partners.wait().await;
            self.dir.download(key, to).await
        }
        async fn put(&self, key: &str, body: Vec<u8>, kind: &str) -> Result<String, StoreError> {
            self.dir.put(key, body, kind).await
        }
        async fn start_upload(&self, key: &str, kind: &str) -> Result<String, StoreError> {
            self.dir.start_upload(key, kind).await
        }
        async fn upload_part(
            &self,
            key: &str,
            upload_id: &str,
            number: i32,
            body: Vec<u8>,
        ) -> Result<UploadedPart, StoreError> {
            self.dir.upload_part(key, upload_id, number, body).await
        }
        async fn complete_upload(
            &self,
            key: &str,
            upload_id: &str,
            parts: &[UploadedPart],
        ) -> Result<String, StoreError> {
            self.dir.complete_upload(key, upload_id, parts).await
        }
        async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
            self.dir.abort_upload(key, upload_id).await
        }
    }

    fn connectivity(oem: &str, hour: Timestamp) -> Partition {
        Partition {
            hour,
            oem_id: oem.to_owned(),
            event_type: crate::EventType::Connectivity,
        }
    }

    /// Writes `bytes` as staging object number `n` of `partition` in `root`.
    fn put_staging(root: &Path, partition: &Partition, n: usize, bytes: &[u8]) {
        let sequence = n.to_string();
        let range = super::super::BatchRange {
            shard_id: "shardId-000000000000",
            first_sequence: &sequence,
            last_sequence: &sequence,
        };
        let key = Layout::default().staging_key(partition, &range).unwrap();
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// One staging object of 100 rows for each of `oems`, in `root`.
    fn stage(root: &Path, hour: Timestamp, oems: &[&str]) {
        for (n, oem) in oems.iter().enumerate() {
            let rows: Vec<DplRecord> = (0..100)
                .map(|i| record(oem, hour.millis() + i64::from(i) * 1_000, i))
                .collect();
            put_staging(root, &connectivity(oem, hour), n, &encode(&rows));
        }
    }

    #[tokio::test]
    async fn a_staging_error_after_the_first_parts_aborts_the_upload_and_names_the_line() {
        let root = tempfile::tempdir().unwrap();
        let hour = Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
        let partition = connectivity("a", hour);
        // Enough rows for two parts of 5 MiB, then an object whose third
        // line, late in the hour, is not a record.
        let mut row = Vec::new();
        crate::csv::write_row(&record("a", hour.millis(), 0).dpl_event, &mut row);
        let count = u32::try_from(MIN_PART_SIZE / row.len() * 3 / 2).unwrap();
        let rows: Vec<DplRecord> = (0..count)
            .map(|i| record("a", hour.millis() + i64::from(i) * 10, i))
            .collect();
        put_staging(root.path(), &partition, 0, &encode(&rows));
        let late: Vec<DplRecord> = (0..2)
            .map(|i| record("a", hour.millis() + 3_500_000 + i, count + i as u32))
            .collect();
        let mut text = Vec::new();
        for r in &late {
            text.extend(r.to_json());
            text.push(b'\n');
        }
        text.extend(b"{\"dpl_event\": 7}\n");
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&text).unwrap();
        put_staging(root.path(), &partition, 1, &gzip.finish().unwrap());

        let options = ExportOptions {
            part_size: MIN_PART_SIZE,
            ..ExportOptions::default()
        };
        let exporter =
            Exporter::new(DirStore::new(root.path()), Layout::default(), options).unwrap();
        let listing = exporter.staged_partition(&partition).await.unwrap();
        let error = exporter
            .export(&partition, &listing, Reason::Forced)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &error,
                ExportError::Staging(MergeError::Source {
                    source_index: 1,
                    error: StagingError::Record { line: 3, .. },
                })
            ),
            "{error:?}"
        );
        let layout = Layout::default();
        for key in [
            layout.export_key(&partition),
            layout.manifest_key(&partition),
        ] {
            assert!(!root.path().join(key).exists());
        }
        // The multipart upload was started (its parts' folder exists) and
        // aborted (the upload's parts are gone).
        let uploads = root.path().join(crate::export::store::UPLOADS_DIR);
        assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_run_exports_its_partitions_concurrently_and_reports_them_in_order() {
        let root = tempfile::tempdir().unwrap();
        let hour = Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
        stage(root.path(), hour, &["a", "b", "c", "d"]);
        let gate = Gate {
            dir: DirStore::new(root.path()),
            partners: tokio::sync::Barrier::new(2),
        };
        let options = ExportOptions {
            concurrency: 2,
            ..ExportOptions::default()
        };
        let exporter = Exporter::new(gate, Layout::default(), options).unwrap();
        let (hours, selection, mut progress) = ([hour], Selection::default(), ());
        let run = exporter.run(&hours, &selection, &mut progress);
        let outcomes = tokio::time::timeout(std::time::Duration::from_secs(10), run)
            .await
            .expect("partitions exported one at a time")
            .unwrap();
        let exported: Vec<(String, u64)> = outcomes
            .iter()
            .map(|o| match o {
                PartitionOutcome::Exported(e) => (e.partition.oem_id.clone(), e.csv.rows),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            exported,
            [("a", 100), ("b", 100), ("c", 100), ("d", 100)].map(|(o, n)| (o.to_owned(), n))
        );
    }
}
