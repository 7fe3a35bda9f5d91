//! Which hours the scheduled run looks at.
//!
//! The newest candidate is the last complete hour, once a grace delay has
//! passed after its end (records still in flight in Kinesis and the
//! event-store function land by then). Earlier hours within a look-back are
//! candidates too: any of them whose staging changed after its export (late
//! data) is exported again. [`super::manifest::decide`] tells, per
//! partition, whether a candidate hour needs work.

use std::time::Duration;

use crate::time::Timestamp;

const MILLIS_PER_HOUR: i64 = 3_600_000;

/// Default grace delay after the end of an hour.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10 * 60);
/// Default number of earlier hours re-checked each run. Must stay below the
/// staging retention (the template's `StagingRetentionDays`).
pub const DEFAULT_LOOKBACK_HOURS: u32 = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub grace: Duration,
    pub lookback_hours: u32,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GRACE,
            lookback_hours: DEFAULT_LOOKBACK_HOURS,
        }
    }
}

/// Candidate hours at `now`, oldest first: the last hour that ended at
/// least `grace` ago, and the `lookback_hours` before it.
pub fn candidate_hours(now: Timestamp, window: Window) -> Vec<Timestamp> {
    let grace = i64::try_from(window.grace.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now.millis().saturating_sub(grace);
    let latest_end = cutoff - cutoff.rem_euclid(MILLIS_PER_HOUR);
    (0..=i64::from(window.lookback_hours))
        .rev()
        .filter_map(|back| {
            let start = latest_end - (back + 1) * MILLIS_PER_HOUR;
            Timestamp::from_millis(start).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn table() {
        let ten_min = Window {
            grace: Duration::from_secs(600),
            lookback_hours: 0,
        };
        let cases = [
            (
                "2020-08-28T10:10:00Z",
                ten_min,
                vec!["2020-08-28T09:00:00Z"],
            ),
            (
                "2020-08-28T10:09:59Z",
                ten_min,
                vec!["2020-08-28T08:00:00Z"],
            ),
            (
                "2020-08-28T10:00:00Z",
                Window {
                    grace: Duration::ZERO,
                    lookback_hours: 0,
                },
                vec!["2020-08-28T09:00:00Z"],
            ),
            (
                "2020-08-28T00:15:00Z",
                Window {
                    grace: Duration::from_secs(600),
                    lookback_hours: 2,
                },
                vec![
                    "2020-08-27T21:00:00Z",
                    "2020-08-27T22:00:00Z",
                    "2020-08-27T23:00:00Z",
                ],
            ),
        ];
        for (now, window, want) in cases {
            let want: Vec<_> = want.into_iter().map(at).collect();
            assert_eq!(candidate_hours(at(now), window), want, "{now} {window:?}");
        }
    }

    #[test]
    fn hours_before_the_epoch_are_skipped() {
        let window = Window {
            grace: Duration::ZERO,
            lookback_hours: 5,
        };
        assert_eq!(
            candidate_hours(at("1970-01-01T02:30:00Z"), window),
            vec![at("1970-01-01T00:00:00Z"), at("1970-01-01T01:00:00Z")]
        );
    }
}
