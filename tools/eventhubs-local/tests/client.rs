//! `dpl::eventhubs` (feature `eventhubs`) sending over HTTP to the local
//! endpoint: the real `HttpSender`, SAS tokens and batch bodies checked by
//! the endpoint. No timing assertions: waits are bounded by deadlines, and
//! the ServerBusy floor is shown by a deadline shorter than it.

use std::time::Duration;

use dpl::eventhubs::retry::{Refused, SendError};
use dpl::eventhubs::{send, Backoff, ConnectionString, HttpSender, Message, SendBatchApi, Stopped};
use eventhubs_local::{Fault, HubKey, LocalEventHubs};
use tokio::time::Instant;

const NAMESPACE: &str = "myns";
const HUB: &str = "events";
const KEY_NAME: &str = "send";
const KEY: &str = "c2VjcmV0LWtleS12YWx1ZQ==";

const FAST: Backoff = Backoff {
    base: Duration::from_millis(1),
    cap: Duration::from_millis(5),
};

async fn endpoint() -> LocalEventHubs {
    LocalEventHubs::start(vec![HubKey::new(NAMESPACE, HUB, KEY_NAME, KEY)])
        .await
        .unwrap()
}

fn sender(local: &LocalEventHubs, key: &str) -> HttpSender {
    let connection =
        ConnectionString::new("myns.servicebus.windows.net", KEY_NAME, key, Some(HUB)).unwrap();
    HttpSender::new(connection, HUB, Some(&local.base_url(NAMESPACE))).unwrap()
}

fn messages(dsns: &[&str]) -> Vec<Message> {
    dsns.iter()
        .enumerate()
        .map(|(i, dsn)| {
            Message::new(
                &format!(r#"{{"dsn":"{dsn}","n":{i}}}"#),
                dsn,
                &format!("event-{i}"),
                "datapoint",
            )
        })
        .collect()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[tokio::test]
async fn accepted_messages_equal_the_inputs_in_order_with_their_properties() {
    let local = endpoint().await;
    let input = messages(&["DSN1", "DSN2", "DSN1", "DSN3", "DSN2"]);
    let outcome = send(&sender(&local, KEY), &input, soon(), &FAST, 1).await;
    assert!(outcome.is_complete(), "{:?}", outcome.stopped);
    assert_eq!(outcome.accepted().len(), 5);
    let received = local.messages();
    // Sent per DSN, in order of first appearance, each DSN in input order
    // (one DSN at a time here).
    let expected: Vec<usize> = vec![0, 2, 1, 4, 3];
    assert_eq!(received.len(), expected.len());
    for (message, &i) in received.iter().zip(&expected) {
        let dsn = ["DSN1", "DSN2", "DSN1", "DSN3", "DSN2"][i];
        assert_eq!(message.body, format!(r#"{{"dsn":"{dsn}","n":{i}}}"#));
        assert_eq!(message.partition_key.as_deref(), Some(dsn));
        assert_eq!(message.user_properties["event_id"], format!("event-{i}"));
        assert_eq!(message.user_properties["event_type"], "datapoint");
        assert_eq!(
            (message.namespace.as_str(), message.hub.as_str()),
            ("myns.servicebus.windows.net", HUB)
        );
    }
    assert_eq!(local.answers(), vec![201, 201, 201]);
}

#[tokio::test]
async fn a_wrong_key_gives_the_401_error_without_retries() {
    let local = endpoint().await;
    let outcome = send(
        &sender(&local, "d3Jvbmcta2V5"),
        &messages(&["DSN1"]),
        soon(),
        &FAST,
        1,
    )
    .await;
    assert_eq!(
        outcome.stopped,
        Some(Stopped::Refused(Refused::Unauthorized))
    );
    let message = outcome.stopped.as_ref().unwrap().to_string();
    assert!(
        message.starts_with("401 Unauthorized: the SAS key was refused"),
        "{message}"
    );
    assert!(!message.contains("d3Jvbmcta2V5"));
    assert_eq!(local.answers(), vec![401]);
    assert_eq!(outcome.pending(), [0]);
    assert!(local.messages().is_empty());
}

#[tokio::test]
async fn two_503_then_201_is_retried_and_delivered_once() {
    let local = endpoint().await;
    local.fail_next(2, Fault::Unavailable);
    let outcome = send(
        &sender(&local, KEY),
        &messages(&["DSN1", "DSN1"]),
        soon(),
        &FAST,
        1,
    )
    .await;
    assert!(outcome.is_complete(), "{:?}", outcome.stopped);
    assert_eq!(outcome.stats.requests, 3);
    assert_eq!(outcome.stats.retries, 2);
    assert_eq!(local.answers(), vec![503, 503, 201]);
    assert_eq!(local.messages().len(), 2, "delivered once");
}

#[tokio::test]
async fn server_busy_and_500_answers_are_read_as_such() {
    let local = endpoint().await;
    local.fail_next(1, Fault::ServerBusy);
    local.fail_next(1, Fault::InternalError);
    let sender = sender(&local, KEY);
    let body = || bytes::Bytes::from_static(br#"[{"Body":"x"}]"#);
    assert_eq!(
        sender.send_batch(body()).await,
        Err(SendError::Status {
            status: 503,
            server_busy: true
        })
    );
    assert_eq!(
        sender.send_batch(body()).await,
        Err(SendError::Status {
            status: 500,
            server_busy: false
        })
    );
    assert_eq!(sender.send_batch(body()).await, Ok(()));
}

/// Azure says throttling in the body of a 503 (ServerBusy, error code
/// 50002); the reason phrase is the standard one. Either mark in the body
/// is ServerBusy; a 503 with neither is not.
#[tokio::test]
async fn server_busy_is_read_from_the_503_body_by_name_or_error_code() {
    let local = endpoint().await;
    local.fail_next(1, Fault::Throttled);
    local.fail_next(1, Fault::ServerBusy);
    local.fail_next(1, Fault::Unavailable);
    let sender = sender(&local, KEY);
    let body = || bytes::Bytes::from_static(br#"[{"Body":"x"}]"#);
    for server_busy in [true, true, false] {
        assert_eq!(
            sender.send_batch(body()).await,
            Err(SendError::Status {
                status: 503,
                server_busy
            })
        );
    }
    assert_eq!(local.answers(), vec![503, 503, 503]);
}

#[tokio::test]
async fn server_busy_is_not_retried_before_four_seconds() {
    let local = endpoint().await;
    local.fail_next(1, Fault::ServerBusy);
    // Less than the 4 s ServerBusy floor left: the sender stops instead of
    // retrying early.
    let deadline = Instant::now() + Duration::from_secs(3);
    let outcome = send(
        &sender(&local, KEY),
        &messages(&["DSN1"]),
        deadline,
        &FAST,
        1,
    )
    .await;
    assert_eq!(
        outcome.stopped,
        Some(Stopped::Deadline {
            last_error: Some(SendError::Status {
                status: 503,
                server_busy: true
            })
        })
    );
    assert_eq!(local.answers(), vec![503]);
    assert!(Instant::now() < deadline, "stopped without waiting");
}

#[tokio::test]
async fn payload_too_large_is_not_retried() {
    let local = endpoint().await;
    let sender = sender(&local, KEY);
    // Our packing never builds such a batch: post one by hand.
    let mut body = b"[".to_vec();
    body.extend(std::iter::repeat_n(b' ', 1_000_001));
    body.extend(b"]");
    assert_eq!(
        sender.send_batch(body.into()).await,
        Err(SendError::Status {
            status: 413,
            server_busy: false
        })
    );
    assert_eq!(
        dpl::eventhubs::classify(&SendError::Status {
            status: 413,
            server_busy: false
        }),
        dpl::eventhubs::Disposition::Refuse(Refused::TooLarge)
    );
    assert_eq!(local.answers(), vec![413]);
}

#[tokio::test]
async fn forbidden_on_cue_stops_and_keeps_later_batches_pending_in_order() {
    let local = endpoint().await;
    let sender = sender(&local, KEY);
    let input = messages(&["DSN1", "DSN2", "DSN3"]);
    // First batch accepted, second refused.
    let first = send(&sender, &input[..1], soon(), &FAST, 1).await;
    assert!(first.is_complete());
    local.fail_next(1, Fault::Forbidden);
    let outcome = send(&sender, &input[1..], soon(), &FAST, 1).await;
    assert_eq!(outcome.stopped, Some(Stopped::Refused(Refused::Forbidden)));
    assert_eq!(outcome.pending(), [0, 1]);
    assert_eq!(local.answers(), vec![201, 403]);
}

#[tokio::test]
async fn a_deadline_stops_retries_while_the_endpoint_is_down() {
    let local = endpoint().await;
    local.go_down();
    let backoff = Backoff {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(50),
    };
    let sender = sender(&local, KEY);
    // 503s are retried with backoff until the deadline, then it stops.
    let deadline = Instant::now() + Duration::from_millis(300);
    let outcome = send(&sender, &messages(&["DSN1"]), deadline, &backoff, 1).await;
    assert_eq!(
        outcome.stopped,
        Some(Stopped::Deadline {
            last_error: Some(SendError::Status {
                status: 503,
                server_busy: false
            })
        })
    );
    assert!(outcome.stats.requests > 1);
    assert_eq!(outcome.pending(), [0]);
    assert!(local.messages().is_empty());
    // Back up: the same messages go through.
    local.come_back();
    let outcome = send(&sender, &messages(&["DSN1"]), soon(), &backoff, 1).await;
    assert!(outcome.is_complete());
    assert_eq!(local.messages().len(), 1);
}

#[tokio::test]
async fn the_endpoint_refuses_expired_foreign_and_malformed_requests() {
    use dpl::eventhubs::sas::{resource_uri, SasToken};
    let local = endpoint().await;
    let url = format!(
        "{}/{HUB}/messages?api-version=2014-01",
        local.base_url(NAMESPACE)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let uri = resource_uri("myns.servicebus.windows.net", HUB);
    let good = SasToken::sign(KEY_NAME, KEY, &uri, now + 600);
    let body = br#"[{"Body":"x","BrokerProperties":{"PartitionKey":"D"}}]"#.to_vec();
    let cases: Vec<Case> = vec![
        (
            "good",
            url.clone(),
            good.header_value().into(),
            "application/vnd.microsoft.servicebus.json",
            body.clone(),
            201,
        ),
        (
            "expired",
            url.clone(),
            SasToken::sign(KEY_NAME, KEY, &uri, now - 1)
                .header_value()
                .into(),
            "application/vnd.microsoft.servicebus.json",
            body.clone(),
            401,
        ),
        (
            "other hub",
            url.clone(),
            SasToken::sign(
                KEY_NAME,
                KEY,
                "https://myns.servicebus.windows.net/other",
                now + 600,
            )
            .header_value()
            .into(),
            "application/vnd.microsoft.servicebus.json",
            body.clone(),
            401,
        ),
        (
            "namespace scope",
            url.clone(),
            SasToken::sign(
                KEY_NAME,
                KEY,
                "https://myns.servicebus.windows.net/",
                now + 600,
            )
            .header_value()
            .into(),
            "application/vnd.microsoft.servicebus.json",
            body.clone(),
            201,
        ),
        (
            "unknown key name",
            url.clone(),
            SasToken::sign("listen", KEY, &uri, now + 600)
                .header_value()
                .into(),
            "application/vnd.microsoft.servicebus.json",
            body.clone(),
            401,
        ),
        (
            "api version",
            url.replace("2014-01", "2015-01"),
            good.header_value().into(),
            "application/vnd.microsoft.servicebus.json",
            body.clone(),
            400,
        ),
        (
            "content type",
            url.clone(),
            good.header_value().into(),
            "application/json",
            body.clone(),
            400,
        ),
        (
            "bad body",
            url.clone(),
            good.header_value().into(),
            "application/vnd.microsoft.servicebus.json",
            br#"[{"Body":"x","Label":"y"}]"#.to_vec(),
            400,
        ),
        (
            "unknown hub",
            url.replace("/events/", "/nope/"),
            good.header_value().into(),
            "application/vnd.microsoft.servicebus.json",
            body.clone(),
            404,
        ),
    ];
    for (name, url, authorization, content_type, body, expected) in cases {
        let status = post(&url, &authorization, content_type, body).await;
        assert_eq!(status, expected, "{name}");
    }
}

/// Name, URL, Authorization, Content-Type, body, expected status.
type Case = (&'static str, String, String, &'static str, Vec<u8>, u16);

/// A raw POST over a fresh TCP connection (HTTP/1.1, closes after).
async fn post(url: &str, authorization: &str, content_type: &str, body: Vec<u8>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}
