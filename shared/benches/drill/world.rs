//! The simulated world of the outage drill: a DPL stream of several shards
//! with the read limits every reader of a shard shares, a steady producer,
//! the event source mappings that poll it, and customer endpoints with a
//! round trip and an outage window. Everything runs on tokio's paused
//! clock: a simulated hour takes seconds.
//!
//! The engine under test sits behind [`Engine`]; the world, the
//! measurements and the assertion over what each endpoint received are the
//! same whatever it is (the design before, parking, was measured with this
//! world: `docs/benchmarks.md`, "Outage drill").

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::encodings::SecondTimestamp;
use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_lambda_events::event::streams::KinesisEventResponse;
use dpl::examples::seed_record;
use dpl::kinesis::{Entry, EntryResult, PutError, PutRecordsApi};
use dpl::position::Position;
use dpl::streams::check::DeliveryCheck;
use dpl::streams::cursor::Resume;
use dpl::streams::reader::{Page, ReadError, StreamRecord};
use dpl::{DeviceEvent, DplRecord, EventId, EventType, Timestamp};
use tokio::time::{sleep, sleep_until, Instant};

/// A DPL stream shard takes 5 `GetRecords` calls per second, shared by all
/// its readers (Kinesis Data Streams quotas: "GetRecords: 5 transactions per
/// second per shard").
pub const SHARD_READ_CALLS_PER_S: usize = 5;
/// ... and 2 MB per second ("2 MB per second per shard, shared across all
/// consumers"); a single call may return up to 10 MB, after which the shard
/// throttles until the rate is back under 2 MB/s.
pub const SHARD_READ_BYTES_PER_S: f64 = 2_000_000.0;
pub const MAX_GET_RECORDS_BYTES: f64 = 10_000_000.0;
/// Lambda polls each shard once per second when it has no full batch
/// (Lambda developer guide, "Polling and batching streams").
pub const ESM_POLL: Duration = Duration::from_secs(1);
/// Event source mappings that read each DPL shard besides the one under
/// test: event-store and the other transport's stream function.
pub const OTHER_READERS: usize = 2;

/// The drill's parameters.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub shards: usize,
    pub devices: usize,
    pub events_per_s: u64,
    pub batch_size: usize,
    /// Added round trip of a customer endpoint request.
    pub rtt: Duration,
    /// Latency of one DynamoDB request (in-region: "single-digit
    /// millisecond", DynamoDB developer guide).
    pub storage_latency: Duration,
    /// When the first subscription's endpoint goes down, and for how long.
    pub outage_start: Duration,
    pub outage: Duration,
    /// The run ends this long after recovery at the latest.
    pub after: Duration,
}

/// Base of the simulated sequence numbers: real ones are 56 digits.
const SEQUENCE_PREFIX: &str = "49590338271490256608559692538";

/// One record on a simulated shard: the event is regenerated from `n`.
#[derive(Clone, Copy, Debug)]
struct SimRecord {
    seq: u64,
    arrival: Instant,
    n: u32,
}

/// Reads already made on a shard, to enforce its shared limits.
#[derive(Debug)]
struct ReadLimits {
    calls: VecDeque<Instant>,
    bytes: f64,
    refilled: Instant,
    throttled: u64,
}

impl ReadLimits {
    fn new(now: Instant) -> Self {
        Self {
            calls: VecDeque::new(),
            bytes: SHARD_READ_BYTES_PER_S,
            refilled: now,
            throttled: 0,
        }
    }

    /// Whether a call may be made now; if so it counts.
    fn admit(&mut self, now: Instant) -> bool {
        while self
            .calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.calls.pop_front();
        }
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.bytes = (self.bytes + elapsed * SHARD_READ_BYTES_PER_S).min(MAX_GET_RECORDS_BYTES);
        self.refilled = now;
        if self.calls.len() >= SHARD_READ_CALLS_PER_S || self.bytes <= 0.0 {
            self.throttled += 1;
            return false;
        }
        self.calls.push_back(now);
        true
    }

    fn spend(&mut self, bytes: usize) {
        self.bytes -= bytes as f64;
    }
}

struct Shard {
    id: String,
    records: Vec<SimRecord>,
    limits: ReadLimits,
}

/// Why a read was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRefused {
    Throttled,
}

/// The DPL stream: shards of records, regenerated on read.
pub struct DplStream {
    shards: Vec<Mutex<Shard>>,
    templates: Vec<DplRecord>,
    /// Wall-clock base of event timestamps: event `n` has time `t0 + n ms`.
    /// The real time at the start: the engine compares arrival times with
    /// the wall clock (a cursor older than the stream's retention reads the
    /// archive), and simulated time only runs ahead of it.
    t0_ms: i64,
    /// When the run started, for the records' arrival timestamps.
    start: Instant,
    devices: usize,
    sizes: Vec<usize>,
}

/// Event types of the drill; activations have no top-level timestamp to
/// carry the event's number, so they are left out.
const TYPES: [EventType; 5] = [
    EventType::Connectivity,
    EventType::Datapoint,
    EventType::DatapointAck,
    EventType::Location,
    EventType::Registration,
];

pub const OEM: &str = "oemdrill";

impl DplStream {
    pub fn new(shards: usize, devices: usize, now: Instant) -> Self {
        let templates: Vec<DplRecord> = TYPES
            .iter()
            .map(|t| seed_record(*t, OEM, "ledevb", "AC000W000000000", "Blue_LED", 0))
            .collect();
        let sizes = templates.iter().map(|r| r.to_json().len()).collect();
        Self {
            shards: (0..shards)
                .map(|s| {
                    Mutex::new(Shard {
                        id: format!("shardId-{s:012}"),
                        records: Vec::new(),
                        limits: ReadLimits::new(now),
                    })
                })
                .collect(),
            templates,
            t0_ms: Timestamp::now().millis(),
            start: now,
            devices,
            sizes,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn dsn_index(&self, n: u32) -> usize {
        n as usize % self.devices
    }

    pub fn dsn(&self, n: u32) -> String {
        format!("AC000W{:09}", self.dsn_index(n))
    }

    pub fn shard_of(&self, n: u32) -> usize {
        self.dsn_index(n) % self.shards.len()
    }

    pub fn sequence_text(seq: u64) -> String {
        format!("{SEQUENCE_PREFIX}{seq:027}")
    }

    /// The event number a customer payload carries (its `timestamp`).
    pub fn number_of(&self, payload: &[u8]) -> u32 {
        #[derive(serde::Deserialize)]
        struct Probe {
            timestamp: i64,
        }
        let probe: Probe = serde_json::from_slice(payload).expect("a customer payload");
        u32::try_from(probe.timestamp - self.t0_ms).expect("an event of the drill")
    }

    /// Appends event `n` at `now`.
    pub fn append(&self, n: u32, now: Instant) {
        let mut shard = self.shards[self.shard_of(n)].lock().unwrap();
        let seq = shard.records.len() as u64;
        shard.records.push(SimRecord {
            seq,
            arrival: now,
            n,
        });
    }

    /// Event `n` as the DPL record twin-events would have written.
    pub fn record(&self, n: u32) -> DplRecord {
        let mut record = self.templates[n as usize % TYPES.len()].clone();
        let dsn = self.dsn(n);
        let at = Timestamp::from_millis(self.t0_ms + i64::from(n)).expect("a time");
        match &mut record.dpl_event {
            DeviceEvent::Activation { .. } => unreachable!("no activations in the drill"),
            DeviceEvent::Connectivity {
                metadata,
                timestamp,
                ..
            }
            | DeviceEvent::Location {
                metadata,
                timestamp,
                ..
            }
            | DeviceEvent::Registration {
                metadata,
                timestamp,
                ..
            } => {
                metadata.dsn = dsn;
                *timestamp = at;
            }
            DeviceEvent::Datapoint {
                metadata,
                timestamp,
                ..
            }
            | DeviceEvent::DatapointAck {
                metadata,
                timestamp,
                ..
            } => {
                metadata.dsn = dsn;
                *timestamp = at;
            }
        }
        record.event_id = EventId::derive(&format!("drill-{n}"), record.dpl_event.event_type());
        record
    }

    fn lambda_record(&self, shard_id: &str, record: &SimRecord) -> KinesisEventRecord {
        let dpl = self.record(record.n);
        let sequence = Self::sequence_text(record.seq);
        let mut event = KinesisEventRecord::default();
        event.event_id = Some(format!("{shard_id}:{sequence}"));
        event.event_source = Some("aws:kinesis".into());
        event.kinesis.partition_key = dpl.partition_key().to_owned();
        event.kinesis.sequence_number = sequence;
        *event.kinesis.data = dpl.to_json();
        let arrival_ms = self.t0_ms + record.arrival.duration_since(self.start).as_millis() as i64;
        event.kinesis.approximate_arrival_timestamp =
            SecondTimestamp(chrono::DateTime::from_timestamp_millis(arrival_ms).expect("a time"));
        event
    }

    /// Up to `limit` records of `shard` from index `from`, as Lambda delivers
    /// them, within the shard's shared read limits.
    pub fn read(
        &self,
        shard: usize,
        from: usize,
        limit: usize,
        now: Instant,
    ) -> Result<Vec<(KinesisEventRecord, Instant)>, ReadRefused> {
        let (id, records) = {
            let mut shard = self.shards[shard].lock().unwrap();
            if !shard.limits.admit(now) {
                return Err(ReadRefused::Throttled);
            }
            let end = shard.records.len().min(from + limit);
            let records: Vec<SimRecord> = shard.records[from.min(end)..end].to_vec();
            let bytes = records
                .iter()
                .map(|r| self.sizes[r.n as usize % TYPES.len()])
                .sum();
            shard.limits.spend(bytes);
            (shard.id.clone(), records)
        };
        Ok(records
            .iter()
            .map(|r| (self.lambda_record(&id, r), r.arrival))
            .collect())
    }

    /// An iterator over `shard_id` from `from`, as `GetShardIterator`
    /// gives one: `{shard id}|{index}`.
    pub fn iterator(&self, shard_id: &str, from: &Resume) -> String {
        let index = match from {
            Resume::At(sequence) => self.index_of(sequence.as_str()),
            Resume::After(sequence) => self.index_of(sequence.as_str()) + 1,
        };
        format!("{shard_id}|{index}")
    }

    /// One `GetRecords` call of the catch-up worker, within the shard's
    /// shared read limits.
    pub fn read_page(&self, iterator: &str, limit: usize, now: Instant) -> Result<Page, ReadError> {
        let (shard_id, index) = iterator.rsplit_once('|').expect("an iterator of ours");
        let index: usize = index.parse().expect("an iterator of ours");
        let shard_number: usize = shard_id
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a shard id of ours");
        let (records, newest, len) = {
            let mut shard = self.shards[shard_number].lock().unwrap();
            if !shard.limits.admit(now) {
                return Err(ReadError::Throttled("over the shard's read limits".into()));
            }
            let end = shard.records.len().min(index + limit);
            let records: Vec<SimRecord> = shard.records[index.min(end)..end].to_vec();
            let bytes = records
                .iter()
                .map(|r| self.sizes[r.n as usize % TYPES.len()])
                .sum();
            shard.limits.spend(bytes);
            (
                records,
                shard.records.last().map(|r| r.arrival),
                shard.records.len(),
            )
        };
        let end = index + records.len();
        let millis_behind = match (records.last(), newest) {
            _ if end >= len => 0,
            (Some(last), Some(newest)) => {
                newest.duration_since(last.arrival).as_millis().max(1) as u64
            }
            _ => 1,
        };
        let records = records
            .iter()
            .map(|r| StreamRecord {
                position: Position::new(shard_id, &Self::sequence_text(r.seq)).expect("a position"),
                arrival: self.arrival_time(r.arrival),
                data: self.record(r.n).to_json(),
            })
            .collect();
        Ok(Page {
            records,
            next: Some(format!("{shard_id}|{end}")),
            millis_behind: Some(millis_behind),
        })
    }

    fn arrival_time(&self, arrival: Instant) -> Timestamp {
        let ms = self.t0_ms + arrival.duration_since(self.start).as_millis() as i64;
        Timestamp::from_millis(ms).expect("a time")
    }

    /// A read that only uses up the shard's limits (another reader).
    pub fn read_elsewhere(&self, shard: usize, from: usize, now: Instant) -> Option<usize> {
        let mut shard = self.shards[shard].lock().unwrap();
        if !shard.limits.admit(now) {
            return None;
        }
        let end = shard.records.len();
        let bytes = shard.records[from.min(end)..end]
            .iter()
            .map(|r| self.sizes[r.n as usize % TYPES.len()])
            .sum();
        shard.limits.spend(bytes);
        Some(end)
    }

    /// The index of the record with `sequence` on `shard`.
    pub fn index_of(&self, sequence: &str) -> usize {
        let digits = &sequence[SEQUENCE_PREFIX.len()..];
        digits.parse().expect("a drill sequence number")
    }

    pub fn throttled_reads(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap().limits.throttled)
            .sum()
    }
}

/// What the engine under test does with the world.
pub trait Engine: Send + Sync {
    /// One batch of a shard, as the event source mapping invokes the
    /// function; the answer's failures make the mapping retry from there.
    fn on_batch(
        &self,
        shard: usize,
        records: Vec<KinesisEventRecord>,
    ) -> impl std::future::Future<Output = KinesisEventResponse> + Send;

    /// Everything the engine runs besides the batches (schedules, workers),
    /// until the run ends.
    fn background(&self) -> impl std::future::Future<Output = ()> + Send;

    /// Storage requests and written items so far.
    fn storage(&self) -> Storage;
}

/// Storage use, counted by the engines' adapters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Storage {
    pub requests: u64,
    pub items_written: u64,
}

/// A customer stream: answers after its round trip, refuses during its
/// outage, and records what it accepted: `(event number, accepted at)`.
pub struct Endpoint {
    rtt: Duration,
    down: Mutex<Option<(Instant, Instant)>>,
    stream: Arc<DplStream>,
    received: Mutex<Vec<(u32, Instant)>>,
    requests: Mutex<u64>,
}

impl Endpoint {
    pub fn new(rtt: Duration, stream: Arc<DplStream>) -> Self {
        Self {
            rtt,
            down: Mutex::new(None),
            stream,
            received: Mutex::new(Vec::new()),
            requests: Mutex::new(0),
        }
    }

    pub fn down_between(&self, from: Instant, to: Instant) {
        *self.down.lock().unwrap() = Some((from, to));
    }

    fn is_down(&self, now: Instant) -> bool {
        self.down
            .lock()
            .unwrap()
            .is_some_and(|(from, to)| now >= from && now < to)
    }

    pub fn received(&self) -> Vec<(u32, Instant)> {
        self.received.lock().unwrap().clone()
    }

    pub fn requests(&self) -> u64 {
        *self.requests.lock().unwrap()
    }
}

impl PutRecordsApi for Endpoint {
    async fn put_records(
        &self,
        _stream: &str,
        entries: &[&Entry],
    ) -> Result<Vec<EntryResult>, PutError> {
        *self.requests.lock().unwrap() += 1;
        sleep(self.rtt).await;
        let now = Instant::now();
        if self.is_down(now) {
            return Err(PutError::Dispatch("connection refused".into()));
        }
        let mut received = self.received.lock().unwrap();
        for entry in entries {
            received.push((self.stream.number_of(entry.data()), now));
        }
        Ok(vec![EntryResult::Accepted; entries.len()])
    }
}

/// Writes `events_per_s` events, every 10 ms, from `start` until `end`;
/// returns the arrival time of every event.
pub async fn produce(
    stream: Arc<DplStream>,
    events_per_s: u64,
    end: Instant,
    arrivals: Arc<Mutex<Vec<Instant>>>,
) {
    let tick = Duration::from_millis(10);
    let per_tick = events_per_s / 100;
    let mut next = Instant::now();
    let mut n = 0u32;
    while next < end {
        sleep_until(next).await;
        let now = Instant::now();
        let mut arrivals = arrivals.lock().unwrap();
        for _ in 0..per_tick {
            stream.append(n, now);
            arrivals.push(now);
            n += 1;
        }
        drop(arrivals);
        next += tick;
    }
}

/// The event source mapping of the function under test on one shard:
/// batches of at most `batch_size`, the next one right away after a full
/// batch, else after a poll interval; a reported failure is retried from
/// that record.
pub async fn poll_shard<E: Engine>(
    engine: Arc<E>,
    stream: Arc<DplStream>,
    shard: usize,
    batch_size: usize,
    end: Instant,
) {
    let mut position = 0usize;
    while Instant::now() < end {
        let page = match stream.read(shard, position, batch_size, Instant::now()) {
            Ok(page) => page,
            Err(ReadRefused::Throttled) => {
                sleep(ESM_POLL).await;
                continue;
            }
        };
        if page.is_empty() {
            sleep(ESM_POLL).await;
            continue;
        }
        let full = page.len() == batch_size;
        let count = page.len();
        let records: Vec<KinesisEventRecord> = page.into_iter().map(|(r, _)| r).collect();
        let response = engine.on_batch(shard, records).await;
        match response
            .batch_item_failures
            .first()
            .and_then(|f| f.item_identifier.as_deref())
        {
            Some(sequence) => {
                position = stream.index_of(sequence);
                sleep(ESM_POLL).await;
            }
            None => {
                position += count;
                if !full {
                    sleep(ESM_POLL).await;
                }
            }
        }
    }
}

/// Another reader of the shard (event-store, the other stream function):
/// one call per poll interval, reading everything new.
pub async fn other_reader(stream: Arc<DplStream>, shard: usize, end: Instant) {
    let mut position = 0;
    while Instant::now() < end {
        if let Some(next) = stream.read_elsewhere(shard, position, Instant::now()) {
            position = next;
        }
        sleep(ESM_POLL).await;
    }
}

/// The shared check (`dpl::streams::check`) of what one endpoint received
/// against the events it should have received, in stream order.
pub fn check_delivery(
    stream: &DplStream,
    expected: impl IntoIterator<Item = u32>,
    received: &[(u32, Instant)],
) -> DeliveryCheck {
    let expected: Vec<(usize, u32)> = expected
        .into_iter()
        .map(|n| (stream.dsn_index(n), n))
        .collect();
    let received: Vec<u32> = received.iter().map(|(n, _)| *n).collect();
    dpl::streams::check::check_delivery(&expected, &received)
}

/// The `p`-th percentile of `values` (sorted in place), in milliseconds.
pub fn percentile_ms(values: &mut [Duration], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable();
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index].as_secs_f64() * 1_000.0
}

/// Delivery delays (arrival to first acceptance) of the events that arrived
/// in `[from, to)`.
pub fn delays(
    arrivals: &[Instant],
    received: &[(u32, Instant)],
    from: Instant,
    to: Instant,
) -> Vec<Duration> {
    let mut first: HashMap<u32, Instant> = HashMap::new();
    for (n, at) in received {
        first.entry(*n).or_insert(*at);
    }
    first
        .into_iter()
        .filter(|(n, _)| {
            let arrival = arrivals[*n as usize];
            arrival >= from && arrival < to
        })
        .map(|(n, at)| at.duration_since(arrivals[n as usize]))
        .collect()
}

/// When the endpoint had caught up after `recovery`: the first second `t`
/// at which every event that arrived up to `t - slack` had been accepted.
pub fn caught_up_at(
    arrivals: &[Instant],
    received: &[(u32, Instant)],
    recovery: Instant,
    slack: Duration,
) -> Option<Instant> {
    let mut first: Vec<Option<Instant>> = vec![None; arrivals.len()];
    for (n, at) in received {
        let slot = &mut first[*n as usize];
        if slot.is_none() {
            *slot = Some(*at);
        }
    }
    // Latest acceptance among the events that arrived up to each second.
    let mut t = recovery;
    let mut index = 0;
    let mut latest = recovery;
    let last_arrival = *arrivals.last()?;
    while t <= last_arrival {
        while index < arrivals.len() && arrivals[index] + slack <= t {
            latest = latest.max(first[index]?);
            index += 1;
        }
        if latest <= t {
            return Some(t);
        }
        t += Duration::from_secs(1);
    }
    None
}
