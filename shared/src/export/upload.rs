//! The upload half of a partition's export: the parts the encoder hands
//! over go to the store as one `PutObject` (a single part) or one multipart
//! upload, aborted on failure, within S3's multipart limits.

use super::error::ExportError;
use super::parts::{Part, PartReceiver};
use super::split::{folds_into_previous, PartRecord, TimeRange};
use super::store::{ObjectStore, UploadedPart};

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
/// Content type of the CSV files.
pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// Streams the file to `key`: one `PutObject` if it fits in one part,
/// else a multipart upload (aborted on failure). Returns the ETag and
/// the number of parts; `None` if there were no rows.
pub(super) async fn upload<S: ObjectStore>(
    store: &S,
    key: &str,
    parts: &mut PartReceiver,
    part_size: usize,
) -> Result<Option<(String, i32)>, ExportError> {
    let Some(first) = parts.next().await? else {
        return Ok(None);
    };
    if first.last {
        let etag = store.put(key, first.body, CSV_CONTENT_TYPE).await?;
        return Ok(Some((etag, 1)));
    }
    let upload_id = store.start_upload(key, CSV_CONTENT_TYPE).await?;
    let result = upload_parts(store, part_size, key, &upload_id, first, parts).await;
    if result.is_err() {
        // Best effort: the bucket's lifecycle rule removes what is left.
        let _ = store.abort_upload(key, &upload_id).await;
    }
    result.map(Some)
}

async fn upload_parts<S: ObjectStore>(
    store: &S,
    part_size: usize,
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
            return Err(ExportError::TooManyParts { part_size });
        }
        uploaded.push(store.upload_part(key, upload_id, number, part.body).await?);
        parts.uploaded();
        next = parts.next().await?;
    }
    let etag = store.complete_upload(key, upload_id, &uploaded).await?;
    Ok((etag, number))
}

/// Uploads a range task's parts to the shared upload `upload_id`, as part
/// numbers from [`TimeRange::first_part`] on (at most
/// [`TimeRange::max_parts`]). Its last part, if under 5 MiB, is folded
/// into the one before ([`folds_into_previous`]), so only a range with
/// less than 5 MiB in all has a small part. Holding one part back, a range
/// has at most three in memory (held, received, being encoded). Nothing is
/// aborted on failure: the upload is shared, and the task is retried.
pub(super) async fn upload_range<S: ObjectStore>(
    store: &S,
    key: &str,
    upload_id: &str,
    range: &TimeRange,
    parts: &mut PartReceiver,
    part_size: usize,
) -> Result<Vec<PartRecord>, ExportError> {
    let mut uploaded = Vec::new();
    let first = range.first_part();
    let end = first + range.max_parts();
    let mut held: Option<Vec<u8>> = None;
    let put = async |body: Vec<u8>, number: i32| {
        if number >= end {
            return Err(ExportError::TooManyParts { part_size });
        }
        let size = body.len() as u64;
        let part = store.upload_part(key, upload_id, number, body).await?;
        Ok::<_, ExportError>(PartRecord {
            number: part.number,
            etag: part.etag,
            size,
        })
    };
    while let Some(part) = parts.next().await? {
        let body = match held.take() {
            None => {
                held = Some(part.body);
                continue;
            }
            Some(mut previous)
                if folds_into_previous(previous.len(), part.body.len(), part.last) =>
            {
                previous.extend(part.body);
                previous
            }
            Some(previous) => {
                held = Some(part.body);
                previous
            }
        };
        let number = first + uploaded.len() as i32;
        uploaded.push(put(body, number).await?);
        parts.uploaded();
    }
    if let Some(body) = held {
        let number = first + uploaded.len() as i32;
        uploaded.push(put(body, number).await?);
    }
    Ok(uploaded)
}
