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

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures_util::StreamExt;

use super::encode::CsvSummary;
use super::encoder::{empty_summary, EncodeJob};
use super::error::{local, ExportError};
use super::keys::{Layout, Partition};
use super::local::{download, DEFAULT_MAX_FAN_IN};
use super::manifest::{decide, Decision, Manifest, Reason, StagingGone, MANIFEST_FORMAT_VERSION};
use super::parts;
use super::split::{TimeWindow, DEFAULT_SPLIT_BYTES};
use super::store::{ObjectInfo, ObjectStore, StoreError};
use super::upload::{upload, DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE};
use crate::csv::export_name;
use crate::time::Timestamp;

const MANIFEST_CONTENT_TYPE: &str = "application/json";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    pub part_size: usize,
    pub max_fan_in: usize,
    /// Where staging objects are downloaded (Lambda: `/tmp`).
    pub work_dir: PathBuf,
    /// Partitions [`Exporter::run`] exports at once, each encoding on its
    /// own thread (default: the CPUs available); also the range tasks of a
    /// split partition an in-process run exports at once.
    pub concurrency: usize,
    /// Staging bytes (the listing's sizes, compressed) above which a
    /// partition is split into time ranges exported by several tasks
    /// ([`super::split`]); 0 never splits.
    pub split_bytes: u64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            part_size: DEFAULT_PART_SIZE,
            max_fan_in: DEFAULT_MAX_FAN_IN,
            work_dir: std::env::temp_dir(),
            concurrency: default_concurrency(),
            split_bytes: DEFAULT_SPLIT_BYTES,
        }
    }
}

/// The CPUs this process may use, at least 1.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
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

    pub fn options(&self) -> &ExportOptions {
        &self.options
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
    /// CSV file (nothing if there are no rows) and then its manifest; split
    /// into time ranges exported [`ExportOptions::concurrency`] at a time
    /// when its staging exceeds [`ExportOptions::split_bytes`]
    /// ([`Exporter::export_split`]), else in one piece
    /// ([`Exporter::export_whole`]).
    pub async fn export(
        &self,
        partition: &Partition,
        listing: &[ObjectInfo],
        reason: Reason,
    ) -> Result<Exported, ExportError> {
        match self.ranges_for(listing) {
            1 => self.export_whole(partition, listing, reason).await,
            ranges => self.export_split(partition, listing, reason, ranges).await,
        }
    }

    /// Downloads `listing` into a new work directory and starts the
    /// encoder of the rows in `window` on a blocking thread; returns the
    /// directory (to keep while encoding), the parts' receiver and the
    /// encoder's handle.
    pub(super) async fn start_encoder(
        &self,
        partition: &Partition,
        listing: &[ObjectInfo],
        window: TimeWindow,
    ) -> Result<(tempfile::TempDir, parts::PartReceiver, EncoderHandle), ExportError> {
        let dir = tempfile::Builder::new()
            .prefix("dpl-export-")
            .tempdir_in(&self.options.work_dir)
            .map_err(local(&self.options.work_dir))?;
        let files = download(
            &self.store,
            listing.iter().map(|o| o.key.as_str()),
            dir.path(),
        )
        .await?;
        let (sender, parts) = parts::channel();
        let encoder = tokio::task::spawn_blocking({
            let job = EncodeJob {
                files,
                dir: dir.path().to_owned(),
                partition: partition.clone(),
                part_size: self.options.part_size,
                max_fan_in: self.options.max_fan_in,
                window,
            };
            move || job.run(&sender)
        });
        Ok((dir, parts, encoder))
    }

    /// Exports `partition` from `listing` in one piece, on this task.
    pub async fn export_whole(
        &self,
        partition: &Partition,
        listing: &[ObjectInfo],
        reason: Reason,
    ) -> Result<Exported, ExportError> {
        let (_dir, mut parts, encoder) = self
            .start_encoder(partition, listing, TimeWindow::default())
            .await?;
        let key = self.layout.export_key(partition);
        let upload = upload(&self.store, &key, &mut parts, self.options.part_size).await;
        // Stops an encoder still running after a failed upload.
        drop(parts);
        let encoded = joined(encoder).await?;
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
            let manifest = manifest_of(partition, key, etag, &exported, listing);
            self.write_manifests(partition, &manifest).await?;
        }
        Ok(exported)
    }

    /// Writes the customer's copy of `manifest`, then `manifest`.
    pub(super) async fn write_manifests(
        &self,
        partition: &Partition,
        manifest: &Manifest,
    ) -> Result<(), ExportError> {
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
        Ok(())
    }
}

/// The encoder's thread: what it made of the partition, if it finished.
pub(super) type EncoderHandle = tokio::task::JoinHandle<Option<super::encoder::Encoded>>;

/// Waits for the encoder's thread.
pub(super) async fn joined(
    encoder: EncoderHandle,
) -> Result<Option<super::encoder::Encoded>, ExportError> {
    encoder
        .await
        .map_err(|e| ExportError::EncoderPanicked(e.to_string()))
}

/// The manifest of `exported`, written as `key` with `etag`, made from
/// `listing`.
pub(super) fn manifest_of(
    partition: &Partition,
    key: String,
    etag: String,
    exported: &Exported,
    listing: &[ObjectInfo],
) -> Manifest {
    Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        oem_id: partition.oem_id.clone(),
        event_type: export_name(partition.event_type).to_owned(),
        hour: partition.hour.folder_name().to_string(),
        export_key: key,
        export_etag: etag,
        rows: exported.csv.rows,
        bytes: exported.csv.bytes,
        sha256: exported.csv.sha256.clone(),
        duplicates_dropped: exported.duplicates_dropped,
        staging: listing.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::*;
    use crate::export::merge::MergeError;
    use crate::export::split::TimeRange;
    use crate::export::staging::tests::record;
    use crate::export::staging::{encode, StagingError};
    use crate::export::store::UploadedPart;
    use crate::export::{DirStore, RangeOutcome};
    use crate::record::DplRecord;

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

    /// Stages `count` rows of `partition` spread over its hour as `at`
    /// says (second of the hour of row `n`), in six objects, one in ten of
    /// object 0's rows staged again in object 5.
    fn stage_spread(root: &Path, partition: &Partition, count: u32, at: impl Fn(u32) -> i64) {
        let hour = partition.hour.millis();
        for object in 0..6u32 {
            let mut rows: Vec<DplRecord> = (0..count)
                .filter(|n| n % 6 == object || (object == 5 && n % 60 == 0))
                .map(|n| record(&partition.oem_id, hour + at(n) * 1_000, n))
                .collect();
            crate::export::staging::sort_rows(&mut rows);
            put_staging(root, partition, object as usize, &encode(&rows));
        }
    }

    fn exporter(root: &Path, split_bytes: u64) -> Exporter<DirStore> {
        let options = ExportOptions {
            part_size: MIN_PART_SIZE,
            split_bytes,
            concurrency: 2,
            ..ExportOptions::default()
        };
        Exporter::new(DirStore::new(root), Layout::default(), options).unwrap()
    }

    /// The export folder's files, the CSV's bytes and the manifest.
    fn written(root: &Path, partition: &Partition) -> (Vec<String>, Vec<u8>, Manifest) {
        let layout = Layout::default();
        let csv = root.join(layout.export_key(partition));
        let folder: Vec<String> = std::fs::read_dir(csv.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let key = layout.manifest_key(partition);
        let manifest = Manifest::from_json(&key, &std::fs::read(root.join(&key)).unwrap()).unwrap();
        (folder, std::fs::read(csv).unwrap(), manifest)
    }

    /// Exports `partition` whole, then split in `ranges` (forced, same
    /// staging), and checks the two files and manifests agree; returns the
    /// split's outcome.
    async fn whole_then_split(root: &Path, partition: &Partition, ranges: u64) -> Exported {
        let whole = exporter(root, 0);
        let listing = whole.staged_partition(partition).await.unwrap();
        assert_eq!(whole.ranges_for(&listing), 1);
        let one = whole
            .export(partition, &listing, Reason::Forced)
            .await
            .unwrap();
        let (_, csv, manifest) = written(root, partition);
        let staged: u64 = listing.iter().map(|o| o.size).sum();
        let split = exporter(root, staged / ranges + 1);
        assert_eq!(u64::from(split.ranges_for(&listing)), ranges);
        let many = split
            .export(partition, &listing, Reason::Forced)
            .await
            .unwrap();
        let (folder, split_csv, split_manifest) = written(root, partition);
        assert_eq!(
            folder,
            [format!(
                "{}.csv",
                crate::csv::export_name(partition.event_type)
            )]
        );
        assert!(
            split_csv == csv,
            "the split file differs from the whole one"
        );
        assert_eq!(
            (
                &split_manifest.sha256,
                split_manifest.rows,
                split_manifest.bytes
            ),
            (&manifest.sha256, manifest.rows, manifest.bytes)
        );
        assert_eq!(split_manifest.staging, manifest.staging);
        assert_eq!(
            split_manifest.duplicates_dropped,
            manifest.duplicates_dropped
        );
        assert_eq!(
            (many.csv.clone(), many.duplicates_dropped),
            (one.csv, one.duplicates_dropped)
        );
        let uploads = root.join(crate::export::store::UPLOADS_DIR);
        assert_eq!(std::fs::read_dir(&uploads).map_or(0, Iterator::count), 0);
        many
    }

    #[tokio::test]
    async fn a_partition_split_in_three_ranges_is_the_same_file_as_exported_whole() {
        let root = tempfile::tempdir().unwrap();
        let hour = Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
        let partition = connectivity("a", hour);
        // About 100 bytes a row: over 5 MiB in each third of the hour.
        let mut row = Vec::new();
        crate::csv::write_row(&record("a", hour.millis(), 0).dpl_event, &mut row);
        let count = u32::try_from(MIN_PART_SIZE / row.len() * 3 * 11 / 10).unwrap();
        stage_spread(root.path(), &partition, count, |n| i64::from(n % 3_600));
        let exported = whole_then_split(root.path(), &partition, 3).await;
        assert_eq!(exported.parts, 3, "{exported:?}");
        assert_eq!(exported.csv.rows, u64::from(count));

        // Retrying a range task or the completion changes nothing.
        let split = exporter(root.path(), 1);
        let layout = Layout::default();
        let splits = root
            .path()
            .join(layout.split_prefix(&partition, "x"))
            .parent()
            .unwrap()
            .to_owned();
        let id = std::fs::read_dir(&splits)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .next()
            .unwrap();
        let before = written(root.path(), &partition);
        let retried = split
            .export_range(&partition, &id, TimeRange { index: 1, of: 3 })
            .await
            .unwrap();
        assert!(matches!(retried, RangeOutcome::AlreadyDone), "{retried:?}");
        let plan = split.split_plan(&partition, &id).await.unwrap();
        let again = split.finish_split(&partition, &id, &plan).await.unwrap();
        assert!(
            matches!(
                again,
                RangeOutcome::Completed {
                    in_one_piece: false,
                    ..
                }
            ),
            "{again:?}"
        );
        assert_eq!(written(root.path(), &partition), before);
    }

    #[tokio::test]
    async fn empty_ranges_leave_gaps_in_the_part_numbers() {
        let root = tempfile::tempdir().unwrap();
        let hour = Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
        let partition = connectivity("a", hour);
        // Every row in the last third: ranges 0 and 1 upload nothing.
        stage_spread(root.path(), &partition, 600, |n| {
            2_500 + i64::from(n % 1_000)
        });
        let exported = whole_then_split(root.path(), &partition, 3).await;
        assert_eq!((exported.parts, exported.csv.rows), (1, 600));
    }

    #[tokio::test]
    async fn a_small_range_before_the_last_makes_the_partition_export_in_one_piece() {
        let root = tempfile::tempdir().unwrap();
        let hour = Timestamp::parse("2020-08-28T09:00:00Z").unwrap();
        let partition = connectivity("a", hour);
        // Rows in every third, far under 5 MiB each: no valid split.
        stage_spread(root.path(), &partition, 900, |n| i64::from(n * 4 % 3_600));
        let exported = whole_then_split(root.path(), &partition, 3).await;
        assert_eq!((exported.parts, exported.csv.rows), (1, 900));
    }
}
