//! The demo pipeline end to end on the AWS emulator (moto server), on a
//! small fleet: twin changes -> twin-events -> DPL stream -> event-store,
//! stream-kinesis, stream-eventhubs -> hourly-export; then the invariants:
//!
//! 1. every twin change produced exactly its events, per DSN in write
//!    order, and nothing else (writes that change nothing reported produce
//!    nothing);
//! 2. every event is in exactly one CSV row, in the file of its OEM, type
//!    and hour, and the files hold nothing else;
//! 3. each subscription received exactly its OEM's events that pass its
//!    filters, per DSN in stream order, as the customer payload.
//!
//! Needs `AWS_ENDPOINT_URL` (set by `scripts/with-moto.sh`, which `make
//! test` uses); fails, rather than skips, without it.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use demo::customers::{self, customer_kinesis, role_arn};
use demo::fleet::Expected;
use demo::pipeline::{self, Options, Outcome, Quiet};
use dpl::export::{ObjectStore, Partition};
use dpl::streams::Subscription;
use dpl::{CustomerPayload, DplRecord};

fn prefix() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("e2e-{}-{secs}", std::process::id())
}

async fn run() -> Outcome {
    let options = Options {
        devices: 8,
        hours: 1,
        seed: 2020,
        prefix: prefix(),
    };
    pipeline::run(&options, &Quiet)
        .await
        .expect("the demo pipeline runs")
}

/// The customer payloads `subscription` must receive, by DSN, in order.
fn expected_deliveries(
    records: &[DplRecord],
    subscription: &Subscription,
) -> BTreeMap<String, Vec<String>> {
    let mut by_dsn: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in records {
        let event = &record.dpl_event;
        if event.oem_id() == subscription.oem_id && subscription.filters.matches(event) {
            by_dsn
                .entry(event.dsn().to_owned())
                .or_default()
                .push(String::from_utf8(CustomerPayload(event).to_json()).unwrap());
        }
    }
    by_dsn
}

/// Runs `test` on a runtime whose threads have the main thread's stack
/// size: the unoptimized SDK and handler futures outgrow the 2 MiB of
/// test threads.
fn with_big_stacks<F: std::future::Future<Output = ()> + 'static>(test: fn() -> F) {
    const STACK: usize = 16 * 1024 * 1024;
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(STACK)
                .enable_all()
                .build()
                .unwrap()
                .block_on(test())
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn every_change_reaches_the_stream_the_export_and_each_subscription_exactly_once() {
    with_big_stacks(every_change_reaches_everything_once);
}

async fn every_change_reaches_everything_once() {
    let outcome = run().await;
    let records = &outcome.dpl_records;
    assert!(
        outcome.fleet.expected_count() > 20,
        "a fleet that does something"
    );
    for (name, stats) in &outcome.mappings {
        assert_eq!(stats.given_up, 0, "{name}: {stats:?}");
    }
    assert_eq!(outcome.dead_letters, 0);

    // 1. The DPL stream holds exactly the events of the twin changes.
    let mut observed: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    for record in records {
        let event = Expected::of(&record.dpl_event);
        assert_eq!(record.partition_key(), event.dsn);
        observed.entry(event.dsn.clone()).or_default().push(event);
    }
    assert_eq!(observed, outcome.fleet.expected_by_dsn());
    let ids: std::collections::BTreeSet<_> = records.iter().map(|r| r.event_id).collect();
    assert_eq!(ids.len(), records.len(), "event ids are unique");

    // 2. One CSV row per event, in the file of its OEM, type and hour.
    let mut expected_files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in records {
        let event = &record.dpl_event;
        let partition = Partition {
            hour: event.time().hour_start(),
            oem_id: event.oem_id().to_owned(),
            event_type: event.event_type(),
        };
        expected_files
            .entry(outcome.layout.export_key(&partition))
            .or_default()
            .push(dpl::csv::row(event));
    }
    let store = outcome.store();
    let listed = store
        .list(&format!("{}/", outcome.layout.exports))
        .await
        .unwrap();
    let mut actual_files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for object in listed {
        let bytes = store.get(&object.key).await.unwrap().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let rows = text.split_inclusive('\n').map(str::to_owned).collect();
        actual_files.insert(object.key, rows);
    }
    for rows in expected_files.values_mut().chain(actual_files.values_mut()) {
        rows.sort();
    }
    assert_eq!(
        actual_files.keys().collect::<Vec<_>>(),
        expected_files.keys().collect::<Vec<_>>()
    );
    assert_eq!(actual_files, expected_files);

    // 3. Each subscription: exactly its filtered events, per DSN in order.
    let customers = &outcome.customers;
    let client = customer_kinesis(&outcome.aws, &role_arn()).await.unwrap();
    let mut kinesis: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, record) in customers::read_stream(&client, &customers.stream_name)
        .await
        .unwrap()
    {
        kinesis
            .entry(record.partition_key().unwrap().to_owned())
            .or_default()
            .push(String::from_utf8(record.data().as_ref().to_vec()).unwrap());
    }
    let expected = expected_deliveries(records, &customers.kinesis);
    assert!(!expected.is_empty());
    assert_eq!(kinesis, expected);

    let mut hub: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in customers.hubs.messages() {
        hub.entry(message.partition_key.clone().unwrap())
            .or_default()
            .push(message.body.clone());
    }
    let expected = expected_deliveries(records, &customers.eventhubs);
    assert!(!expected.is_empty());
    assert_eq!(hub, expected);
}
