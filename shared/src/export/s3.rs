//! [`ObjectStore`] for `aws_sdk_s3::Client`: requests and answers only.

use std::io::Write;
use std::path::Path;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::keys::HourLabel;
use super::store::{ObjectInfo, ObjectStore, StoreError, UploadedPart};
use super::{Layout, Manifest};
use crate::csv::export_name;
use crate::{EventType, Timestamp};

/// An S3 bucket as an [`ObjectStore`].
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Store {
    /// A store on `bucket` with a client built from `sdk`. Path-style
    /// addressing when an endpoint is set (`AWS_ENDPOINT_URL`, a local
    /// emulator on 127.0.0.1 has no per-bucket host names).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Self::new(aws_sdk_s3::Client::from_conf(config), bucket)
    }

    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

fn service<E, R>(operation: &'static str, key: &str, error: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::service(operation, key, DisplayErrorContext(&error))
}

/// `NoSuchKey` / `NotFound`, or a bare 404 (HEAD answers have no body).
fn is_not_found<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ServiceError(e) => {
            matches!(e.err().code(), Some("NoSuchKey" | "NotFound"))
                || e.raw().status().as_u16() == 404
        }
        _ => false,
    }
}

impl ObjectStore for S3Store {
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service("list", prefix, e))?;
            out.extend(page.contents().iter().filter_map(|object| {
                Some(ObjectInfo {
                    key: object.key()?.to_owned(),
                    etag: object.e_tag().unwrap_or_default().to_owned(),
                    size: object
                        .size()
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                })
            }));
        }
        out.sort();
        Ok(out)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                etag: head.e_tag().unwrap_or_default().to_owned(),
                size: head
                    .content_length()
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(service("head", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(service("get", key, e)),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| StoreError::service("get", key, e))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={start}-{}", start + len - 1))
            .send()
            .await
            .map_err(|e| service("get_range", key, e))?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| StoreError::service("get_range", key, e))?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn download(&self, key: &str, to: &Path) -> Result<u64, StoreError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| service("download", key, e))?;
        let io = |e| StoreError::io("download", key, e);
        let mut file = std::io::BufWriter::new(std::fs::File::create(to).map_err(io)?);
        let mut body = object.body;
        let mut size = 0;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| StoreError::service("download", key, e))?
        {
            file.write_all(&chunk).map_err(io)?;
            size += chunk.len() as u64;
        }
        file.flush().map_err(io)?;
        Ok(size)
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<String, StoreError> {
        let output = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| service("put", key, e))?;
        Ok(output.e_tag().unwrap_or_default().to_owned())
    }

    async fn start_upload(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        let output = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| service("start_upload", key, e))?;
        output
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::service("start_upload", key, "no upload id in the answer"))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        let output = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| service("upload_part", key, e))?;
        Ok(UploadedPart {
            number,
            etag: output.e_tag().unwrap_or_default().to_owned(),
        })
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<String, StoreError> {
        let parts = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        let output = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| match &e {
                SdkError::ServiceError(se) if se.err().code() == Some("NoSuchUpload") => {
                    StoreError::NoSuchUpload {
                        operation: "complete_upload",
                        key: key.to_owned(),
                    }
                }
                _ => service("complete_upload", key, e),
            })?;
        Ok(output.e_tag().unwrap_or_default().to_owned())
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| service("abort_upload", key, e))?;
        Ok(())
    }
}

// Reading the export's manifests and handing out its files: `dplctl status`
// and `dplctl export url`, and the HTTP API's `/status` and `/exports`.

/// The OEMs that have manifests: the common prefixes under `manifests/`.
pub async fn manifest_oems(store: &S3Store, layout: &Layout) -> Result<Vec<String>, StoreError> {
    let prefix = format!("{}/", layout.manifests);
    let mut pages = store
        .client()
        .list_objects_v2()
        .bucket(store.bucket())
        .prefix(&prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    let mut oems = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| StoreError::service("list", &prefix, DisplayErrorContext(&e)))?;
        oems.extend(page.common_prefixes().iter().filter_map(|p| {
            p.prefix()?
                .strip_prefix(&prefix)?
                .strip_suffix('/')
                .map(str::to_owned)
        }));
    }
    Ok(oems)
}

/// The manifests of `oem` from `first` on: one listing per type, starting
/// after the keys of earlier hours, then one GET per manifest.
pub async fn manifests_since(
    store: &S3Store,
    layout: &Layout,
    oem: &str,
    first: Timestamp,
) -> Result<Vec<Manifest>, StoreError> {
    let mut manifests = Vec::new();
    for event_type in EventType::ALL {
        let prefix = format!("{}/{oem}/{}/", layout.manifests, export_name(event_type));
        // `{prefix}{hour}` sorts just before `{prefix}{hour}.json`.
        let start_after = format!("{prefix}{}", HourLabel(first));
        let mut pages = store
            .client()
            .list_objects_v2()
            .bucket(store.bucket())
            .prefix(&prefix)
            .start_after(&start_after)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| StoreError::service("list", &prefix, DisplayErrorContext(&e)))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let body = store
                    .client()
                    .get_object()
                    .bucket(store.bucket())
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| StoreError::service("get", key, DisplayErrorContext(&e)))?
                    .body
                    .collect()
                    .await
                    .map_err(|e| StoreError::service("get", key, e))?
                    .into_bytes();
                manifests.push(
                    Manifest::from_json(key, &body)
                        .map_err(|e| StoreError::service("parse", key, e))?,
                );
            }
        }
    }
    Ok(manifests)
}

/// Why a download URL was not made.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("no export file s3://{bucket}/{key}: nothing exported for that hour")]
    NotExported { bucket: String, key: String },
    #[error("s3://{bucket}/{key}: {message}")]
    Service {
        bucket: String,
        key: String,
        message: String,
    },
}

/// A pre-signed HTTPS GET of the export file at `key`, valid `expires_in`
/// (at most [`MAX_URL_SECONDS`](super::access::MAX_URL_SECONDS)), signed
/// with the store's own credentials; [`UrlError::NotExported`] when there is
/// no such file.
pub async fn presigned_url(
    store: &S3Store,
    key: &str,
    expires_in: std::time::Duration,
) -> Result<String, UrlError> {
    let bucket = store.bucket().to_owned();
    let failed = |message: String| UrlError::Service {
        bucket: bucket.clone(),
        key: key.to_owned(),
        message,
    };
    let head = store
        .client()
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await;
    if let Err(error) = head {
        if error.as_service_error().is_some_and(|e| e.is_not_found()) {
            return Err(UrlError::NotExported {
                bucket: bucket.clone(),
                key: key.to_owned(),
            });
        }
        return Err(failed(DisplayErrorContext(&error).to_string()));
    }
    let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
        .map_err(|e| failed(e.to_string()))?;
    let presigned = store
        .client()
        .get_object()
        .bucket(&bucket)
        .key(key)
        .presigned(config)
        .await
        .map_err(|e| failed(DisplayErrorContext(&e).to_string()))?;
    Ok(presigned.uri().to_owned())
}
