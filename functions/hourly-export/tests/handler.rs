//! The handler's fan-out and task paths on a directory store and the
//! in-memory task queue: no emulator needed.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use dpl::event::{Connection, DeviceMetadata};
use dpl::export::staging::{encode, sort_rows};
use dpl::export::{BatchRange, DirStore, ObjectStore, Partition};
use dpl::{DeviceEvent, DplRecord, EventId, EventType, Timestamp};
use hourly_export::handler::{HandlerError, Summary};
use hourly_export::queue::InMemoryTaskQueue;
use hourly_export::request::{HourRequest, Request};
use hourly_export::{Config, Handler};
use serde_json::json;

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn config(root: &std::path::Path) -> Config {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let vars = [
        ("BUCKET", "dir".to_owned()),
        ("EXPORT_LOOKBACK_HOURS", "1".to_owned()),
        ("EXPORT_WORK_DIR", work.to_str().unwrap().to_owned()),
    ];
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

fn connectivity(oem: &str, time: Timestamp, n: u64) -> DplRecord {
    let metadata = DeviceMetadata {
        oem_id: oem.into(),
        oem_model: "ledevb".into(),
        dsn: "AC000W000000001".into(),
        event_type: EventType::Connectivity,
    };
    record(
        DeviceEvent::Connectivity {
            metadata: metadata.clone(),
            timestamp: time,
            connection: Connection {
                event_time: time,
                user_uuid: None,
                status: format!("status-{n}"),
                metadata,
            },
        },
        n,
    )
}

/// The seed's location example, of `oem` (in the hour of 09:00).
fn location(oem: &str, n: u64) -> DplRecord {
    let path = format!(
        "{}/../../tests/fixtures/seed/location.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let seed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut event = seed["dpl_event"].clone();
    event["metadata"]["oem_id"] = json!(oem);
    record(serde_json::from_value(event).unwrap(), n)
}

fn record(event: DeviceEvent, n: u64) -> DplRecord {
    let event_type = event.event_type();
    DplRecord {
        dpl_event: event,
        event_id: EventId::derive(&format!("event-{n}"), event_type),
        stream_order: None,
    }
}

/// A store holding one staging object per partition of `records`.
async fn staged(root: &std::path::Path, records: &[DplRecord]) -> DirStore {
    let store = DirStore::new(root.join("bucket"));
    let layout = config(root).storage.layout;
    let mut by_partition: BTreeMap<Partition, Vec<DplRecord>> = BTreeMap::new();
    for record in records {
        let partition = Partition {
            hour: record.dpl_event.time().hour_start(),
            oem_id: record.dpl_event.oem_id().to_owned(),
            event_type: record.dpl_event.event_type(),
        };
        by_partition
            .entry(partition)
            .or_default()
            .push(record.clone());
    }
    for (partition, mut rows) in by_partition {
        sort_rows(&mut rows);
        let range = BatchRange {
            shard_id: "shardId-000000000000",
            first_sequence: "1",
            last_sequence: "9",
        };
        let key = layout.staging_key(&partition, &range).unwrap();
        store
            .put(&key, encode(&rows), "application/gzip")
            .await
            .unwrap();
    }
    store
}

/// Three partitions of the hour of 09:00: oem-a connectivity and
/// location, oem-b connectivity.
fn three_partitions() -> Vec<DplRecord> {
    vec![
        connectivity("oem-a", at("2020-08-28T09:01:00Z"), 1),
        location("oem-a", 2),
        connectivity("oem-b", at("2020-08-28T09:03:00Z"), 3),
    ]
}

fn scheduled_at(time: &str) -> Request {
    serde_json::from_value(json!({
        "version": "0", "id": "1", "detail-type": "Scheduled Event",
        "source": "aws.scheduler", "time": time, "resources": [], "detail": {}
    }))
    .unwrap()
}

fn sqs_event(bodies: &[(Option<&str>, Option<String>)]) -> Request {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "body": body, "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1"}
            })
        })
        .collect();
    let request: Request = serde_json::from_value(json!({ "Records": records })).unwrap();
    assert!(matches!(request, Request::Tasks(_)));
    request
}

fn task(oem: &str, event_type: EventType) -> String {
    HourRequest::task(&Partition {
        hour: at("2020-08-28T09:00:00Z"),
        oem_id: oem.into(),
        event_type,
    })
    .to_body()
}

/// The CSV files exported (each has its customer manifest beside them,
/// under `exports/{oem}/_manifests/`).
async fn export_keys(store: &DirStore) -> Vec<String> {
    store
        .list("exports/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .filter(|key| key.ends_with(".csv"))
        .collect()
}

fn failures(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn the_schedule_queues_only_partitions_that_need_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let store = staged(dir.path(), &three_partitions()).await;
    // oem-b is exported already: its manifest is current.
    Handler::new(store.clone(), &config(dir.path()))
        .unwrap()
        .process(&sqs_event(&[(
            Some("m0"),
            Some(task("oem-b", EventType::Connectivity)),
        )]))
        .await
        .unwrap();
    let queue = InMemoryTaskQueue::new();
    let handler = Handler::with_queue(store.clone(), Some(queue), &config(dir.path())).unwrap();
    let before = export_keys(&store).await;

    let summary = handler
        .process(&scheduled_at("2020-08-28T10:15:00Z"))
        .await
        .unwrap()
        .summary()
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            hours: vec!["2020-08-28-08:00:00".into(), "2020-08-28-09:00:00".into()],
            up_to_date: 1,
            queued: 2,
            ..Summary::default()
        }
    );
    assert_eq!(export_keys(&store).await, before, "nothing exported");
}

#[tokio::test]
async fn a_task_exports_its_partition_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = staged(dir.path(), &three_partitions()).await;
    let handler = Handler::new(store.clone(), &config(dir.path())).unwrap();
    let response = handler
        .process(&sqs_event(&[(
            Some("m1"),
            Some(task("oem-a", EventType::Location)),
        )]))
        .await
        .unwrap()
        .tasks()
        .unwrap();
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(
        export_keys(&store).await,
        ["exports/oem-a/location/2020-08-28-09:00:00/location.csv"]
    );
}

#[tokio::test]
async fn failed_and_unreadable_tasks_are_answered_by_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = staged(dir.path(), &three_partitions()).await;
    let handler = Handler::new(store.clone(), &config(dir.path())).unwrap();
    let event_type_without_oem =
        r#"{"hour":"2020-08-28T09","event_type":"connectivity"}"#.to_owned();
    let response = handler
        .process(&sqs_event(&[
            (Some("good-1"), Some(task("oem-a", EventType::Connectivity))),
            (Some("no-body"), None),
            (Some("not-json"), Some("{".into())),
            (Some("no-oem"), Some(event_type_without_oem)),
            (Some("good-2"), Some(task("oem-b", EventType::Connectivity))),
        ]))
        .await
        .unwrap()
        .tasks()
        .unwrap();
    assert_eq!(failures(&response), ["no-body", "not-json", "no-oem"]);
    assert_eq!(export_keys(&store).await.len(), 2);
    // The answer is the partial batch response Lambda reads.
    assert_eq!(
        serde_json::to_value(hourly_export::handler::Response::Tasks(response)).unwrap()
            ["batchItemFailures"][0],
        json!({"itemIdentifier": "no-body"})
    );
}

#[tokio::test]
async fn a_failed_task_without_a_message_id_fails_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = staged(dir.path(), &three_partitions()).await;
    let handler = Handler::new(store, &config(dir.path())).unwrap();
    let err = handler
        .process(&sqs_event(&[(None, Some("{".into()))]))
        .await
        .unwrap_err();
    assert!(matches!(err, HandlerError::NoMessageId), "{err}");
}

#[tokio::test]
async fn a_schedule_whose_tasks_cannot_be_queued_fails_for_the_scheduler_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let store = staged(dir.path(), &three_partitions()).await;
    let queue = InMemoryTaskQueue::refusing(100);
    let handler = Handler::with_queue(store.clone(), Some(queue), &config(dir.path())).unwrap();
    let err = handler
        .process(&scheduled_at("2020-08-28T10:15:00Z"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            HandlerError::FanOut(hourly_export::fan_out::FanOutError::Unsent {
                unsent: 3,
                total: 3,
                ..
            })
        ),
        "{err}"
    );
    assert!(export_keys(&store).await.is_empty());
}

#[tokio::test]
async fn a_range_task_of_an_unknown_split_or_an_impossible_range_fails_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = staged(dir.path(), &three_partitions()).await;
    let handler = Handler::new(store.clone(), &config(dir.path())).unwrap();
    let partition = Partition {
        hour: at("2020-08-28T09:00:00Z"),
        oem_id: "oem-a".into(),
        event_type: EventType::Connectivity,
    };
    let range = |index, of| {
        HourRequest::range_task(
            &partition,
            "0123456789abcdef",
            dpl::export::TimeRange { index, of },
        )
        .to_body()
    };
    let response = handler
        .process(&sqs_event(&[
            (Some("no-plan"), Some(range(0, 2))),
            (Some("index-past-of"), Some(range(2, 2))),
            (Some("good"), Some(task("oem-b", EventType::Connectivity))),
        ]))
        .await
        .unwrap()
        .tasks()
        .unwrap();
    assert_eq!(failures(&response), ["no-plan", "index-past-of"]);
    assert_eq!(
        export_keys(&store).await,
        ["exports/oem-b/connection/2020-08-28-09:00:00/connection.csv"]
    );
}
