//! HTTP mode for one connection: the request reader finds where each
//! request ends, answers HTTP bursts itself and times requests; the
//! response reader matches each response to its request. On anything the
//! proxy cannot follow, both sides fall back to plain forwarding.
//!
//! An answer the proxy gives itself must not overtake responses still due
//! for earlier (pipelined) requests, so the request reader waits until
//! every forwarded request has been answered before queueing it.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::burst;
use crate::http::{self, BodyKind, BodyScanner};
use crate::pipe::{forward_raw, PipeIn, READ_BUFFER_BYTES};
use crate::proxy::Shared;

/// A forwarded request awaiting its response.
#[derive(Debug, Clone, Copy)]
struct Exchange {
    /// When the request's first byte arrived.
    started: Instant,
    /// The response to `HEAD` has no body whatever its headers say.
    head_request: bool,
}

/// The requests of one connection that await responses, in order.
pub(crate) struct Exchanges {
    pending: watch::Sender<VecDeque<Exchange>>,
    /// Set when either side stops following HTTP.
    raw: AtomicBool,
}

impl Default for Exchanges {
    fn default() -> Self {
        Self {
            pending: watch::Sender::new(VecDeque::new()),
            raw: AtomicBool::new(false),
        }
    }
}

impl Exchanges {
    fn push(&self, exchange: Exchange) {
        self.pending
            .send_modify(|pending| pending.push_back(exchange));
    }

    fn front(&self) -> Option<Exchange> {
        self.pending.borrow().front().copied()
    }

    fn pop(&self) {
        self.pending.send_modify(|pending| {
            pending.pop_front();
        });
    }

    /// Waits until every forwarded request has had its response queued.
    async fn answered(&self) {
        // The sender lives in `self`, so the wait cannot fail.
        let _ = self
            .pending
            .subscribe()
            .wait_for(|pending| pending.is_empty())
            .await;
    }

    fn is_raw(&self) -> bool {
        self.raw.load(Ordering::Relaxed)
    }

    /// Stops following HTTP; requests still waiting are not timed.
    fn go_raw(&self) {
        self.raw.store(true, Ordering::Relaxed);
        self.pending.send_modify(VecDeque::clear);
    }
}

/// The next message head, or why there is none.
enum Next {
    /// A complete head of this many bytes at the start of the buffer; its
    /// first byte arrived at the instant given.
    Head(usize, Instant),
    /// The stream ended cleanly between messages.
    End,
    /// Not HTTP the proxy can follow (or the stream ended mid-head).
    NotHttp,
}

/// How a body ended.
#[derive(Debug, PartialEq)]
enum BodyEnd {
    Complete,
    /// The stream ended first (normal for a close-delimited response).
    StreamEnded,
    NotHttp,
    /// The pipe it went into is gone: the connection is ending.
    Closed,
}

/// A source read message by message, keeping what belongs to the next one.
struct Framed<'a, R> {
    src: &'a mut R,
    buf: Vec<u8>,
    read_at: Instant,
}

impl<'a, R: AsyncRead + Unpin> Framed<'a, R> {
    fn new(src: &'a mut R) -> Self {
        Self {
            src,
            buf: Vec::new(),
            read_at: Instant::now(),
        }
    }

    /// Reads more; `false` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        self.buf.reserve(READ_BUFFER_BYTES);
        let n = self.src.read_buf(&mut self.buf).await?;
        self.read_at = Instant::now();
        Ok(n > 0)
    }

    async fn next_head(&mut self) -> io::Result<Next> {
        let mut started = (!self.buf.is_empty()).then_some(self.read_at);
        loop {
            match http::head_end(&self.buf) {
                Ok(Some(len)) => return Ok(Next::Head(len, started.unwrap_or(self.read_at))),
                Ok(None) => {}
                Err(_) => return Ok(Next::NotHttp),
            }
            if !self.fill().await? {
                return Ok(if self.buf.is_empty() {
                    Next::End
                } else {
                    Next::NotHttp
                });
            }
            started.get_or_insert(self.read_at);
        }
    }

    /// Takes the head of `head_len` bytes and the body after it off the
    /// buffer, reading as needed, and sends them into `out` as they come
    /// (or drops them when `out` is `None`).
    async fn pass(
        &mut self,
        head_len: usize,
        mut body: BodyScanner,
        mut out: Option<&mut PipeIn>,
    ) -> io::Result<BodyEnd> {
        let mut chunk: Vec<u8> = self.buf.drain(..head_len).collect();
        loop {
            let end = match body.scan(&self.buf) {
                Ok(used) => {
                    chunk.extend(self.buf.drain(..used));
                    body.is_done().then_some(BodyEnd::Complete)
                }
                Err(_) => Some(BodyEnd::NotHttp),
            };
            let chunk = std::mem::take(&mut chunk);
            if let Some(out) = out.as_deref_mut() {
                if out.send(chunk).await.is_err() {
                    return Ok(BodyEnd::Closed);
                }
            }
            if let Some(end) = end {
                return Ok(end);
            }
            if !self.fill().await? {
                return Ok(BodyEnd::StreamEnded);
            }
        }
    }

    /// Stops following HTTP on this connection, and forwards the buffer
    /// and the rest of the stream as plain bytes.
    async fn into_raw(self, mut out: PipeIn, exchanges: &Exchanges) -> io::Result<()> {
        exchanges.go_raw();
        if !self.buf.is_empty() && out.send(self.buf).await.is_err() {
            return Ok(());
        }
        forward_raw(self.src, out).await
    }
}

/// Client to upstream: forwards requests, or answers them when an HTTP
/// burst says so.
pub(crate) async fn forward_requests<R: AsyncRead + Unpin>(
    src: &mut R,
    mut up: PipeIn,
    mut down: PipeIn,
    exchanges: &Exchanges,
    shared: &Shared,
) -> io::Result<()> {
    let mut framed = Framed::new(src);
    loop {
        if exchanges.is_raw() {
            return framed.into_raw(up, exchanges).await;
        }
        let (head_len, started) = match framed.next_head().await? {
            Next::Head(len, started) => (len, started),
            Next::End => {
                let _ = up.eof();
                return Ok(());
            }
            Next::NotHttp => {
                return framed.into_raw(up, exchanges).await;
            }
        };
        let head = match http::parse_request_head(&framed.buf[..head_len]) {
            Ok(head) if !head.leaves_http => head,
            _ => {
                return framed.into_raw(up, exchanges).await;
            }
        };
        let body = BodyScanner::new(head.body);
        // A client that sent `Expect: 100-continue` may wait for the
        // interim answer only the upstream gives; such requests pass.
        let answer = (!head.expects_continue)
            .then(|| shared.take_burst())
            .flatten();
        let out = match &answer {
            Some(_) => None,
            None => {
                exchanges.push(Exchange {
                    started,
                    head_request: head.method == "HEAD",
                });
                shared.stats.forwarded();
                Some(&mut up)
            }
        };
        match framed.pass(head_len, body, out).await? {
            BodyEnd::Complete => {}
            BodyEnd::StreamEnded => {
                let _ = up.eof();
                return Ok(());
            }
            BodyEnd::NotHttp => {
                return framed.into_raw(up, exchanges).await;
            }
            BodyEnd::Closed => return Ok(()),
        }
        if let Some(burst) = answer {
            exchanges.answered().await;
            shared.stats.injected();
            let sent = down.send_round_trip(burst::render(&burst)).await;
            if sent.and_then(|()| down.response_end(started)).is_err() {
                return Ok(());
            }
        }
    }
}

/// Upstream to client: forwards responses, timing each request.
pub(crate) async fn forward_responses<R: AsyncRead + Unpin>(
    src: &mut R,
    mut down: PipeIn,
    exchanges: &Exchanges,
) -> io::Result<()> {
    let mut framed = Framed::new(src);
    loop {
        if exchanges.is_raw() {
            return framed.into_raw(down, exchanges).await;
        }
        let head_len = match framed.next_head().await? {
            Next::Head(len, _) => len,
            Next::End => {
                exchanges.go_raw();
                let _ = down.eof();
                return Ok(());
            }
            Next::NotHttp => {
                return framed.into_raw(down, exchanges).await;
            }
        };
        let parsed = http::parse_response_head(&framed.buf[..head_len]).ok();
        // After 101 (switching protocols) what follows is not HTTP.
        let parsed = parsed.filter(|head| head.status != 101);
        let (Some(exchange), Some(head)) = (exchanges.front(), parsed) else {
            // Unparseable, a response nobody asked for, or a protocol switch.
            return framed.into_raw(down, exchanges).await;
        };
        let kind = head.body(exchange.head_request);
        let end = framed
            .pass(head_len, BodyScanner::new(kind), Some(&mut down))
            .await?;
        let is_final = head.status >= 200;
        match end {
            BodyEnd::Complete if !is_final => {}
            BodyEnd::Complete => {
                if down.response_end(exchange.started).is_err() {
                    return Ok(());
                }
                exchanges.pop();
            }
            BodyEnd::StreamEnded => {
                if kind == BodyKind::UntilClose {
                    let _ = down.response_end(exchange.started);
                }
                exchanges.go_raw();
                let _ = down.eof();
                return Ok(());
            }
            BodyEnd::NotHttp => {
                return framed.into_raw(down, exchanges).await;
            }
            BodyEnd::Closed => return Ok(()),
        }
    }
}
