//! The rows the benchmarks print: one per round trip, as Markdown table
//! rows that `docs/today-under-latency.md` takes as they are.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use faultproxy::Stats;

use dpl::streams::check::DeliveryCheck;

use crate::check::{first_arrivals, Arrival};
use crate::delays::{between, millis, Spread};
use crate::esm::Drained;
use crate::workload::Workload;

/// The load average now (1, 5 and 15 minutes), from `/proc/loadavg`.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// From each event's hand-over to the engine to its first acceptance by
/// the endpoint.
pub fn delivery_delays(handed_over: &HashMap<u64, SystemTime>, arrivals: &[Arrival]) -> Spread {
    let first = first_arrivals(arrivals);
    Spread::of(
        first
            .iter()
            .filter_map(|(n, at)| handed_over.get(n).map(|from| between(*from, *at)))
            .collect(),
    )
}

/// One round trip's figures for one destination.
pub struct DistanceRow {
    pub round_trip: Duration,
    pub workload: Workload,
    pub drained: Drained,
    /// The link's proxy stats, before anything else used it.
    pub link: Stats,
    pub delay: Spread,
    /// What arrived, against what was sent.
    pub verdict: DeliveryCheck,
    /// The load average when the run started (the one at its end, printed
    /// in [`Self::line`], includes the run itself).
    pub load_before: String,
}

impl DistanceRow {
    pub const HEADER: &'static str = "| round trip | events (DSNs) | time | events/s | requests / 1,000 events | request p50 / p99 (proxy) | delivery delay p50 / p99 | scheduled runs (time) | duplicates | load before → after |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|";

    pub fn new(
        round_trip: Duration,
        workload: Workload,
        drained: Drained,
        link: Stats,
        arrivals: &[Arrival],
        verdict: DeliveryCheck,
        load_before: String,
    ) -> Self {
        let delay = delivery_delays(&drained.handed_over, arrivals);
        Self {
            round_trip,
            workload,
            drained,
            link,
            delay,
            verdict,
            load_before,
        }
    }

    pub fn events_per_second(&self) -> f64 {
        self.workload.events as f64 / self.drained.elapsed.as_secs_f64()
    }

    pub fn requests_per_1000(&self) -> f64 {
        self.link.requests_forwarded as f64 * 1_000.0 / self.workload.events as f64
    }

    /// The Markdown row, with the load average now.
    pub fn line(&self) -> String {
        let times = &self.link.request_times;
        format!(
            "| {} ms | {} ({}) | {:.1} s | {:.0} | {:.1} | {:.2} / {:.2} ms | {:.2} / {:.2} s | {} ({:.1} s) | {} | {} → {} |",
            self.round_trip.as_millis(),
            self.workload.events,
            self.workload.devices,
            self.drained.elapsed.as_secs_f64(),
            self.events_per_second(),
            self.requests_per_1000(),
            millis(times.p50),
            millis(times.p99),
            self.delay.p50.as_secs_f64(),
            self.delay.p99.as_secs_f64(),
            self.drained.scheduled_runs,
            self.drained.scheduled_time.as_secs_f64(),
            self.verdict.duplicates,
            self.load_before,
            load(),
        )
    }
}
