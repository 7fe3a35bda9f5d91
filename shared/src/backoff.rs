//! Exponential backoff with full jitter, the one rule every retry loop of
//! the pipeline waits by (Kinesis `PutRecords`, Event Hubs batches, catch-up
//! probes of a destination that is down).
//!
//! Before retry `n` (1, 2, ...) wait a uniformly random time in
//! `[0, min(cap, base * 2^(n-1)))` ("Exponential Backoff And Jitter", AWS
//! Architecture Blog, 2015: full jitter spreads the retries of many clients
//! and finishes the work soonest). A floor raises the wait where the service
//! asks for one (Event Hubs ServerBusy: at least 4 s).

use std::time::Duration;

/// See the module docs. Each caller names its own base and cap, with the
/// reason (e.g. `dpl::kinesis::retry::DEFAULT_BACKOFF`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// The upper bound of the wait before retry `round` (from 1).
    pub fn ceiling(&self, round: u32) -> Duration {
        let doublings = round.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// The wait before retry `round`, given `unit` uniform in `[0, 1)`.
    pub fn delay(&self, round: u32, unit: f64) -> Duration {
        self.ceiling(round).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// [`Self::delay`], but never less than `floor`.
    pub fn delay_at_least(&self, round: u32, floor: Duration, unit: f64) -> Duration {
        self.delay(round, unit).max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_full_jitter() {
        let backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(1_000));
        let ceilings: Vec<u128> = (1..=7).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, vec![50, 100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff.ceiling(u32::MAX), backoff.cap);
        assert_eq!(backoff.delay(3, 0.0), Duration::ZERO);
        assert_eq!(backoff.delay(3, 0.5), Duration::from_millis(100));
        assert!(backoff.delay(3, 0.999_999) < Duration::from_millis(200));
        assert_eq!(backoff.delay(3, 7.0), backoff.ceiling(3), "unit is clamped");
    }

    #[test]
    fn a_floor_wins_over_any_jitter_below_it() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(8));
        let floor = Duration::from_secs(4);
        for unit in [0.0, 0.5, 0.999] {
            assert!(backoff.delay_at_least(1, floor, unit) >= floor);
            assert!(backoff.delay_at_least(5, floor, unit) >= floor);
        }
        assert_eq!(
            backoff.delay_at_least(2, Duration::ZERO, 0.5),
            Duration::from_millis(100)
        );
    }
}
