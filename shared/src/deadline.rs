//! The invocation deadline Lambda hands every function, on the tokio clock.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Deadlines below this (2001-09-09 in epoch ms) are not epoch times.
const EARLIEST_EPOCH_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The invocation deadline less `margin`. Lambda sends the deadline as
/// epoch milliseconds (`lambda_runtime::Context::deadline`); cargo-lambda's
/// local runtime (1.9) sends the timeout itself (`600000`), which is read
/// as time from now.
pub fn invocation_deadline(deadline_ms: u64, margin: Duration) -> Instant {
    let remaining = if deadline_ms < EARLIEST_EPOCH_DEADLINE_MS {
        Duration::from_millis(deadline_ms)
    } else {
        (SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms))
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    };
    tracing::debug!(
        remaining_ms = remaining.as_millis() as u64,
        margin_ms = margin.as_millis() as u64,
        "invocation deadline"
    );
    Instant::now() + remaining.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_the_invocation_deadline_less_the_margin() {
        let in_ten_s = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            + Duration::from_secs(10);
        let at = invocation_deadline(in_ten_s.as_millis() as u64, Duration::from_secs(2));
        let left = at - Instant::now();
        assert!(
            left > Duration::from_millis(7_500) && left <= Duration::from_secs(8),
            "{left:?}"
        );
        // Past deadlines leave no time at all.
        assert!(invocation_deadline(EARLIEST_EPOCH_DEADLINE_MS, Duration::ZERO) <= Instant::now());
    }

    #[test]
    fn a_local_runtime_timeout_is_read_as_time_from_now() {
        let at = invocation_deadline(600_000, Duration::from_secs(2));
        let left = at - Instant::now();
        assert!(
            left > Duration::from_secs(597) && left <= Duration::from_secs(598),
            "{left:?}"
        );
    }
}
