//! The manifest of an exported partition: what the CSV file holds and which
//! staging objects it was made from. The scheduler compares it with the
//! staging listing to find hours that changed after their export.

use serde::{Deserialize, Serialize};

use super::keys::Partition;
use super::store::ObjectInfo;
use crate::csv::{columns, export_name};

/// Version of the manifest format and of the export encoding. Raising it
/// makes every hour still in the look-back window export again.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub oem_id: String,
    /// Export name of the type (`connection` for connectivity).
    pub event_type: String,
    /// The export folder name, `YYYY-MM-DD-HH:MM:SS`.
    pub hour: String,
    pub export_key: String,
    /// ETag of the CSV object as written; a different one means another
    /// run overwrote the file since.
    pub export_etag: String,
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 of the CSV file, lowercase hex.
    pub sha256: String,
    /// Repeated staging rows dropped by the merge.
    pub duplicates_dropped: u64,
    /// The staging objects the file was made from, sorted by key.
    pub staging: Vec<ObjectInfo>,
}

#[derive(Debug, thiserror::Error)]
#[error("manifest {key} is unreadable: {source}")]
pub struct ManifestError {
    pub key: String,
    #[source]
    pub source: serde_json::Error,
}

impl Manifest {
    /// Pretty JSON with a final newline; deterministic for equal manifests.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        out.push(b'\n');
        out
    }

    pub fn from_json(key: &str, bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|source| ManifestError {
            key: key.to_owned(),
            source,
        })
    }

    pub fn is_for(&self, partition: &Partition) -> bool {
        self.oem_id == partition.oem_id
            && self.event_type == export_name(partition.event_type)
            && self.hour == partition.hour.folder_name().to_string()
    }
}

/// The customer's copy of a manifest, beside the CSV files under
/// `exports/{oem}/_manifests/` ([`super::Layout::customer_manifest_key`]):
/// what the file holds and its columns, without our staging keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerManifest {
    pub format_version: u32,
    pub oem_id: String,
    /// Export name of the type (`connection` for connectivity).
    pub event_type: String,
    /// The hour folder, `YYYY-MM-DD-HH:MM:SS`.
    pub hour: String,
    /// The CSV file's key.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 of the CSV file, lowercase hex.
    pub sha256: String,
    pub schema: CsvSchema,
}

/// How to read the file: its columns in order, no header row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSchema {
    /// `dpl-export/{type}`, versioned by `version`.
    pub name: String,
    /// The export encoding's version ([`MANIFEST_FORMAT_VERSION`]).
    pub version: u32,
    pub header_row: bool,
    pub columns: Vec<String>,
}

impl CustomerManifest {
    /// Pretty JSON with a final newline; deterministic.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out =
            serde_json::to_vec_pretty(self).expect("a customer manifest always serializes");
        out.push(b'\n');
        out
    }
}

impl Manifest {
    /// The customer's copy of this manifest of `partition`.
    pub fn for_customer(&self, partition: &Partition) -> CustomerManifest {
        let name = export_name(partition.event_type);
        CustomerManifest {
            format_version: self.format_version,
            oem_id: self.oem_id.clone(),
            event_type: self.event_type.clone(),
            hour: self.hour.clone(),
            file: self.export_key.clone(),
            rows: self.rows,
            bytes: self.bytes,
            sha256: self.sha256.clone(),
            schema: CsvSchema {
                name: format!("dpl-export/{name}"),
                version: self.format_version,
                header_row: false,
                columns: columns(partition.event_type)
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect(),
            },
        }
    }
}

/// Why a partition is exported (again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// Never exported.
    NoManifest,
    /// Staging objects were added or rewritten since (late data).
    StagingChanged,
    /// The CSV object is gone or is not the one the manifest describes.
    ExportChanged,
    /// Exported by an older format version.
    FormatChanged,
    /// Asked for by an operator.
    Forced,
    /// Asked for by an operator who allowed the file to shrink: staging
    /// objects it was made from are gone.
    Shrinking,
}

/// What to do with one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Export(Reason),
    UpToDate,
    /// No staging objects: nothing to export, no folder.
    NothingStaged,
    /// Staging objects the manifest names are gone (expired or deleted):
    /// an export now would replace the file with fewer rows. Kept as it is
    /// unless an operator allows it ([`super::Selection::allow_shrink`]).
    StagingGone(StagingGone),
}

/// The staging objects a partition's file was made from that the listing
/// no longer has, and what the file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagingGone {
    /// Their keys, sorted.
    pub missing: Vec<String>,
    /// Objects the manifest names.
    pub named: usize,
    /// Rows of the file as the manifest describes it.
    pub rows: u64,
}

/// Keys shown in a message before "and N more".
const KEYS_SHOWN: usize = 3;

impl std::fmt::Display for StagingGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "its file ({} rows) was made from {} staging objects, {} of which are gone: ",
            self.rows,
            self.named,
            self.missing.len()
        )?;
        let shown = &self.missing[..self.missing.len().min(KEYS_SHOWN)];
        f.write_str(&shown.join(", "))?;
        if self.missing.len() > shown.len() {
            write!(f, " and {} more", self.missing.len() - shown.len())?;
        }
        Ok(())
    }
}

/// The manifest's staging objects whose keys `listing` lacks (both sorted
/// by key). An object rewritten under its key is not missing.
pub fn missing_staging(listing: &[ObjectInfo], manifest: &Manifest) -> Vec<String> {
    manifest
        .staging
        .iter()
        .filter(|named| {
            listing
                .binary_search_by(|o| o.key.as_str().cmp(&named.key))
                .is_err()
        })
        .map(|named| named.key.clone())
        .collect()
}

/// The rule: export when something is staged and the manifest does not
/// describe exactly the current staging objects and the current CSV object;
/// but never from a listing that lacks objects the manifest names (that
/// would shrink the file). `listing` and the manifest's `staging` are both
/// sorted by key.
pub fn decide(
    listing: &[ObjectInfo],
    manifest: Option<&Manifest>,
    export: Option<&ObjectInfo>,
) -> Decision {
    if listing.is_empty() {
        return Decision::NothingStaged;
    }
    let Some(manifest) = manifest else {
        return Decision::Export(Reason::NoManifest);
    };
    let missing = missing_staging(listing, manifest);
    if !missing.is_empty() {
        return Decision::StagingGone(StagingGone {
            missing,
            named: manifest.staging.len(),
            rows: manifest.rows,
        });
    }
    if manifest.format_version != MANIFEST_FORMAT_VERSION {
        return Decision::Export(Reason::FormatChanged);
    }
    if manifest.staging != listing {
        return Decision::Export(Reason::StagingChanged);
    }
    match export {
        Some(object) if object.etag == manifest.export_etag && object.size == manifest.bytes => {
            Decision::UpToDate
        }
        _ => Decision::Export(Reason::ExportChanged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, etag: &str, size: u64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            etag: etag.into(),
            size,
        }
    }

    fn manifest(staging: Vec<ObjectInfo>) -> Manifest {
        Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            oem_id: "abcd1234".into(),
            event_type: "connection".into(),
            hour: "2020-08-28-09:00:00".into(),
            export_key: "exports/abcd1234/connection/2020-08-28-09:00:00/connection.csv".into(),
            export_etag: "\"e1\"".into(),
            rows: 2,
            bytes: 120,
            sha256: "00".into(),
            duplicates_dropped: 0,
            staging,
        }
    }

    type Case<'a> = (
        &'a str,
        Vec<ObjectInfo>,
        Option<&'a Manifest>,
        Option<&'a ObjectInfo>,
        Decision,
    );

    #[test]
    fn decisions() {
        let a = object("s/a", "\"1\"", 10);
        let b = object("s/b", "\"2\"", 20);
        let csv = object("exports/x.csv", "\"e1\"", 120);
        let m = manifest(vec![a.clone()]);
        let old = Manifest {
            format_version: 0,
            ..m.clone()
        };
        let rewritten_a = object("s/a", "\"9\"", 10);
        let other_csv = object("exports/x.csv", "\"e2\"", 120);
        let cases: Vec<Case> = vec![
            ("empty hour", vec![], None, None, Decision::NothingStaged),
            (
                "first export",
                vec![a.clone()],
                None,
                None,
                Decision::Export(Reason::NoManifest),
            ),
            (
                "unchanged",
                vec![a.clone()],
                Some(&m),
                Some(&csv),
                Decision::UpToDate,
            ),
            (
                "late object",
                vec![a.clone(), b.clone()],
                Some(&m),
                Some(&csv),
                Decision::Export(Reason::StagingChanged),
            ),
            (
                "rewritten object",
                vec![rewritten_a],
                Some(&m),
                Some(&csv),
                Decision::Export(Reason::StagingChanged),
            ),
            (
                "csv deleted",
                vec![a.clone()],
                Some(&m),
                None,
                Decision::Export(Reason::ExportChanged),
            ),
            (
                "csv overwritten",
                vec![a.clone()],
                Some(&m),
                Some(&other_csv),
                Decision::Export(Reason::ExportChanged),
            ),
            (
                "old format",
                vec![a.clone()],
                Some(&old),
                Some(&csv),
                Decision::Export(Reason::FormatChanged),
            ),
            (
                "an object of the file expired, a late one arrived",
                vec![b.clone()],
                Some(&m),
                Some(&csv),
                Decision::StagingGone(StagingGone {
                    missing: vec!["s/a".into()],
                    named: 1,
                    rows: 2,
                }),
            ),
            (
                "an object expired under an old format",
                vec![b.clone()],
                Some(&old),
                None,
                Decision::StagingGone(StagingGone {
                    missing: vec!["s/a".into()],
                    named: 1,
                    rows: 2,
                }),
            ),
        ];
        for (name, listing, manifest, export, want) in cases {
            assert_eq!(decide(&listing, manifest, export), want, "{name}");
        }
    }

    #[test]
    fn missing_objects_are_named_by_key_and_a_long_list_is_cut() {
        let named: Vec<ObjectInfo> = (0..6)
            .map(|n| object(&format!("s/{n}"), "\"1\"", 1))
            .collect();
        let m = manifest(named.clone());
        let listing = vec![named[1].clone(), object("s/3", "\"other\"", 1)];
        let missing = missing_staging(&listing, &m);
        assert_eq!(missing, ["s/0", "s/2", "s/4", "s/5"]);
        let gone = StagingGone {
            missing,
            named: 6,
            rows: 2,
        };
        assert_eq!(
            gone.to_string(),
            "its file (2 rows) was made from 6 staging objects, 4 of which are gone: s/0, s/2, s/4 and 1 more"
        );
    }

    #[test]
    fn manifest_json_round_trips_and_is_stable() {
        let m = manifest(vec![object("s/a", "\"1\"", 10)]);
        let json = m.to_json();
        assert_eq!(Manifest::from_json("k", &json).unwrap(), m);
        assert_eq!(json, m.clone().to_json());
        assert!(Manifest::from_json("k", b"{}").is_err());
    }
}
