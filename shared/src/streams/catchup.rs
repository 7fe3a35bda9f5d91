//! Catch-up: delivering, from the DPL stream itself, what subscriptions
//! missed while their destination was down, throttling or slow.
//!
//! One worker per shard and transport ([`Engine::catch_up`]), under a lease,
//! serves every subscription that is behind on that shard: each follows
//! the shard from its own cursor, concurrently, all reads paced together
//! ([`ReadPacer`]) to what the shard's shared read limits leave (5 calls and
//! 2 MB per second for all readers, three event source mappings among them).
//! A subscription whose destination does not accept keeps its page and tries
//! again after a full-jitter wait (up to 30 s), reading nothing meanwhile;
//! the others go on. Pages are delivered with the destination's concurrency,
//! so catching up runs at the destination's full speed.
//!
//! When a subscription has delivered everything up to the shard's tip, and
//! everything the live path skipped, it hands back (`super::cursor`). A
//! worker stops at the end of its invocation's time and asks for a
//! successor; the sweep ([`Engine::sweep`], on a schedule) asks for a worker
//! for every shard with a subscription behind, in case one was lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::{sleep, sleep_until, Instant};

use super::archive::Archive;
use super::cursor::{Bound, Cursor, CursorState};
use super::delivery::Delivery;
use super::destination::{Destinations, Outcome};
use super::engine::{CatchUpConfig, Engine, EngineError};
use super::live::decode_page;
use super::queue::CatchUpQueue;
use super::reader::{Page, ReadError, ShardReader, MAX_RECORDS_PER_READ};
use super::state::{Cas, DeliveryState};
use super::store::SubscriptionStore;
use super::subscription::{Subscription, SubscriptionId};
use crate::position::HashRange;
use crate::Timestamp;

/// Records per read never go below this, whatever the record size.
const MIN_RECORDS_PER_READ: usize = 100;

/// A cursor this close to the stream's retention (or past it) checks
/// whether the stream still holds its next record.
const RETENTION_MARGIN: Duration = Duration::from_secs(3_600);

/// Arrival times are about a second apart from the cursor's own (Kinesis'
/// `ApproximateArrivalTimestamp` is approximate).
const ARRIVAL_SLACK_MS: i64 = 1_000;

/// How far before the cursor's time the archive part starts: event times
/// come before arrival times by the seconds twin-events takes. Events
/// delivered already in that overlap are sent again (at least once).
pub const ARCHIVE_OVERLAP: Duration = Duration::from_secs(300);

/// How long after a record's arrival on the DPL stream event-store has
/// surely staged it: its batching window (`EventStoreBatchingWindowSeconds`,
/// at most 300 s) and the invocation, with room to spare.
pub const STAGING_LAG: Duration = Duration::from_secs(600);

/// What a replay of the archive delivered: the staged events that happened
/// before `cut`, as staged when the replay began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ArchivedUntil {
    cut: Timestamp,
    /// Records that arrived on the stream before this were staged when the
    /// replay read staging.
    staged_before: Timestamp,
}

impl ArchivedUntil {
    /// Whether the replay delivered this stream record already: it
    /// happened before the cut and was staged in time. A record that
    /// arrived later (it may not have been staged yet) is sent again rather
    /// than risk losing it: at least once.
    fn covers(&self, event: &crate::DeviceEvent, delivery: &Delivery) -> bool {
        event.time() < self.cut && delivery.arrival < self.staged_before
    }
}

/// Archived events sent per page.
const ARCHIVE_PAGE: usize = 1_000;

/// Archived events' positions name their shard with this suffix.
const ARCHIVE_SHARD_SUFFIX: &str = "@archive";

const HOUR_MS: i64 = 3_600_000;

/// Paces the reads of one worker on one shard: at most
/// [`CatchUpConfig::reads_per_second`] calls and about
/// [`CatchUpConfig::read_bytes_per_second`] bytes per second, the number of
/// records per call sized from the records seen so far.
pub struct ReadPacer {
    interval: Duration,
    bytes_per_second: f64,
    inner: Mutex<Pacing>,
}

struct Pacing {
    next_call: Instant,
    /// Average record size seen, in bytes (starts at 1 KB).
    average: f64,
}

impl ReadPacer {
    pub fn new(config: &CatchUpConfig) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / config.reads_per_second.max(0.01)),
            bytes_per_second: config.read_bytes_per_second.max(1) as f64,
            inner: Mutex::new(Pacing {
                next_call: Instant::now(),
                average: 1_024.0,
            }),
        }
    }

    /// Waits for this call's turn (fair: turns are handed out in order).
    pub async fn turn(&self) {
        let slot = {
            let mut pacing = self.inner.lock().expect("pacer lock");
            let slot = pacing.next_call.max(Instant::now());
            pacing.next_call = slot + self.interval;
            slot
        };
        sleep_until(slot).await;
    }

    /// Records to ask for in one call: one interval's byte budget.
    pub fn limit(&self) -> usize {
        let average = self.inner.lock().expect("pacer lock").average;
        let budget = self.bytes_per_second * self.interval.as_secs_f64();
        ((budget / average) as usize).clamp(MIN_RECORDS_PER_READ, MAX_RECORDS_PER_READ)
    }

    /// Learns the record size from `page`, and holds the next calls back if
    /// it read more than its byte budget.
    pub fn read(&self, page: &Page) {
        if page.records.is_empty() {
            return;
        }
        let bytes = page.bytes() as f64;
        let mut pacing = self.inner.lock().expect("pacer lock");
        pacing.average = 0.8 * pacing.average + 0.2 * bytes / page.records.len() as f64;
        let allowed = self.bytes_per_second * self.interval.as_secs_f64();
        if bytes > allowed {
            pacing.next_call += Duration::from_secs_f64((bytes - allowed) / self.bytes_per_second);
        }
    }
}

/// What one worker run came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatchUpReport {
    /// Whether this run held the shard's lease (else another worker does).
    pub leased: bool,
    pub subscriptions: usize,
    pub handed_back: usize,
    pub delivered: usize,
    pub dead_lettered: usize,
    /// Subscriptions still behind when the run ended.
    pub still_behind: usize,
}

/// How one subscription's catch-up ended.
#[derive(Debug, Default)]
struct Followed {
    delivered: usize,
    dead_lettered: usize,
    handed_back: bool,
}

/// The name of the lease of a shard's worker.
fn lease_name(engine_transport: &str, shard: &str) -> String {
    format!("{engine_transport}#{shard}")
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
    /// Runs the catch-up worker of `shard` until every subscription behind
    /// there is handed back, or `until`.
    pub async fn catch_up(
        &self,
        shard: &str,
        until: Instant,
    ) -> Result<CatchUpReport, EngineError> {
        let config = self.config.catch_up;
        let lease = lease_name(self.config.transport.as_str(), shard);
        let owner = format!("{:016x}", fastrand::u64(..));
        let mut report = CatchUpReport::default();
        if !self.renew(&lease, &owner).await {
            tracing::info!(shard, "another worker holds the shard");
            return Ok(report);
        }
        report.leased = true;
        let pacer = ReadPacer::new(&config);
        let stop = AtomicBool::new(false);
        let mut running = FuturesUnordered::new();
        let mut following: Vec<SubscriptionId> = Vec::new();
        loop {
            for (subscription, cursor) in self.behind_on(shard).await? {
                if !following.contains(&subscription.id) {
                    following.push(subscription.id.clone());
                    report.subscriptions += 1;
                    running.push(self.follow(subscription, cursor, &pacer, until, &stop));
                }
            }
            if running.is_empty() {
                break;
            }
            let refresh = (Instant::now() + config.refresh).min(until);
            loop {
                tokio::select! {
                    done = running.next() => match done {
                        Some((id, followed)) => {
                            report.delivered += followed.delivered;
                            report.dead_lettered += followed.dead_lettered;
                            report.handed_back += usize::from(followed.handed_back);
                            if !followed.handed_back {
                                report.still_behind += 1;
                            }
                            following.retain(|f| f != &id);
                        }
                        None => break,
                    },
                    _ = sleep_until(refresh) => break,
                }
            }
            if Instant::now() >= until || !self.renew(&lease, &owner).await {
                stop.store(true, Ordering::Relaxed);
                while let Some((_, followed)) = running.next().await {
                    report.delivered += followed.delivered;
                    report.dead_lettered += followed.dead_lettered;
                    report.handed_back += usize::from(followed.handed_back);
                    report.still_behind += usize::from(!followed.handed_back);
                }
                break;
            }
        }
        if let Err(error) = self.ports.state.release(&lease, &owner).await {
            tracing::warn!(shard, %error, "lease not released; it expires");
        }
        if report.still_behind > 0 {
            if let Err(error) = self.ports.queue.request(shard).await {
                tracing::warn!(shard, %error, "no successor asked for; the sweep will");
            }
        }
        tracing::info!(
            shard,
            subscriptions = report.subscriptions,
            handed_back = report.handed_back,
            delivered = report.delivered,
            dead_lettered = report.dead_lettered,
            still_behind = report.still_behind,
            "catch-up run done"
        );
        Ok(report)
    }

    /// Takes or renews the lease; `false` if another worker holds it.
    async fn renew(&self, lease: &str, owner: &str) -> bool {
        let now = Timestamp::now();
        let until =
            Timestamp::from_millis(now.millis() + self.config.catch_up.lease.as_millis() as i64)
                .unwrap_or(now);
        match self.ports.state.lease(lease, owner, until, now).await {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(lease, %error, "lease not renewed");
                false
            }
        }
    }

    /// The enabled subscriptions of this transport that are behind on `shard`.
    async fn behind_on(&self, shard: &str) -> Result<Vec<(Subscription, Cursor)>, EngineError> {
        let subscriptions = self.subscriptions().await?;
        let ids: Vec<&SubscriptionId> = subscriptions.iter().map(|s| &s.id).collect();
        let cursors = match self.ports.state.cursors(shard, &ids).await {
            Ok(cursors) => cursors,
            Err(error) => {
                tracing::warn!(shard, %error, "cursors not read; trying again at the next refresh");
                return Ok(Vec::new());
            }
        };
        Ok(subscriptions
            .iter()
            .filter_map(|s| {
                let cursor = cursors.get(&s.id)?;
                (cursor.state == CursorState::Behind).then(|| (s.clone(), cursor.clone()))
            })
            .collect())
    }

    /// Delivers one subscription's events of the shard from its cursor
    /// until it hands back, loses its cursor, or `stop` / `until` comes.
    async fn follow(
        &self,
        subscription: Subscription,
        cursor: Cursor,
        pacer: &ReadPacer,
        until: Instant,
        stop: &AtomicBool,
    ) -> (SubscriptionId, Followed) {
        let mut run = Follow {
            subscription,
            stored: cursor.bound.clone(),
            stored_since: cursor.since,
            cursor,
            checkpointed: Instant::now(),
            followed: Followed::default(),
        };
        let outcome = run.go(self, pacer, until, stop).await;
        if let Err(reason) = outcome {
            tracing::warn!(subscription = %run.subscription.id, shard = %run.cursor.shard, reason,
                "catch-up of this subscription stopped");
        }
        (run.subscription.id.clone(), run.followed)
    }

    /// The sweep: asks for a worker on every shard where an enabled
    /// subscription of this transport is behind. Returns those shards.
    pub async fn sweep(&self) -> Result<Vec<String>, EngineError> {
        let subscriptions = self.subscriptions().await?;
        let mut shards: Vec<String> = Vec::new();
        for subscription in subscriptions.iter() {
            match self.ports.state.cursors_of(&subscription.id).await {
                Ok(cursors) => shards.extend(
                    cursors
                        .into_iter()
                        .filter(|c| c.state == CursorState::Behind)
                        .map(|c| c.shard),
                ),
                Err(error) => {
                    tracing::warn!(subscription = %subscription.id, %error, "cursors not read")
                }
            }
        }
        shards.sort();
        shards.dedup();
        for shard in &shards {
            if let Err(error) = self.ports.queue.request(shard).await {
                tracing::warn!(shard, %error, "catch-up not asked for");
            }
        }
        Ok(shards)
    }
}

/// One subscription's catch-up in progress.
struct Follow {
    subscription: Subscription,
    /// The cursor as this worker last wrote it (or found it).
    stored: Bound,
    /// The `since` last written (the archive part moves only it).
    stored_since: Timestamp,
    /// The cursor as delivered so far (ahead of `stored` between checkpoints).
    cursor: Cursor,
    checkpointed: Instant,
    followed: Followed,
}

/// The end of the page being delivered.
struct PageEnd {
    /// Just after its last record.
    bound: Bound,
    /// When the DPL stream took its last record.
    arrival: Timestamp,
    /// Whether it ended at the shard's tip (or at the end of a closed shard).
    at_tip: bool,
}

impl Follow {
    async fn go<S, T, D, R, Q, A>(
        &mut self,
        engine: &Engine<S, T, D, R, Q, A>,
        pacer: &ReadPacer,
        until: Instant,
        stop: &AtomicBool,
    ) -> Result<(), String>
    where
        S: SubscriptionStore + Send + Sync,
        T: DeliveryState,
        D: Destinations,
        R: ShardReader,
        Q: CatchUpQueue,
        A: Archive,
    {
        let config = engine.config.catch_up;
        let reader = &engine.ports.reader;
        let mut iterator: Option<String> = None;
        let mut closed = false;
        // The page being delivered: what of it is still undelivered, and
        // where it ends.
        let mut held: Vec<Delivery> = Vec::new();
        let mut page: Option<PageEnd> = None;
        let mut tries = 0u32;
        // Past the stream's retention, the start comes from the archive;
        // the stream's records it covered are not sent again.
        let archived = self.beyond_retention(engine, until, stop).await?;
        loop {
            if stop.load(Ordering::Relaxed) || Instant::now() >= until {
                return self.checkpoint(engine, true).await;
            }
            if held.is_empty() {
                // The page is delivered: at the tip, hand back.
                if let Some(PageEnd { at_tip: true, .. }) = page.take() {
                    if self.hand_back(engine, closed).await? {
                        return Ok(());
                    }
                    if closed {
                        return Err("the closed shard's cursor could not be handed back".into());
                    }
                }
                let it = match iterator.take() {
                    Some(it) => it,
                    None => reader
                        .iterator(&self.cursor.shard, &self.cursor.bound.resume())
                        .await
                        .map_err(|e| e.to_string())?,
                };
                pacer.turn().await;
                let read = match reader.read(&it, pacer.limit()).await {
                    Ok(read) => read,
                    Err(ReadError::ExpiredIterator) => continue,
                    Err(error) => {
                        tracing::debug!(%error, "catch-up read failed; reading again");
                        iterator = Some(it);
                        tries += 1;
                        sleep(config.probe.delay(tries, fastrand::f64())).await;
                        continue;
                    }
                };
                pacer.read(&read);
                closed = read.next.is_none();
                iterator = read.next.clone();
                self.cursor.behind_ms = read.millis_behind;
                let at_tip = read.at_tip() || closed;
                let Some(last) = read.records.last() else {
                    // Kinesis may answer empty pages mid-shard: only an
                    // empty page at the tip ends the catch-up.
                    page = at_tip.then(|| PageEnd {
                        bound: self.cursor.bound.clone(),
                        arrival: self.cursor.since,
                        at_tip,
                    });
                    continue;
                };
                page = Some(PageEnd {
                    bound: Bound::after(last.position.sequence()),
                    arrival: last.arrival,
                    at_tip,
                });
                held = decode_page(&read)
                    .into_iter()
                    .filter(|(event, _)| self.subscription.accepts(event))
                    .filter(|(event, delivery)| {
                        archived.is_none_or(|archived| !archived.covers(event, delivery))
                    })
                    .map(|(_, delivery)| delivery)
                    .collect();
            }
            if !held.is_empty() {
                self.send_held(engine, &mut held, until).await;
            }
            match held.first() {
                None => {
                    tries = 0;
                    if let Some(end) = &page {
                        self.moved_to(end.bound.clone(), end.arrival);
                    }
                    self.checkpoint(engine, false).await?;
                }
                Some(first) => {
                    self.moved_to(Bound::at(first.position.sequence()), first.arrival);
                    self.checkpoint(engine, false).await?;
                    tries += 1;
                    let wait =
                        config
                            .probe
                            .delay_at_least(tries, config.probe.base, fastrand::f64());
                    tokio::select! {
                        _ = sleep(wait) => {}
                        _ = sleep_until(until) => {}
                    }
                }
            }
        }
    }

    /// When the cursor lies past the stream's retention (records after it
    /// were trimmed), delivers the staged events of this shard from about
    /// the cursor's time to the oldest record the stream keeps, then moves
    /// the cursor there (or, when the stream holds nothing any more, up to
    /// now). Returns what the archive delivered ([`ArchivedUntil`]); `None`
    /// when the stream still has everything after the cursor.
    async fn beyond_retention<S, T, D, R, Q, A>(
        &mut self,
        engine: &Engine<S, T, D, R, Q, A>,
        until: Instant,
        stop: &AtomicBool,
    ) -> Result<Option<ArchivedUntil>, String>
    where
        S: SubscriptionStore + Send + Sync,
        T: DeliveryState,
        D: Destinations,
        R: ShardReader,
        Q: CatchUpQueue,
        A: Archive,
    {
        let retention = engine.config.catch_up.retention;
        let age_ms = Timestamp::now().millis() - self.cursor.since.millis();
        if age_ms < retention.saturating_sub(RETENTION_MARGIN).as_millis() as i64 {
            return Ok(None);
        }
        let reader = &engine.ports.reader;
        let shard = self.cursor.shard.clone();
        let first = reader
            .first_retained(&shard)
            .await
            .map_err(|e| e.to_string())?;
        if first
            .as_ref()
            .is_some_and(|r| r.arrival.millis() <= self.cursor.since.millis() + ARRIVAL_SLACK_MS)
        {
            return Ok(None);
        }
        let now = Timestamp::now();
        let cut = first.as_ref().map_or(now, |r| r.arrival);
        let staged_before = Timestamp::from_millis(now.millis() - STAGING_LAG.as_millis() as i64)
            .map_err(|e| e.to_string())?;
        let range = reader.hash_range(&shard).await.map_err(|e| e.to_string())?;
        tracing::warn!(subscription = %self.subscription.id, shard, since = %self.cursor.since.iso_seconds(),
            cut = %cut.iso_seconds(), "catch-up past the DPL stream's retention: delivering from the archive");
        self.replay_archive(engine, range, cut, until, stop).await?;
        if let Some(first) = first {
            self.cursor.bound = Bound::at(first.position.sequence());
            self.cursor.since = first.arrival;
            self.checkpoint(engine, true).await?;
        }
        Ok(Some(ArchivedUntil { cut, staged_before }))
    }

    /// Delivers the archived events of this shard with an event time from
    /// [`ARCHIVE_OVERLAP`] before the cursor's time to `cut`, hour by hour,
    /// in the export's order, moving the cursor's time as pages go.
    async fn replay_archive<S, T, D, R, Q, A>(
        &mut self,
        engine: &Engine<S, T, D, R, Q, A>,
        range: HashRange,
        cut: Timestamp,
        until: Instant,
        stop: &AtomicBool,
    ) -> Result<(), String>
    where
        S: SubscriptionStore + Send + Sync,
        T: DeliveryState,
        D: Destinations,
        R: ShardReader,
        Q: CatchUpQueue,
        A: Archive,
    {
        let from =
            Timestamp::from_millis(self.cursor.since.millis() - ARCHIVE_OVERLAP.as_millis() as i64)
                .map_err(|e| e.to_string())?;
        let subscription = self.subscription.clone();
        let archive_shard = format!("{}{ARCHIVE_SHARD_SUFFIX}", self.cursor.shard);
        let mut hour = from.hour_start();
        while hour <= cut {
            let staged = engine
                .ports
                .archive
                .hour(
                    &subscription.oem_id,
                    hour,
                    &subscription.filters.event_types,
                )
                .await
                .map_err(|e| e.to_string())?;
            let mut page: Vec<Delivery> = Vec::new();
            for (n, record) in staged.enumerate() {
                let record = record.map_err(|e| e.to_string())?;
                let time = record.dpl_event.time();
                let mine = time >= from && time < cut && range.holds(record.partition_key());
                if !mine || !subscription.accepts(&record.dpl_event) {
                    continue;
                }
                // Archived events have no stream position: one made of their
                // time keeps dead letters apart.
                let sequence = (time.millis() as u128) * 1_000_000 + n as u128;
                let position =
                    crate::position::Position::new(&archive_shard, &sequence.to_string())
                        .map_err(|e| e.to_string())?;
                page.push(Delivery::new(position, time, &record));
                if page.len() == ARCHIVE_PAGE {
                    self.deliver_archived(engine, std::mem::take(&mut page), until, stop)
                        .await?;
                }
            }
            self.deliver_archived(engine, page, until, stop).await?;
            hour = Timestamp::from_millis(hour.millis() + HOUR_MS).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Sends one page of archived events until none is pending; then the
    /// cursor's time moves to the page's last event.
    async fn deliver_archived<S, T, D, R, Q, A>(
        &mut self,
        engine: &Engine<S, T, D, R, Q, A>,
        mut held: Vec<Delivery>,
        until: Instant,
        stop: &AtomicBool,
    ) -> Result<(), String>
    where
        S: SubscriptionStore + Send + Sync,
        T: DeliveryState,
        D: Destinations,
        R: ShardReader,
        Q: CatchUpQueue,
        A: Archive,
    {
        let config = engine.config.catch_up;
        let last = held.last().map(|d| d.arrival);
        let mut tries = 0;
        while !held.is_empty() {
            if stop.load(Ordering::Relaxed) || Instant::now() >= until {
                self.checkpoint(engine, true).await?;
                return Err("the run ended in the archive part; the next one resumes it".into());
            }
            self.send_held(engine, &mut held, until).await;
            if !held.is_empty() {
                tries += 1;
                sleep(
                    config
                        .probe
                        .delay_at_least(tries, config.probe.base, fastrand::f64()),
                )
                .await;
            }
        }
        if let Some(last) = last {
            self.cursor.since = last;
            self.checkpoint(engine, false).await?;
        }
        Ok(())
    }

    /// Sends `held` once, within the send budget: the accepted and the
    /// dead-lettered leave it, the pending stay, in order; counts both and
    /// records the health.
    async fn send_held<S, T, D, R, Q, A>(
        &mut self,
        engine: &Engine<S, T, D, R, Q, A>,
        held: &mut Vec<Delivery>,
        until: Instant,
    ) where
        S: SubscriptionStore + Send + Sync,
        T: DeliveryState,
        D: Destinations,
        R: ShardReader,
        Q: CatchUpQueue,
        A: Archive,
    {
        let deliveries: Vec<&Delivery> = held.iter().collect();
        let deadline = (Instant::now() + engine.config.catch_up.send_budget).min(until);
        let report = engine.send(&self.subscription, &deliveries, deadline).await;
        let outcomes = engine
            .dead_letter(&self.subscription, &deliveries, report.outcomes)
            .await;
        let delivered = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Accepted))
            .count();
        self.followed.delivered += delivered;
        self.followed.dead_lettered += outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Rejected(_)))
            .count();
        let mut outcomes = outcomes.into_iter();
        held.retain(|_| matches!(outcomes.next(), Some(Outcome::Pending)));
        engine
            .record_health(
                &self.subscription.id,
                delivered > 0,
                report.error.as_deref(),
            )
            .await;
    }

    /// Everything before `bound` is delivered; `since` is when the DPL
    /// stream took the record at (or just before) it.
    fn moved_to(&mut self, bound: Bound, since: Timestamp) {
        if bound != self.cursor.bound {
            self.cursor.bound = bound;
            self.cursor.since = since;
        }
    }

    /// Writes the cursor if it moved and the last write is old enough (or
    /// `now`); an error if another writer changed it.
    async fn checkpoint<S, T, D, R, Q, A>(
        &mut self,
        engine: &Engine<S, T, D, R, Q, A>,
        now: bool,
    ) -> Result<(), String>
    where
        S: SubscriptionStore + Send + Sync,
        T: DeliveryState,
        D: Destinations,
        R: ShardReader,
        Q: CatchUpQueue,
        A: Archive,
    {
        let due = now || self.checkpointed.elapsed() >= engine.config.catch_up.checkpoint_every;
        let moved = self.cursor.bound != self.stored || self.cursor.since != self.stored_since;
        if !moved || !due {
            return Ok(());
        }
        self.cursor.updated_at = Timestamp::now();
        match engine.ports.state.advance(&self.stored, &self.cursor).await {
            Ok(Cas::Done) => {
                self.stored = self.cursor.bound.clone();
                self.stored_since = self.cursor.since;
                self.checkpointed = Instant::now();
                Ok(())
            }
            Ok(Cas::Lost(now)) => Err(format!("the cursor changed under the worker: {now:?}")),
            Err(error) => {
                // Not fatal: the next checkpoint tries again.
                tracing::warn!(%error, "catch-up checkpoint not written");
                Ok(())
            }
        }
    }

    /// Hands back at the cursor; `Ok(false)` if the live path has skipped
    /// beyond it (read on). On a closed shard, removes the cursor too.
    async fn hand_back<S, T, D, R, Q, A>(
        &mut self,
        engine: &Engine<S, T, D, R, Q, A>,
        closed: bool,
    ) -> Result<bool, String>
    where
        S: SubscriptionStore + Send + Sync,
        T: DeliveryState,
        D: Destinations,
        R: ShardReader,
        Q: CatchUpQueue,
        A: Archive,
    {
        let state = &engine.ports.state;
        self.cursor.updated_at = Timestamp::now();
        match state.hand_back(&self.stored, &self.cursor).await {
            Ok(Cas::Done) => {
                tracing::info!(subscription = %self.subscription.id, shard = %self.cursor.shard,
                    at = %self.cursor.bound, delivered = self.followed.delivered, "handed back to the live path");
                self.followed.handed_back = true;
                self.stored = self.cursor.bound.clone();
                if closed {
                    let (id, shard) = (&self.subscription.id, &self.cursor.shard);
                    if let Err(error) = state.remove(id, shard, &self.cursor.bound).await {
                        tracing::warn!(%error, "cursor of a closed shard not removed");
                    }
                }
                Ok(true)
            }
            Ok(Cas::Lost(Some(now)))
                if now.state == CursorState::Behind && now.bound == self.stored =>
            {
                // The live path skipped past this bound: there is more to read.
                Ok(false)
            }
            Ok(Cas::Lost(now)) => Err(format!("the cursor changed under the worker: {now:?}")),
            Err(error) => {
                tracing::warn!(%error, "hand-back not written; trying again");
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::state::DeliveryState;
    use super::super::testing::*;
    use super::*;
    use crate::position::Position;
    use crate::streams::subscription::Status;

    async fn cursor(engine: &TestEngine, id: &SubscriptionId) -> Option<Cursor> {
        engine
            .ports()
            .state
            .cursors(SHARD, &[id])
            .await
            .unwrap()
            .remove(id)
    }

    /// A subscription that fell behind on the first of `batches` batches of
    /// `size` events (endpoint down), the live path skipping the others.
    async fn fell_behind(
        batches: usize,
        size: usize,
    ) -> (TestEngine, Subscription, Vec<(String, crate::EventId)>) {
        let sub = subscription(1, "oem1", "late");
        let engine = engine(vec![sub.clone()], Duration::from_secs(1));
        engine.ports().destinations.set("late", Behaviour::Down);
        let mut events = Vec::new();
        for _ in 0..batches {
            let batch = write(&engine, "oem1", size, 7);
            engine.dispatch(&batch.records, soon()).await.unwrap();
            events.extend(batch.events);
        }
        assert_eq!(
            cursor(&engine, &sub.id).await.unwrap().state,
            CursorState::Behind
        );
        assert!(engine.ports().destinations.received("late").is_empty());
        (engine, sub, events)
    }

    #[tokio::test(start_paused = true)]
    async fn the_worker_delivers_everything_missed_in_order_and_hands_back_to_the_live_path() {
        let (engine, sub, mut events) = fell_behind(5, 40).await;
        engine.ports().queue.take();
        engine.ports().destinations.set("late", Behaviour::Accept);
        let report = engine
            .catch_up(SHARD, Instant::now() + Duration::from_secs(600))
            .await
            .unwrap();
        assert!(report.leased);
        assert_eq!(
            (
                report.subscriptions,
                report.handed_back,
                report.still_behind
            ),
            (1, 1, 0)
        );
        assert_eq!(report.delivered, 200);
        let handed = cursor(&engine, &sub.id).await.unwrap();
        assert_eq!(handed.state, CursorState::HandedBack);
        assert!(
            engine.ports().queue.take().is_empty(),
            "no successor needed"
        );

        // The live path takes over after the bound, and is live again.
        let next = write(&engine, "oem1", 10, 7);
        engine.dispatch(&next.records, soon()).await.unwrap();
        events.extend(next.events);
        let check = check(&engine, "late", &events);
        assert!(check.holds(), "{check}");
        assert_eq!(check.duplicates, 0);
        assert!(cursor(&engine, &sub.id).await.is_none(), "live again");
        // Reads were paced: 200 events at about 1 KB in pages of ~976.
        assert!(
            engine.ports().reader.reads() <= 3,
            "{}",
            engine.ports().reader.reads()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_worker_reads_on_while_the_live_path_has_skipped_past_its_tip() {
        let (engine, _, mut events) = fell_behind(1, 10).await;
        // The worker's first page takes 2 s to deliver; meanwhile the live
        // path skips a batch the worker has not read: it may not hand back
        // at the end of its page, and reads on.
        engine
            .ports()
            .destinations
            .set("late", Behaviour::Slow(Duration::from_secs(2)));
        let later = async {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            let batch = write(&engine, "oem1", 10, 7);
            engine.dispatch(&batch.records, soon()).await.unwrap();
            batch.events
        };
        let run = engine.catch_up(SHARD, Instant::now() + Duration::from_secs(600));
        let (report, later) = tokio::join!(run, later);
        let report = report.unwrap();
        assert_eq!((report.handed_back, report.delivered), (1, 20));
        events.extend(later);
        let check = check(&engine, "late", &events);
        assert!(check.holds(), "{check}");
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_endpoint_stays_down_the_worker_waits_and_asks_for_a_successor() {
        let (engine, sub, _) = fell_behind(2, 10).await;
        engine.ports().queue.take();
        let before = cursor(&engine, &sub.id).await.unwrap();
        let reads = engine.ports().reader.reads();
        let report = engine
            .catch_up(SHARD, Instant::now() + Duration::from_secs(120))
            .await
            .unwrap();
        assert_eq!((report.still_behind, report.delivered), (1, 0));
        assert_eq!(engine.ports().queue.take(), [SHARD]);
        assert_eq!(cursor(&engine, &sub.id).await.unwrap().bound, before.bound);
        assert_eq!(
            engine.ports().reader.reads() - reads,
            1,
            "it holds its page and only probes"
        );
        // Probes back off: 2 minutes took a handful of sends, not hundreds.
        let calls = engine.ports().destinations.calls("late");
        assert!((3..=30).contains(&calls), "{calls} probes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_worker_on_a_shard_stands_aside() {
        let (engine, _, _) = fell_behind(1, 10).await;
        let until = Instant::now() + Duration::from_secs(30);
        let (one, two) = tokio::join!(engine.catch_up(SHARD, until), engine.catch_up(SHARD, until));
        let (one, two) = (one.unwrap(), two.unwrap());
        assert!(
            one.leased != two.leased,
            "one worker per shard: {one:?} {two:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_asks_for_every_shard_with_a_subscription_behind_and_disabled_ones_wait() {
        let (engine, sub, _) = fell_behind(1, 10).await;
        engine.ports().queue.take();
        assert_eq!(engine.sweep().await.unwrap(), [SHARD]);
        assert_eq!(engine.ports().queue.take(), [SHARD]);
        engine
            .ports()
            .subscriptions
            .set_status(&sub.id, Status::Disabled)
            .await
            .unwrap();
        assert!(engine.sweep().await.unwrap().is_empty());
        engine.ports().destinations.set("late", Behaviour::Accept);
        let report = engine
            .catch_up(SHARD, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            report.subscriptions, 0,
            "a disabled subscription is not caught up"
        );
        assert_eq!(
            cursor(&engine, &sub.id).await.unwrap().state,
            CursorState::Behind
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_hand_back_a_batch_read_before_it_is_not_delivered_twice() {
        let (engine, sub, events) = fell_behind(2, 10).await;
        engine.ports().destinations.set("late", Behaviour::Accept);
        engine
            .catch_up(SHARD, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        // The event source hands the function a batch it read before the
        // hand-back: covered by the bound, so nothing is sent and the cursor
        // stays until a batch reaches past it.
        let stale: Vec<_> = engine.ports().reader.records(SHARD)[10..20]
            .iter()
            .map(lambda_record)
            .collect();
        engine.dispatch(&stale, soon()).await.unwrap();
        assert_eq!(
            cursor(&engine, &sub.id).await.unwrap().state,
            CursorState::HandedBack
        );
        let check = check(&engine, "late", &events);
        assert_eq!((check.duplicates, check.holds()), (0, true), "{check}");
        let last = Position::of_record(stale.last().unwrap()).unwrap();
        assert!(cursor(&engine, &sub.id)
            .await
            .unwrap()
            .bound
            .covers(last.sequence()));
    }
}

#[cfg(test)]
mod archive_tests {
    use std::time::Duration;

    use super::super::archive::StagingArchive;
    use super::super::engine::{EngineConfig, Ports};
    use super::super::queue::InMemoryQueue;
    use super::super::reader::InMemoryDplStream;
    use super::super::state::{DeliveryState, InMemoryState};
    use super::super::store::InMemorySubscriptions;
    use super::super::testing::{subscription, Behaviour, Endpoints, SHARD};
    use super::*;
    use crate::examples::seed_record;
    use crate::export::{staging, BatchRange, DirStore, Layout, Partition};
    use crate::streams::subscription::Transport;
    use crate::{DeviceEvent, EventId, EventType};

    type ArchiveEngine = Engine<
        InMemorySubscriptions,
        InMemoryState,
        Endpoints,
        InMemoryDplStream,
        InMemoryQueue,
        StagingArchive<DirStore>,
    >;

    /// Event `n` happened at `t0 + n s` and reached the DPL stream 100 ms later.
    fn event(n: u64, t0: i64) -> (crate::DplRecord, Timestamp) {
        let dsn = format!("AC000W00000000{}", n % 3);
        let mut record = seed_record(EventType::Connectivity, "oem1", "ledevb", &dsn, "p", n);
        let at = Timestamp::from_millis(t0 + 1_000 * n as i64).unwrap();
        if let DeviceEvent::Connectivity { timestamp, .. } = &mut record.dpl_event {
            *timestamp = at;
        }
        record.event_id = EventId::derive(&format!("archive-{n}"), EventType::Connectivity);
        (record, Timestamp::from_millis(at.millis() + 100).unwrap())
    }

    /// An engine of one subscription ("late", OEM `oem1`) whose DPL stream
    /// keeps a day and whose archive is staging in `dir`.
    fn archive_engine(dir: &std::path::Path) -> (ArchiveEngine, Subscription) {
        let sub = subscription(1, "oem1", "late");
        let mut config = EngineConfig::new(Transport::Kinesis);
        config.cache_ttl = Duration::ZERO;
        config.catch_up.retention = Duration::from_secs(86_400);
        let engine = Engine::new(
            Ports {
                subscriptions: InMemorySubscriptions::with([sub.clone()]),
                state: InMemoryState::new(),
                destinations: Endpoints::default(),
                reader: InMemoryDplStream::new(),
                queue: InMemoryQueue::new(),
                archive: StagingArchive::new(
                    DirStore::new(dir.join("bucket")),
                    Layout::default(),
                    dir,
                ),
            },
            config,
        );
        (engine, sub)
    }

    /// Thirty events, months ago, on the stream and (as event-store writes
    /// them) in staging under `dir`; the subscription fell behind at the
    /// first, its endpoint then back.
    async fn thirty_old_events_missed(
        engine: &ArchiveEngine,
        dir: &std::path::Path,
    ) -> Vec<(crate::DplRecord, Timestamp)> {
        let events: Vec<_> = (0..30).map(|n| event(n, 1_598_607_936_000)).collect();
        let stream = &engine.ports().reader;
        for (record, arrival) in &events {
            stream.append(SHARD, record.to_json(), *arrival);
        }
        let records = stream.records(SHARD);
        let partition = Partition {
            hour: events[0].0.dpl_event.time().hour_start(),
            oem_id: "oem1".into(),
            event_type: EventType::Connectivity,
        };
        let range = BatchRange {
            shard_id: SHARD,
            first_sequence: records[0].position.sequence().as_str(),
            last_sequence: records[29].position.sequence().as_str(),
        };
        let key = Layout::default().staging_key(&partition, &range).unwrap();
        let staged: Vec<crate::DplRecord> = events.iter().map(|(r, _)| r.clone()).collect();
        let path = dir.join("bucket").join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, staging::encode(&staged)).unwrap();
        engine.ports().destinations.set("late", Behaviour::Down);
        let batch: Vec<_> = records.iter().map(|r| r.lambda_record()).collect();
        engine
            .dispatch(&batch, Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
        engine.ports().destinations.set("late", Behaviour::Accept);
        events
    }

    fn ids(events: &[(crate::DplRecord, Timestamp)]) -> Vec<(String, EventId)> {
        events
            .iter()
            .map(|(r, _)| (r.partition_key().to_owned(), r.event_id))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_cursor_past_the_streams_retention_catches_up_from_the_archive_then_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, sub) = archive_engine(dir.path());
        let events = thirty_old_events_missed(&engine, dir.path()).await;
        // Since then the stream has dropped its first twenty records.
        engine.ports().reader.trim(SHARD, 20);
        let report = engine
            .catch_up(SHARD, Instant::now() + Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(report.handed_back, 1, "{report:?}");

        // Every event once, each DSN in order: the first twenty-one from
        // the archive (up to the oldest record kept), the rest from the stream.
        let check = check_delivery_of(&engine, "late", &ids(&events));
        assert!(check.holds(), "{check}");
        assert_eq!(check.duplicates, 0, "{check}");
        let cursor = engine.ports().state.cursors_of(&sub.id).await.unwrap();
        assert_eq!(cursor[0].state, CursorState::HandedBack);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_kept_nothing_loses_no_event_that_arrives_after_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = archive_engine(dir.path());
        let mut events = thirty_old_events_missed(&engine, dir.path()).await;
        // Everything is past the stream's retention; then, while the worker
        // reads the archive, an event that happened a moment ago arrives:
        // not staged yet, so it must come from the stream.
        let stream = &engine.ports().reader;
        stream.trim(SHARD, 30);
        let now = Timestamp::now().millis();
        let (late, _) = event(0, now - 2_000);
        let late = crate::DplRecord {
            event_id: EventId::derive("just now", EventType::Connectivity),
            ..late
        };
        stream.append(SHARD, late.to_json(), Timestamp::from_millis(now).unwrap());
        events.push((late, Timestamp::from_millis(now).unwrap()));
        let report = engine
            .catch_up(SHARD, Instant::now() + Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(report.handed_back, 1, "{report:?}");
        let check = check_delivery_of(&engine, "late", &ids(&events));
        assert!(check.holds(), "{check}");
    }

    fn check_delivery_of(
        engine: &ArchiveEngine,
        name: &str,
        expected: &[(String, EventId)],
    ) -> crate::streams::check::DeliveryCheck {
        let received: Vec<EventId> = engine
            .ports()
            .destinations
            .received(name)
            .iter()
            .map(|d| d.event_id)
            .collect();
        crate::streams::check::check_delivery(expected, &received)
    }
}
