//! What the engine's tests share: an engine on in-memory ports, endpoints
//! that behave as told, and a DPL stream to write events to and read
//! batches from, as the event source mapping would.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use tokio::time::Instant;

use super::archive::NoArchive;
use super::check::{check_delivery, DeliveryCheck};
use super::delivery::Delivery;
use super::destination::{Destination, Destinations, Outcome, SendReport};
use super::engine::{Engine, EngineConfig, Ports};
use super::queue::InMemoryQueue;
use super::reader::{InMemoryDplStream, StreamRecord};
use super::state::InMemoryState;
use super::store::InMemorySubscriptions;
use super::subscription::{
    Credentials, Destination as Target, Filters, Subscription, SubscriptionId, SubscriptionSpec,
    Transport,
};
use crate::examples::seed_record;
use crate::{EventId, EventType, Timestamp};

pub const SHARD: &str = "shardId-000000000000";

/// How a fake endpoint behaves.
#[derive(Clone, Debug)]
pub enum Behaviour {
    Accept,
    /// Never answers: only the budget ends the call.
    Hang,
    /// Refuses everything at once (503).
    Down,
    /// Takes the first n events, then refuses.
    AcceptFirst(usize),
    /// Refuses these events for good (413), takes the others.
    Reject(HashSet<EventId>),
    /// Takes everything after this long.
    Slow(Duration),
}

/// Endpoints by subscription name, recording what each accepted.
#[derive(Default)]
pub struct Endpoints {
    behaviour: Mutex<HashMap<String, Behaviour>>,
    received: Arc<Mutex<HashMap<String, Vec<Delivery>>>>,
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

impl Endpoints {
    pub fn set(&self, name: &str, behaviour: Behaviour) {
        self.behaviour
            .lock()
            .unwrap()
            .insert(name.into(), behaviour);
    }

    pub fn received(&self, name: &str) -> Vec<Delivery> {
        self.received
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    pub fn calls(&self, name: &str) -> usize {
        self.calls.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

pub struct Endpoint {
    name: String,
    behaviour: Behaviour,
    received: Arc<Mutex<HashMap<String, Vec<Delivery>>>>,
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

impl Destination for Endpoint {
    async fn send(&self, events: &[&Delivery], _deadline: Instant) -> SendReport {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default() += 1;
        let report = match &self.behaviour {
            Behaviour::Accept => SendReport::all_accepted(events.len()),
            Behaviour::Slow(latency) => {
                tokio::time::sleep(*latency).await;
                SendReport::all_accepted(events.len())
            }
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Down => SendReport::refused(events.len(), "503 Service Unavailable"),
            Behaviour::AcceptFirst(n) => {
                SendReport::prefix(events.len(), *n, Some("503 ServerBusy".into()))
            }
            Behaviour::Reject(ids) => SendReport {
                outcomes: events
                    .iter()
                    .map(|e| match ids.contains(&e.event_id) {
                        true => Outcome::Rejected("413 Request Entity Too Large".into()),
                        false => Outcome::Accepted,
                    })
                    .collect(),
                error: None,
            },
        };
        let mut received = self.received.lock().unwrap();
        let log = received.entry(self.name.clone()).or_default();
        for (event, outcome) in events.iter().zip(&report.outcomes) {
            if *outcome == Outcome::Accepted {
                log.push((*event).clone());
            }
        }
        report
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
            .cloned();
        Ok(Arc::new(Endpoint {
            name: subscription.name.clone(),
            behaviour: behaviour.unwrap_or(Behaviour::Accept),
            received: self.received.clone(),
            calls: self.calls.clone(),
        }))
    }
}

pub fn subscription(n: u64, oem: &str, name: &str) -> Subscription {
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
            external_id: Some("test-external-id".into()),
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

pub type TestEngine = Engine<
    InMemorySubscriptions,
    InMemoryState,
    Endpoints,
    InMemoryDplStream,
    InMemoryQueue,
    NoArchive,
>;

pub fn engine(subscriptions: Vec<Subscription>, budget: Duration) -> TestEngine {
    let mut config = EngineConfig::new(Transport::Kinesis);
    config.budget = budget;
    config.cache_ttl = Duration::ZERO;
    Engine::new(
        Ports {
            subscriptions: InMemorySubscriptions::with(subscriptions),
            state: InMemoryState::new(),
            destinations: Endpoints::default(),
            reader: InMemoryDplStream::new(),
            queue: InMemoryQueue::new(),
            archive: NoArchive,
        },
        config,
    )
}

/// Writes `count` connectivity events of `oem` over `devices` DSNs to the
/// engine's DPL stream (shard [`SHARD`]); returns them as Lambda delivers
/// them, and each event's (DSN, id) in stream order.
pub fn write(engine: &TestEngine, oem: &str, count: usize, devices: usize) -> Written {
    let stream = &engine.ports().reader;
    let first = stream.records(SHARD).len();
    let mut written = Written::default();
    for n in first..first + count {
        let dsn = format!("AC000W{:09}", n % devices);
        let record = seed_record(EventType::Connectivity, oem, "ledevb", &dsn, "p", n as u64);
        stream.append(
            SHARD,
            record.to_json(),
            Timestamp::from_millis(1_000 * n as i64).unwrap(),
        );
        written.events.push((dsn, record.event_id));
    }
    written.records = stream.records(SHARD)[first..]
        .iter()
        .map(lambda_record)
        .collect();
    written
}

/// What [`write`] wrote.
#[derive(Default)]
pub struct Written {
    pub records: Vec<KinesisEventRecord>,
    pub events: Vec<(String, EventId)>,
}

/// A DPL record as the Kinesis event source delivers it.
pub fn lambda_record(record: &StreamRecord) -> KinesisEventRecord {
    record.lambda_record()
}

/// The shared check of what endpoint `name` received against `expected`.
pub fn check(engine: &TestEngine, name: &str, expected: &[(String, EventId)]) -> DeliveryCheck {
    let received: Vec<EventId> = engine
        .ports()
        .destinations
        .received(name)
        .iter()
        .map(|d| d.event_id)
        .collect();
    check_delivery(expected, &received)
}

pub fn soon() -> Instant {
    Instant::now() + Duration::from_secs(60)
}
