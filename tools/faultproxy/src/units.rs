//! Durations (`30ms`, `1.5s`) and byte rates (`500KB`, `2MiB`, `1000`) as
//! people type them on the command line.
//!
//! Decimal suffixes are powers of 1000 (`KB` = 1000 bytes) and binary ones
//! powers of 1024 (`KiB`), as in IEC 80000-13; suffixes are case-insensitive.

use std::time::Duration;

/// Why a duration or size could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UnitError {
    #[error("empty value")]
    Empty,
    #[error("'{0}' is not a number followed by a unit")]
    NotANumber(String),
    #[error("unknown unit '{unit}' in '{value}' (use {allowed})")]
    UnknownUnit {
        value: String,
        unit: String,
        allowed: &'static str,
    },
    #[error("'{0}' needs a unit (ms or s)")]
    MissingUnit(String),
    #[error("'{0}' is out of range")]
    OutOfRange(String),
}

/// Splits `"1.5MB"` into `(1.5, "MB")`.
fn split_number(value: &str) -> Result<(f64, &str), UnitError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(UnitError::Empty);
    }
    let unit_at = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(unit_at);
    let number: f64 = number
        .parse()
        .map_err(|_| UnitError::NotANumber(value.to_owned()))?;
    Ok((number, unit.trim()))
}

/// Reads `30ms`, `2s`, `1.5s` or `0`.
pub fn parse_duration(value: &str) -> Result<Duration, UnitError> {
    let (number, unit) = split_number(value)?;
    let seconds = match unit.to_ascii_lowercase().as_str() {
        "ms" => number / 1000.0,
        "s" => number,
        "" if number == 0.0 => 0.0,
        "" => return Err(UnitError::MissingUnit(value.to_owned())),
        _ => {
            return Err(UnitError::UnknownUnit {
                value: value.to_owned(),
                unit: unit.to_owned(),
                allowed: "ms or s",
            })
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| UnitError::OutOfRange(value.to_owned()))
}

/// Reads a byte count: `1000`, `500KB`, `2MB`, `1GB`, `64KiB`, `1MiB`.
pub fn parse_bytes(value: &str) -> Result<u64, UnitError> {
    let (number, unit) = split_number(value)?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(UnitError::UnknownUnit {
                value: value.to_owned(),
                unit: unit.to_owned(),
                allowed: "B, KB, MB, GB, KiB, MiB or GiB",
            })
        }
    };
    let bytes = (number * scale).round();
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(UnitError::OutOfRange(value.to_owned()));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_ms_and_s_suffixes() {
        for (text, expected) in [
            ("30ms", Duration::from_millis(30)),
            ("2s", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("0", Duration::ZERO),
            ("0ms", Duration::ZERO),
            (" 5 MS ", Duration::from_millis(5)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn durations_without_a_known_unit_are_rejected() {
        assert_eq!(
            parse_duration("30"),
            Err(UnitError::MissingUnit("30".into()))
        );
        assert!(matches!(
            parse_duration("30m"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("fast"),
            Err(UnitError::NotANumber(_))
        ));
        assert_eq!(parse_duration(""), Err(UnitError::Empty));
    }

    #[test]
    fn sizes_take_decimal_and_binary_suffixes() {
        for (text, expected) in [
            ("1000", 1000),
            ("500KB", 500_000),
            ("2MB", 2_000_000),
            ("1.5mb", 1_500_000),
            ("1GB", 1_000_000_000),
            ("64KiB", 65_536),
            ("1MiB", 1_048_576),
            ("10B", 10),
        ] {
            assert_eq!(parse_bytes(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn sizes_with_an_unknown_unit_are_rejected() {
        assert!(matches!(
            parse_bytes("5MBps"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(parse_bytes("MB"), Err(UnitError::NotANumber(_))));
    }
}
