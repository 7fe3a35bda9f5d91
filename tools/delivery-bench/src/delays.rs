//! Delays and their percentiles.

use std::time::{Duration, SystemTime};

/// Percentiles of a set of durations (nearest rank, as `faultproxy`
/// reports request times).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spread {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Spread {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self {
            count: samples.len(),
            p50: percentile(&samples, 50.0),
            p99: percentile(&samples, 99.0),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// The nearest-rank percentile of `sorted` (zero when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `later - earlier`, zero if `later` is not later (clocks of two processes
/// on one machine: the emulator's timestamps have millisecond steps).
pub fn between(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let spread = Spread::of(samples);
        assert_eq!(spread.p50, Duration::from_millis(50));
        assert_eq!(spread.p99, Duration::from_millis(99));
        assert_eq!(spread.max, Duration::from_millis(100));
        assert_eq!(Spread::of(Vec::new()), Spread::default());
    }
}
