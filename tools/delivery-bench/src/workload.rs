//! The events the benchmarks deliver: the seed's six DPL records
//! (`dpl::examples::seed_record`) cycled over a fleet, event `n` of type
//! `n % 6` from DSN `n % devices`, so that a DPL batch of
//! [`BATCH_RECORDS`] consecutive events holds as many distinct DSNs
//! whenever the fleet has at least that many devices.
//!
//! Event `n` happened `n` seconds after [`EPOCH_MS`] (whole seconds: an
//! activation's only time, `activation.event_time`, is written to the
//! second). The customer payload carries no event id (`docs/streams.md`,
//! "Guarantees"), so its time is what names the event when it is read back
//! ([`event_number`]); increasing `n` is also each DSN's order.

use anyhow::Context;
use dpl::examples::seed_record;
use dpl::{DeviceEvent, DplRecord, EventType, Timestamp};

/// DPL records per stream function invocation (`template.yaml`,
/// `StreamBatchSize`; 500 until the benches at distance chose 1,000). The
/// benches' `--batch` changes it.
pub const BATCH_RECORDS: usize = 1_000;

/// The smallest fleet of [`Workload::ten_per_device`]: a DPL batch of
/// [`BATCH_RECORDS`] consecutive events then holds distinct DSNs, as with
/// 10,000 devices.
pub const MIN_DEVICES: usize = 1_000;

/// The OEM and model of every event.
pub const OEM: &str = "oembench";
pub const MODEL: &str = "ledevb";

/// 2026-01-01T00:00:00Z: event `n` happened `n` seconds later.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

/// `events` events over `devices` DSNs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    pub events: usize,
    pub devices: usize,
}

impl Workload {
    /// `events` events, ten per DSN: 100,000 over 10,000 DSNs, 10,000 over
    /// 1,000; never fewer than [`MIN_DEVICES`] DSNs.
    pub fn ten_per_device(events: usize) -> Self {
        Self {
            events,
            devices: (events / 10).max(MIN_DEVICES),
        }
    }

    pub fn dsn(&self, n: u64) -> String {
        format!("AC000W{:09}", n % self.devices as u64)
    }

    /// Event `n`.
    pub fn record(&self, n: u64) -> DplRecord {
        let event_type = EventType::ALL[n as usize % EventType::ALL.len()];
        let record = seed_record(event_type, OEM, MODEL, &self.dsn(n), "Blue_LED", n);
        at(record, event_time(n))
    }

    pub fn records(&self) -> Vec<DplRecord> {
        (0..self.events as u64).map(|n| self.record(n)).collect()
    }
}

/// When event `n` happened.
pub fn event_time(n: u64) -> Timestamp {
    Timestamp::from_millis(EPOCH_MS + 1_000 * n as i64).expect("bench times are valid")
}

/// `record` with its event time set to `time`.
fn at(mut record: DplRecord, time: Timestamp) -> DplRecord {
    match &mut record.dpl_event {
        DeviceEvent::Activation { activation, .. } => activation.event_time = time,
        DeviceEvent::Connectivity { timestamp, .. }
        | DeviceEvent::Datapoint { timestamp, .. }
        | DeviceEvent::DatapointAck { timestamp, .. }
        | DeviceEvent::Location { timestamp, .. }
        | DeviceEvent::Registration { timestamp, .. } => *timestamp = time,
    }
    record
}

fn number_of(event: &DeviceEvent) -> anyhow::Result<u64> {
    let millis = event.time().millis() - EPOCH_MS;
    anyhow::ensure!(
        millis >= 0 && millis % 1_000 == 0,
        "event time {} is not a bench event's",
        event.time().dpl()
    );
    Ok(millis as u64 / 1_000)
}

/// Which event a customer payload (Kinesis data, Event Hubs body) is.
pub fn event_number(payload: &[u8]) -> anyhow::Result<u64> {
    let event = DeviceEvent::from_customer_json(payload).context("not a customer payload")?;
    number_of(&event)
}

/// Which event a DPL record is.
pub fn dpl_event_number(data: &[u8]) -> anyhow::Result<u64> {
    let record = DplRecord::from_json(data).context("not a DPL record")?;
    number_of(&record.dpl_event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_its_event_for_every_type() {
        let workload = Workload {
            events: 12,
            devices: 5,
        };
        for (n, record) in workload.records().iter().enumerate() {
            let payload = dpl::CustomerPayload(&record.dpl_event).to_json();
            assert_eq!(event_number(&payload).unwrap(), n as u64);
            assert_eq!(dpl_event_number(&record.to_json()).unwrap(), n as u64);
            assert_eq!(record.partition_key(), workload.dsn(n as u64));
        }
    }
}
