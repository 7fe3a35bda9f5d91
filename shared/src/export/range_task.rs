//! The range tasks of a split partition ([`super::split`]) and its
//! completion: the store calls around the pure rules.
//!
//! 1. [`Exporter::plan_split`] starts the one multipart upload of the
//!    file and writes the plan (upload id, ranges, listing).
//! 2. [`Exporter::export_range`], once per range (an SQS task each, or
//!    concurrently in-process): downloads the plan's staging objects,
//!    merges the rows of its range only, uploads them as its part numbers
//!    and writes its record. A record already written (a retried task)
//!    is not uploaded again.
//! 3. [`Exporter::finish_split`], by every range task after its record:
//!    the one that finds every range recorded completes the upload, reads
//!    the file back for its SHA-256, and writes the customer manifest, the
//!    manifest, and the split's `done.json` (after which a retried task
//!    does nothing). A second completion finds the upload gone and the file
//!    in place, and writes the same manifests again.

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::encode::CsvSummary;
use super::encoder::empty_summary;
use super::error::ExportError;
use super::keys::{Partition, SPLIT_RANGE_PREFIX};
use super::manifest::Reason;
use super::run::{joined, manifest_of, Exported, Exporter};
use super::split::{
    completion, ranges_for, Completion, RangeRecord, SplitPlan, TimeRange, SPLIT_FORMAT_VERSION,
};
use super::store::{ObjectInfo, ObjectStore, StoreError};
use super::upload::{upload_range, CSV_CONTENT_TYPE};

const JSON: &str = "application/json";
/// Bytes read at a time when a split file is read back for its checksum.
const READ_BACK_BYTES: u64 = 8 * 1024 * 1024;

/// What one range task did.
#[derive(Debug)]
pub enum RangeOutcome {
    /// The split was complete before (a retried task): nothing done.
    AlreadyDone,
    /// Its parts are uploaded and recorded; other ranges are not yet.
    Uploaded { missing: usize },
    /// It found every range recorded and completed the file; or, with
    /// `in_one_piece`, found a range other than the last with rows but
    /// under 5 MiB (S3's least part), so the split could not be completed,
    /// and exported the partition in one piece itself.
    Completed {
        exported: Box<Exported>,
        in_one_piece: bool,
    },
}

/// The id of the split of `upload_id`: 16 hex digits of its SHA-256 (an
/// upload id is long and opaque; the id names the split's folder).
pub fn split_id(upload_id: &str) -> String {
    hex::encode(Sha256::digest(upload_id.as_bytes()))[..16].to_owned()
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).expect("split records always serialize");
    out.push(b'\n');
    out
}

impl<S: ObjectStore> Exporter<S> {
    /// How many range tasks export a partition staged as `listing`.
    pub fn ranges_for(&self, listing: &[ObjectInfo]) -> u32 {
        ranges_for(
            listing.iter().map(|o| o.size).sum(),
            self.options().split_bytes,
        )
    }

    /// Starts the split export of `partition` from `listing` in `ranges`
    /// ranges: the shared upload and the plan. Returns the split's id,
    /// which the range tasks name.
    pub async fn plan_split(
        &self,
        partition: &Partition,
        listing: &[ObjectInfo],
        reason: Reason,
        ranges: u32,
    ) -> Result<String, ExportError> {
        let export_key = self.layout().export_key(partition);
        let upload_id = self
            .store()
            .start_upload(&export_key, CSV_CONTENT_TYPE)
            .await?;
        let id = split_id(&upload_id);
        let plan = SplitPlan {
            format_version: SPLIT_FORMAT_VERSION,
            export_key,
            upload_id,
            ranges,
            reason,
            staging: listing.to_vec(),
        };
        self.store()
            .put(
                &self.layout().split_plan_key(partition, &id),
                to_json(&plan),
                JSON,
            )
            .await?;
        Ok(id)
    }

    /// The plan of split `id` of `partition`.
    pub async fn split_plan(
        &self,
        partition: &Partition,
        id: &str,
    ) -> Result<SplitPlan, ExportError> {
        let key = self.layout().split_plan_key(partition, id);
        self.read_json(&key)
            .await?
            .ok_or_else(|| ExportError::Split {
                key,
                reason: "no such plan (never planned, or deleted)".into(),
            })
    }

    async fn read_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ExportError> {
        match self.store().get(key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|source| {
                ExportError::SplitRecord {
                    key: key.to_owned(),
                    source,
                }
            }),
        }
    }

    /// Exports `range` of split `id` of `partition`, then completes the
    /// split if every range is recorded. Idempotent: see the module docs.
    pub async fn export_range(
        &self,
        partition: &Partition,
        id: &str,
        range: TimeRange,
    ) -> Result<RangeOutcome, ExportError> {
        let plan = self.split_plan(partition, id).await?;
        if !range.is_valid() || range.of != plan.ranges {
            return Err(ExportError::Split {
                key: self.layout().split_plan_key(partition, id),
                reason: format!(
                    "range {} of {} is not a range of this plan ({} ranges)",
                    range.index, range.of, plan.ranges
                ),
            });
        }
        let layout = self.layout();
        if self
            .store()
            .head(&layout.split_done_key(partition, id))
            .await?
            .is_some()
        {
            return Ok(RangeOutcome::AlreadyDone);
        }
        let record_key = layout.split_range_key(partition, id, range.index);
        if self.store().head(&record_key).await?.is_none() {
            let record = self.upload_range(partition, &plan, range).await?;
            self.store()
                .put(&record_key, to_json(&record), JSON)
                .await?;
        }
        self.finish_split(partition, id, &plan).await
    }

    /// Merges and uploads the rows of `range` as its parts of the shared
    /// upload.
    async fn upload_range(
        &self,
        partition: &Partition,
        plan: &SplitPlan,
        range: TimeRange,
    ) -> Result<RangeRecord, ExportError> {
        let window = range.window(partition.hour);
        let (_dir, mut parts, encoder) =
            self.start_encoder(partition, &plan.staging, window).await?;
        let uploaded = upload_range(
            self.store(),
            &plan.export_key,
            &plan.upload_id,
            &range,
            &mut parts,
            self.options().part_size,
        )
        .await;
        drop(parts);
        let encoded = joined(encoder).await?;
        let uploaded = uploaded?;
        let encoded = encoded.ok_or(ExportError::EncoderStopped)?;
        Ok(RangeRecord {
            format_version: SPLIT_FORMAT_VERSION,
            index: range.index,
            parts: uploaded,
            rows: encoded.csv.rows,
            bytes: encoded.csv.bytes,
            duplicates_dropped: encoded.duplicates,
        })
    }

    /// Completes split `id` if every range is recorded (see the module
    /// docs); harmless to call again.
    pub async fn finish_split(
        &self,
        partition: &Partition,
        id: &str,
        plan: &SplitPlan,
    ) -> Result<RangeOutcome, ExportError> {
        let layout = self.layout();
        let records_prefix = format!("{}{SPLIT_RANGE_PREFIX}", layout.split_prefix(partition, id));
        let mut records: Vec<RangeRecord> = Vec::new();
        for object in self.store().list(&records_prefix).await? {
            records.extend(self.read_json(&object.key).await?);
        }
        let mut in_one_piece = false;
        let exported = match completion(plan.ranges, &records) {
            Completion::Waiting { missing } => {
                return Ok(RangeOutcome::Uploaded {
                    missing: missing.len(),
                })
            }
            Completion::Empty => {
                let _ = self
                    .store()
                    .abort_upload(&plan.export_key, &plan.upload_id)
                    .await;
                Exported {
                    partition: partition.clone(),
                    reason: plan.reason,
                    staging_objects: plan.staging.len(),
                    parts: 0,
                    duplicates_dropped: records.iter().map(|r| r.duplicates_dropped).sum(),
                    csv: empty_summary(),
                    missing_staging: Vec::new(),
                }
            }
            Completion::TooSmall { .. } => {
                in_one_piece = true;
                let _ = self
                    .store()
                    .abort_upload(&plan.export_key, &plan.upload_id)
                    .await;
                self.export_whole(partition, &plan.staging, plan.reason)
                    .await?
            }
            Completion::Complete {
                parts,
                rows,
                bytes,
                duplicates_dropped,
            } => {
                let key = &plan.export_key;
                let completed = self
                    .store()
                    .complete_upload(key, &plan.upload_id, &parts)
                    .await;
                // A second completion: the upload is gone, the file is there.
                let object = self.store().head(key).await?;
                let object = match (completed, object) {
                    (Ok(_) | Err(StoreError::NoSuchUpload { .. }), Some(object))
                        if object.size == bytes =>
                    {
                        object
                    }
                    (Err(error), _) => return Err(error.into()),
                    (Ok(_), object) => {
                        return Err(ExportError::Split {
                            key: key.clone(),
                            reason: format!(
                                "completed, but the file has {:?} bytes, not the {bytes} recorded",
                                object.map(|o| o.size)
                            ),
                        })
                    }
                };
                let sha256 = self.read_back_sha256(key, bytes).await?;
                let exported = Exported {
                    partition: partition.clone(),
                    reason: plan.reason,
                    staging_objects: plan.staging.len(),
                    parts: i32::try_from(parts.len()).unwrap_or(i32::MAX),
                    duplicates_dropped,
                    csv: CsvSummary {
                        rows,
                        bytes,
                        sha256,
                    },
                    missing_staging: Vec::new(),
                };
                let manifest = manifest_of(
                    partition,
                    key.clone(),
                    object.etag,
                    &exported,
                    &plan.staging,
                );
                self.write_manifests(partition, &manifest).await?;
                exported
            }
        };
        self.store()
            .put(
                &layout.split_done_key(partition, id),
                b"{}\n".to_vec(),
                JSON,
            )
            .await?;
        Ok(RangeOutcome::Completed {
            exported: Box::new(exported),
            in_one_piece,
        })
    }

    /// SHA-256 of the first `bytes` bytes of `key`, read back in pieces
    /// (the ranges' digests cannot be combined into the file's).
    async fn read_back_sha256(&self, key: &str, bytes: u64) -> Result<String, ExportError> {
        let mut digest = Sha256::new();
        let mut offset = 0;
        while offset < bytes {
            let len = READ_BACK_BYTES.min(bytes - offset);
            let chunk = self.store().get_range(key, offset, len).await?;
            if chunk.is_empty() {
                return Err(ExportError::Split {
                    key: key.to_owned(),
                    reason: format!("the file ends at {offset} bytes, not {bytes}"),
                });
            }
            offset += chunk.len() as u64;
            digest.update(&chunk);
        }
        Ok(hex::encode(digest.finalize()))
    }

    /// Exports `partition` from `listing` in `ranges` range tasks in this
    /// process, [`super::ExportOptions::concurrency`] at a time: the same
    /// plan, tasks and completion as the fanned-out run.
    pub async fn export_split(
        &self,
        partition: &Partition,
        listing: &[ObjectInfo],
        reason: Reason,
        ranges: u32,
    ) -> Result<Exported, ExportError> {
        let id = self.plan_split(partition, listing, reason, ranges).await?;
        let outcomes: Vec<Result<RangeOutcome, ExportError>> =
            futures_util::stream::iter(0..ranges)
                .map(|index| self.export_range(partition, &id, TimeRange { index, of: ranges }))
                .buffer_unordered(self.options().concurrency)
                .collect()
                .await;
        let mut completed = None;
        let mut first_error = None;
        for outcome in outcomes {
            match outcome {
                Ok(RangeOutcome::Completed { exported, .. }) => completed = Some(*exported),
                Ok(_) => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        let plan = self.split_plan(partition, &id).await?;
        if let Some(error) = first_error {
            // Nothing retries this split: a later run plans a new one.
            let _ = self
                .store()
                .abort_upload(&plan.export_key, &plan.upload_id)
                .await;
            return Err(error);
        }
        match completed {
            Some(exported) => Ok(exported),
            None => match self.finish_split(partition, &id, &plan).await? {
                RangeOutcome::Completed { exported, .. } => Ok(*exported),
                other => Err(ExportError::Split {
                    key: self.layout().split_plan_key(partition, &id),
                    reason: format!("every range ran, yet the split is not complete: {other:?}"),
                }),
            },
        }
    }
}
