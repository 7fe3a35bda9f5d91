//! The control port, in-process and through the `faultproxy` binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use faultproxy::{FaultProxy, Faults};
use serde_json::{json, Value};

use crate::support::{
    assert_reset, connect, echo_server, round_trip, time_round_trip, HttpClient, HttpUpstream,
};

/// One control request (the control server closes after each).
async fn control(addr: SocketAddr, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let answer = HttpClient::connect(addr)
        .await
        .request(method, path, &body)
        .await;
    (
        answer.status(),
        serde_json::from_slice(&answer.body).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_port_changes_faults_while_running() {
    let proxy = FaultProxy::start(echo_server().await, Faults::default())
        .await
        .unwrap();
    let port = proxy.start_control(0).await.unwrap();
    let mut client = connect(proxy.addr()).await;
    round_trip(&mut client, b"fast").await.unwrap();

    let (status, faults) = control(port, "POST", "/faults", json!({"latency_ms": 100})).await;
    assert_eq!((status, &faults["latency_ms"]), (200, &json!(100)));
    let took = time_round_trip(&mut client, b"slow").await;
    assert!(took >= Duration::from_millis(100), "{took:?}");

    let (status, faults) = control(port, "GET", "/faults", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(faults["latency_ms"], 100);
    assert_eq!(faults["bandwidth_bytes_per_s"], Value::Null);

    let (status, error) = control(port, "POST", "/faults", json!({"refuse": "yes"})).await;
    assert_eq!(status, 400);
    assert!(
        error["error"].as_str().unwrap().contains("invalid JSON"),
        "{error}"
    );

    let (_, stats) = control(port, "GET", "/stats", Value::Null).await;
    assert_eq!(stats["connections_open"], 1);
    assert_eq!(stats["bytes_up"], 8);

    let (status, reset) = control(port, "POST", "/reset", Value::Null).await;
    assert_eq!((status, reset), (200, json!({"reset": 1})));
    assert_reset(&mut client).await;

    let (_, before) = control(port, "POST", "/stats/reset", Value::Null).await;
    assert_eq!(before["connections_reset"], 1);
    let (_, after) = control(port, "GET", "/stats", Value::Null).await;
    assert_eq!(after["connections_reset"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_port_sets_http_bursts() {
    let upstream = HttpUpstream::start().await;
    let proxy = FaultProxy::start_http(upstream.addr, Faults::default())
        .await
        .unwrap();
    let port = proxy.start_control(0).await.unwrap();
    let burst = json!({"http_burst": {"status": 503, "count": 2,
        "body": "<Error><Code>ServerBusy</Code></Error>", "content_type": "application/xml"}});
    let (status, faults) = control(port, "POST", "/faults", burst).await;
    assert_eq!((status, &faults["http_burst"]["count"]), (200, &json!(2)));
    let mut client = HttpClient::connect(proxy.addr()).await;
    let statuses = [
        client.request("POST", "/", "").await.status(),
        client.request("POST", "/", "").await.status(),
        client.request("POST", "/", "").await.status(),
    ];
    assert_eq!(statuses, [503, 503, 200]);
    let (_, stats) = control(port, "GET", "/stats", Value::Null).await;
    assert_eq!(stats["requests_injected"], 2);
    assert_eq!(stats["request_times"]["count"], 3);
    assert!(stats["request_times"]["p50_ms"].as_f64().unwrap() >= 0.0);
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultproxy"))
}

/// Reads `prefix ADDR` from the binary's stdout.
fn address_line(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    prefix: &str,
) -> SocketAddr {
    let line = lines.next().expect("a line on stdout").unwrap();
    line.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_its_addresses_obeys_its_control_port_and_stops_on_ctrl_c() {
    let upstream = echo_server().await;
    let mut child = binary()
        .args([
            "--upstream",
            &upstream.to_string(),
            "--latency",
            "60ms",
            "--control-port",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listen = address_line(&mut lines, "listening on ");
    let port = address_line(&mut lines, "control on ");

    let mut client = connect(listen).await;
    let took = time_round_trip(&mut client, b"slow").await;
    assert!(took >= Duration::from_millis(60), "{took:?}");
    control(port, "POST", "/faults", json!({"latency_ms": 0})).await;
    let took = time_round_trip(&mut client, b"fast").await;
    assert!(took < Duration::from_millis(40), "{took:?}");

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn bad_flags_give_an_error_naming_the_flag() {
    for (args, flag, words) in [
        (
            &["--upstream", "127.0.0.1:5000", "--latency", "30x"][..],
            "--latency",
            "unknown unit",
        ),
        (
            &["--upstream", "127.0.0.1:5000", "--bandwidth", "fast"],
            "--bandwidth",
            "not a number",
        ),
        (
            &["--upstream", "10.0.0.1:5000"],
            "--upstream",
            "not on loopback",
        ),
        (
            &["--upstream", "127.0.0.1:5000", "--listen", "0.0.0.0:80"],
            "--listen",
            "not on loopback",
        ),
        (
            &[
                "--upstream",
                "127.0.0.1:5000",
                "--http",
                "--burst-status",
                "200",
                "--burst-count",
                "1",
            ],
            "--burst-status",
            "not in 400..=599",
        ),
    ] {
        let output = binary().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains(flag) && stderr.contains(words),
            "{args:?}: {stderr}"
        );
    }
}
