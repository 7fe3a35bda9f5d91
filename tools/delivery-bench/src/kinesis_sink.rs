//! A Kinesis `PutRecords` endpoint that takes everything at once, for the
//! benchmarks that measure our client rather than the emulator: moto spends
//! 20-100 ms of Python per call of 500 records (`docs/benchmarks.md`), so
//! behind moto every engine runs at moto's pace. The sink answers like the
//! service (`x-amz-json-1.1`, "PutRecords" in the Kinesis API reference:
//! `Records` of `Data` (base64) and `PartitionKey` in, `FailedRecordCount`
//! and a `SequenceNumber` and `ShardId` per record out), enforces none of a
//! stream's write limits (1,000 records and 1 MiB per second per shard:
//! those are the customer's to size), and records what it took, in order.
//!
//! Any other operation answers 400 `UnknownOperationException`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The one operation served (`X-Amz-Target`).
const PUT_RECORDS: &str = "Kinesis_20131202.PutRecords";

/// One record the sink took.
#[derive(Clone, Debug)]
pub struct Taken {
    pub partition_key: String,
    pub data: Vec<u8>,
    pub at: SystemTime,
}

#[derive(Default)]
struct State {
    taken: Mutex<Vec<Taken>>,
    calls: Mutex<usize>,
}

/// See the module docs. Stops when dropped.
pub struct KinesisSink {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl KinesisSink {
    /// Listens on 127.0.0.1, on a free port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let server = tokio::spawn(serve(listener, state.clone()));
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every record taken, in the order the calls were answered (a DSN's
    /// records in its order: the engine has one call per DSN in flight).
    pub fn taken(&self) -> Vec<Taken> {
        self.state.taken.lock().expect("sink lock").clone()
    }

    /// `PutRecords` calls answered.
    pub fn calls(&self) -> usize {
        *self.state.calls.lock().expect("sink lock")
    }
}

impl Drop for KinesisSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if target != PUT_RECORDS {
        return error(
            "UnknownOperationException",
            &format!("{target:?} is not served"),
        );
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return error("SerializationException", &e.to_string()),
    };
    match put_records(state, &body) {
        Ok(answer) => reply(StatusCode::OK, answer),
        Err(message) => error("SerializationException", &message),
    }
}

/// Takes the call's records, in order, and answers each with a sequence
/// number.
fn put_records(state: &State, body: &[u8]) -> Result<Value, String> {
    let request: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let records = request["Records"]
        .as_array()
        .ok_or("Records is not a list")?;
    let at = SystemTime::now();
    let mut taken = Vec::with_capacity(records.len());
    for record in records {
        let partition_key = record["PartitionKey"]
            .as_str()
            .ok_or("a record has no PartitionKey")?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(record["Data"].as_str().ok_or("a record has no Data")?)
            .map_err(|e| format!("Data is not base64: {e}"))?;
        taken.push(Taken {
            partition_key: partition_key.to_owned(),
            data,
            at,
        });
    }
    let mut all = state.taken.lock().expect("sink lock");
    let first = all.len();
    let answers: Vec<Value> = (first..first + taken.len())
        .map(|n| json!({"SequenceNumber": n.to_string(), "ShardId": "shardId-000000000000"}))
        .collect();
    all.extend(taken);
    *state.calls.lock().expect("sink lock") += 1;
    Ok(json!({"FailedRecordCount": 0, "Records": answers}))
}

fn error(kind: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::BAD_REQUEST,
        json!({"__type": kind, "message": message}),
    )
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static parts are valid")
}
