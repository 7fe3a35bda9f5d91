//! A local Azure Event Hubs endpoint for the REST "Send batch events" API:
//! tests, the demo and benchmarks send to it instead of Azure.
//!
//! It listens on 127.0.0.1 (port 0 picks a free port, see
//! [`LocalEventHubs::addr`]), knows a set of event hubs with one key each
//! ([`HubKey`]: namespace, hub, key name, key), and checks every request as
//! the service does:
//!
//! | check                                                         | answer |
//! |---------------------------------------------------------------|--------|
//! | faults on cue ([`Fault`]; [`LocalEventHubs::go_down`]: 503 until [`LocalEventHubs::come_back`]) | 503 ServerBusy (body: ServerBusy, 50002) / 503 throttled (body: 50002) / 503 / 500 / 401 / 403 |
//! | (after every check below) a batch holding an event refused on cue ([`LocalEventHubs::refuse_event`]) | its status, e.g. 413 |
//! | method `POST`                                                 | 405    |
//! | path `/{namespace}/{hub}/messages` of a known hub             | 404    |
//! | query `api-version=2014-01`                                   | 400    |
//! | `Authorization: SharedAccessSignature ...`: `skn` known for the hub, `sr` is `https://{namespace}/{hub}` or `https://{namespace}/`, `se` not past, `sig` is the HMAC-SHA256 of `sr` and `se` under the key | 401 |
//! | `Content-Type: application/vnd.microsoft.servicebus.json`    | 400 (*) |
//! | body at most [`MAX_BATCH_BYTES`]                              | 413    |
//! | body a non-empty JSON array of objects with only `Body` (string), `BrokerProperties`, `UserProperties` (objects) | 400 |
//! | one `PartitionKey` across the batch (*)                       | 400    |
//! | otherwise: messages recorded in order                        | 201    |
//!
//! (*) Stricter than the documented API, to catch client bugs: Azure would
//! take a body of another content type as one message; the REST reference is
//! silent on mixed partition keys, which the service stores in one partition
//! (see `dpl::eventhubs::batch`).
//!
//! **Namespace routing: by path prefix.** Our client posts to
//! `{base}/{hub}/messages`; give it the base URL
//! [`LocalEventHubs::base_url`]`(namespace)` = `http://127.0.0.1:{port}/{namespace host}`,
//! so requests arrive at `/{namespace host}/{hub}/messages`. When the
//! endpoint knows a single namespace, `/{hub}/messages` works too.
//! Namespaces are written as hosts (`myns.servicebus.windows.net`); a bare
//! name (`myns`) gets `.servicebus.windows.net` appended.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dpl::eventhubs::limits::{API_VERSION, BATCH_CONTENT_TYPE, MAX_BATCH_BYTES};
use dpl::eventhubs::sas::ParsedSas;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The suffix of a bare namespace name.
pub const NAMESPACE_SUFFIX: &str = ".servicebus.windows.net";

/// One event hub the endpoint serves, with the one key that may send to it.
#[derive(Clone, PartialEq, Eq)]
pub struct HubKey {
    pub namespace: String,
    pub hub: String,
    pub key_name: String,
    pub key: String,
}

impl fmt::Debug for HubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubKey")
            .field("namespace", &self.namespace)
            .field("hub", &self.hub)
            .field("key_name", &self.key_name)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl HubKey {
    pub fn new(namespace: &str, hub: &str, key_name: &str, key: &str) -> HubKey {
        let namespace = namespace.to_ascii_lowercase();
        let namespace = if namespace.contains('.') {
            namespace
        } else {
            format!("{namespace}{NAMESPACE_SUFFIX}")
        };
        HubKey {
            namespace,
            hub: hub.to_owned(),
            key_name: key_name.to_owned(),
            key: key.to_owned(),
        }
    }

    /// The connection string a client would be given for this hub.
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://{}/;SharedAccessKeyName={};SharedAccessKey={};EntityPath={}",
            self.namespace, self.key_name, self.key, self.hub
        )
    }
}

/// `namespace/hub/keyname/key` (the key may contain `/`: base64).
impl FromStr for HubKey {
    type Err = String;

    fn from_str(text: &str) -> Result<HubKey, String> {
        let mut parts = text.splitn(4, '/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(ns), Some(hub), Some(name), Some(key))
                if !ns.is_empty() && !hub.is_empty() && !name.is_empty() && !key.is_empty() =>
            {
                Ok(HubKey::new(ns, hub, name, key))
            }
            _ => Err("expected namespace/hub/keyname/key".into()),
        }
    }
}

/// A failure to answer on cue, instead of checking the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 503 whose body names ServerBusy and its code 50002 (throttling),
    /// as Azure answers: only the body tells it from other 503s, the
    /// reason phrase is the standard "Service Unavailable".
    ServerBusy,
    /// 503 whose body gives only the throttling error code, 50002 ("Error
    /// code : 50002"), without the word ServerBusy.
    Throttled,
    /// 503 without ServerBusy (service unavailable, e.g. an update).
    Unavailable,
    /// 500 internal error.
    InternalError,
    /// 401, as for a refused key.
    Unauthorized,
    /// 403, as for a missing right or exceeded quota.
    Forbidden,
}

/// One accepted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub namespace: String,
    pub hub: String,
    pub body: String,
    pub partition_key: Option<String>,
    pub user_properties: Map<String, Value>,
}

impl ReceivedMessage {
    /// One NDJSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        serde_json::json!({
            "namespace": self.namespace,
            "hub": self.hub,
            "partition_key": self.partition_key,
            "user_properties": self.user_properties,
            "body": self.body,
        })
        .to_string()
    }
}

type Sink = Box<dyn Fn(&ReceivedMessage) + Send + Sync>;

#[derive(Default)]
struct State {
    hubs: Vec<HubKey>,
    faults: Mutex<VecDeque<Fault>>,
    down: Mutex<bool>,
    messages: Mutex<Vec<ReceivedMessage>>,
    answers: Mutex<Vec<u16>>,
    /// Event ids (`event_id` user property) refused with a status whenever
    /// a batch holds them: an event the hub cannot take.
    refused_events: Mutex<Vec<(String, StatusCode)>>,
    sink: Option<Sink>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running endpoint. Stops when dropped.
pub struct LocalEventHubs {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl LocalEventHubs {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start(hubs: Vec<HubKey>) -> std::io::Result<LocalEventHubs> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), hubs, None).await
    }

    /// Starts on `addr`; `sink` sees every accepted message, in order.
    pub async fn bind(
        addr: SocketAddr,
        hubs: Vec<HubKey>,
        sink: Option<Sink>,
    ) -> std::io::Result<LocalEventHubs> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            hubs,
            sink,
            ..State::default()
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        Ok(LocalEventHubs {
            addr,
            state,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a client uses for `namespace` (see the crate docs).
    pub fn base_url(&self, namespace: &str) -> String {
        format!(
            "http://{}/{}",
            self.addr,
            HubKey::new(namespace, "-", "-", "-").namespace
        )
    }

    /// The next `count` requests answer `fault`, after those already queued.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        lock(&self.state.faults).extend(std::iter::repeat_n(fault, count));
    }

    /// Every request answers 503 (not ServerBusy) until [`come_back`](Self::come_back).
    pub fn go_down(&self) {
        *lock(&self.state.down) = true;
    }

    pub fn come_back(&self) {
        *lock(&self.state.down) = false;
    }

    /// Every batch holding the event `event_id` answers `status` (413: too
    /// large for the hub; 400: malformed), until [`accept_event`](Self::accept_event).
    pub fn refuse_event(&self, event_id: &str, status: u16) {
        let status = StatusCode::from_u16(status).expect("an HTTP status");
        lock(&self.state.refused_events).push((event_id.to_owned(), status));
    }

    /// Takes the event `event_id` again.
    pub fn accept_event(&self, event_id: &str) {
        lock(&self.state.refused_events).retain(|(id, _)| id != event_id);
    }

    /// Accepted messages of all hubs, in order of acceptance.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        lock(&self.state.messages).clone()
    }

    /// The status of every answer given, in order.
    pub fn answers(&self) -> Vec<u16> {
        lock(&self.state.answers).clone()
    }
}

impl Drop for LocalEventHubs {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            // A client that hangs up mid-request is not our problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An answer: status, reason-ish detail in an Azure-like XML body.
fn answer(state: &State, status: StatusCode, detail: &str) -> Response<Full<Bytes>> {
    lock(&state.answers).push(status.as_u16());
    let body = if status == StatusCode::CREATED {
        Bytes::new()
    } else {
        Bytes::from(format!(
            "<Error><Code>{}</Code><Detail>{detail}</Detail></Error>",
            status.as_u16()
        ))
    };
    Response::builder()
        .status(status)
        .body(Full::new(body))
        .expect("static parts are valid")
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if *lock(&state.down) {
        return answer(
            state,
            StatusCode::SERVICE_UNAVAILABLE,
            "The endpoint is down.",
        );
    }
    let fault = lock(&state.faults).pop_front();
    if let Some(fault) = fault {
        return match fault {
            Fault::ServerBusy => answer(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "ServerBusy: The request was terminated because the namespace is being throttled. Error code : 50002. Please wait 4 seconds and try again.",
            ),
            Fault::Throttled => answer(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "The request was terminated because the entity is being throttled. Error code : 50002. Sub error: 102. Please wait 4 seconds and try again.",
            ),
            Fault::Unavailable => answer(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is temporarily unavailable.",
            ),
            Fault::InternalError => answer(state, StatusCode::INTERNAL_SERVER_ERROR, "Internal error."),
            Fault::Unauthorized => answer(state, StatusCode::UNAUTHORIZED, "InvalidSignature: the token has an invalid signature."),
            Fault::Forbidden => answer(state, StatusCode::FORBIDDEN, "Quota exceeded."),
        };
    }
    match check(state, request).await {
        Ok(messages) => {
            if let Some((id, status)) = refused_event(state, &messages) {
                return answer(state, status, &format!("The event {id} cannot be taken."));
            }
            for message in &messages {
                if let Some(sink) = &state.sink {
                    sink(message);
                }
            }
            lock(&state.messages).extend(messages);
            answer(state, StatusCode::CREATED, "")
        }
        Err((status, detail)) => answer(state, status, &detail),
    }
}

/// The first refused event a batch holds, if any.
fn refused_event(state: &State, messages: &[ReceivedMessage]) -> Option<(String, StatusCode)> {
    let refused = lock(&state.refused_events);
    messages.iter().find_map(|m| {
        let id = m.user_properties.get("event_id")?.as_str()?;
        refused.iter().find(|(r, _)| r == id).cloned()
    })
}

type Refusal = (StatusCode, String);

fn refuse<T>(status: StatusCode, detail: impl Into<String>) -> Result<T, Refusal> {
    Err((status, detail.into()))
}

/// The checks of the table in the crate docs, in order.
async fn check(state: &State, request: Request<Incoming>) -> Result<Vec<ReceivedMessage>, Refusal> {
    if request.method() != Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "only POST is served");
    }
    let hub = route(state, request.uri().path())
        .ok_or((StatusCode::NOT_FOUND, "no such event hub".to_owned()))?;
    let api_version = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("api-version="));
    if api_version != Some(API_VERSION) {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("api-version must be {API_VERSION}"),
        );
    }
    authorize(hub, request.headers().get(http::header::AUTHORIZATION))?;
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if content_type.as_deref() != Some(BATCH_CONTENT_TYPE) {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("Content-Type must be {BATCH_CONTENT_TYPE}"),
        );
    }
    let body = match Limited::new(request.into_body(), MAX_BATCH_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the batch is over {MAX_BATCH_BYTES} bytes"),
            )
        }
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "the body could not be read"),
    };
    parse_batch(hub, &body).map_err(|detail| (StatusCode::BAD_REQUEST, detail))
}

/// `/{namespace}/{hub}/messages`, or `/{hub}/messages` with one namespace.
fn route<'a>(state: &'a State, path: &str) -> Option<&'a HubKey> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (namespace, hub) = match segments.as_slice() {
        [namespace, hub, "messages"] => (Some(namespace.to_ascii_lowercase()), *hub),
        [hub, "messages"] => (None, *hub),
        _ => return None,
    };
    let mut namespaces = state.hubs.iter().map(|h| h.namespace.as_str());
    let first = namespaces.next()?;
    let namespace = match namespace {
        Some(namespace) => namespace,
        None if namespaces.all(|n| n == first) => first.to_owned(),
        None => return None,
    };
    state
        .hubs
        .iter()
        .find(|h| h.namespace == namespace && h.hub.eq_ignore_ascii_case(hub))
}

fn authorize(hub: &HubKey, header: Option<&http::HeaderValue>) -> Result<(), Refusal> {
    let unauthorized = |detail: &str| (StatusCode::UNAUTHORIZED, detail.to_owned());
    let header = header
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("MissingToken: no Authorization header"))?;
    let token =
        ParsedSas::parse(header).map_err(|e| unauthorized(&format!("MalformedToken: {e}")))?;
    if token.key_name != hub.key_name {
        return Err(unauthorized("InvalidSignature: unknown key name"));
    }
    let resource = token.resource.trim_end_matches('/').to_ascii_lowercase();
    let namespace_uri = format!("https://{}", hub.namespace);
    let hub_uri = format!("{namespace_uri}/{}", hub.hub.to_ascii_lowercase());
    if resource != namespace_uri && resource != hub_uri {
        return Err(unauthorized(
            "InvalidAudience: the token's resource is not this event hub",
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if token.expiry <= now {
        return Err(unauthorized("ExpiredToken: the token has expired"));
    }
    if !token.is_signed_by(&hub.key) {
        return Err(unauthorized(
            "InvalidSignature: the token has an invalid signature",
        ));
    }
    Ok(())
}

fn parse_batch(hub: &HubKey, body: &[u8]) -> Result<Vec<ReceivedMessage>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let items = value.as_array().ok_or("the body is not a JSON array")?;
    if items.is_empty() {
        return Err("the batch is empty".into());
    }
    let mut messages = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let object = item
            .as_object()
            .ok_or(format!("message {n} is not an object"))?;
        if let Some(key) = object
            .keys()
            .find(|k| !matches!(k.as_str(), "Body" | "BrokerProperties" | "UserProperties"))
        {
            return Err(format!("message {n} has an unknown member {key:?}"));
        }
        let body = object
            .get("Body")
            .and_then(Value::as_str)
            .ok_or(format!("message {n} has no string Body"))?;
        let object_member = |name: &str| match object.get(name) {
            None => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map.clone()),
            Some(_) => Err(format!("message {n}: {name} is not an object")),
        };
        let broker = object_member("BrokerProperties")?;
        let partition_key = match broker.get("PartitionKey") {
            None => None,
            Some(Value::String(key)) => Some(key.clone()),
            Some(_) => return Err(format!("message {n}: PartitionKey is not a string")),
        };
        messages.push(ReceivedMessage {
            namespace: hub.namespace.clone(),
            hub: hub.hub.clone(),
            body: body.to_owned(),
            partition_key,
            user_properties: object_member("UserProperties")?,
        });
    }
    if messages
        .windows(2)
        .any(|w| w[0].partition_key != w[1].partition_key)
    {
        return Err("the messages of a batch must share one PartitionKey".into());
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_keys_parse_and_bare_namespaces_get_the_suffix() {
        let key: HubKey = "myns/events/send/a/b+c==".parse().unwrap();
        assert_eq!(key.namespace, "myns.servicebus.windows.net");
        assert_eq!(
            (key.hub.as_str(), key.key_name.as_str(), key.key.as_str()),
            ("events", "send", "a/b+c==")
        );
        assert!("myns/events/send".parse::<HubKey>().is_err());
        assert!(!format!("{key:?}").contains("b+c"));
        let full = HubKey::new("Other.example.net", "h", "n", "k");
        assert_eq!(full.namespace, "other.example.net");
    }

    fn state() -> State {
        State {
            hubs: vec![
                HubKey::new("a", "h1", "n", "k"),
                HubKey::new("b", "h2", "n", "k"),
            ],
            ..State::default()
        }
    }

    #[test]
    fn routes_by_namespace_prefix_and_bare_hub_only_with_one_namespace() {
        let state = state();
        assert_eq!(
            route(&state, "/a.servicebus.windows.net/h1/messages")
                .unwrap()
                .hub,
            "h1"
        );
        assert!(route(&state, "/a.servicebus.windows.net/h2/messages").is_none());
        assert!(route(&state, "/h1/messages").is_none());
        assert!(route(&state, "/a.servicebus.windows.net/h1").is_none());
        let single = State {
            hubs: vec![HubKey::new("a", "h1", "n", "k")],
            ..State::default()
        };
        assert_eq!(route(&single, "/h1/messages").unwrap().hub, "h1");
    }

    #[test]
    fn batch_bodies_are_checked() {
        let hub = HubKey::new("a", "h", "n", "k");
        let ok = br#"[{"Body":"x","BrokerProperties":{"PartitionKey":"D"},"UserProperties":{"event_id":"1"}},{"Body":"y","BrokerProperties":{"PartitionKey":"D"}}]"#;
        let messages = parse_batch(&hub, ok).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].partition_key.as_deref(), Some("D"));
        assert_eq!(messages[0].user_properties["event_id"], "1");
        for bad in [
            &b"{}"[..],
            b"[]",
            b"not json",
            br#"[{"Body":1}]"#,
            br#"[{"Body":"x","Extra":1}]"#,
            br#"[{"Body":"x","UserProperties":[]}]"#,
            br#"[{"Body":"x","BrokerProperties":{"PartitionKey":"A"}},{"Body":"y","BrokerProperties":{"PartitionKey":"B"}}]"#,
        ] {
            assert!(parse_batch(&hub, bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
