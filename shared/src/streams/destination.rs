//! The port to customer endpoints: a [`Destination`] sends events in
//! order and says which it delivered; [`Destinations`] builds (and caches)
//! the destination of a subscription, resolving its credentials.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use super::delivery::Delivery;
use super::subscription::{Credentials, Destination as Target, Subscription, SubscriptionId};

/// What became of one event sent to a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The destination took it.
    Accepted,
    /// The destination refuses it for good (too large, malformed: 400, 413,
    /// over the size limit), after a bounded number of tries: it goes to the
    /// subscription's dead letters with this reason, and the events after it
    /// are not held.
    Rejected(String),
    /// Not delivered yet (the destination is down, throttling, or time ran
    /// out): it stays behind, in order.
    Pending,
}

/// What one [`Destination::send`] achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    /// One outcome per event sent, in order. Per DSN, the accepted and
    /// rejected events come before the pending ones: transports keep
    /// per-key order.
    pub outcomes: Vec<Outcome>,
    /// Why some events are pending (for the subscription's health); `None`
    /// when none is. Never holds a secret.
    pub error: Option<String>,
}

impl SendReport {
    pub fn all_accepted(count: usize) -> Self {
        Self {
            outcomes: vec![Outcome::Accepted; count],
            error: None,
        }
    }

    /// Nothing delivered, because of `error`.
    pub fn refused(count: usize, error: impl ToString) -> Self {
        Self {
            outcomes: vec![Outcome::Pending; count],
            error: Some(error.to_string()),
        }
    }

    /// The first `accepted` events were delivered, the rest are pending.
    pub fn prefix(count: usize, accepted: usize, error: Option<String>) -> Self {
        Self {
            outcomes: (0..count)
                .map(|n| {
                    if n < accepted {
                        Outcome::Accepted
                    } else {
                        Outcome::Pending
                    }
                })
                .collect(),
            error: if accepted < count { error } else { None },
        }
    }

    pub fn delivered(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Accepted))
    }

    pub fn rejected(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Rejected(_)))
    }

    pub fn pending(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pending))
    }

    fn count(&self, which: impl Fn(&Outcome) -> bool) -> usize {
        self.outcomes.iter().filter(|o| which(o)).count()
    }
}

/// A customer endpoint, credentials resolved.
pub trait Destination: Send + Sync {
    /// Delivers `events` in order, giving up at `deadline`. Retries what
    /// is worth retrying; never resends what was accepted.
    fn send(
        &self,
        events: &[&Delivery],
        deadline: Instant,
    ) -> impl Future<Output = SendReport> + Send;

    /// Whether the endpoint refused this destination's credentials (e.g.
    /// 401/403, an unknown access key): the cached destination is then
    /// built again, reading the secret again, so a fixed secret takes
    /// effect at the next batch or redrive.
    fn credentials_refused(&self) -> bool {
        false
    }
}

/// Builds the destination of a subscription.
pub trait Destinations: Send + Sync {
    type Destination: Destination;

    /// The destination of `subscription` (possibly cached), or why it
    /// cannot be reached at all (e.g. its secret cannot be read): the
    /// message goes to the subscription's health, so it never holds a secret.
    fn destination(
        &self,
        subscription: &Subscription,
    ) -> impl Future<Output = Result<Arc<Self::Destination>, String>> + Send;
}

/// How long a subscription's destination (and the secret it was built
/// from) is reused before it is built again: a rotated secret is picked up
/// within this time.
pub const DESTINATION_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Built destinations per subscription, reused while the subscription's
/// destination, credentials and payload option are unchanged, for [`DESTINATION_TTL`], and
/// until the endpoint refuses their credentials.
pub struct DestinationCache<T> {
    entries: std::sync::Mutex<std::collections::HashMap<SubscriptionId, Cached<T>>>,
}

struct Cached<T> {
    built_at: Instant,
    from: (Target, Credentials, bool),
    destination: Arc<T>,
}

impl<T> Default for DestinationCache<T> {
    fn default() -> Self {
        Self {
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl<T: Destination> DestinationCache<T> {
    /// The cached destination of `subscription`, or the one `build` makes.
    pub async fn get_or_build<F>(
        &self,
        subscription: &Subscription,
        build: F,
    ) -> Result<Arc<T>, String>
    where
        F: Future<Output = Result<T, String>>,
    {
        if let Some(destination) = self.cached(subscription) {
            return Ok(destination);
        }
        let destination = Arc::new(build.await?);
        self.entries.lock().expect("destination cache lock").insert(
            subscription.id.clone(),
            Cached {
                built_at: Instant::now(),
                from: (
                    subscription.destination.clone(),
                    subscription.credentials.clone(),
                    subscription.event_id_in_payload,
                ),
                destination: destination.clone(),
            },
        );
        Ok(destination)
    }

    fn cached(&self, subscription: &Subscription) -> Option<Arc<T>> {
        let entries = self.entries.lock().expect("destination cache lock");
        let cached = entries.get(&subscription.id)?;
        let same = cached.from.0 == subscription.destination
            && cached.from.1 == subscription.credentials
            && cached.from.2 == subscription.event_id_in_payload;
        let fresh = cached.built_at.elapsed() < DESTINATION_TTL;
        (same && fresh && !cached.destination.credentials_refused())
            .then(|| cached.destination.clone())
    }
}
