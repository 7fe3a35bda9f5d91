//! Customer event hubs as [`Destination`]s: the events go through
//! [`crate::eventhubs::client::send`] (batches of one DSN under the 1 MB
//! limit, up to [`EventHubSending::concurrency`] DSNs in flight at once, SAS
//! token reused until near expiry, retry on 5xx, 429 and timeouts, no retry
//! on 401/403/404; an event refused as too large or malformed is rejected
//! alone), with the connection string read from Secrets Manager and checked
//! against the subscription's namespace and hub.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::time::Instant;

use super::delivery::Delivery;
use super::destination::{Destination, DestinationCache, Destinations, Outcome, SendReport};
use super::secrets::{check_connection_string, SecretStore};
use super::subscription::{Credentials, Destination as Target, Subscription};
use crate::eventhubs::batch::Message;
use crate::eventhubs::client::{send, MessageOutcome, SendBatchApi, Stopped};
use crate::eventhubs::http::HttpSender;
use crate::eventhubs::retry::{Backoff, Refused, DEFAULT_BACKOFF};

/// Optional: replaces `https://{namespace host}` with
/// `{this}/{namespace host}`, to send to a local endpoint
/// (`tools/eventhubs-local`) in local runs and tests. Unset in AWS.
pub const ENDPOINT_URL_VAR: &str = "EVENTHUBS_ENDPOINT_URL";

/// How an event hub is sent to: the retry waits, and how many DSNs are in
/// flight at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHubSending {
    pub backoff: Backoff,
    pub concurrency: usize,
}

/// DSNs in flight at once per event hub, by default: at 30 ms a round trip,
/// a batch of 500 DSNs takes 500 requests, 2 round trips at this
/// concurrency (`docs/benchmarks.md`, "Event Hubs at distance"). Azure
/// allows 5,000 connections per namespace ("Event Hubs quotas and limits").
pub const DEFAULT_CONCURRENCY: usize = 256;

impl Default for EventHubSending {
    fn default() -> Self {
        Self {
            backoff: DEFAULT_BACKOFF,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// One customer event hub, credentials resolved.
#[derive(Debug)]
pub struct EventHubDestination<A> {
    api: A,
    sending: EventHubSending,
    /// Set when the hub answered 401 or 403.
    refused: AtomicBool,
}

impl<A> EventHubDestination<A> {
    pub fn new(api: A, sending: EventHubSending) -> Self {
        Self {
            api,
            sending,
            refused: AtomicBool::new(false),
        }
    }
}

impl<A: SendBatchApi + Send + Sync> Destination for EventHubDestination<A> {
    async fn send(&self, events: &[&Delivery], deadline: Instant) -> SendReport {
        let messages: Vec<Message> = events.iter().map(|event| message(event)).collect();
        let sending = &self.sending;
        let outcome = send(
            &self.api,
            &messages,
            deadline,
            &sending.backoff,
            sending.concurrency,
        )
        .await;
        if let Some(Stopped::Refused(Refused::Unauthorized | Refused::Forbidden)) = outcome.stopped
        {
            self.refused.store(true, Ordering::Relaxed);
        }
        let outcomes = outcome
            .outcomes
            .into_iter()
            .map(|o| match o {
                MessageOutcome::Accepted => Outcome::Accepted,
                MessageOutcome::Rejected(reason) => Outcome::Rejected(reason),
                MessageOutcome::Pending => Outcome::Pending,
            })
            .collect();
        SendReport {
            outcomes,
            error: outcome.stopped.as_ref().map(ToString::to_string),
        }
    }

    fn credentials_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }
}

fn message(event: &Delivery) -> Message {
    Message::new(
        std::str::from_utf8(&event.payload).expect("customer payloads are JSON text"),
        &event.dsn,
        &event.event_id.to_string(),
        event.event_type.as_str(),
    )
}

/// Builds and caches the destinations of Event Hubs subscriptions.
pub struct EventHubDestinations<S> {
    secrets: S,
    /// Replaces `https://` + the namespace host: `{endpoint}/{namespace
    /// host}` (the local endpoint's routing), for local runs and tests.
    endpoint_url: Option<String>,
    sending: EventHubSending,
    cache: DestinationCache<EventHubDestination<HttpSender>>,
}

impl<S: SecretStore> EventHubDestinations<S> {
    pub fn new(secrets: S, endpoint_url: Option<String>, sending: EventHubSending) -> Self {
        Self {
            secrets,
            endpoint_url,
            sending,
            cache: DestinationCache::default(),
        }
    }

    async fn build(
        &self,
        subscription: &Subscription,
    ) -> Result<EventHubDestination<HttpSender>, String> {
        let Target::EventHubs { namespace, hub } = &subscription.destination else {
            return Err("not an Event Hubs subscription".to_owned());
        };
        let Credentials::ConnectionStringSecret { secret_id } = &subscription.credentials else {
            return Err("an Event Hubs subscription needs a connection string secret".to_owned());
        };
        let secret = self
            .secrets
            .get(secret_id)
            .await
            .map_err(|e| format!("reading the connection string secret {secret_id}: {e}"))?;
        let connection = check_connection_string(&secret, namespace, hub)
            .map_err(|e| format!("the connection string secret {secret_id}: {e}"))?;
        let base = self.endpoint_url.as_ref().map(|url| {
            format!(
                "{}/{}",
                url.trim_end_matches('/'),
                connection.namespace_host()
            )
        });
        let sender = HttpSender::new(connection, hub, base.as_deref())
            .map_err(|e| e.to_string())?
            .with_pool(self.sending.concurrency);
        Ok(EventHubDestination::new(sender, self.sending))
    }
}

impl<S: SecretStore + Send + Sync> Destinations for EventHubDestinations<S> {
    type Destination = EventHubDestination<HttpSender>;

    async fn destination(
        &self,
        subscription: &Subscription,
    ) -> Result<Arc<Self::Destination>, String> {
        self.cache
            .get_or_build(subscription, self.build(subscription))
            .await
    }
}
