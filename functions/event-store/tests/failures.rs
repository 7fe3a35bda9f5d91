//! A staging write that fails: the batch item failure names the first
//! record the failed object covers, so Lambda retries from there and
//! nothing is skipped; the other objects are written.

use std::cell::RefCell;
use std::path::Path;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use dpl::examples::{kinesis_event_record, seed_csv_examples};
use dpl::export::store::UploadedPart;
use dpl::export::{DirStore, ObjectInfo, ObjectStore, StoreError};
use dpl::{DeviceEvent, DplRecord, EventId};
use event_store::{Config, Handler};

/// A directory store whose `put` fails for keys containing `fail_on`.
struct FailingStore {
    inner: DirStore,
    fail_on: &'static str,
    puts: RefCell<Vec<String>>,
}

impl ObjectStore for FailingStore {
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn download(&self, key: &str, to: &Path) -> Result<u64, StoreError> {
        self.inner.download(key, to).await
    }
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<String, StoreError> {
        if key.contains(self.fail_on) {
            return Err(StoreError::service(
                "PutObject",
                key,
                "SlowDown: please reduce your request rate",
            ));
        }
        self.puts.borrow_mut().push(key.into());
        self.inner.put(key, body, content_type).await
    }
    async fn start_upload(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        self.inner.start_upload(key, content_type).await
    }
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        self.inner.upload_part(key, upload_id, number, body).await
    }
    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<String, StoreError> {
        self.inner.complete_upload(key, upload_id, parts).await
    }
    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.inner.abort_upload(key, upload_id).await
    }
}

fn kinesis_record(record: &DplRecord, sequence: u64) -> KinesisEventRecord {
    kinesis_event_record(record.partition_key(), &record.to_json(), sequence)
}

/// The seed's four CSV example events (OEM `abcd1234`, four types), plus the
/// connection example again for OEM `bbbb0002`, as record 1 of 5.
fn batch() -> Vec<KinesisEventRecord> {
    let mut events: Vec<DeviceEvent> = seed_csv_examples().into_iter().map(|(_, e)| e).collect();
    let mut other = events[0].clone();
    if let DeviceEvent::Connectivity {
        metadata,
        connection,
        ..
    } = &mut other
    {
        metadata.oem_id = "bbbb0002".into();
        connection.metadata.oem_id = "bbbb0002".into();
    }
    events.insert(1, other);
    events
        .into_iter()
        .enumerate()
        .map(|(n, event)| {
            let event_type = event.event_type();
            let record = DplRecord {
                dpl_event: event,
                event_id: EventId::derive(&format!("stream-event-{n}"), event_type),
                stream_order: None,
            };
            kinesis_record(&record, 100 + n as u64)
        })
        .collect()
}

fn handler(dir: &Path, fail_on: &'static str) -> Handler<FailingStore> {
    let config =
        Config::from_lookup(|name| (name == "BUCKET").then(|| "local".to_owned())).unwrap();
    let store = FailingStore {
        inner: DirStore::new(dir),
        fail_on,
        puts: RefCell::default(),
    };
    Handler::new(store, &config)
}

#[tokio::test]
async fn a_failed_staging_write_is_retried_from_the_first_record_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let handler = handler(dir.path(), "bbbb0002");
    let records = batch();
    let response = handler.process(&records).await.unwrap();
    let failures: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failures,
        vec![Some("101".to_owned())],
        "record 1 of OEM bbbb0002"
    );
    let puts = handler.store().puts.borrow();
    assert_eq!(
        puts.len(),
        4,
        "the other OEM's four objects are written: {puts:?}"
    );
    assert!(puts.iter().all(|key| key.contains("abcd1234")));
}

#[tokio::test]
async fn without_failures_the_batch_succeeds_and_a_retry_rewrites_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let handler = handler(dir.path(), "no such key");
    let records = batch();
    assert!(handler
        .process(&records)
        .await
        .unwrap()
        .batch_item_failures
        .is_empty());
    assert!(handler
        .process(&records)
        .await
        .unwrap()
        .batch_item_failures
        .is_empty());
    let puts = handler.store().puts.borrow();
    assert_eq!(puts.len(), 10);
    assert_eq!(
        puts[..5],
        puts[5..],
        "keys derive from the input, not the clock"
    );
}
