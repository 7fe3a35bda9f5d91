//! The bandwidth cap: a token bucket per direction per connection, with
//! time passed in so it is tested without sleeping.

use std::time::{Duration, Instant};

/// How much unused bandwidth the bucket saves up: 50 ms worth. Enough that
/// the writer is not woken for every few bytes, small enough that a capped
/// transfer never runs visibly faster than the cap (a full bucket lets
/// through 5% of one second's bytes at once).
pub const BURST: Duration = Duration::from_millis(50);

/// Grants bytes at `rate` per second, at most [`BURST`] worth at once.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: u64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

/// What the writer may do now.
#[derive(Debug, PartialEq)]
pub(crate) enum Grant {
    /// Write this many bytes.
    Bytes(usize),
    /// Nothing may be written before this much time has passed.
    Wait(Duration),
}

impl TokenBucket {
    /// A full bucket for `rate` bytes per second (at least 1).
    pub(crate) fn new(rate: u64, now: Instant) -> Self {
        let rate = rate.max(1);
        let capacity = (rate as f64 * BURST.as_secs_f64()).max(1.0);
        Self {
            rate,
            capacity,
            tokens: capacity,
            refilled_at: now,
        }
    }

    pub(crate) fn rate(&self) -> u64 {
        self.rate
    }

    /// Takes up to `want` bytes' worth of tokens.
    pub(crate) fn take(&mut self, want: usize, now: Instant) -> Grant {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate as f64).min(self.capacity);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            let granted = (self.tokens.floor() as usize).min(want);
            self.tokens -= granted as f64;
            Grant::Bytes(granted)
        } else {
            // At least a microsecond, so rounding can never make it zero.
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate as f64);
            Grant::Wait(wait.max(Duration::from_micros(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_grants_one_burst_then_waits() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100_000, start);
        assert_eq!(bucket.take(64 * 1024, start), Grant::Bytes(5000));
        let Grant::Wait(wait) = bucket.take(1, start) else {
            panic!("an empty bucket must make the writer wait");
        };
        assert!(wait <= Duration::from_micros(10), "{wait:?}");
    }

    #[test]
    fn tokens_refill_at_the_rate_up_to_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100_000, start);
        assert_eq!(bucket.take(5000, start), Grant::Bytes(5000));
        let later = start + Duration::from_millis(10);
        assert_eq!(bucket.take(64 * 1024, later), Grant::Bytes(1000));
        let much_later = start + Duration::from_secs(10);
        assert_eq!(bucket.take(64 * 1024, much_later), Grant::Bytes(5000));
    }

    #[test]
    fn over_a_second_the_bucket_grants_about_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10_000, start);
        let mut now = start;
        let mut granted = 0;
        while now < start + Duration::from_secs(1) {
            match bucket.take(1500, now) {
                Grant::Bytes(n) => granted += n,
                Grant::Wait(wait) => now += wait,
            }
        }
        // One second of rate plus the initial burst.
        assert!((10_000..=10_600).contains(&granted), "{granted}");
    }

    #[test]
    fn a_tiny_rate_still_grants_whole_bytes() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1, start);
        assert_eq!(bucket.take(10, start), Grant::Bytes(1));
        assert_eq!(bucket.take(10, start), Grant::Wait(Duration::from_secs(1)));
    }
}
