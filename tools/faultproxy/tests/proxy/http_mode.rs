//! HTTP mode: bursts of answers from the proxy, request times, and the
//! fallback to plain forwarding.

use std::time::Duration;

use faultproxy::{FaultProxy, Faults, HttpBurst};

use crate::support::{connect, echo_server, round_trip, HttpClient, HttpUpstream};

const SERVER_BUSY: &str =
    "<Error><Code>ServerBusy</Code><Detail>The server is busy.</Detail></Error>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_answers_exactly_n_requests_then_forwards_on_one_connection() {
    let upstream = HttpUpstream::start().await;
    let proxy = FaultProxy::start_http(upstream.addr, Faults::default())
        .await
        .unwrap();
    let mut client = HttpClient::connect(proxy.addr()).await;
    assert_eq!(
        client.request("POST", "/first", "{}").await.text(),
        "/first #1"
    );

    proxy
        .set(|f| {
            f.http_burst = Some(HttpBurst::count(503, 3).with_body("application/xml", SERVER_BUSY))
        })
        .unwrap();
    for _ in 0..3 {
        let answer = client.request("POST", "/batch", r#"[{"Body":"x"}]"#).await;
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.text(), SERVER_BUSY);
        assert_eq!(answer.header("content-type"), Some("application/xml"));
        assert_eq!(answer.header("connection"), Some("keep-alive"));
    }
    // The upstream never saw the three: it counts this as its second.
    let forwarded = client.request("POST", "/batch", "[]").await;
    assert_eq!(
        (forwarded.status(), forwarded.text().as_str()),
        (200, "/batch #2")
    );
    assert_eq!(upstream.seen(), 2);
    assert_eq!(proxy.faults().http_burst, None);
    let stats = proxy.stats();
    assert_eq!((stats.requests_injected, stats.requests_forwarded), (3, 2));
    assert_eq!(stats.connections_accepted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probability_burst_answers_about_that_share_of_requests() {
    let upstream = HttpUpstream::start().await;
    let body = r#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}"#;
    let throttled =
        |p| Some(HttpBurst::probability(400, p).with_body("application/x-amz-json-1.1", body));
    let proxy = FaultProxy::start_http(
        upstream.addr,
        Faults {
            http_burst: throttled(0.5),
            ..Faults::default()
        },
    )
    .await
    .unwrap();
    let mut client = HttpClient::connect(proxy.addr()).await;
    let mut answered = 0;
    for _ in 0..200 {
        let answer = client.request("POST", "/", "{}").await;
        if answer.status() == 400 {
            assert_eq!(answer.text(), body);
            answered += 1;
        }
    }
    // Binomial(200, 0.5): 60..140 is more than 8 standard deviations wide.
    assert!((60..=140).contains(&answered), "{answered} of 200 answered");
    assert_eq!(upstream.seen(), 200 - answered);

    proxy.set(|f| f.http_burst = throttled(1.0)).unwrap();
    for _ in 0..5 {
        assert_eq!(client.request("POST", "/", "{}").await.status(), 400);
    }
    proxy.set(|f| f.http_burst = throttled(0.0)).unwrap();
    for _ in 0..5 {
        assert_eq!(client.request("POST", "/", "{}").await.status(), 200);
    }
    assert_eq!(upstream.seen(), 205 - answered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_give_request_time_percentiles() {
    let upstream = HttpUpstream::start().await;
    let proxy = FaultProxy::start_http(upstream.addr, Faults::default())
        .await
        .unwrap();
    let mut client = HttpClient::connect(proxy.addr()).await;
    // Upstream answer times 10, 20, ... 100 ms, in shuffled order.
    for ms in [30, 100, 10, 70, 50, 20, 90, 40, 80, 60] {
        client.request("GET", &format!("/sleep/{ms}"), "").await;
    }
    let times = proxy.stats().request_times;
    assert_eq!(times.count, 10);
    let within = |value: Duration, at_least: u64| {
        value >= Duration::from_millis(at_least) && value < Duration::from_millis(at_least + 30)
    };
    assert!(within(times.p50, 50), "p50 {:?}", times.p50);
    assert!(within(times.p90, 90), "p90 {:?}", times.p90);
    assert!(within(times.p99, 100), "p99 {:?}", times.p99);
    assert!(within(times.max, 100), "max {:?}", times.max);

    proxy.reset_stats();
    assert_eq!(proxy.stats().request_times.count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_times_include_the_latency_and_chunked_responses_are_followed() {
    let upstream = HttpUpstream::start().await;
    let proxy = FaultProxy::start_http(
        upstream.addr,
        Faults {
            latency: Duration::from_millis(40),
            ..Faults::default()
        },
    )
    .await
    .unwrap();
    let mut client = HttpClient::connect(proxy.addr()).await;
    for n in 1..=3 {
        let answer = client.request("GET", "/chunked", "").await;
        assert_eq!(answer.text(), format!("/chunked #{n}"));
    }
    // After chunked responses the connection is still followed as HTTP.
    proxy
        .set(|f| f.http_burst = Some(HttpBurst::count(429, 1)))
        .unwrap();
    assert_eq!(client.request("GET", "/", "").await.status(), 429);
    let times = proxy.stats().request_times;
    assert_eq!(times.count, 4);
    assert!(times.p50 >= Duration::from_millis(40), "{times:?}");
    assert!(times.max < Duration::from_millis(80), "{times:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_http_are_forwarded_as_they_are() {
    let proxy = FaultProxy::start_http(
        echo_server().await,
        Faults {
            http_burst: Some(HttpBurst::count(503, 10)),
            ..Faults::default()
        },
    )
    .await
    .unwrap();
    let mut client = connect(proxy.addr()).await;
    let hello = b"\x16\x03\x01 not http at all\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    assert_eq!(round_trip(&mut client, hello).await.unwrap(), hello);
    assert_eq!(round_trip(&mut client, b"more").await.unwrap(), b"more");
    assert_eq!(proxy.stats().requests_injected, 0);
}
