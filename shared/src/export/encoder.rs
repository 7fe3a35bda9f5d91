//! The CPU half of a partition's export, run on a blocking thread: reduce
//! the fan-in, merge, encode the CSV parts and hand them to the upload
//! ([`super::parts`]).

use std::path::PathBuf;

use super::encode::{CsvParts, CsvSummary};
use super::error::ExportError;
use super::keys::Partition;
use super::local::{open_all, open_window, reduce_fan_in_within};
use super::merge::Merge;
use super::parts::{Part, PartSender};
use super::split::TimeWindow;
use super::staging::StagingError;
use crate::record::DplRecord;

/// The CPU half of a partition's export, run on a blocking thread: reduce
/// the fan-in, merge, encode the parts and hand them to the uploader.
pub(super) struct EncodeJob {
    pub(super) files: Vec<PathBuf>,
    pub(super) dir: PathBuf,
    pub(super) partition: Partition,
    pub(super) part_size: usize,
    pub(super) max_fan_in: usize,
    /// The rows encoded: all, or a range task's share of the hour.
    pub(super) window: TimeWindow,
}

/// What the encoder made of a partition.
pub(super) struct Encoded {
    pub(super) csv: CsvSummary,
    /// Duplicates dropped by the intermediate merges and the last one.
    pub(super) duplicates: u64,
}

impl EncodeJob {
    /// Encodes the file into `out`. An error goes to the uploader, which
    /// ends the upload with it; then there is nothing to return.
    pub(super) fn run(self, out: &PartSender) -> Option<Encoded> {
        match self.encode(out) {
            Ok(encoded) => Some(encoded),
            Err(error) => {
                out.send(Err(error));
                None
            }
        }
    }

    fn encode(mut self, out: &PartSender) -> Result<Encoded, ExportError> {
        let files = std::mem::take(&mut self.files);
        let (files, fan_in_duplicates) =
            reduce_fan_in_within(files, self.max_fan_in, &self.dir, self.window)?;
        if self.window == TimeWindow::default() {
            self.encode_rows(open_all(&files)?, fan_in_duplicates, out)
        } else {
            self.encode_rows(open_window(&files, self.window)?, fan_in_duplicates, out)
        }
    }

    fn encode_rows<I>(
        &self,
        readers: Vec<I>,
        fan_in_duplicates: u64,
        out: &PartSender,
    ) -> Result<Encoded, ExportError>
    where
        I: Iterator<Item = Result<DplRecord, StagingError>>,
    {
        let mut merge = Merge::new(readers);
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

pub(super) fn empty_summary() -> CsvSummary {
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
