//! The control API: a tiny HTTP/1.1 JSON server on 127.0.0.1, one request
//! per connection, so a shell script or another process can change faults
//! while the proxy runs (`curl -d '{"stall":true}' 127.0.0.1:PORT/faults`).
//!
//! | request             | answer                                             |
//! |---------------------|----------------------------------------------------|
//! | `GET /faults`       | the settings ([`crate::Faults`] as JSON)          |
//! | `POST /faults`      | applies a [`crate::FaultsPatch`], answers the new settings |
//! | `POST /reset`       | resets open connections: `{"reset": n}`            |
//! | `GET /stats`        | [`crate::Stats`]                                   |
//! | `POST /stats/reset` | the stats until now, then zeroes them              |
//!
//! Errors are `{"error": "..."}` with 400, 404 or 405.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tracing::warn;

use crate::burst::reason;
use crate::faults::FaultsPatch;
use crate::http::{self, BodyKind, HttpError};
use crate::proxy::{closed, Shared};

/// Largest request body: a burst body (1 MiB at most) plus the rest of
/// the JSON, with room for escaping.
const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

/// A client that has not sent its whole request by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to back off after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why a control request could not be read.
#[derive(Debug, thiserror::Error)]
enum ControlError {
    #[error("reading the request: {0}")]
    Io(#[from] io::Error),
    #[error("not an HTTP/1.1 request: {0}")]
    Http(#[from] HttpError),
    #[error("the request ended early")]
    Incomplete,
    #[error("request bodies need Content-Length (at most {MAX_BODY_BYTES} bytes)")]
    Body,
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// A JSON answer.
#[derive(Debug, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    /// JSON text, fields in the order the types declare them.
    pub body: String,
}

impl Reply {
    fn ok(body: impl Serialize) -> Self {
        match serde_json::to_string(&body) {
            Ok(body) => Self { status: 200, body },
            Err(error) => Self::error(500, error),
        }
    }

    fn error(status: u16, message: impl ToString) -> Self {
        Self {
            status,
            body: json!({ "error": message.to_string() }).to_string(),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let body = format!("{}\n", self.body);
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.status,
            reason(self.status),
            body.len()
        )
        .into_bytes()
    }
}

/// Serves control requests until the proxy shuts down.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut closing = shared.closing.subscribe();
    loop {
        tokio::select! {
            () = closed(&mut closing) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(answer(stream, Arc::clone(&shared)));
                }
                Err(error) => {
                    warn!(%error, "control accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

async fn answer(mut stream: TcpStream, shared: Arc<Shared>) {
    let reply = match timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(request)) => route(&request.method, &request.path, &request.body, &shared),
        Ok(Err(error)) => Reply::error(400, error),
        Err(_elapsed) => return,
    };
    // The client may have gone; there is nobody left to tell.
    let _ = stream.write_all(&reply.to_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> Result<Request, ControlError> {
    let mut buf = Vec::new();
    let head_len = loop {
        if let Some(len) = http::head_end(&buf)? {
            break len;
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(ControlError::Incomplete);
        }
    };
    let head = http::parse_request_head(&buf[..head_len])?;
    let BodyKind::Length(len) = head.body else {
        return Err(ControlError::Body);
    };
    if len > MAX_BODY_BYTES {
        return Err(ControlError::Body);
    }
    if head.expects_continue {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let end = head_len + len as usize;
    while buf.len() < end {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(ControlError::Incomplete);
        }
    }
    let path = head.target.split('?').next().unwrap_or_default().to_owned();
    Ok(Request {
        method: head.method,
        path,
        body: buf[head_len..end].to_vec(),
    })
}

/// Answers one control request.
pub(crate) fn route(method: &str, path: &str, body: &[u8], shared: &Shared) -> Reply {
    match (method, path) {
        ("GET", "/faults") => Reply::ok(shared.faults()),
        ("POST", "/faults") => match FaultsPatch::from_json(body).and_then(|p| shared.patch(p)) {
            Ok(faults) => Reply::ok(faults),
            Err(error) => Reply::error(400, error),
        },
        ("POST", "/reset") => Reply::ok(json!({ "reset": shared.reset_connections() })),
        ("GET", "/stats") => Reply::ok(shared.stats.snapshot()),
        ("POST", "/stats/reset") => {
            let stats = shared.stats.snapshot();
            shared.stats.clear();
            Reply::ok(stats)
        }
        (_, "/faults" | "/reset" | "/stats" | "/stats/reset") => {
            Reply::error(405, format!("{method} is not allowed on {path}"))
        }
        _ => Reply::error(404, format!("no endpoint {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Faults;
    use crate::proxy::Mode;

    fn json(reply: &Reply) -> serde_json::Value {
        serde_json::from_str(&reply.body).unwrap()
    }

    fn shared() -> Shared {
        Shared::new(([127, 0, 0, 1], 9).into(), Mode::Http, Faults::default())
    }

    #[test]
    fn post_faults_changes_the_settings_and_answers_them() {
        let shared = shared();
        let reply = route(
            "POST",
            "/faults",
            br#"{"latency_ms": 40, "refuse": true}"#,
            &shared,
        );
        assert_eq!(reply.status, 200);
        assert_eq!(json(&reply)["latency_ms"], 40);
        assert_eq!(json(&route("GET", "/faults", b"", &shared))["refuse"], true);
    }

    #[test]
    fn a_bad_patch_is_a_400_and_changes_nothing() {
        let shared = shared();
        let reply = route(
            "POST",
            "/faults",
            br#"{"latency_ms": 40, "http_burst": {"status": 503}}"#,
            &shared,
        );
        assert_eq!(reply.status, 400);
        assert!(json(&reply)["error"].as_str().unwrap().contains("count"));
        assert_eq!(shared.faults(), Faults::default());
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        let shared = shared();
        assert_eq!(route("GET", "/nope", b"", &shared).status, 404);
        assert_eq!(route("DELETE", "/faults", b"", &shared).status, 405);
        assert_eq!(route("GET", "/reset", b"", &shared).status, 405);
    }

    #[test]
    fn stats_reset_answers_the_stats_until_then() {
        let shared = shared();
        shared.stats.request_took(Duration::from_millis(3));
        let reply = route("POST", "/stats/reset", b"", &shared);
        assert_eq!(json(&reply)["request_times"]["count"], 1);
        assert_eq!(shared.stats.snapshot().request_times.count, 0);
    }
}
