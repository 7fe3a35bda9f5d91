//! The delivery engine of a stream function: its ports, its configuration,
//! the subscription list it serves and the health it records. What it does
//! is split by path:
//!
//! - [`super::live`]: each DPL batch, to the subscriptions that are live on
//!   its shard; a subscription that misses events falls behind there;
//! - [`super::catchup`]: the worker that reads the DPL stream for the
//!   subscriptions behind on a shard and hands them back, and the sweep
//!   that makes sure every such shard has one;
//! - [`super::redrive`]: dead letters sent again after a fix.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::archive::Archive;
use super::destination::Destinations;
use super::queue::CatchUpQueue;
use super::reader::ShardReader;
use super::state::DeliveryState;
use super::store::SubscriptionStore;
use super::subscription::{Status, Subscription, SubscriptionId, Transport};
use crate::backoff::Backoff;
use crate::Timestamp;

/// How long a read of the subscriptions is used before it is read again:
/// a new, changed or disabled subscription takes effect within this time.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// The time one subscription may take to deliver one live batch before it
/// falls behind. Short: the shard's next batch waits for the slowest
/// subscription, and a subscription that falls behind loses nothing (its
/// catch-up worker retries at its own pace). A healthy endpoint 80 ms away
/// takes a batch of 500 devices in well under a second
/// (`docs/benchmarks.md`).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(2);

/// Health is written at most this often per subscription and instance
/// (an error with a new message is written at once): one item update per
/// batch and subscription would cost more than the delivery.
pub const HEALTH_EVERY: Duration = Duration::from_secs(10);

/// The DPL stream's retention by default: the template's
/// `DplRetentionHours` (7 days).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(168 * 3_600);

/// How the catch-up worker paces itself; see `super::catchup`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CatchUpConfig {
    /// `GetRecords` calls per second on one shard, for all the subscriptions
    /// the worker serves there. A shard takes 5 per second from all its
    /// readers, and three event source mappings poll it about once a second
    /// each, so the two stream functions' workers get one each.
    pub reads_per_second: f64,
    /// Bytes per second the worker reads on one shard: with the mappings'
    /// reads, under the shard's 2 MB/s.
    pub read_bytes_per_second: usize,
    /// Time one send of a page may take before it is tried again.
    pub send_budget: Duration,
    /// Waits between tries while a destination does not accept.
    pub probe: Backoff,
    /// How long a worker's lease on a shard lasts without renewal.
    pub lease: Duration,
    /// How often the worker renews its lease and looks for subscriptions
    /// that fell behind since it started.
    pub refresh: Duration,
    /// Checkpoints of a subscription's cursor are written at most this often
    /// (a crash delivers again at most this much: at least once).
    pub checkpoint_every: Duration,
    /// How long the DPL stream keeps records (`DplRetentionHours`): a cursor
    /// older than that catches up from the archive first.
    pub retention: Duration,
}

impl Default for CatchUpConfig {
    fn default() -> Self {
        Self {
            reads_per_second: 1.0,
            read_bytes_per_second: 1_000_000,
            send_budget: Duration::from_secs(10),
            probe: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            lease: Duration::from_secs(60),
            refresh: Duration::from_secs(10),
            checkpoint_every: Duration::from_secs(5),
            retention: DEFAULT_RETENTION,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EngineConfig {
    pub transport: Transport,
    pub cache_ttl: Duration,
    pub budget: Duration,
    pub catch_up: CatchUpConfig,
}

impl EngineConfig {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            cache_ttl: DEFAULT_CACHE_TTL,
            budget: DEFAULT_BUDGET,
            catch_up: CatchUpConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("reading the subscriptions: {0}")]
    Subscriptions(String),
}

/// The engine's ports.
pub struct Ports<S, T, D, R, Q, A> {
    pub subscriptions: S,
    pub state: T,
    pub destinations: D,
    /// The DPL stream.
    pub reader: R,
    pub queue: Q,
    /// The DPL history older than the stream keeps (staging).
    pub archive: A,
}

/// See the module docs.
pub struct Engine<S, T, D, R, Q, A> {
    pub(super) ports: Ports<S, T, D, R, Q, A>,
    pub(super) config: EngineConfig,
    cache: Mutex<Option<(Instant, Arc<Vec<Subscription>>)>>,
    health: Mutex<HashMap<SubscriptionId, Written>>,
}

/// The health last written for a subscription by this instance.
#[derive(Default)]
struct Written {
    success: Option<Instant>,
    error: Option<(String, Instant)>,
}

impl<S, T, D, R, Q, A> Engine<S, T, D, R, Q, A>
where
    S: SubscriptionStore + Send + Sync,
    T: DeliveryState,
    D: Destinations,
    R: ShardReader,
    Q: CatchUpQueue,
    A: Archive,
{
    pub fn new(ports: Ports<S, T, D, R, Q, A>, config: EngineConfig) -> Self {
        Self {
            ports,
            config,
            cache: Mutex::new(None),
            health: Mutex::new(HashMap::new()),
        }
    }

    pub fn ports(&self) -> &Ports<S, T, D, R, Q, A> {
        &self.ports
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The enabled subscriptions of this transport, from the cache if
    /// fresh. An item that does not decode is logged, naming it, and left
    /// out: every other subscription is served.
    pub async fn subscriptions(&self) -> Result<Arc<Vec<Subscription>>, EngineError> {
        let cached = self.cache.lock().expect("cache lock").clone();
        if let Some((read_at, list)) = &cached {
            if read_at.elapsed() < self.config.cache_ttl {
                return Ok(list.clone());
            }
        }
        match self.ports.subscriptions.list(None).await {
            Ok(listing) => {
                for corrupt in &listing.corrupt {
                    tracing::error!(error = %corrupt, "subscription item skipped: it does not decode");
                }
                let list: Arc<Vec<Subscription>> = Arc::new(
                    listing
                        .subscriptions
                        .into_iter()
                        .filter(|s| {
                            s.status == Status::Enabled && s.transport() == self.config.transport
                        })
                        .collect(),
                );
                *self.cache.lock().expect("cache lock") = Some((Instant::now(), list.clone()));
                Ok(list)
            }
            Err(error) => match cached {
                Some((_, list)) => {
                    tracing::warn!(%error, "subscriptions not reloaded; using the cached list");
                    Ok(list)
                }
                None => Err(EngineError::Subscriptions(error.to_string())),
            },
        }
    }

    /// Records a delivery or an error, at most every [`HEALTH_EVERY`] (a new
    /// error message at once). Best effort: health is for people.
    pub(super) async fn record_health(
        &self,
        id: &SubscriptionId,
        delivered: bool,
        error: Option<&str>,
    ) {
        let now = Instant::now();
        let (success_due, error_due) = {
            let mut written = self.health.lock().expect("health lock");
            let entry = written.entry(id.clone()).or_default();
            let success_due = delivered && entry.success.is_none_or(|at| now - at >= HEALTH_EVERY);
            let error_due = error.is_some_and(|message| {
                entry
                    .error
                    .as_ref()
                    .is_none_or(|(last, at)| last != message || now - *at >= HEALTH_EVERY)
            });
            if success_due {
                entry.success = Some(now);
            }
            if let (true, Some(message)) = (error_due, error) {
                entry.error = Some((message.to_owned(), now));
            }
            (success_due, error_due)
        };
        let store = &self.ports.subscriptions;
        let at = Timestamp::now();
        if success_due {
            if let Err(e) = store.record_success(id, at).await {
                tracing::warn!(subscription = %id, error = %e, "health not recorded");
            }
        }
        if let (true, Some(message)) = (error_due, error) {
            if let Err(e) = store.record_error(id, at, message).await {
                tracing::warn!(subscription = %id, error = %e, "health not recorded");
            }
        }
    }
}
