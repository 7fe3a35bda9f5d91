//! The port to object storage (S3 in AWS, a directory in benchmarks and
//! tools) and its filesystem adapter, [`DirStore`].

use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One stored object as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectInfo {
    pub key: String,
    pub etag: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{operation} {key}: {message}")]
    Service {
        operation: &'static str,
        key: String,
        message: String,
    },
    /// The multipart upload is gone: completed or aborted (S3's
    /// `NoSuchUpload`).
    #[error("{operation} {key}: no such upload (completed or aborted)")]
    NoSuchUpload {
        operation: &'static str,
        key: String,
    },
    #[error("{operation} {key}: {source}")]
    Io {
        operation: &'static str,
        key: String,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// The store answered `operation` on `key` with an error.
    pub fn service(operation: &'static str, key: &str, message: impl ToString) -> Self {
        StoreError::Service {
            operation,
            key: key.to_owned(),
            message: message.to_string(),
        }
    }

    pub fn io(operation: &'static str, key: &str, source: io::Error) -> Self {
        StoreError::Io {
            operation,
            key: key.to_owned(),
            source,
        }
    }
}

/// One part of a multipart upload, as `CompleteMultipartUpload` wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedPart {
    pub number: i32,
    pub etag: String,
}

/// What the export needs from object storage. Every call is idempotent.
pub trait ObjectStore {
    /// Every object whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<ObjectInfo>, StoreError>>;
    /// The object's listing entry, or `None` if there is no such object.
    fn head(&self, key: &str) -> impl Future<Output = Result<Option<ObjectInfo>, StoreError>>;
    /// A small object's bytes (a manifest), or `None` if there is none.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>>;
    /// Up to `len` bytes of the object from byte `start` (fewer at its end):
    /// how a split file's checksum is read back. The default reads the
    /// whole object; the adapters read only the range.
    fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> {
        async move {
            let bytes = self
                .get(key)
                .await?
                .ok_or_else(|| StoreError::io("get_range", key, io::ErrorKind::NotFound.into()))?;
            let from = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let to = from.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
            Ok(bytes[from..to.min(bytes.len())].to_vec())
        }
    }
    /// Streams the object into the file `to`, returning its size.
    fn download(&self, key: &str, to: &Path) -> impl Future<Output = Result<u64, StoreError>>;
    /// Writes a whole object; returns its ETag.
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<String, StoreError>>;
    /// Starts a multipart upload; returns its id.
    fn start_upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> impl Future<Output = Result<String, StoreError>>;
    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<UploadedPart, StoreError>>;
    /// Completes the upload; returns the object's ETag.
    fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> impl Future<Output = Result<String, StoreError>>;
    fn abort_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>>;
}

/// Objects as files under a directory (key = relative path): the export's
/// store in benchmarks and for `dplctl export --to DIR`. An object's ETag is
/// its size and modification time: cheap to list, and it changes when the
/// file is rewritten (not a content digest, as S3's is).
#[derive(Clone, Debug)]
pub struct DirStore {
    root: PathBuf,
}

/// Where a multipart upload's parts wait, under the store's root.
pub(crate) const UPLOADS_DIR: &str = ".uploads";

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn part_path(&self, upload_id: &str, number: i32) -> PathBuf {
        self.root
            .join(UPLOADS_DIR)
            .join(upload_id)
            .join(number.to_string())
    }

    fn write_file(&self, key: &str, path: &Path, body: &[u8]) -> Result<(), StoreError> {
        let io = |e| StoreError::io("put", key, e);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(path, body).map_err(io)
    }

    fn info(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let meta = match std::fs::metadata(self.path(key)) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("head", key, e)),
        };
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(Some(ObjectInfo {
            key: key.to_owned(),
            etag: format!("{:x}-{modified:x}", meta.len()),
            size: meta.len(),
        }))
    }

    fn etag(&self, key: &str) -> Result<String, StoreError> {
        self.info(key)?
            .map(|info| info.etag)
            .ok_or_else(|| StoreError::io("head", key, io::ErrorKind::NotFound.into()))
    }

    fn walk(&self, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name() != Some(UPLOADS_DIR.as_ref()) {
                    self.walk(&path, out)?;
                }
            } else if let Some(key) = path.strip_prefix(&self.root).ok().and_then(|p| p.to_str()) {
                out.push(key.replace(std::path::MAIN_SEPARATOR, "/"));
            }
        }
        Ok(())
    }
}

impl ObjectStore for DirStore {
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut keys = Vec::new();
        self.walk(&self.root, &mut keys)
            .map_err(|e| StoreError::io("list", prefix, e))?;
        keys.retain(|k| k.starts_with(prefix));
        keys.sort();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.extend(self.info(&key)?);
        }
        Ok(out)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.info(key)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(self.path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("get", key, e)),
        }
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        use std::io::{Read, Seek};
        let io = |e| StoreError::io("get_range", key, e);
        let mut file = std::fs::File::open(self.path(key)).map_err(io)?;
        file.seek(io::SeekFrom::Start(start)).map_err(io)?;
        let mut out = Vec::new();
        file.take(len).read_to_end(&mut out).map_err(io)?;
        Ok(out)
    }

    async fn download(&self, key: &str, to: &Path) -> Result<u64, StoreError> {
        std::fs::copy(self.path(key), to).map_err(|e| StoreError::io("download", key, e))
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        _content_type: &str,
    ) -> Result<String, StoreError> {
        self.write_file(key, &self.path(key), &body)?;
        self.etag(key)
    }

    async fn start_upload(&self, key: &str, _content_type: &str) -> Result<String, StoreError> {
        let id = hex::encode(Sha256::digest(key.as_bytes()));
        std::fs::create_dir_all(self.root.join(UPLOADS_DIR).join(&id))
            .map_err(|e| StoreError::io("start_upload", key, e))?;
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        self.write_file(key, &self.part_path(upload_id, number), &body)?;
        Ok(UploadedPart {
            number,
            etag: format!("{number}-{:x}", body.len()),
        })
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<String, StoreError> {
        let io = |e| StoreError::io("complete_upload", key, e);
        // As S3: an upload that is gone (completed or aborted) or a part
        // but the last under 5 MiB fails and leaves the object as it was.
        if !self.root.join(UPLOADS_DIR).join(upload_id).is_dir() {
            return Err(StoreError::NoSuchUpload {
                operation: "complete_upload",
                key: key.to_owned(),
            });
        }
        let mut sizes = Vec::with_capacity(parts.len());
        for part in parts {
            sizes.push(
                std::fs::metadata(self.part_path(upload_id, part.number))
                    .map_err(io)?
                    .len(),
            );
        }
        if let Some(n) = sizes
            .iter()
            .rev()
            .skip(1)
            .position(|&size| size < super::upload::MIN_PART_SIZE as u64)
        {
            return Err(StoreError::service(
                "complete_upload",
                key,
                format!(
                    "EntityTooSmall: part {} is under 5 MiB",
                    parts[parts.len() - 2 - n].number
                ),
            ));
        }
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        // Written beside the object and renamed: readers see the old or the
        // new file, never a mix.
        let partial = self.part_path(upload_id, 0);
        let mut out = io::BufWriter::new(std::fs::File::create(&partial).map_err(io)?);
        for part in parts {
            let mut file =
                std::fs::File::open(self.part_path(upload_id, part.number)).map_err(io)?;
            io::copy(&mut file, &mut out).map_err(io)?;
        }
        out.flush().map_err(io)?;
        drop(out);
        std::fs::rename(&partial, &path).map_err(io)?;
        self.abort_upload(key, upload_id).await?;
        self.etag(key)
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        match std::fs::remove_dir_all(self.root.join(UPLOADS_DIR).join(upload_id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StoreError::io("abort_upload", key, e))
            }
            _ => Ok(()),
        }
    }
}
