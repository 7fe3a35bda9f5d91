//! Answers of "Send batch events" and what to do about them, in one place:
//! [`response_outcome`] turns an HTTP answer into delivered-or-[`SendError`],
//! [`classify`] says whether an error is worth retrying and how long to wait
//! at least, [`DEFAULT_BACKOFF`] says how long to wait before the next attempt.
//!
//! | answer                                   | verdict                               |
//! |------------------------------------------|---------------------------------------|
//! | 201                                      | delivered                             |
//! | 503 whose body says ServerBusy or 50002  | retry, wait ≥ [`SERVER_BUSY_MIN_WAIT`] |
//! | other 5xx, 429, attempt timeout, network | retry, full-jitter backoff            |
//! | 401, 403, 404, 413, other 4xx, other     | refused: not retried, [`Refused`]     |

use std::time::Duration;

/// After ServerBusy, wait at least 4 s. Azure Event Hubs Java SDK,
/// `ServerBusyException`: "When encountered this exception user should wait
/// at least 4 seconds before any retry/runtime operations for the said entity
/// again"; `shared/reference/limits.md`: "throttling answers ServerBusy (wait
/// at least 4 s)".
pub const SERVER_BUSY_MIN_WAIT: Duration = Duration::from_secs(4);

/// How the service says it throttles: HTTP 503 with an error body naming
/// ServerBusy or its error code 50002 (Azure Event Hubs, "Troubleshoot
/// ... throttling" / "Resource Manager exceptions": error code 50002,
/// ServerBusy, "the request was terminated because the namespace is being
/// throttled"). Only the status and the body are read: the reason phrase
/// is not something to rely on, since the HTTP stack hands us the
/// canonical phrase of the status (`StatusCode::canonical_reason`), never
/// the one on the wire.
const SERVER_BUSY: &str = "ServerBusy";
/// The error code of ServerBusy, see [`SERVER_BUSY`].
const SERVER_BUSY_CODE: &str = "50002";

/// Why one attempt did not deliver its batch. Carries no secret: neither the
/// token nor the body sent; of an error body only whether it said ServerBusy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The attempt did not finish within its timeout.
    #[error("send batch timed out after {0:?}")]
    Timeout(Duration),
    /// The request could not be sent or the answer not read.
    #[error("send batch could not be sent: {0}")]
    Transport(String),
    /// The service answered something other than 201.
    #[error("send batch answered HTTP {status}{}", if *.server_busy { " (ServerBusy)" } else { "" })]
    Status { status: u16, server_busy: bool },
}

/// Why a batch is not retried: a message for the subscription's health.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("401 Unauthorized: the SAS key was refused (wrong key or key name, or expired token)")]
    Unauthorized,
    #[error(
        "403 Forbidden: the key may not send to this event hub, or the namespace quota is exceeded"
    )]
    Forbidden,
    #[error("404 Not Found: no such event hub in this namespace")]
    NotFound,
    #[error("413 Request Entity Too Large: the batch is over the event hub's size limit")]
    TooLarge,
    #[error("HTTP {0}: the service refused the batch")]
    Other(u16),
}

impl Refused {
    /// Whether the refusal is about the events sent (too large, malformed),
    /// not about the hub or the key: sending the events apart finds the one
    /// to set aside, and the others are delivered.
    pub fn is_about_the_event(&self) -> bool {
        matches!(self, Refused::TooLarge | Refused::Other(400))
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Send again after at least `min_wait` (and the backoff's wait).
    Retry { min_wait: Duration },
    /// Do not send again.
    Refuse(Refused),
}

/// The outcome of one answer: `Ok` for 201 (the only success "Send batch
/// events" documents), else the error, with ServerBusy recognised from the
/// status (503) and the error body ([`SERVER_BUSY`], [`SERVER_BUSY_CODE`]).
pub fn response_outcome(status: u16, body: &[u8]) -> Result<(), SendError> {
    if status == 201 {
        return Ok(());
    }
    let server_busy = status == 503 && says_server_busy(body);
    Err(SendError::Status {
        status,
        server_busy,
    })
}

/// Whether an error body names ServerBusy (any case) or holds its code as a
/// number of its own (not inside a tracking id's hex digits).
fn says_server_busy(body: &[u8]) -> bool {
    let word = body
        .windows(SERVER_BUSY.len())
        .any(|w| w.eq_ignore_ascii_case(SERVER_BUSY.as_bytes()));
    let code = SERVER_BUSY_CODE.as_bytes();
    let apart = |at: Option<&u8>| !at.is_some_and(u8::is_ascii_alphanumeric);
    word || (0..body.len().saturating_sub(code.len() - 1)).any(|i| {
        &body[i..i + code.len()] == code
            && apart(i.checked_sub(1).and_then(|j| body.get(j)))
            && apart(body.get(i + code.len()))
    })
}

/// Retry or refuse; see the table in the module docs.
pub fn classify(error: &SendError) -> Disposition {
    let retry = |min_wait| Disposition::Retry { min_wait };
    match *error {
        SendError::Timeout(_) | SendError::Transport(_) => retry(Duration::ZERO),
        SendError::Status {
            server_busy: true, ..
        } => retry(SERVER_BUSY_MIN_WAIT),
        SendError::Status { status, .. } if status >= 500 || status == 429 => retry(Duration::ZERO),
        SendError::Status { status, .. } => Disposition::Refuse(match status {
            401 => Refused::Unauthorized,
            403 => Refused::Forbidden,
            404 => Refused::NotFound,
            413 => Refused::TooLarge,
            other => Refused::Other(other),
        }),
    }
}

pub use crate::backoff::Backoff;

/// 100 ms doubling up to 8 s: a throughput unit's quota is per second, and
/// ServerBusy brings its own 4 s floor ([`SERVER_BUSY_MIN_WAIT`]).
pub const DEFAULT_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_secs(8));

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> SendError {
        SendError::Status {
            status,
            server_busy: false,
        }
    }

    #[test]
    fn only_201_is_delivered() {
        assert_eq!(response_outcome(201, b""), Ok(()));
        assert_eq!(response_outcome(200, b""), Err(status(200)));
        assert_eq!(response_outcome(500, b""), Err(status(500)));
    }

    #[test]
    fn server_busy_is_read_from_a_503_body_by_name_or_code() {
        let busy = Err(SendError::Status {
            status: 503,
            server_busy: true,
        });
        for body in [
            &b"<Error><Code>503</Code><Detail>ServerBusy: The request was terminated because the namespace is being throttled.</Detail></Error>"[..],
            b"<Error><Code>50002</Code><Detail>The request was terminated because the entity is being throttled. Error code : 50002. Please wait 4 seconds and try again.</Detail></Error>",
            b"serverbusy",
        ] {
            assert_eq!(response_outcome(503, body), busy, "{}", String::from_utf8_lossy(body));
        }
        for not_busy in [
            &b"maintenance"[..],
            b"",
            // 50002 inside a tracking id or a longer number is not the code.
            b"TrackingId:a50002bc-0000-0000-0000-000000000000",
            b"Error code : 500021",
        ] {
            assert_eq!(response_outcome(503, not_busy), Err(status(503)));
        }
        // Only a 503 is ServerBusy.
        assert_eq!(response_outcome(500, b"ServerBusy 50002"), Err(status(500)));
    }

    #[test]
    fn transient_failures_are_retried_and_server_busy_waits_four_seconds() {
        for transient in [
            SendError::Timeout(Duration::from_secs(10)),
            SendError::Transport("connection reset".into()),
            status(500),
            status(502),
            status(503),
            status(429),
        ] {
            assert_eq!(
                classify(&transient),
                Disposition::Retry {
                    min_wait: Duration::ZERO
                },
                "{transient}"
            );
        }
        let busy = SendError::Status {
            status: 503,
            server_busy: true,
        };
        assert_eq!(
            classify(&busy),
            Disposition::Retry {
                min_wait: SERVER_BUSY_MIN_WAIT
            }
        );
        assert_eq!(SERVER_BUSY_MIN_WAIT, Duration::from_secs(4));
    }

    #[test]
    fn client_errors_are_refused_with_a_reason() {
        let cases = [
            (
                401,
                Refused::Unauthorized,
                "401 Unauthorized: the SAS key was refused",
            ),
            (403, Refused::Forbidden, "403 Forbidden"),
            (404, Refused::NotFound, "404 Not Found"),
            (413, Refused::TooLarge, "413 Request Entity Too Large"),
            (400, Refused::Other(400), "HTTP 400"),
            (200, Refused::Other(200), "HTTP 200"),
        ];
        for (code, refused, message) in cases {
            assert_eq!(
                classify(&status(code)),
                Disposition::Refuse(refused.clone())
            );
            assert!(refused.to_string().starts_with(message), "{refused}");
        }
    }
}
