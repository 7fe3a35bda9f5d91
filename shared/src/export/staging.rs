//! The staging format: one gzip member holding DPL records as compact JSON,
//! one per line (`\n`), sorted by [`SortKey`] (event time, stream order,
//! event id). See
//! `docs/export.md`. Every line is exactly [`DplRecord::to_json`], so the
//! bytes of a staging object depend on its records only.

use std::io::{self, BufRead, Write};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::split::TimeWindow;
use crate::event::event_time;
use crate::record::{DplRecord, EventId, SortKey, StreamOrder};
use crate::time::Timestamp;

/// gzip level of staging objects: level 1 is several times faster than the
/// default (6) and the objects are short-lived.
pub const STAGING_COMPRESSION: u32 = 1;

/// Longest staging line accepted: a DPL record travels in one Kinesis
/// record, at most 1 MiB of data (Kinesis Data Streams quotas, "PutRecords").
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("reading a staging object: {0}")]
    Io(#[from] io::Error),
    #[error("staging line {line} is not a DPL record: {source}")]
    Record {
        line: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("staging line {line} is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong { line: u64 },
    #[error("staging line {line} sorts before the line above it")]
    Unsorted { line: u64 },
}

/// Sorts `records` into staging order ([`DplRecord::sort_key`]), dropping
/// repeated events.
pub fn sort_rows(records: &mut Vec<DplRecord>) {
    records.sort_by_key(DplRecord::sort_key);
    records.dedup_by_key(|r| r.sort_key());
}

/// Writes records, already in staging order, as one gzip stream.
pub struct StagingWriter<W: Write> {
    gzip: GzEncoder<W>,
    line: Vec<u8>,
}

impl<W: Write> StagingWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            gzip: GzEncoder::new(out, Compression::new(STAGING_COMPRESSION)),
            line: Vec::with_capacity(1024),
        }
    }

    pub fn write(&mut self, record: &DplRecord) -> io::Result<()> {
        self.line.clear();
        record.write_json(&mut self.line);
        self.line.push(b'\n');
        self.gzip.write_all(&self.line)
    }

    /// Writes a line already in the staging format (a record's
    /// [`DplRecord::to_json`], without its `\n`), as read by [`RawReader`].
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.gzip.write_all(line)?;
        self.gzip.write_all(b"\n")
    }

    /// Ends the gzip stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.gzip.finish()
    }
}

/// A whole staging object in memory: what the event-store function puts.
pub fn encode(records: &[DplRecord]) -> Vec<u8> {
    let mut writer = StagingWriter::new(Vec::new());
    for record in records {
        writer.write(record).expect("writing to a Vec cannot fail");
    }
    writer.finish().expect("writing to a Vec cannot fail")
}

/// Reads the records of a decompressed staging stream, line by line: memory
/// is one line, whatever the object's size.
pub struct StagingReader<R> {
    input: R,
    buffer: Vec<u8>,
    line: u64,
}

impl<R: BufRead> StagingReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            buffer: Vec::with_capacity(1024),
            line: 0,
        }
    }

    fn read_line(&mut self) -> Result<bool, StagingError> {
        self.buffer.clear();
        let limit = (MAX_LINE_BYTES + 1) as u64;
        let read = io::Read::take(&mut self.input, limit).read_until(b'\n', &mut self.buffer)?;
        self.line += 1;
        if read as u64 == limit && self.buffer.last() != Some(&b'\n') {
            return Err(StagingError::LineTooLong { line: self.line });
        }
        Ok(read > 0)
    }

    /// The next non-empty line, without its line end, and its number.
    fn next_line(&mut self) -> Option<Result<(&[u8], u64), StagingError>> {
        loop {
            match self.read_line() {
                Err(error) => return Some(Err(error)),
                Ok(false) => return None,
                Ok(true) => {}
            }
            if !self.buffer.trim_ascii_end().is_empty() {
                return Some(Ok((self.buffer.trim_ascii_end(), self.line)));
            }
        }
    }
}

impl<R: BufRead> Iterator for StagingReader<R> {
    type Item = Result<DplRecord, StagingError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.next_line()? {
            Err(error) => Err(error),
            Ok((text, line)) => {
                DplRecord::from_json(text).map_err(|source| StagingError::Record { line, source })
            }
        })
    }
}

/// A staging line kept as bytes, with its sort key: what the intermediate
/// merge rounds move. They copy lines instead of decoding and re-encoding
/// records; the last round decodes every row (and checks the order again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRow {
    /// The line without its `\n`.
    pub line: Vec<u8>,
    key: SortKey,
}

impl RawRow {
    /// Reads the sort key of a staging line; the rest of the record is
    /// skipped, not checked.
    pub fn parse(line: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(Self {
            line: line.to_vec(),
            key: line_key(line)?,
        })
    }

    pub fn sort_key(&self) -> SortKey {
        self.key
    }
}

/// The sort key of a staging line; the rest of the record is skipped.
fn line_key(line: &[u8]) -> Result<SortKey, serde_json::Error> {
    let key: LineKey = serde_json::from_slice(line)?;
    let event = key.dpl_event;
    let time = event_time(event.activation.map(|a| a.event_time), event.timestamp)
        .ok_or_else(|| serde::de::Error::missing_field("timestamp"))?;
    Ok(SortKey {
        time,
        stream_order: key.stream_order,
        event_id: key.event_id,
    })
}

/// The rows of a decompressed staging stream whose event time is in a
/// window (a range task's share of the hour): rows before it are skipped
/// reading only their sort key, and reading stops at the first row past
/// it, since the stream is sorted. The order of every line read is
/// checked, skipped ones too, so an unsorted object is an error in
/// whichever range reads the line out of order.
pub struct WindowReader<R> {
    reader: StagingReader<R>,
    window: TimeWindow,
    previous: Option<SortKey>,
    /// A row in the window has been read: the rest are in it or past it.
    inside: bool,
    done: bool,
}

impl<R: BufRead> WindowReader<R> {
    pub fn new(input: R, window: TimeWindow) -> Self {
        Self {
            reader: StagingReader::new(input),
            window,
            previous: None,
            inside: false,
            done: false,
        }
    }

    /// Moves to the next line in the window: its number and key (the line
    /// is [`Self::current`]).
    fn advance(&mut self) -> Option<Result<(u64, SortKey), StagingError>> {
        if self.done {
            return None;
        }
        loop {
            let (text, line) = match self.reader.next_line() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(error)) => {
                    self.done = true;
                    return Some(Err(error));
                }
                Some(Ok(next)) => next,
            };
            let key = match line_key(text) {
                Ok(key) => key,
                Err(source) => {
                    self.done = true;
                    return Some(Err(StagingError::Record { line, source }));
                }
            };
            if self.previous.is_some_and(|previous| key < previous) {
                self.done = true;
                return Some(Err(StagingError::Unsorted { line }));
            }
            self.previous = Some(key);
            if self.window.is_past(key.time) {
                self.done = true;
                return None;
            }
            if self.window.contains(key.time) {
                return Some(Ok((line, key)));
            }
        }
    }

    fn current(&self) -> &[u8] {
        self.reader.buffer.trim_ascii_end()
    }
}

impl<R: BufRead> WindowReader<R> {
    /// Past the window's start every row is in it until the first past its
    /// end (the stream is sorted): such rows are decoded once, their key
    /// taken from the record, not read first on its own.
    fn next_inside(&mut self) -> Option<Result<DplRecord, StagingError>> {
        let (text, line) = match self.reader.next_line()? {
            Err(error) => {
                self.done = true;
                return Some(Err(error));
            }
            Ok(next) => next,
        };
        let record = match DplRecord::from_json(text) {
            Ok(record) => record,
            Err(source) => {
                self.done = true;
                return Some(Err(StagingError::Record { line, source }));
            }
        };
        let key = record.sort_key();
        if self.previous.is_some_and(|previous| key < previous) {
            self.done = true;
            return Some(Err(StagingError::Unsorted { line }));
        }
        self.previous = Some(key);
        if self.window.is_past(key.time) {
            self.done = true;
            return None;
        }
        Some(Ok(record))
    }
}

impl<R: BufRead> Iterator for WindowReader<R> {
    type Item = Result<DplRecord, StagingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.inside {
            return self.next_inside();
        }
        Some(match self.advance()? {
            Err(error) => Err(error),
            Ok((line, _)) => {
                self.inside = true;
                DplRecord::from_json(self.current())
                    .map_err(|source| StagingError::Record { line, source })
            }
        })
    }
}

/// [`WindowReader`]'s rows as [`RawRow`]s, for the intermediate merges of
/// a range task.
pub struct RawWindowReader<R>(WindowReader<R>);

impl<R: BufRead> RawWindowReader<R> {
    pub fn new(input: R, window: TimeWindow) -> Self {
        Self(WindowReader::new(input, window))
    }
}

impl<R: BufRead> Iterator for RawWindowReader<R> {
    type Item = Result<RawRow, StagingError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.0.advance()?.map(|(_, key)| RawRow {
            line: self.0.current().to_vec(),
            key,
        }))
    }
}

/// The fields of a staging line that make its sort key (see
/// [`DplRecord::sort_key`] and [`event_time`]).
#[derive(serde::Deserialize)]
struct LineKey {
    dpl_event: EventKey,
    event_id: EventId,
    #[serde(default)]
    stream_order: Option<StreamOrder>,
}

#[derive(serde::Deserialize)]
struct EventKey {
    #[serde(default)]
    timestamp: Option<Timestamp>,
    #[serde(default)]
    activation: Option<ActivationTime>,
}

#[derive(serde::Deserialize)]
struct ActivationTime {
    event_time: Timestamp,
}

/// Reads the lines of a decompressed staging stream as [`RawRow`]s.
pub struct RawReader<R>(StagingReader<R>);

impl<R: BufRead> RawReader<R> {
    pub fn new(input: R) -> Self {
        Self(StagingReader::new(input))
    }
}

impl<R: BufRead> Iterator for RawReader<R> {
    type Item = Result<RawRow, StagingError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.0.next_line()? {
            Err(error) => Err(error),
            Ok((text, line)) => {
                RawRow::parse(text).map_err(|source| StagingError::Record { line, source })
            }
        })
    }
}

/// A reader of a gzip-compressed staging stream.
pub fn gzip_reader<R: io::Read>(
    input: R,
) -> StagingReader<io::BufReader<flate2::read::MultiGzDecoder<R>>> {
    StagingReader::new(io::BufReader::with_capacity(
        READ_BUFFER_BYTES,
        flate2::read::MultiGzDecoder::new(input),
    ))
}

/// Buffer of the decompressed side of one staging reader; with the gzip
/// window (32 KiB) it is most of a reader's memory.
pub(crate) const READ_BUFFER_BYTES: usize = 64 * 1024;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::{Connection, DeviceMetadata};
    use crate::{DeviceEvent, EventType};

    /// A connectivity record at `millis` with an id from `n`.
    pub(crate) fn record(oem: &str, millis: i64, n: u32) -> DplRecord {
        let metadata = DeviceMetadata {
            oem_id: oem.into(),
            oem_model: "ledevb".into(),
            dsn: format!("AC000W{n:09}"),
            event_type: EventType::Connectivity,
        };
        let at = Timestamp::from_millis(millis).unwrap();
        DplRecord {
            dpl_event: DeviceEvent::Connectivity {
                metadata: metadata.clone(),
                timestamp: at,
                connection: Connection {
                    event_time: at,
                    user_uuid: None,
                    status: "Online".into(),
                    metadata,
                },
            },
            event_id: crate::EventId::derive(&n.to_string(), EventType::Connectivity),
            stream_order: None,
        }
    }

    #[test]
    fn a_raw_row_has_the_records_sort_key() {
        let activation = DplRecord {
            dpl_event: crate::DeviceEvent::Activation {
                metadata: crate::event::DeviceMetadata {
                    oem_id: "a".into(),
                    oem_model: "m".into(),
                    dsn: "d".into(),
                    event_type: crate::EventType::Activation,
                },
                activation: crate::event::Activation {
                    id: "i".into(),
                    device_type: "Wifi".into(),
                    status: "Activated".into(),
                    event_time: Timestamp::from_millis(5_000).unwrap(),
                },
            },
            event_id: crate::EventId::derive("x", crate::EventType::Activation),
            stream_order: None,
        };
        for r in [activation, record("a", 7_000, 3)] {
            let raw = RawRow::parse(&r.to_json()).unwrap();
            assert_eq!(raw.sort_key(), r.sort_key());
            assert_eq!(raw.line, r.to_json());
        }
    }

    #[test]
    fn a_window_reader_yields_the_rows_of_its_window_and_checks_the_order() {
        let mut records: Vec<DplRecord> = (0..10)
            .map(|n| record("a", 1_000 * i64::from(n), n))
            .collect();
        sort_rows(&mut records);
        let text = records_text(&records);
        let at = |s: i64| Some(Timestamp::from_millis(s * 1_000).unwrap());
        let window = TimeWindow {
            start: at(3),
            end: at(6),
        };
        let got: Vec<DplRecord> = WindowReader::new(&text[..], window)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, records[3..6]);
        let raw: Vec<RawRow> = RawWindowReader::new(&text[..], window)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(raw.len(), 3);
        assert_eq!(raw[0].line, records[3].to_json());
        let all: Vec<DplRecord> = WindowReader::new(&text[..], TimeWindow::default())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(all, records);
        // A line out of order is an error even where it is skipped.
        let mut unsorted = records_text(&records[5..6]);
        unsorted.extend(records_text(&records[1..2]));
        let late = TimeWindow {
            start: at(8),
            end: None,
        };
        let first = WindowReader::new(&unsorted[..], late).next().unwrap();
        assert!(
            matches!(first, Err(StagingError::Unsorted { line: 2 })),
            "{first:?}"
        );
        // And where it is read.
        let mut inside = WindowReader::new(&unsorted[..], TimeWindow::default());
        assert!(inside.next().unwrap().is_ok());
        let second = inside.next().unwrap();
        assert!(
            matches!(second, Err(StagingError::Unsorted { line: 2 })),
            "{second:?}"
        );
        assert!(inside.next().is_none());
    }

    #[test]
    fn encode_then_read_gives_the_records_back() {
        let mut records = vec![
            record("a", 3_000, 1),
            record("a", 1_000, 2),
            record("a", 1_000, 2),
        ];
        sort_rows(&mut records);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].dpl_event.time().millis(), 1_000);
        let bytes = encode(&records);
        let back: Vec<DplRecord> = gzip_reader(&bytes[..]).collect::<Result<_, _>>().unwrap();
        assert_eq!(back, records);
    }

    #[test]
    fn the_bytes_depend_on_the_records_only() {
        let records = vec![record("a", 1_000, 1), record("a", 2_000, 2)];
        assert_eq!(encode(&records), encode(&records.clone()));
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let mut text = records_text(&[record("a", 1_000, 1)]);
        text.extend_from_slice(b"\n{\"not\": \"a record\"}\n");
        let results: Vec<_> = StagingReader::new(&text[..]).collect();
        assert!(results[0].is_ok());
        match &results[1] {
            Err(StagingError::Record { line: 3, .. }) => {}
            other => panic!("expected an error on line 3, got {other:?}"),
        }
    }

    #[test]
    fn an_overlong_line_is_refused() {
        let text = vec![b'x'; MAX_LINE_BYTES + 10];
        let first = StagingReader::new(&text[..]).next().unwrap();
        assert!(matches!(first, Err(StagingError::LineTooLong { line: 1 })));
    }

    fn records_text(records: &[DplRecord]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            r.write_json(&mut out);
            out.push(b'\n');
        }
        out
    }
}
