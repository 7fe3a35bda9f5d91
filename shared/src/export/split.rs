//! Splitting a partition too large for one task: the pure half.
//!
//! A partition whose staging (the listing's sizes, compressed) exceeds
//! [`super::ExportOptions::split_bytes`] is exported by `of` range tasks
//! ([`ranges_for`]). Range `index` holds the rows whose event time falls in
//! its share of the hour, cut at whole seconds ([`TimeRange`]), so copies of
//! an event (which share their time) never straddle two ranges. Each task
//! writes its rows as part numbers `index * K + 1 ..` of one multipart
//! upload ([`TimeRange::first_part`], `K = 10,000 / of`), records its parts
//! ([`RangeRecord`]), and the task that finds every record completes the
//! upload once ([`completion`]). The stored plan ([`SplitPlan`]) fixes the
//! listing every range reads, so all of them export the same objects.
//! `docs/export.md`, "Partitions of any size", has the why.

use serde::{Deserialize, Serialize};

use super::manifest::Reason;
use super::store::{ObjectInfo, UploadedPart};
use super::upload::{MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE};
use crate::time::Timestamp;

const GIB: u64 = 1024 * 1024 * 1024;
const SECONDS_PER_HOUR: u32 = 3_600;

/// Default [`super::ExportOptions::split_bytes`]: 2 GiB of compressed
/// staging, about 24 million events at the ~90 bytes a staged event takes
/// (`docs/export.md`, "History"): about 2.5 minutes of one core at the
/// measured ~170,000 rows/s (`docs/benchmarks.md`), well within Lambda's
/// 15 minutes with the download and upload around it.
pub const DEFAULT_SPLIT_BYTES: u64 = 2 * GIB;

/// Most range tasks of one partition: each then has 100 part numbers
/// (S3's 10,000 parts / 100), 1.6 GiB of CSV with the default 16 MiB
/// parts. Every task downloads the partition's whole staging, so more
/// tasks cost more downloads for less gain.
pub const MAX_RANGES: u32 = 100;

/// Version of the plan and record objects.
pub const SPLIT_FORMAT_VERSION: u32 = 1;

/// How many range tasks export a partition staged as `staged_bytes`: one
/// up to `split_bytes`, else `ceil(staged_bytes / split_bytes)`, at most
/// [`MAX_RANGES`].
pub fn ranges_for(staged_bytes: u64, split_bytes: u64) -> u32 {
    if split_bytes == 0 || staged_bytes <= split_bytes {
        return 1;
    }
    let n = staged_bytes.div_ceil(split_bytes);
    u32::try_from(n).unwrap_or(MAX_RANGES).min(MAX_RANGES)
}

/// Range `index` of `of` of a partition's hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub index: u32,
    pub of: u32,
}

/// Event times `[start, end)`; `None` is unbounded. The first range has
/// no start and the last no end, so a row outside its hour still reaches a
/// task, which refuses it as the whole export would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl TimeWindow {
    pub fn contains(&self, time: Timestamp) -> bool {
        self.start.is_none_or(|s| time >= s) && self.end.is_none_or(|e| time < e)
    }

    /// Whether `time` is at or past the end: a sorted source has no more
    /// rows in the window.
    pub fn is_past(&self, time: Timestamp) -> bool {
        self.end.is_some_and(|e| time >= e)
    }
}

impl TimeRange {
    /// Whether this range exists (`index < of`, `of` in `1..=MAX_RANGES`).
    pub fn is_valid(&self) -> bool {
        (1..=MAX_RANGES).contains(&self.of) && self.index < self.of
    }

    /// Seconds from the hour's start where range `index` starts: the hour
    /// cut evenly at whole seconds.
    fn start_second(index: u32, of: u32) -> u32 {
        index * SECONDS_PER_HOUR / of
    }

    /// The event times of this range in the hour starting at `hour`.
    pub fn window(&self, hour: Timestamp) -> TimeWindow {
        let at = |index: u32| {
            let seconds = i64::from(Self::start_second(index, self.of));
            Timestamp::from_millis(hour.millis() + seconds * 1_000).ok()
        };
        TimeWindow {
            start: (self.index > 0).then(|| at(self.index)).flatten(),
            end: (self.index + 1 < self.of)
                .then(|| at(self.index + 1))
                .flatten(),
        }
    }

    /// Part numbers this range may use: `K = 10,000 / of` of them.
    pub fn max_parts(&self) -> i32 {
        MAX_PARTS / i32::try_from(self.of.max(1)).unwrap_or(MAX_PARTS)
    }

    /// Its first part number, `index * K + 1`.
    pub fn first_part(&self) -> i32 {
        i32::try_from(self.index).unwrap_or(0) * self.max_parts() + 1
    }

    pub fn is_last(&self) -> bool {
        self.index + 1 == self.of
    }
}

/// Whether a range's final part (`next`, `next_len` bytes) is folded into
/// the part before it (`pending_len` bytes) instead of uploaded alone:
/// when it is under S3's 5 MiB minimum (only the file's last part may be)
/// and the sum stays within S3's 5 GiB maximum.
pub fn folds_into_previous(pending_len: usize, next_len: usize, next_is_last: bool) -> bool {
    next_is_last && next_len < MIN_PART_SIZE && pending_len + next_len <= MAX_PART_SIZE
}

/// The stored plan of a split export, written before any task runs
/// (`{manifests}/{oem}/_splits/{type}/{hour}/{id}/plan.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitPlan {
    pub format_version: u32,
    pub export_key: String,
    /// The multipart upload every range writes its parts to.
    pub upload_id: String,
    pub ranges: u32,
    pub reason: Reason,
    /// The listing every range exports (not each task's own listing, which
    /// late data could change between tasks).
    pub staging: Vec<ObjectInfo>,
}

/// One uploaded part of a range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartRecord {
    pub number: i32,
    pub etag: String,
    pub size: u64,
}

/// What one range task uploaded (`.../{id}/range-{index}.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeRecord {
    pub format_version: u32,
    pub index: u32,
    pub parts: Vec<PartRecord>,
    pub rows: u64,
    pub bytes: u64,
    pub duplicates_dropped: u64,
}

/// What the records of a split say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Ranges without a record yet.
    Waiting { missing: Vec<u32> },
    /// Every range is recorded and the parts make a valid upload.
    Complete {
        parts: Vec<UploadedPart>,
        rows: u64,
        bytes: u64,
        duplicates_dropped: u64,
    },
    /// Every range is recorded and none has rows: no file.
    Empty,
    /// A part other than the file's last is under 5 MiB (a range with
    /// less than that, not the last with rows): the split cannot be
    /// completed; the partition is exported by one task instead.
    TooSmall { number: i32, size: u64 },
}

/// Judges the records of a split of `ranges` ranges (any order; a record
/// of a range outside the plan is ignored).
pub fn completion(ranges: u32, records: &[RangeRecord]) -> Completion {
    let mut by_index: Vec<Option<&RangeRecord>> = vec![None; ranges as usize];
    for record in records {
        if let Some(slot) = by_index.get_mut(record.index as usize) {
            *slot = Some(record);
        }
    }
    let missing: Vec<u32> = (0..ranges)
        .filter(|&i| by_index[i as usize].is_none())
        .collect();
    if !missing.is_empty() {
        return Completion::Waiting { missing };
    }
    let mut parts: Vec<&PartRecord> = by_index.iter().flatten().flat_map(|r| &r.parts).collect();
    parts.sort_by_key(|p| p.number);
    if parts.is_empty() {
        return Completion::Empty;
    }
    if let Some(small) = parts[..parts.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_SIZE as u64)
    {
        return Completion::TooSmall {
            number: small.number,
            size: small.size,
        };
    }
    let recorded = by_index.iter().flatten();
    Completion::Complete {
        parts: parts
            .iter()
            .map(|p| UploadedPart {
                number: p.number,
                etag: p.etag.clone(),
            })
            .collect(),
        rows: recorded.clone().map(|r| r.rows).sum(),
        bytes: recorded.clone().map(|r| r.bytes).sum(),
        duplicates_dropped: recorded.map(|r| r.duplicates_dropped).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn partitions_up_to_the_threshold_are_one_task() {
        let cases = [
            (0, 100, 1),
            (100, 100, 1),
            (101, 100, 2),
            (300, 100, 3),
            (301, 100, 4),
            (10 * GIB, 0, 1),
            (u64::MAX, 1, MAX_RANGES),
        ];
        for (staged, split, want) in cases {
            assert_eq!(ranges_for(staged, split), want, "{staged} / {split}");
        }
    }

    fn hour() -> Timestamp {
        Timestamp::parse("2020-08-28T09:00:00Z").unwrap()
    }

    fn at(text: &str) -> Option<Timestamp> {
        Some(Timestamp::parse(text).unwrap())
    }

    #[test]
    fn ranges_cut_the_hour_at_whole_seconds_and_cover_it() {
        let w = |index, of| TimeRange { index, of }.window(hour());
        assert_eq!(w(0, 1), TimeWindow::default());
        assert_eq!(
            (w(0, 3), w(1, 3), w(2, 3)),
            (
                TimeWindow {
                    start: None,
                    end: at("2020-08-28T09:20:00Z")
                },
                TimeWindow {
                    start: at("2020-08-28T09:20:00Z"),
                    end: at("2020-08-28T09:40:00Z")
                },
                TimeWindow {
                    start: at("2020-08-28T09:40:00Z"),
                    end: None
                },
            )
        );
        // 7 ranges: 514 or 515 seconds each, whole seconds.
        assert_eq!(w(1, 7).start, at("2020-08-28T09:08:34Z"));
        // Every second of the hour (and beyond it) is in exactly one range.
        for of in [1, 2, 3, 7, 100] {
            for second in -5..3_605 {
                let time = Timestamp::from_millis(hour().millis() + second * 1_000 + 999).unwrap();
                let holding = (0..of).filter(|&i| w(i, of).contains(time)).count();
                assert_eq!(holding, 1, "{of} ranges, second {second}");
            }
        }
    }

    #[test]
    fn part_numbers_of_ranges_never_overlap_and_stay_within_s3s_limit() {
        for of in [1, 2, 3, 7, 100] {
            let mut end = 0;
            for index in 0..of {
                let r = TimeRange { index, of };
                assert!(r.first_part() > end, "{r:?}");
                end = r.first_part() + r.max_parts() - 1;
            }
            assert!(end <= MAX_PARTS, "{of}: {end}");
        }
        assert_eq!(TimeRange { index: 2, of: 3 }.first_part(), 6_667);
        assert!(!TimeRange { index: 3, of: 3 }.is_valid());
        assert!(!TimeRange { index: 0, of: 0 }.is_valid());
    }

    #[test]
    fn only_a_small_last_part_is_folded() {
        let five = MIN_PART_SIZE;
        assert!(folds_into_previous(five, five - 1, true));
        assert!(!folds_into_previous(five, five, true));
        assert!(!folds_into_previous(five, 10, false));
        assert!(!folds_into_previous(MAX_PART_SIZE, 10, true));
    }

    fn record(index: u32, parts: &[(i32, u64)]) -> RangeRecord {
        RangeRecord {
            format_version: SPLIT_FORMAT_VERSION,
            index,
            parts: parts
                .iter()
                .map(|&(number, size)| PartRecord {
                    number,
                    etag: format!("e{number}"),
                    size,
                })
                .collect(),
            rows: parts.len() as u64,
            bytes: parts.iter().map(|p| p.1).sum(),
            duplicates_dropped: 1,
        }
    }

    #[test]
    fn completion_waits_for_every_range_and_checks_part_sizes() {
        let big = 6 * MIB;
        let a = record(0, &[(1, big), (2, big)]);
        let b = record(1, &[(3_334, big)]);
        let c = record(2, &[(6_667, 10)]);
        let empty = record(1, &[]);
        let small = record(1, &[(3_334, 10)]);
        assert_eq!(
            completion(3, &[c.clone(), a.clone()]),
            Completion::Waiting { missing: vec![1] }
        );
        match completion(3, &[c.clone(), b.clone(), a.clone(), a.clone()]) {
            Completion::Complete {
                parts,
                rows,
                bytes,
                duplicates_dropped,
            } => {
                let numbers: Vec<i32> = parts.iter().map(|p| p.number).collect();
                assert_eq!(numbers, [1, 2, 3_334, 6_667]);
                assert_eq!((rows, bytes, duplicates_dropped), (4, 3 * big + 10, 3));
            }
            other => panic!("{other:?}"),
        }
        // A range without rows leaves a gap in the part numbers: fine.
        assert!(matches!(
            completion(3, &[a.clone(), empty.clone(), c.clone()]),
            Completion::Complete { .. }
        ));
        // The last range empty: the middle one's small part is the file's last.
        let none = record(2, &[]);
        assert!(matches!(
            completion(3, &[a.clone(), small.clone(), none.clone()]),
            Completion::Complete { .. }
        ));
        assert_eq!(
            completion(3, &[a.clone(), small, c]),
            Completion::TooSmall {
                number: 3_334,
                size: 10
            }
        );
        assert_eq!(
            completion(3, &[record(0, &[]), empty, none]),
            Completion::Empty
        );
    }
}
