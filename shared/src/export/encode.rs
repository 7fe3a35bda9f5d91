//! Merged rows -> CSV bytes, cut into upload parts, with the file's
//! checksum computed on the way. Memory is one part.

use sha2::{Digest, Sha256};

use crate::csv::write_row;
use crate::record::DplRecord;

/// What a finished CSV file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvSummary {
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
}

/// Pulls rows and hands out the CSV file in parts of at least `part_size`
/// bytes (a part ends at a row end, so it is at most one row longer), the
/// last part possibly shorter.
pub struct CsvParts<I> {
    rows: I,
    part_size: usize,
    buffer: Vec<u8>,
    digest: Sha256,
    rows_out: u64,
    bytes: u64,
    done: bool,
}

impl<I, E> CsvParts<I>
where
    I: Iterator<Item = Result<DplRecord, E>>,
{
    pub fn new(rows: I, part_size: usize) -> Self {
        Self {
            rows,
            part_size: part_size.max(1),
            buffer: Vec::new(),
            digest: Sha256::new(),
            rows_out: 0,
            bytes: 0,
            done: false,
        }
    }

    /// The next part, or `None` when the file is complete. An error of the
    /// rows ends the file.
    pub fn next_part(&mut self) -> Result<Option<Vec<u8>>, E> {
        if self.buffer.capacity() == 0 {
            self.buffer.reserve(self.part_size + self.part_size / 8);
        }
        while !self.done && self.buffer.len() < self.part_size {
            match self.rows.next() {
                None => self.done = true,
                Some(Err(error)) => {
                    self.done = true;
                    return Err(error);
                }
                Some(Ok(record)) => {
                    write_row(&record.dpl_event, &mut self.buffer);
                    self.rows_out += 1;
                }
            }
        }
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let part = std::mem::take(&mut self.buffer);
        self.digest.update(&part);
        self.bytes += part.len() as u64;
        Ok(Some(part))
    }

    /// Whether every row has been handed out.
    pub fn is_done(&self) -> bool {
        self.done && self.buffer.is_empty()
    }

    /// Counts and checksum of the parts handed out so far.
    pub fn summary(&self) -> CsvSummary {
        CsvSummary {
            rows: self.rows_out,
            bytes: self.bytes,
            sha256: hex::encode(self.digest.clone().finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::export::staging::tests::record;

    #[test]
    fn parts_end_at_rows_and_concatenate_to_the_file() {
        let records: Vec<DplRecord> = (0..10).map(|n| record("a", 1_000 * n, n as u32)).collect();
        let mut whole = Vec::new();
        for r in &records {
            write_row(&r.dpl_event, &mut whole);
        }
        let row_len = whole.len() / 10;
        let mut parts = CsvParts::new(records.into_iter().map(Ok::<_, Infallible>), row_len * 3);
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Some(part) = parts.next_part().unwrap() {
            sizes.push(part.len());
            got.extend(part);
        }
        assert!(parts.is_done());
        assert_eq!(got, whole);
        assert_eq!(sizes, [row_len * 3, row_len * 3, row_len * 3, row_len]);
        let summary = parts.summary();
        assert_eq!(summary.rows, 10);
        assert_eq!(summary.bytes, whole.len() as u64);
        assert_eq!(summary.sha256, hex::encode(Sha256::digest(&whole)));
    }

    #[test]
    fn no_rows_no_part() {
        let mut parts = CsvParts::new(std::iter::empty::<Result<DplRecord, Infallible>>(), 10);
        assert_eq!(parts.next_part().unwrap(), None);
        assert!(parts.is_done());
        assert_eq!(parts.summary().bytes, 0);
    }
}
