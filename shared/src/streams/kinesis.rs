//! Customer Kinesis streams as [`Destination`]s: the events go through
//! [`crate::kinesis::publish`] (packed to the `PutRecords` limits, only
//! failed entries resent with full-jitter backoff, per-DSN order kept), with
//! the subscription's credentials:
//!
//! - a role in the customer's account, assumed with its external id; the
//!   SDK's provider caches the temporary credentials and refreshes them
//!   before they expire;
//! - or an access key pair read from Secrets Manager.
//!
//! The stream's region comes from its ARN. Clients are cached per
//! subscription ([`DestinationCache`]).

use std::sync::Arc;

use aws_config::sts::AssumeRoleProvider;
use aws_config::{Region, SdkConfig};
use aws_sdk_kinesis::config::{Credentials as StaticCredentials, SharedCredentialsProvider};
use tokio::time::Instant;

use super::delivery::Delivery;
use super::destination::{Destination, DestinationCache, Destinations, Outcome, SendReport};
use super::secrets::{AccessKeys, SecretStore};
use super::subscription::{required_external_id, Credentials, Destination as Target, Subscription};
use crate::kinesis::retry::DEFAULT_BACKOFF;
use crate::kinesis::{publish, Backoff, Entry, PutRecordsApi, Stopped};

/// How a customer stream is written to: the retry waits, and how many
/// `PutRecords` calls are in flight at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KinesisSending {
    pub backoff: Backoff,
    pub in_flight: usize,
}

/// `PutRecords` calls in flight at once per customer stream, by default:
/// a page of catch-up (thousands of records) goes out in a few round trips
/// (`docs/benchmarks.md`, "Kinesis at distance"); the customer stream's own
/// write limits (1,000 records and 1 MB per second per shard) bound the rest.
pub const DEFAULT_IN_FLIGHT: usize = 16;

impl Default for KinesisSending {
    fn default() -> Self {
        Self {
            backoff: DEFAULT_BACKOFF,
            in_flight: DEFAULT_IN_FLIGHT,
        }
    }
}

/// One customer stream, credentials resolved. `A` is the `PutRecords` port:
/// the SDK client in the functions, an in-memory stream in simulations.
#[derive(Debug)]
pub struct KinesisDestination<A = aws_sdk_kinesis::Client> {
    client: A,
    stream_arn: String,
    sending: KinesisSending,
    event_id_in_payload: bool,
}

impl<A> KinesisDestination<A> {
    pub fn new(client: A, stream_arn: String, sending: KinesisSending) -> Self {
        Self {
            client,
            stream_arn,
            sending,
            event_id_in_payload: false,
        }
    }

    /// Whether the record data carries the event id
    /// (`Subscription::event_id_in_payload`; off: the vendor's payload).
    pub fn with_event_id_in_payload(mut self, on: bool) -> Self {
        self.event_id_in_payload = on;
        self
    }
}

impl<A: PutRecordsApi + Send + Sync> Destination for KinesisDestination<A> {
    async fn send(&self, events: &[&Delivery], deadline: Instant) -> SendReport {
        // A record over the per-record limit can never be put: it is
        // rejected alone, and its DSN's later events go on.
        let mut outcomes = vec![Outcome::Pending; events.len()];
        let mut entries = Vec::with_capacity(events.len());
        let mut sent = Vec::with_capacity(events.len());
        for (n, event) in events.iter().enumerate() {
            let data = if self.event_id_in_payload {
                event.payload_with_event_id()
            } else {
                event.payload.clone()
            };
            match Entry::new(event.dsn.clone(), data) {
                Ok(entry) => {
                    entries.push(entry);
                    sent.push(n);
                }
                Err(error) => outcomes[n] = Outcome::Rejected(error.to_string()),
            }
        }
        let sending = &self.sending;
        let outcome = publish(
            &self.client,
            &self.stream_arn,
            &entries,
            deadline,
            &sending.backoff,
            sending.in_flight,
        )
        .await;
        for (k, &n) in sent.iter().enumerate() {
            if outcome.is_accepted(k) {
                outcomes[n] = Outcome::Accepted;
            }
        }
        SendReport {
            outcomes,
            error: outcome.stopped.as_ref().map(describe),
        }
    }
}

/// Words for the subscription's health.
fn describe(stopped: &Stopped) -> String {
    match stopped {
        Stopped::Deadline => "the stream did not accept every record in time".to_owned(),
        Stopped::Fatal(error) => error.to_string(),
        Stopped::UnknownEntryError { code, message } => {
            format!("PutRecords entry failed with {code}: {message}")
        }
    }
}

/// Builds and caches the destinations of Kinesis subscriptions.
pub struct KinesisDestinations<S> {
    base: SdkConfig,
    secrets: S,
    sending: KinesisSending,
    cache: DestinationCache<KinesisDestination>,
}

impl<S: SecretStore> KinesisDestinations<S> {
    /// `base` carries the SDK defaults (and `AWS_ENDPOINT_URL` locally).
    pub fn new(base: SdkConfig, secrets: S, sending: KinesisSending) -> Self {
        Self {
            base,
            secrets,
            sending,
            cache: DestinationCache::default(),
        }
    }

    async fn build(&self, subscription: &Subscription) -> Result<KinesisDestination, String> {
        let Target::Kinesis { stream_arn } = &subscription.destination else {
            return Err("not a Kinesis subscription".to_owned());
        };
        let region = Region::new(stream_arn.region().to_owned());
        let credentials = match &subscription.credentials {
            Credentials::AssumeRole {
                role_arn,
                external_id,
            } => {
                // Never assume a role without its external id, even for an
                // item stored before it was required (confused deputy:
                // `subscription::credentials`).
                let external_id =
                    required_external_id(external_id.as_deref()).map_err(|e| e.to_string())?;
                let role = AssumeRoleProvider::builder(role_arn)
                    .session_name(format!("dpl-{}", subscription.id))
                    .region(region.clone())
                    .external_id(external_id)
                    .configure(&self.base);
                SharedCredentialsProvider::new(role.build().await)
            }
            Credentials::AccessKeySecret { secret_id } => {
                let secret = self
                    .secrets
                    .get(secret_id)
                    .await
                    .map_err(|e| format!("reading the access key secret {secret_id}: {e}"))?;
                let keys = AccessKeys::parse(&secret)
                    .map_err(|e| format!("the access key secret {secret_id}: {e}"))?;
                SharedCredentialsProvider::new(StaticCredentials::new(
                    keys.access_key_id(),
                    keys.secret_access_key(),
                    None,
                    None,
                    "dpl-subscription-secret",
                ))
            }
            Credentials::ConnectionStringSecret { .. } => {
                return Err("a connection string does not sign Kinesis requests".to_owned())
            }
        };
        let config = aws_sdk_kinesis::config::Builder::from(&self.base)
            .region(region)
            .credentials_provider(credentials)
            .build();
        Ok(KinesisDestination::new(
            aws_sdk_kinesis::Client::from_conf(config),
            stream_arn.to_string(),
            self.sending,
        )
        .with_event_id_in_payload(subscription.event_id_in_payload))
    }
}

impl<S: SecretStore + Send + Sync> Destinations for KinesisDestinations<S> {
    type Destination = KinesisDestination;

    async fn destination(
        &self,
        subscription: &Subscription,
    ) -> Result<Arc<KinesisDestination>, String> {
        self.cache
            .get_or_build(subscription, self.build(subscription))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::secrets::InMemorySecrets;

    fn fixture(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/");
        std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The record data sent for the vendor's decoded Kinesis example,
    /// with and without the opt-in.
    async fn sent_data(event_id_in_payload: bool) -> Vec<u8> {
        let event =
            crate::DeviceEvent::from_customer_json(&fixture("seed/kinesis_decoded.json")).unwrap();
        let record = crate::DplRecord::from_json(
            &serde_json::to_vec(&serde_json::json!({
                "dpl_event": event,
                "event_id": "93df5c50-fac3-564d-91aa-8e7298db3c40",
            }))
            .unwrap(),
        )
        .unwrap();
        let delivery = Delivery::new(
            crate::position::Position::new("shardId-000000000000", "1").unwrap(),
            crate::Timestamp::from_millis(0).unwrap(),
            &record,
        );
        let kinesis = Arc::new(crate::kinesis::InMemoryKinesis::new());
        let destination =
            KinesisDestination::new(kinesis.clone(), "s".to_owned(), KinesisSending::default())
                .with_event_id_in_payload(event_id_in_payload);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let report = destination.send(&[&delivery], deadline).await;
        assert_eq!(report.outcomes, [Outcome::Accepted]);
        let records = kinesis.records("s");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].partition_key(), "AC000W000000001");
        records[0].data().to_vec()
    }

    /// Golden files, compact as sent: `kinesis_data.json` is the vendor's
    /// decoded example (`seed/kinesis_decoded.json`) without whitespace;
    /// `kinesis_data_with_event_id.json` the same with `"event_id"` last.
    #[tokio::test]
    async fn record_data_is_the_vendor_payload_unless_the_event_id_is_opted_in() {
        assert_eq!(
            String::from_utf8(sent_data(false).await).unwrap(),
            String::from_utf8(fixture("kinesis_data.json"))
                .unwrap()
                .trim_end()
        );
        assert_eq!(
            String::from_utf8(sent_data(true).await).unwrap(),
            String::from_utf8(fixture("kinesis_data_with_event_id.json"))
                .unwrap()
                .trim_end()
        );
    }

    #[tokio::test]
    async fn a_role_without_external_id_is_never_assumed() {
        let destinations = KinesisDestinations::new(
            SdkConfig::builder().build(),
            InMemorySecrets::new(),
            KinesisSending::default(),
        );
        let mut subscription = crate::streams::testing::subscription(1, "0dfc7900", "legacy");
        // As an item stored before the external id was required reads.
        let Credentials::AssumeRole { external_id, .. } = &mut subscription.credentials else {
            panic!("the test subscription assumes a role");
        };
        *external_id = None;
        let error = destinations.destination(&subscription).await.unwrap_err();
        assert!(error.starts_with("external_id is required"), "{error}");
    }
}
