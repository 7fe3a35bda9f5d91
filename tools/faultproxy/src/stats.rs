//! What the proxy saw: connection and byte counters, and in HTTP mode the
//! time of each request through the proxy, so simulations can take their
//! latencies from the proxy instead of timing clients themselves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// Request times kept for percentiles; beyond this a uniform sample of all
/// requests is kept (reservoir sampling), so memory stays at ~1.6 MB however
/// long a benchmark runs.
pub const MAX_REQUEST_TIME_SAMPLES: usize = 200_000;

/// Counters and request-time percentiles, since start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub connections_accepted: u64,
    /// Open now (not cleared by a reset of the stats).
    pub connections_open: u64,
    /// Accepted and reset at once because `refuse` was on.
    pub connections_refused: u64,
    /// Reset by a reset command (or the proxy shutting down).
    pub connections_reset: u64,
    /// Accepted, but the upstream could not be reached (client reset).
    pub upstream_connect_failures: u64,
    /// Bytes delivered to the upstream.
    pub bytes_up: u64,
    /// Bytes delivered to clients.
    pub bytes_down: u64,
    /// HTTP mode: requests sent on to the upstream.
    pub requests_forwarded: u64,
    /// HTTP mode: requests answered by an HTTP burst.
    pub requests_injected: u64,
    /// HTTP mode: from a request's first byte received to its response's
    /// last byte sent, for forwarded and injected requests alike.
    pub request_times: RequestTimes,
}

/// Percentiles (nearest rank) of request times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RequestTimes {
    /// Requests timed (all of them, not only the kept samples).
    pub count: u64,
    #[serde(rename = "p50_ms", serialize_with = "as_millis")]
    pub p50: Duration,
    #[serde(rename = "p90_ms", serialize_with = "as_millis")]
    pub p90: Duration,
    #[serde(rename = "p99_ms", serialize_with = "as_millis")]
    pub p99: Duration,
    #[serde(rename = "max_ms", serialize_with = "as_millis")]
    pub max: Duration,
}

fn as_millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    // Microsecond precision: finer is timer noise, and it keeps the JSON short.
    serializer.serialize_f64(duration.as_micros() as f64 / 1000.0)
}

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Client to upstream.
    Up,
    /// Upstream to client.
    Down,
}

/// The live counters, updated by every connection.
#[derive(Debug, Default)]
pub(crate) struct StatsRecorder {
    accepted: AtomicU64,
    open: AtomicU64,
    refused: AtomicU64,
    reset: AtomicU64,
    upstream_failures: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    forwarded: AtomicU64,
    injected: AtomicU64,
    times: Mutex<Samples>,
}

#[derive(Debug, Default)]
struct Samples {
    seen: u64,
    max: Duration,
    kept: Vec<Duration>,
}

/// Counts a connection as open until dropped.
pub(crate) struct OpenConnection<'a>(&'a StatsRecorder);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl StatsRecorder {
    pub(crate) fn accepted(&self) -> OpenConnection<'_> {
        bump(&self.accepted);
        bump(&self.open);
        OpenConnection(self)
    }

    pub(crate) fn refused(&self) {
        bump(&self.accepted);
        bump(&self.refused);
    }

    pub(crate) fn reset(&self) {
        bump(&self.reset);
    }

    pub(crate) fn upstream_failed(&self) {
        bump(&self.upstream_failures);
    }

    pub(crate) fn forwarded(&self) {
        bump(&self.forwarded);
    }

    pub(crate) fn injected(&self) {
        bump(&self.injected);
    }

    pub(crate) fn delivered(&self, direction: Direction, bytes: usize) {
        let counter = match direction {
            Direction::Up => &self.bytes_up,
            Direction::Down => &self.bytes_down,
        };
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    pub(crate) fn request_took(&self, time: Duration) {
        let mut samples = self.times.lock().unwrap_or_else(|p| p.into_inner());
        samples.seen += 1;
        samples.max = samples.max.max(time);
        if samples.kept.len() < MAX_REQUEST_TIME_SAMPLES {
            samples.kept.push(time);
        } else {
            // Algorithm R: the n-th request replaces a kept one with
            // probability kept/n, so every request is equally likely kept.
            let slot = fastrand::u64(..samples.seen) as usize;
            if let Some(kept) = samples.kept.get_mut(slot) {
                *kept = time;
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (count, max, mut sorted) = {
            let samples = self.times.lock().unwrap_or_else(|p| p.into_inner());
            (samples.seen, samples.max, samples.kept.clone())
        };
        sorted.sort_unstable();
        Stats {
            connections_accepted: load(&self.accepted),
            connections_open: load(&self.open),
            connections_refused: load(&self.refused),
            connections_reset: load(&self.reset),
            upstream_connect_failures: load(&self.upstream_failures),
            bytes_up: load(&self.bytes_up),
            bytes_down: load(&self.bytes_down),
            requests_forwarded: load(&self.forwarded),
            requests_injected: load(&self.injected),
            request_times: RequestTimes {
                count,
                p50: percentile(&sorted, 50.0),
                p90: percentile(&sorted, 90.0),
                p99: percentile(&sorted, 99.0),
                max,
            },
        }
    }

    /// Zeroes everything but the open-connection gauge.
    pub(crate) fn clear(&self) {
        for counter in [
            &self.accepted,
            &self.refused,
            &self.reset,
            &self.upstream_failures,
            &self.bytes_up,
            &self.bytes_down,
            &self.forwarded,
            &self.injected,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        *self.times.lock().unwrap_or_else(|p| p.into_inner()) = Samples::default();
    }
}

/// The nearest-rank percentile of `sorted` (zero when empty).
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_millis).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted = ms(1..=100);
        assert_eq!(percentile(&sorted, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 90.0), Duration::from_millis(90));
        assert_eq!(percentile(&sorted, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&ms([7]), 99.0), Duration::from_millis(7));
        assert_eq!(percentile(&ms([1, 2]), 50.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn a_snapshot_reports_request_time_percentiles_and_clear_forgets_them() {
        let stats = StatsRecorder::default();
        for time in ms((1..=10).rev()) {
            stats.request_took(time);
        }
        let times = stats.snapshot().request_times;
        assert_eq!(times.count, 10);
        assert_eq!(times.p50, Duration::from_millis(5));
        assert_eq!(times.p90, Duration::from_millis(9));
        assert_eq!(times.max, Duration::from_millis(10));
        stats.clear();
        assert_eq!(stats.snapshot().request_times, RequestTimes::default());
    }

    #[test]
    fn clearing_keeps_the_open_connection_gauge() {
        let stats = StatsRecorder::default();
        let open = stats.accepted();
        stats.clear();
        assert_eq!(stats.snapshot().connections_open, 1);
        assert_eq!(stats.snapshot().connections_accepted, 0);
        drop(open);
        assert_eq!(stats.snapshot().connections_open, 0);
    }

    #[test]
    fn request_times_serialize_in_milliseconds() {
        let times = RequestTimes {
            count: 1,
            p50: Duration::from_micros(1500),
            ..RequestTimes::default()
        };
        let json = serde_json::to_value(times).unwrap();
        assert_eq!(json["p50_ms"], 1.5);
        assert_eq!(json["count"], 1);
    }
}
