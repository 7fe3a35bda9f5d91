//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use dpl::kinesis::Backoff;
use dpl::DplRecord;
use twin_events::Config;

/// `events/twin-events/` at the repository root.
pub fn sample_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/twin-events")
}

pub fn sample(name: &str) -> Vec<EventRecord> {
    let path = sample_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let event: Event =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    event.records
}

/// A configuration for tests: quick backoff, no margin.
pub fn config(stream_name: &str, dead_letter_queue_url: &str) -> Config {
    Config {
        stream_name: stream_name.into(),
        dead_letter_queue_url: dead_letter_queue_url.into(),
        deadline_margin: Duration::ZERO,
        backoff: Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
        },
    }
}

/// The DPL records the derivation makes of `records`, in order, skipping
/// malformed records: what the DPL stream should receive.
pub fn expected_records(records: &[EventRecord]) -> Vec<DplRecord> {
    records
        .iter()
        .filter_map(|record| dpl::twin::derive_events(record).ok())
        .flatten()
        .collect()
}

pub fn parse_records<'a>(data: impl IntoIterator<Item = &'a [u8]>) -> Vec<DplRecord> {
    data.into_iter()
        .map(|bytes| DplRecord::from_json(bytes).expect("a DPL record"))
        .collect()
}
