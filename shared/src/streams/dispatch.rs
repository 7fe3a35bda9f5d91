//! One DPL batch to every matching subscription of one transport.
//!
//! - Subscriptions are read from their store at most once per
//!   [`DispatchConfig::cache_ttl`] (a stale list is used if a reload fails).
//! - Each event goes to the enabled subscriptions of its OEM whose filters
//!   match it, as the customer payload, partition key = DSN.
//! - Subscriptions are served concurrently, each within its own time budget
//!   ([`DispatchConfig::budget`]): a slow or broken endpoint costs only its
//!   own subscription's time.
//! - Events a destination did not take in time are parked
//!   ([`super::parking`]); while a subscription has parked events, its new
//!   events are parked behind them, so its order holds until a redrive
//!   ([`super::redrive`]) catches up.
//! - The batch succeeds when every event is delivered or parked for every
//!   subscription. Otherwise Lambda is told to retry from the first record
//!   not secured everywhere; already delivered events may then be delivered
//!   again (at least once; the event id travels with each event).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_lambda_events::event::streams::KinesisEventResponse;
use futures_util::future::join_all;
use tokio::time::{timeout_at, Instant};

use super::delivery::{Delivery, Position, PositionError};
use super::destination::{Destination, Destinations, SendReport};
use super::dynamo::SubscriptionStore;
use super::parking::{ParkingError, ParkingLot};
use super::subscription::{Status, Subscription, Transport};
use crate::{DeviceEvent, DplRecord, Timestamp};

/// How long a read of the subscriptions is used before it is read again:
/// a new, changed or disabled subscription takes effect within this time.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// The time one subscription may take to deliver one batch before its
/// remaining events are parked.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispatchConfig {
    pub transport: Transport,
    pub cache_ttl: Duration,
    pub budget: Duration,
}

impl DispatchConfig {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            cache_ttl: DEFAULT_CACHE_TTL,
            budget: DEFAULT_BUDGET,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error("reading the subscriptions: {0}")]
    Subscriptions(String),
}

/// One decoded event of the batch and the record it came from.
#[derive(Debug)]
struct BatchEvent {
    record: usize,
    event: DeviceEvent,
    delivery: Delivery,
}

/// Why a record of the batch is skipped.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error(transparent)]
    Position(#[from] PositionError),
    #[error("not a DPL record: {0}")]
    Json(#[from] serde_json::Error),
}

/// What one subscription's share of a batch came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Served {
    pub matched: usize,
    pub delivered: usize,
    pub parked: usize,
    /// The first record neither delivered nor parked, if any.
    pub unsecured_from: Option<usize>,
    pub error: Option<String>,
}

/// What a batch came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub events: usize,
    pub skipped: usize,
    pub subscriptions: usize,
    pub delivered: usize,
    pub parked: usize,
    /// The first record to retry from, if any.
    pub retry_from: Option<usize>,
}

/// The engine of a stream function: subscriptions, parking and
/// destinations behind their ports.
pub struct Dispatcher<S, P, D> {
    subscriptions: S,
    parking: P,
    destinations: D,
    config: DispatchConfig,
    cache: Mutex<Option<(Instant, Arc<Vec<Subscription>>)>>,
}

impl<S, P, D> Dispatcher<S, P, D>
where
    S: SubscriptionStore,
    P: ParkingLot,
    D: Destinations,
{
    pub fn new(subscriptions: S, parking: P, destinations: D, config: DispatchConfig) -> Self {
        Self {
            subscriptions,
            parking,
            destinations,
            config,
            cache: Mutex::new(None),
        }
    }

    pub fn subscription_store(&self) -> &S {
        &self.subscriptions
    }

    pub fn parking(&self) -> &P {
        &self.parking
    }

    pub fn destinations(&self) -> &D {
        &self.destinations
    }

    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    /// The enabled subscriptions of this transport, from the cache if fresh.
    pub async fn subscriptions(&self) -> Result<Arc<Vec<Subscription>>, DispatchError> {
        let cached = self.cache.lock().expect("cache lock").clone();
        if let Some((read_at, list)) = &cached {
            if read_at.elapsed() < self.config.cache_ttl {
                return Ok(list.clone());
            }
        }
        match self.subscriptions.list(None).await {
            Ok(all) => {
                let list: Arc<Vec<Subscription>> = Arc::new(
                    all.into_iter()
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
                None => Err(DispatchError::Subscriptions(error.to_string())),
            },
        }
    }

    /// Delivers (or parks) the batch's events for every matching
    /// subscription, by `deadline`.
    pub async fn dispatch(
        &self,
        records: &[KinesisEventRecord],
        deadline: Instant,
    ) -> Result<KinesisEventResponse, DispatchError> {
        let started = Instant::now();
        let (events, skipped) = decode(records);
        let subscriptions = self.subscriptions().await?;
        let served = join_all(
            subscriptions
                .iter()
                .map(|subscription| self.serve(subscription, &events, deadline)),
        )
        .await;
        let report = BatchReport {
            events: events.len(),
            skipped,
            subscriptions: served.iter().filter(|s| s.matched > 0).count(),
            delivered: served.iter().map(|s| s.delivered).sum(),
            parked: served.iter().map(|s| s.parked).sum(),
            retry_from: served.iter().filter_map(|s| s.unsecured_from).min(),
        };
        tracing::info!(
            records_in = records.len(),
            events = report.events,
            skipped = report.skipped,
            subscriptions = report.subscriptions,
            delivered = report.delivered,
            parked = report.parked,
            retry_from = report
                .retry_from
                .and_then(|n| records.get(n))
                .map(|r| r.kinesis.sequence_number.as_str()),
            duration_ms = started.elapsed().as_millis() as u64,
            "batch dispatched"
        );
        let mut response = KinesisEventResponse::default();
        if let Some(record) = report.retry_from.and_then(|n| records.get(n)) {
            response.add_failure(record.kinesis.sequence_number.clone());
        }
        Ok(response)
    }

    /// One subscription's share of the batch.
    async fn serve(
        &self,
        subscription: &Subscription,
        events: &[BatchEvent],
        deadline: Instant,
    ) -> Served {
        let mine: Vec<&BatchEvent> = events
            .iter()
            .filter(|e| subscription.accepts(&e.event))
            .collect();
        if mine.is_empty() {
            return Served::default();
        }
        let deliveries: Vec<&Delivery> = mine.iter().map(|e| &e.delivery).collect();
        let own_deadline = deadline.min(Instant::now() + self.config.budget);
        let report = self.send(subscription, &deliveries, own_deadline).await;
        let to_park: Vec<usize> = (0..mine.len()).filter(|n| !report.accepted[*n]).collect();
        let mut served = Served {
            matched: mine.len(),
            delivered: report.delivered(),
            error: report.error.clone(),
            ..Served::default()
        };
        if !to_park.is_empty() {
            let parked: Vec<&Delivery> = to_park.iter().map(|n| deliveries[*n]).collect();
            match self.park(subscription, &parked, deadline).await {
                Ok(()) => served.parked = parked.len(),
                Err(error) => {
                    tracing::error!(%error, subscription = %subscription.id,
                        "events neither delivered nor parked; the batch is retried");
                    served.unsecured_from = Some(mine[to_park[0]].record);
                }
            }
        }
        self.record_health(subscription, &served).await;
        served
    }

    /// Sends to the destination, unless the subscription has parked events
    /// (then everything queues behind them).
    async fn send(
        &self,
        subscription: &Subscription,
        deliveries: &[&Delivery],
        deadline: Instant,
    ) -> SendReport {
        match timeout_at(deadline, self.parking.has_parked(&subscription.id)).await {
            Ok(Ok(false)) => {}
            Ok(Ok(true)) => {
                return SendReport {
                    accepted: vec![false; deliveries.len()],
                    error: None,
                }
            }
            Ok(Err(error)) => return SendReport::refused(deliveries.len(), error),
            Err(_) => return SendReport::refused(deliveries.len(), "time budget exhausted"),
        }
        let destination =
            match timeout_at(deadline, self.destinations.destination(subscription)).await {
                Ok(Ok(destination)) => destination,
                Ok(Err(error)) => return SendReport::refused(deliveries.len(), error),
                Err(_) => return SendReport::refused(deliveries.len(), "time budget exhausted"),
            };
        timeout_at(deadline, destination.send(deliveries, deadline))
            .await
            .unwrap_or_else(|_| {
                SendReport::refused(deliveries.len(), "time budget exhausted while sending")
            })
    }

    async fn park(
        &self,
        subscription: &Subscription,
        deliveries: &[&Delivery],
        deadline: Instant,
    ) -> Result<(), ParkingError> {
        timeout_at(deadline, self.parking.park(&subscription.id, deliveries))
            .await
            .unwrap_or_else(|_| {
                Err(ParkingError::new(
                    "put",
                    &subscription.id,
                    "the invocation's deadline came",
                ))
            })
    }

    /// Best effort: health is for people; a failed update is logged only.
    async fn record_health(&self, subscription: &Subscription, served: &Served) {
        let now = Timestamp::now();
        let id = &subscription.id;
        if let Some(error) = &served.error {
            tracing::warn!(subscription = %id, %error, delivered = served.delivered,
                parked = served.parked, "destination did not take every event");
            if let Err(e) = self.subscriptions.record_error(id, now, error).await {
                tracing::warn!(subscription = %id, error = %e, "health not recorded");
            }
        } else if served.delivered > 0 {
            if let Err(e) = self.subscriptions.record_success(id, now).await {
                tracing::warn!(subscription = %id, error = %e, "health not recorded");
            }
        }
        if served.parked > 0 {
            let delta = i64::try_from(served.parked).unwrap_or(i64::MAX);
            if let Err(e) = self.subscriptions.add_parked(id, delta).await {
                tracing::warn!(subscription = %id, error = %e, "parked count not recorded");
            }
        }
    }
}

/// The batch's DPL records, decoded; a record that is not one is logged
/// and skipped (the event-store function quarantines the same record).
fn decode(records: &[KinesisEventRecord]) -> (Vec<BatchEvent>, usize) {
    let mut events = Vec::with_capacity(records.len());
    let mut skipped = 0;
    for (n, record) in records.iter().enumerate() {
        match decode_one(record) {
            Ok((event, delivery)) => events.push(BatchEvent {
                record: n,
                event,
                delivery,
            }),
            Err(error) => {
                skipped += 1;
                tracing::warn!(%error, sequence_number = %record.kinesis.sequence_number,
                    "record skipped: not a DPL record");
            }
        }
    }
    (events, skipped)
}

fn decode_one(record: &KinesisEventRecord) -> Result<(DeviceEvent, Delivery), RecordError> {
    let shard = record
        .event_id
        .as_deref()
        .and_then(|id| id.split_once(':'))
        .map_or("shardId-unknown", |(shard, _)| shard);
    let position = Position::new(shard, &record.kinesis.sequence_number)?;
    let dpl = DplRecord::from_json(&record.kinesis.data)?;
    let delivery = Delivery::new(position, &dpl);
    Ok((dpl.dpl_event, delivery))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::examples::kinesis_event_record;
    use crate::export::staging::tests::record;
    use crate::streams::dynamo::InMemorySubscriptions;
    use crate::streams::parking::InMemoryParking;
    use crate::streams::{
        Credentials, Destination as Target, Filters, SubscriptionId, SubscriptionSpec,
    };

    /// How a fake endpoint behaves.
    #[derive(Clone, Copy, Debug)]
    enum Behaviour {
        Accept,
        /// Never answers: only the budget ends the call.
        Hang,
        /// Takes the first n events, then refuses.
        AcceptFirst(usize),
    }

    /// Endpoints by subscription name, recording what each accepted.
    #[derive(Default)]
    struct Endpoints {
        behaviour: Mutex<HashMap<String, Behaviour>>,
        received: Arc<Mutex<HashMap<String, Vec<Delivery>>>>,
    }

    impl Endpoints {
        fn set(&self, name: &str, behaviour: Behaviour) {
            self.behaviour
                .lock()
                .unwrap()
                .insert(name.into(), behaviour);
        }

        fn received(&self, name: &str) -> Vec<Delivery> {
            self.received
                .lock()
                .unwrap()
                .get(name)
                .cloned()
                .unwrap_or_default()
        }
    }

    struct Endpoint {
        name: String,
        behaviour: Behaviour,
        received: Arc<Mutex<HashMap<String, Vec<Delivery>>>>,
    }

    impl Destination for Endpoint {
        async fn send(&self, events: &[&Delivery], _deadline: Instant) -> SendReport {
            let taken = match self.behaviour {
                Behaviour::Accept => events.len(),
                Behaviour::AcceptFirst(n) => n.min(events.len()),
                Behaviour::Hang => std::future::pending().await,
            };
            let mut received = self.received.lock().unwrap();
            let log = received.entry(self.name.clone()).or_default();
            log.extend(events[..taken].iter().map(|d| (*d).clone()));
            SendReport::prefix(events.len(), taken, Some("503 ServerBusy".into()))
        }
    }

    impl Destinations for Endpoints {
        type Destination = Endpoint;

        async fn destination(&self, subscription: &Subscription) -> Result<Arc<Endpoint>, String> {
            let behaviour = self
                .behaviour
                .lock()
                .unwrap()
                .get(&subscription.name)
                .copied();
            Ok(Arc::new(Endpoint {
                name: subscription.name.clone(),
                behaviour: behaviour.unwrap_or(Behaviour::Accept),
                received: self.received.clone(),
            }))
        }
    }

    fn subscription(n: u64, oem: &str, name: &str) -> Subscription {
        let spec = SubscriptionSpec {
            oem_id: oem.into(),
            name: name.into(),
            description: String::new(),
            destination: Target::Kinesis {
                stream_arn: format!("arn:aws:kinesis:eu-west-1:123456789012:stream/{name}")
                    .parse()
                    .unwrap(),
            },
            credentials: Credentials::AssumeRole {
                role_arn: "arn:aws:iam::123456789012:role/writer".into(),
                external_id: None,
            },
            filters: Filters::all(),
        };
        Subscription::new(
            SubscriptionId::from_bits(n),
            spec,
            Timestamp::from_millis(0).unwrap(),
        )
        .unwrap()
    }

    type Fake = Dispatcher<InMemorySubscriptions, InMemoryParking, Endpoints>;

    fn dispatcher(subscriptions: Vec<Subscription>, budget: Duration) -> Fake {
        let mut config = DispatchConfig::new(Transport::Kinesis);
        config.budget = budget;
        Dispatcher::new(
            InMemorySubscriptions::with(subscriptions),
            InMemoryParking::new(),
            Endpoints::default(),
            config,
        )
    }

    /// `count` connectivity events of `oem` over three DSNs.
    fn batch(oem: &str, count: u32, first_sequence: u64) -> Vec<KinesisEventRecord> {
        (0..count)
            .map(|n| {
                let record = record(oem, 1_000 + i64::from(n), n % 3);
                let mut record = record;
                record.event_id =
                    crate::EventId::derive(&format!("{oem}-{n}"), crate::EventType::Connectivity);
                kinesis_event_record(
                    record.partition_key(),
                    &record.to_json(),
                    first_sequence + u64::from(n),
                )
            })
            .collect()
    }

    fn ids(deliveries: &[Delivery]) -> Vec<String> {
        deliveries.iter().map(|d| d.event_id.to_string()).collect()
    }

    fn failures(response: &KinesisEventResponse) -> Vec<String> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap_or_default())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_endpoint_costs_only_its_own_budget_and_its_events_are_parked() {
        let (slow, fast) = (
            subscription(1, "oem1", "slow"),
            subscription(2, "oem1", "fast"),
        );
        let dispatcher = dispatcher(vec![slow.clone(), fast.clone()], Duration::from_secs(3));
        dispatcher.destinations().set("slow", Behaviour::Hang);
        let records = batch("oem1", 7, 100);
        let started = Instant::now();
        let response = dispatcher
            .dispatch(&records, started + Duration::from_secs(60))
            .await
            .unwrap();
        assert!(failures(&response).is_empty());
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(3),
            "one budget, not the deadline"
        );
        assert_eq!(dispatcher.destinations().received("fast").len(), 7);
        let parked = dispatcher.parking().parked(&slow.id);
        assert_eq!(
            ids(&parked),
            ids(&dispatcher.destinations().received("fast"))
        );
        let health = dispatcher
            .subscription_store()
            .get(&slow.id)
            .await
            .unwrap()
            .unwrap()
            .health;
        assert_eq!(health.parked, 7);
        assert!(health.last_error.unwrap().message.contains("time budget"));
    }

    #[tokio::test]
    async fn new_events_queue_behind_parked_ones_and_redrive_keeps_the_order() {
        let sub = subscription(1, "oem1", "flaky");
        let dispatcher = dispatcher(vec![sub.clone()], Duration::from_secs(5));
        let deadline = || Instant::now() + Duration::from_secs(60);
        dispatcher
            .destinations()
            .set("flaky", Behaviour::AcceptFirst(2));
        let first = batch("oem1", 5, 100);
        dispatcher.dispatch(&first, deadline()).await.unwrap();
        // The endpoint is healthy again, but three events wait: the next
        // batch must not overtake them.
        dispatcher.destinations().set("flaky", Behaviour::Accept);
        let second = batch("oem1", 4, 200);
        dispatcher.dispatch(&second, deadline()).await.unwrap();
        assert_eq!(dispatcher.destinations().received("flaky").len(), 2);
        assert_eq!(dispatcher.parking().parked(&sub.id).len(), 7);

        let redriven = dispatcher.redrive(&sub, deadline()).await;
        assert_eq!((redriven.delivered, redriven.remaining), (7, false));
        let received = dispatcher.destinations().received("flaky");
        let positions: Vec<&Position> = received.iter().map(|d| &d.position).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "stream order");
        assert_eq!(received.len(), 9);
        assert!(dispatcher.parking().parked(&sub.id).is_empty());
        let health = dispatcher
            .subscription_store()
            .get(&sub.id)
            .await
            .unwrap()
            .unwrap()
            .health;
        assert_eq!(health.parked, 0);
    }

    #[tokio::test]
    async fn a_parking_failure_retries_the_batch_from_the_first_unsecured_record() {
        let sub = subscription(1, "oem1", "down");
        let dispatcher = dispatcher(vec![sub], Duration::from_secs(5));
        dispatcher
            .destinations()
            .set("down", Behaviour::AcceptFirst(3));
        dispatcher.parking().set_failing(true);
        let records = batch("oem1", 6, 100);
        let response = dispatcher
            .dispatch(&records, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            failures(&response),
            vec![records[3].kinesis.sequence_number.clone()]
        );
    }

    #[tokio::test]
    async fn events_go_only_to_their_oems_subscriptions_and_bad_records_are_skipped() {
        let (a, b) = (subscription(1, "oem1", "a"), subscription(2, "oem2", "b"));
        let dispatcher = dispatcher(vec![a, b], Duration::from_secs(5));
        let mut records = batch("oem1", 3, 100);
        records.push(kinesis_event_record(
            "AC000W000000001",
            b"{\"dpl_event\": 1}",
            150,
        ));
        records.extend(batch("oem2", 2, 200));
        let response = dispatcher
            .dispatch(&records, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        assert!(failures(&response).is_empty());
        let oem = |name| -> Vec<String> {
            dispatcher
                .destinations()
                .received(name)
                .iter()
                .map(|d| String::from_utf8(d.payload.clone()).unwrap())
                .collect()
        };
        assert_eq!(oem("a").len(), 3);
        assert!(oem("a").iter().all(|p| p.contains("\"oem1\"")));
        assert_eq!(oem("b").len(), 2);
        assert!(oem("b").iter().all(|p| p.contains("\"oem2\"")));
    }
}
