//! Instants in UTC and the three ways the vendor's documents print them.
//!
//! | rendering        | example                          | where                          |
//! |------------------|----------------------------------|--------------------------------|
//! | [`Timestamp::dpl`]     | `2020-08-28T09:45:36.000+0000` | DPL `timestamp` field         |
//! | [`Timestamp::iso_seconds`] | `2020-08-28T09:45:36Z`   | times inside an event body     |
//! | [`Timestamp::java_date`]   | `Mon Feb 03 21:30:45 UTC 2020` | CSV cells (Java `Date.toString` in UTC) |
//!
//! The conversion between epoch days and the civil calendar is the classic
//! proleptic-Gregorian "days from civil" arithmetic; it is written here rather
//! than taken from a date crate because the event hot path formats several
//! timestamps per event and this avoids any allocation or locale machinery.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MILLIS_PER_SECOND: i64 = 1_000;
const SECONDS_PER_DAY: i64 = 86_400;
const MILLIS_PER_DAY: i64 = SECONDS_PER_DAY * MILLIS_PER_SECOND;

/// Earliest instant we accept: the epoch. Earlier dates are not device
/// events but unset clocks, and Java's `Date.toString` (which the CSV dates
/// imitate) switches to the Julian calendar before 1582.
const MIN_MILLIS: i64 = 0;
/// Latest instant we print: 9999-12-31T23:59:59.999Z.
const MAX_MILLIS: i64 = 253_402_300_799_999;

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An instant in UTC with millisecond precision, kept as milliseconds since
/// the Unix epoch. Always within years 1970..=9999, so every rendering has a
/// fixed width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a text or a number is not a [`Timestamp`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("{0} ms since the epoch is outside years 1970 to 9999")]
    OutOfRange(i64),
    #[error("`{0}` is not a timestamp like 2020-08-28T09:45:36Z or 2020-08-28T09:45:36.000+0000")]
    Malformed(String),
}

/// Calendar fields of a [`Timestamp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
    /// 0 = Thursday (1970-01-01), as indexes [`WEEKDAYS`].
    weekday: usize,
}

impl Timestamp {
    /// The instant `millis` milliseconds after 1970-01-01T00:00:00Z.
    pub fn from_millis(millis: i64) -> Result<Self, TimestampError> {
        if (MIN_MILLIS..=MAX_MILLIS).contains(&millis) {
            Ok(Self(millis))
        } else {
            Err(TimestampError::OutOfRange(millis))
        }
    }

    /// The instant `seconds` seconds after the epoch.
    pub fn from_seconds(seconds: i64) -> Result<Self, TimestampError> {
        let millis = seconds
            .checked_mul(MILLIS_PER_SECOND)
            .ok_or(TimestampError::OutOfRange(i64::MAX))?;
        Self::from_millis(millis)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// The system clock's current instant (clamped to the supported range).
    pub fn now() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(MAX_MILLIS));
        Self(millis.clamp(MIN_MILLIS, MAX_MILLIS))
    }

    /// The start of the hour this instant falls in.
    pub fn hour_start(self) -> Self {
        const MILLIS_PER_HOUR: i64 = 3_600 * MILLIS_PER_SECOND;
        Self(self.0 - self.0.rem_euclid(MILLIS_PER_HOUR))
    }

    /// `2020-08-28T09:45:36.000+0000`: the DPL record's `timestamp`.
    pub fn dpl(self) -> impl fmt::Display {
        Rendered(self, Style::Dpl)
    }

    /// `2020-08-28T09:45:36Z`: times inside an event body.
    pub fn iso_seconds(self) -> impl fmt::Display {
        Rendered(self, Style::IsoSeconds)
    }

    /// `Mon Feb 03 21:30:45 UTC 2020`: Java's `Date.toString()` in UTC, as
    /// the vendor's CSV files print dates.
    pub fn java_date(self) -> impl fmt::Display {
        Rendered(self, Style::JavaDate)
    }

    /// Appends [`Timestamp::java_date`] to `out` without going through `fmt`.
    pub fn push_java_date(self, out: &mut Vec<u8>) {
        let mut text = Text::default();
        self.render(Style::JavaDate, &mut text);
        out.extend_from_slice(&text.bytes[..text.len]);
    }

    /// `2020-08-28-09:00:00`: the name of an export folder (`YYYY-MM-DD-HH:MM:SS`).
    pub fn folder_name(self) -> impl fmt::Display {
        Rendered(self, Style::Folder)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS`, an optional fraction of up to nine
    /// digits (kept to the millisecond, truncated), then `Z`, `+0000` or
    /// `+00:00`. Only UTC offsets are accepted: every document we reproduce
    /// is in UTC, and a non-UTC offset means the writer got something wrong.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        parse_iso(text.as_bytes()).ok_or_else(|| TimestampError::Malformed(text.to_owned()))
    }

    fn civil(self) -> Civil {
        let days = self.0.div_euclid(MILLIS_PER_DAY);
        let in_day = self.0.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let seconds = in_day / MILLIS_PER_SECOND;
        Civil {
            year,
            month,
            day,
            hour: (seconds / 3_600) as u32,
            minute: (seconds / 60 % 60) as u32,
            second: (seconds % 60) as u32,
            millis: (in_day % MILLIS_PER_SECOND) as u32,
            weekday: days.rem_euclid(7) as usize,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Rendered(*self, Style::Dpl).fmt(f)
    }
}

/// Inside event bodies a timestamp is written as `2020-08-28T09:45:36Z`.
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.iso_seconds())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy)]
enum Style {
    Dpl,
    IsoSeconds,
    JavaDate,
    Folder,
}

struct Rendered(Timestamp, Style);

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Text::default();
        self.0.render(self.1, &mut text);
        f.write_str(text.as_str())
    }
}

/// The longest rendering, `Mon Feb 03 21:30:45 UTC 2020`, is 28 bytes.
const RENDERED_MAX: usize = 32;

/// A rendering built on the stack: formatting timestamps is on the hot path
/// of every event and CSV row, and `write!` with six arguments costs several
/// times more than filling these bytes.
#[derive(Default)]
struct Text {
    bytes: [u8; RENDERED_MAX],
    len: usize,
}

impl Text {
    fn push(&mut self, s: &[u8]) {
        self.bytes[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    fn two(&mut self, n: u32) {
        self.push(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
    }

    fn four(&mut self, n: i64) {
        let n = n as u32;
        self.two(n / 100);
        self.two(n % 100);
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and ASCII literals are ever pushed.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl Timestamp {
    fn render(self, style: Style, out: &mut Text) {
        let c = self.civil();
        let date = |out: &mut Text, sep: u8| {
            out.four(c.year);
            out.push(b"-");
            out.two(c.month);
            out.push(b"-");
            out.two(c.day);
            out.push(&[sep]);
        };
        let clock = |out: &mut Text| {
            out.two(c.hour);
            out.push(b":");
            out.two(c.minute);
            out.push(b":");
            out.two(c.second);
        };
        match style {
            Style::Dpl => {
                date(out, b'T');
                clock(out);
                out.push(b".");
                out.push(&[b'0' + (c.millis / 100) as u8]);
                out.two(c.millis % 100);
                out.push(b"+0000");
            }
            Style::IsoSeconds => {
                date(out, b'T');
                clock(out);
                out.push(b"Z");
            }
            Style::Folder => {
                date(out, b'-');
                clock(out);
            }
            Style::JavaDate => {
                out.push(WEEKDAYS[c.weekday].as_bytes());
                out.push(b" ");
                out.push(MONTHS[(c.month - 1) as usize].as_bytes());
                out.push(b" ");
                out.two(c.day);
                out.push(b" ");
                clock(out);
                out.push(b" UTC ");
                out.four(c.year);
            }
        }
    }
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month 1-12, day 1-31) to days since 1970-01-01, proleptic Gregorian.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = i64::from((month + 9) % 12);
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn parse_iso(b: &[u8]) -> Option<Timestamp> {
    fn digits(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    }
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = i64::from(digits(&b[0..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        let first3 = &fraction[..len.min(3)];
        millis = digits(first3)? * 10u32.pow(3 - first3.len() as u32);
        rest = &fraction[len..];
    }
    if !matches!(rest, b"Z" | b"+0000" | b"+00:00") {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * SECONDS_PER_DAY + i64::from(hour * 3_600 + minute * 60 + second);
    Timestamp::from_millis(seconds * MILLIS_PER_SECOND + i64::from(millis)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn renders_the_three_documented_forms() {
        let t = at("2020-08-28T09:45:36.813Z");
        assert_eq!(t.dpl().to_string(), "2020-08-28T09:45:36.813+0000");
        assert_eq!(t.iso_seconds().to_string(), "2020-08-28T09:45:36Z");
        assert_eq!(t.java_date().to_string(), "Fri Aug 28 09:45:36 UTC 2020");
        assert_eq!(
            t.hour_start().folder_name().to_string(),
            "2020-08-28-09:00:00"
        );
    }

    #[test]
    fn java_date_matches_the_seed_csv_examples() {
        for (iso, java) in [
            ("2020-02-03T21:30:45Z", "Mon Feb 03 21:30:45 UTC 2020"),
            ("2020-02-05T12:08:26Z", "Wed Feb 05 12:08:26 UTC 2020"),
            ("2020-08-28T08:52:08Z", "Fri Aug 28 08:52:08 UTC 2020"),
            ("2020-04-24T09:57:47Z", "Fri Apr 24 09:57:47 UTC 2020"),
            ("1970-01-01T00:00:00Z", "Thu Jan 01 00:00:00 UTC 1970"),
            ("2000-02-29T00:00:00Z", "Tue Feb 29 00:00:00 UTC 2000"),
        ] {
            assert_eq!(at(iso).java_date().to_string(), java, "{iso}");
        }
    }

    #[test]
    fn parses_every_utc_spelling_and_truncates_to_millis() {
        let expected = 1_598_607_936_000;
        for text in [
            "2020-08-28T09:45:36Z",
            "2020-08-28T09:45:36.000+0000",
            "2020-08-28T09:45:36+00:00",
            "2020-08-28T09:45:36.0009Z",
        ] {
            assert_eq!(at(text).millis(), expected, "{text}");
        }
        assert_eq!(at("2020-08-28T09:45:36.8139Z").millis(), expected + 813);
        assert_eq!(at("2020-08-28T09:45:36.8Z").millis(), expected + 800);
    }

    #[test]
    fn rejects_what_is_not_a_utc_timestamp() {
        for text in [
            "0000-00-0T00:00:00Z",
            "2020-02-30T00:00:00Z",
            "2021-02-29T00:00:00Z",
            "2020-08-28T24:00:00Z",
            "2020-08-28T09:45:36",
            "2020-08-28T09:45:36+0100",
            "2020-08-28 09:45:36Z",
            "2020-08-28T09:45:36.Z",
            "2020-08-28T09:45:36.1234567890Z",
            "",
            "2020-08-28T09:45:36ZZ",
            "２020-08-28T09:45:36Z",
        ] {
            assert!(Timestamp::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn range_is_four_digit_years() {
        assert!(Timestamp::from_millis(MIN_MILLIS).is_ok());
        assert!(Timestamp::from_millis(MAX_MILLIS).is_ok());
        assert!(Timestamp::from_millis(MIN_MILLIS - 1).is_err());
        assert!(Timestamp::from_millis(MAX_MILLIS + 1).is_err());
        assert!(Timestamp::from_seconds(i64::MAX).is_err());
        assert_eq!(
            Timestamp::from_millis(MAX_MILLIS)
                .unwrap()
                .dpl()
                .to_string(),
            "9999-12-31T23:59:59.999+0000"
        );
        assert!(Timestamp::parse("1969-12-31T23:59:59Z").is_err());
    }

    proptest! {
        #[test]
        fn dpl_text_round_trips(millis in MIN_MILLIS..=MAX_MILLIS) {
            let t = Timestamp::from_millis(millis).unwrap();
            prop_assert_eq!(Timestamp::parse(&t.dpl().to_string()).unwrap(), t);
        }

        #[test]
        fn agrees_with_chrono(millis in MIN_MILLIS..=MAX_MILLIS) {
            let ours = Timestamp::from_millis(millis).unwrap();
            let theirs = chrono::DateTime::from_timestamp_millis(millis).unwrap();
            prop_assert_eq!(
                ours.java_date().to_string(),
                theirs.format("%a %b %d %H:%M:%S UTC %-Y").to_string()
            );
            prop_assert_eq!(
                ours.dpl().to_string(),
                theirs.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
            );
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = Timestamp::parse(&text);
        }
    }
}
