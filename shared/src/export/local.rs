//! Staging objects on local disk, for the export and for replay (the
//! archive the catch-up worker and `dplctl streams replay` read): download
//! them, open them, and merge many into few (the fan-in reduction).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::{local, ExportError};
use super::merge::Merge;
use super::split::TimeWindow;
use super::staging::{
    gzip_reader, RawReader, RawRow, RawWindowReader, StagingError, StagingWriter, WindowReader,
    READ_BUFFER_BYTES,
};
use super::store::ObjectStore;

/// Default number of files merged at once. Each open reader holds about
/// 100 KiB (gzip window and buffers), so 256 readers stay under 26 MiB; an
/// hour of a busy partition (one staging object per event-store batch: 120
/// at a 30 s batching window) merges in one pass instead of first
/// re-compressing half its objects (2.6 instead of 3.7 CPU seconds per
/// million rows, docs/benchmarks.md).
pub const DEFAULT_MAX_FAN_IN: usize = 256;
/// Downloads `keys` into `dir` as `0.ndjson.gz`, `1.ndjson.gz`, ... in
/// their order, one after another; returns the paths.
pub async fn download<S: ObjectStore>(
    store: &S,
    keys: impl IntoIterator<Item = &str>,
    dir: &Path,
) -> Result<Vec<PathBuf>, ExportError> {
    let mut files = Vec::new();
    for (n, key) in keys.into_iter().enumerate() {
        let path = dir.join(format!("{n}.ndjson.gz"));
        store.download(key, &path).await?;
        files.push(path);
    }
    Ok(files)
}

/// A reader of a downloaded staging file.
pub type FileReader =
    super::staging::StagingReader<io::BufReader<flate2::read::MultiGzDecoder<io::BufReader<File>>>>;

/// Opens downloaded staging files, one reader each.
pub fn open_all(files: &[PathBuf]) -> Result<Vec<FileReader>, ExportError> {
    files
        .iter()
        .map(|path| {
            let file = File::open(path).map_err(local(path))?;
            Ok(gzip_reader(io::BufReader::new(file)))
        })
        .collect()
}

/// A reader of the rows of a downloaded staging file within a window.
pub type WindowFileReader =
    WindowReader<io::BufReader<flate2::read::MultiGzDecoder<io::BufReader<File>>>>;

/// Opens downloaded staging files for the rows in `window` only.
pub fn open_window(
    files: &[PathBuf],
    window: TimeWindow,
) -> Result<Vec<WindowFileReader>, ExportError> {
    files
        .iter()
        .map(|path| Ok(WindowReader::new(decompressed(path)?, window)))
        .collect()
}

fn decompressed(
    path: &Path,
) -> Result<io::BufReader<flate2::read::MultiGzDecoder<io::BufReader<File>>>, ExportError> {
    let file = File::open(path).map_err(local(path))?;
    Ok(io::BufReader::with_capacity(
        READ_BUFFER_BYTES,
        flate2::read::MultiGzDecoder::new(io::BufReader::new(file)),
    ))
}

/// [`reduce_fan_in`] of all rows.
pub fn reduce_fan_in(
    files: Vec<PathBuf>,
    max_fan_in: usize,
    dir: &Path,
) -> Result<(Vec<PathBuf>, u64), ExportError> {
    reduce_fan_in_within(files, max_fan_in, dir, TimeWindow::default())
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
///
/// Only the rows in `window` are kept (all with the default window): a
/// range task's intermediate files hold its range only.
pub fn reduce_fan_in_within(
    files: Vec<PathBuf>,
    max_fan_in: usize,
    dir: &Path,
    window: TimeWindow,
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
        duplicates += if window == TimeWindow::default() {
            merge_into(open_raw(&group)?, &out)?
        } else {
            let readers = group
                .iter()
                .map(|path| Ok(RawWindowReader::new(decompressed(path)?, window)))
                .collect::<Result<Vec<_>, ExportError>>()?;
            merge_into(readers, &out)?
        };
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

fn merge_into<I>(readers: Vec<I>, out: &Path) -> Result<u64, ExportError>
where
    I: Iterator<Item = Result<RawRow, StagingError>>,
{
    let file = File::create(out).map_err(local(out))?;
    let mut writer = StagingWriter::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file));
    let mut merge = Merge::new(readers);
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
    use crate::export::staging::{encode, sort_rows};
    use crate::record::DplRecord;

    /// `count` staging files in `dir` of `events` events at `n % seconds`
    /// seconds, event n staged in files `n % count` and `(n + shift) %
    /// count`; and every event once, in staging order.
    fn overlapping_files(
        dir: &Path,
        count: u32,
        events: u32,
        shift: u32,
        seconds: u32,
    ) -> (Vec<PathBuf>, Vec<DplRecord>) {
        let mut files = Vec::new();
        let mut want = Vec::new();
        for f in 0..count {
            let mut rows: Vec<DplRecord> = (0..events)
                .filter(|n| n % count == f || (n + shift) % count == f)
                .map(|n| record("a", 1_000 * i64::from(n % seconds), n))
                .collect();
            want.extend(rows.iter().cloned());
            sort_rows(&mut rows);
            let path = dir.join(format!("{f}.ndjson.gz"));
            std::fs::write(&path, encode(&rows)).unwrap();
            files.push(path);
        }
        sort_rows(&mut want);
        (files, want)
    }

    /// Reducing the fan-in (raw line merges) then merging gives the same
    /// rows as one merge of every file, each event once.
    #[test]
    fn reduced_fan_in_merges_to_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (files, want) = overlapping_files(dir.path(), 11, 200, 1, 37);
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

    /// The rows of three windows, each reduced and merged on its own, are
    /// the rows of one merge of everything, in order, with as many
    /// duplicates dropped: copies of an event never straddle two windows.
    #[test]
    fn windows_of_the_hour_merge_to_the_rows_of_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (files, want) = overlapping_files(dir.path(), 7, 300, 3, 60);
        let at = |s: i64| Some(crate::Timestamp::from_millis(s * 1_000).unwrap());
        let windows = [(None, at(20)), (at(20), at(41)), (at(41), None)];
        let mut got = Vec::new();
        let mut duplicates = 0;
        for (start, end) in windows {
            let window = TimeWindow { start, end };
            let work = tempfile::tempdir().unwrap();
            let copies: Vec<PathBuf> = files
                .iter()
                .map(|p| {
                    let to = work.path().join(p.file_name().unwrap());
                    std::fs::copy(p, &to).unwrap();
                    to
                })
                .collect();
            let (left, dropped) = reduce_fan_in_within(copies, 3, work.path(), window).unwrap();
            let mut merge = Merge::new(open_window(&left, window).unwrap());
            got.extend(merge.by_ref().map(Result::unwrap));
            duplicates += dropped + merge.stats().duplicates;
        }
        assert_eq!(got, want);
        assert_eq!(duplicates, 600 - 300);
    }
}
