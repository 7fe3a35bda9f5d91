//! The hourly CSV export: staging, merging, manifests, and the driver that
//! the `event-store` and `hourly-export` functions and `dplctl` share.
//! `docs/export.md` describes the layout and formats.
//!
//! - [`config`]: bucket and prefixes from the environment;
//! - [`keys`]: object keys of staging objects, CSV files, manifests and
//!   quarantined records; [`keys::Partition`], the unit of export;
//! - [`staging`]: the staging format (sorted gzip NDJSON of DPL records);
//! - [`merge`]: the streaming k-way merge that drops duplicates;
//! - [`encode`]: rows -> CSV upload parts, with the checksum;
//! - [`local`]: staging downloaded to local files, opened, and merged from
//!   many into few (the export and replay share it);
//! - `encoder`: the blocking half of an export (merge and encode);
//! - [`parts`]: the hand-over of parts from the encoding thread to the upload;
//! - [`upload`]: the parts to one object (single put or multipart upload);
//! - [`manifest`]: what an export was made from, and the re-export rule;
//! - [`plan`]: which hours a scheduled run looks at;
//! - [`split`]: a partition too large for one task, cut into time ranges
//!   (the plan, part numbers, completion rule: pure);
//! - [`range_task`]: the range tasks of a split partition and its
//!   completion (one multipart upload, one file);
//! - [`store`]: the object-store port and its directory adapter;
//! - [`run`]: the driver ([`run::Exporter`]);
//! - [`error`]: what can go wrong ([`ExportError`]);
//! - [`alloc`]: the allocator setting of an exporting process;
//! - `s3` (feature `s3`): the port's adapter for `aws_sdk_s3::Client`.

pub mod access;
pub mod alloc;
pub mod config;
pub mod encode;
mod encoder;
pub mod error;
pub mod keys;
pub mod local;
pub mod manifest;
pub mod merge;
pub mod parts;
pub mod plan;
pub mod range_task;
pub mod run;
#[cfg(feature = "s3")]
pub mod s3;
pub mod split;
pub mod staging;
pub mod store;
pub mod upload;

pub use error::ExportError;
pub use keys::{BatchRange, Layout, Partition};
pub use manifest::{Decision, Manifest, Reason};
pub use plan::{candidate_hours, Window};
pub use range_task::RangeOutcome;
pub use run::{ExportOptions, Exported, Exporter, PartitionOutcome, Selection};
pub use split::{TimeRange, TimeWindow};
pub use store::{DirStore, ObjectInfo, ObjectStore, StoreError};
