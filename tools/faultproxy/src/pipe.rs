//! One direction of one connection, as a delay line: the reading side
//! stamps each chunk with the time it is due ([`PipeIn::send`]: arrival +
//! half the latency ± jitter) and queues it; the writing side
//! ([`PipeOut::deliver`]) writes each chunk when it is due, under the
//! bandwidth cap and the stall switch.
//!
//! Reading never waits for writing (up to [`WINDOW_BYTES`] in flight), so
//! latency delays bytes without capping throughput: a 4 MB upload through
//! a 50 ms proxy takes ~50 ms more, not 50 ms per chunk. The queue is FIFO
//! and the writer writes in order, so jitter can stretch or squeeze the
//! gaps between chunks but never reorder them.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep, sleep_until, Instant};

use crate::bucket::{Grant, TokenBucket};
use crate::faults::Faults;
use crate::stats::{Direction, StatsRecorder};

/// Largest single read: the usual socket buffer chunk.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Bytes read but not yet written, per direction per connection. Like a TCP
/// window: 8 MiB (above Linux's default 6 MiB `tcp_rmem` maximum) carries
/// ~320 MB/s through a 25 ms one-way delay, more than any test here needs,
/// and bounds memory when the far side stops reading (or `stall` is on).
pub const WINDOW_BYTES: usize = 8 * 1024 * 1024;

/// What travels through a pipe.
#[derive(Debug)]
pub(crate) enum Item {
    /// Bytes to write at `due`.
    Data { bytes: Vec<u8>, due: Instant },
    /// HTTP mode: the item before this one ended the response to a request
    /// whose first byte arrived at `request_started`.
    ResponseEnd { request_started: Instant },
    /// The source closed its sending side: shut down ours.
    Eof,
}

/// The pipe's far end has gone (the connection is ending).
#[derive(Debug)]
pub(crate) struct Closed;

/// The reading side of a pipe; cloned for a second producer (HTTP mode
/// answers requests itself on the way down).
#[derive(Clone)]
pub(crate) struct PipeIn {
    tx: mpsc::UnboundedSender<Item>,
    window: Arc<Semaphore>,
    faults: watch::Receiver<Faults>,
    rng: fastrand::Rng,
}

/// The writing side of a pipe.
pub(crate) struct PipeOut {
    rx: mpsc::UnboundedReceiver<Item>,
    window: Arc<Semaphore>,
    faults: watch::Receiver<Faults>,
}

/// A new, empty pipe following `faults`.
pub(crate) fn pipe(faults: watch::Receiver<Faults>) -> (PipeIn, PipeOut) {
    let (tx, rx) = mpsc::unbounded_channel();
    let window = Arc::new(Semaphore::new(WINDOW_BYTES));
    let input = PipeIn {
        tx,
        window: Arc::clone(&window),
        faults: faults.clone(),
        rng: fastrand::Rng::new(),
    };
    (input, PipeOut { rx, window, faults })
}

/// Window permits a chunk holds (a chunk larger than the window takes it all).
fn permits(len: usize) -> u32 {
    len.min(WINDOW_BYTES) as u32
}

/// `base` moved by a uniform offset within ±`jitter`, never below zero.
pub(crate) fn jittered(base: Duration, jitter: Duration, rng: &mut fastrand::Rng) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    let span = jitter.as_nanos() as u64;
    let offset = rng.u64(0..=2 * span);
    (base + Duration::from_nanos(offset)).saturating_sub(jitter)
}

impl PipeIn {
    /// Queues bytes that arrived now, due after half the latency ± jitter.
    pub(crate) async fn send(&mut self, bytes: Vec<u8>) -> Result<(), Closed> {
        let delay = self.delay(|latency| latency / 2);
        self.send_delayed(bytes, delay).await
    }

    /// Queues bytes the proxy made up itself (an HTTP burst answer), due
    /// after the whole round trip ± jitter, as if the upstream had answered.
    pub(crate) async fn send_round_trip(&mut self, bytes: Vec<u8>) -> Result<(), Closed> {
        let delay = self.delay(|latency| latency);
        self.send_delayed(bytes, delay).await
    }

    /// `share` of the current latency, jittered.
    fn delay(&mut self, share: impl Fn(Duration) -> Duration) -> Duration {
        let (latency, jitter) = {
            let faults = self.faults.borrow();
            (faults.latency, faults.jitter)
        };
        jittered(share(latency), jitter, &mut self.rng)
    }

    async fn send_delayed(&mut self, bytes: Vec<u8>, delay: Duration) -> Result<(), Closed> {
        if bytes.is_empty() {
            return Ok(());
        }
        let due = Instant::now() + delay;
        self.window
            .acquire_many(permits(bytes.len()))
            .await
            .map_err(|_| Closed)?
            .forget();
        self.tx.send(Item::Data { bytes, due }).map_err(|_| Closed)
    }

    pub(crate) fn response_end(&self, request_started: Instant) -> Result<(), Closed> {
        self.tx
            .send(Item::ResponseEnd { request_started })
            .map_err(|_| Closed)
    }

    pub(crate) fn eof(&self) -> Result<(), Closed> {
        self.tx.send(Item::Eof).map_err(|_| Closed)
    }
}

/// Copies `src` into the pipe until end of stream, without looking at it.
pub(crate) async fn forward_raw<R: AsyncRead + Unpin>(
    src: &mut R,
    mut pipe: PipeIn,
) -> io::Result<()> {
    let mut buffer = vec![0; READ_BUFFER_BYTES];
    loop {
        let n = src.read(&mut buffer).await?;
        let sent = if n == 0 {
            pipe.eof()
        } else {
            pipe.send(buffer[..n].to_vec()).await
        };
        if n == 0 || sent.is_err() {
            return Ok(());
        }
    }
}

impl PipeOut {
    /// Writes what the pipe carries to `dst`, each chunk when due, until
    /// end of stream (then shuts down `dst`'s sending side).
    pub(crate) async fn deliver<W: AsyncWrite + Unpin>(
        mut self,
        dst: &mut W,
        stats: &StatsRecorder,
        direction: Direction,
    ) -> io::Result<()> {
        let mut bucket = None;
        while let Some(item) = self.rx.recv().await {
            match item {
                Item::Data { bytes, due } => {
                    if due > Instant::now() {
                        sleep_until(due).await;
                    }
                    self.write_capped(dst, &bytes, &mut bucket).await?;
                    self.window.add_permits(permits(bytes.len()) as usize);
                    stats.delivered(direction, bytes.len());
                }
                Item::ResponseEnd { request_started } => {
                    stats.request_took(request_started.elapsed());
                }
                Item::Eof => return dst.shutdown().await,
            }
        }
        Ok(())
    }

    /// Writes `bytes` once not stalled, as fast as the bandwidth cap allows.
    async fn write_capped<W: AsyncWrite + Unpin>(
        &mut self,
        dst: &mut W,
        mut bytes: &[u8],
        bucket: &mut Option<TokenBucket>,
    ) -> io::Result<()> {
        while !bytes.is_empty() {
            let bandwidth = self
                .faults
                .wait_for(|faults| !faults.stall)
                .await
                .map_err(|_| io::Error::other("the proxy has shut down"))?
                .bandwidth;
            let n = match bandwidth {
                None => bytes.len(),
                Some(rate) => {
                    let now = Instant::now();
                    let bucket = match bucket {
                        Some(bucket) if bucket.rate() == rate => bucket,
                        _ => bucket.insert(TokenBucket::new(rate, now.into_std())),
                    };
                    match bucket.take(bytes.len(), now.into_std()) {
                        Grant::Bytes(n) => n,
                        Grant::Wait(wait) => {
                            sleep(wait).await;
                            continue;
                        }
                    }
                }
            };
            dst.write_all(&bytes[..n]).await?;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds_and_never_goes_negative() {
        let mut rng = fastrand::Rng::with_seed(7);
        let base = Duration::from_millis(10);
        let jitter = Duration::from_millis(4);
        let delays: Vec<_> = (0..1000)
            .map(|_| jittered(base, jitter, &mut rng))
            .collect();
        assert!(delays
            .iter()
            .all(|d| (Duration::from_millis(6)..=Duration::from_millis(14)).contains(d)));
        assert!(delays.iter().any(|d| *d < Duration::from_millis(8)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(12)));
        let small = (0..1000).map(|_| jittered(Duration::from_millis(1), jitter, &mut rng));
        assert!(small.into_iter().all(|d| d <= Duration::from_millis(5)));
    }

    #[test]
    fn no_jitter_means_exactly_the_base_delay() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            jittered(Duration::from_millis(15), Duration::ZERO, &mut rng),
            Duration::from_millis(15)
        );
    }
}
