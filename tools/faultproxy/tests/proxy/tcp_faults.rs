//! Faults on plain TCP connections, against a local echo server.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use faultproxy::{FaultProxy, Faults, ProxyError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use crate::support::{assert_reset, connect, echo_server, round_trip, time_round_trip, STEP};

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

async fn echo_proxy(faults: Faults) -> FaultProxy {
    FaultProxy::start(echo_server().await, faults)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_added_per_round_trip_half_each_way() {
    // An upstream that notes when the first byte arrives, then echoes it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut byte = [0];
        while stream.read_exact(&mut byte).await.is_ok() {
            arrived_tx.send(Instant::now()).unwrap();
            stream.write_all(&byte).await.unwrap();
        }
    });
    let proxy = FaultProxy::start(
        upstream,
        Faults {
            latency: ms(60),
            ..Faults::default()
        },
    )
    .await
    .unwrap();
    let mut client = connect(proxy.addr()).await;
    for _ in 0..5 {
        let sent = Instant::now();
        round_trip(&mut client, b"x").await.unwrap();
        let rtt = sent.elapsed();
        let one_way = arrived.recv().await.unwrap() - sent;
        assert!(rtt >= ms(60) && rtt < ms(100), "round trip {rtt:?}");
        assert!(one_way >= ms(30) && one_way < ms(60), "one way {one_way:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_does_not_cap_throughput() {
    let proxy = echo_proxy(Faults {
        latency: ms(50),
        ..Faults::default()
    })
    .await;
    let stream = connect(proxy.addr()).await;
    let (mut read, mut write) = stream.into_split();
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let started = Instant::now();
    let writer = tokio::spawn(async move { write.write_all(&data).await.map(|()| write) });
    let mut back = vec![0; expected.len()];
    timeout(STEP, read.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed();
    drop(writer.await.unwrap().unwrap());
    assert!(back == expected, "bytes changed on the way");
    // Stop-and-wait (one 64 KiB chunk per 25 ms one-way delay) would need
    // 62 x 25 ms = 1.5 s; even two chunks in flight take ~0.8 s. The
    // delay line takes the 50 ms and little more.
    assert!(
        elapsed >= ms(50) && elapsed < ms(400),
        "4 MB took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_never_reorders_bytes() {
    let proxy = echo_proxy(Faults {
        latency: ms(10),
        jitter: ms(10),
        ..Faults::default()
    })
    .await;
    let stream = connect(proxy.addr()).await;
    let (mut read, mut write) = stream.into_split();
    let count = 300u32;
    let writer = tokio::spawn(async move {
        for i in 0..count {
            write.write_all(&i.to_be_bytes()).await.unwrap();
            // Separate writes become separate chunks with their own delay.
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        write
    });
    let mut back = vec![0; count as usize * 4];
    timeout(STEP, read.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    let _write = writer.await.unwrap();
    let order: Vec<u32> = back
        .chunks(4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(order, (0..count).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bandwidth_cap_holds_per_direction() {
    let proxy = echo_proxy(Faults {
        bandwidth: Some(100_000),
        ..Faults::default()
    })
    .await;
    let stream = connect(proxy.addr()).await;
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        write.write_all(&[7; 200_000]).await.unwrap();
        write
    });
    let mut back = vec![0; 200_000];
    timeout(STEP, read.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed();
    let _write = writer.await.unwrap();
    // 200 KB at 100 KB/s, less the 5 KB burst: 1.95 s each way, pipelined.
    assert!(
        elapsed >= ms(1800) && elapsed < ms(3000),
        "200 KB took {elapsed:?}"
    );
    assert_eq!(proxy.stats().bytes_up, 200_000);
    assert_eq!(proxy.stats().bytes_down, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_resets_new_connections_while_old_ones_keep_working() {
    let proxy = echo_proxy(Faults::default()).await;
    let mut old = connect(proxy.addr()).await;
    round_trip(&mut old, b"before").await.unwrap();

    proxy.set(|f| f.refuse = true).unwrap();
    // The kernel completes the handshake, the proxy then resets: the reset
    // shows in the connect (if it came first) or in the first read.
    let refused = async {
        let mut stream = TcpStream::connect(proxy.addr()).await?;
        stream.read(&mut [0]).await
    };
    let refused = timeout(STEP, refused).await.unwrap();
    assert_eq!(
        refused.map_err(|e| e.kind()).err(),
        Some(ErrorKind::ConnectionReset)
    );
    assert_eq!(round_trip(&mut old, b"during").await.unwrap(), b"during");

    proxy.set(|f| f.refuse = false).unwrap();
    let mut new = connect(proxy.addr()).await;
    assert_eq!(round_trip(&mut new, b"after").await.unwrap(), b"after");
    let stats = proxy.stats();
    assert_eq!(
        (stats.connections_refused, stats.connections_accepted),
        (1, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_kills_every_open_connection() {
    let proxy = echo_proxy(Faults::default()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = connect(proxy.addr()).await;
        round_trip(&mut client, b"hi").await.unwrap();
        clients.push(client);
    }
    assert_eq!(proxy.reset_connections(), 3);
    for client in &mut clients {
        assert_reset(client).await;
    }
    let mut fresh = connect(proxy.addr()).await;
    assert_eq!(round_trip(&mut fresh, b"again").await.unwrap(), b"again");
    assert_eq!(proxy.stats().connections_reset, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_holds_bytes_until_unstalled() {
    let proxy = echo_proxy(Faults::default()).await;
    let mut old = connect(proxy.addr()).await;
    round_trip(&mut old, b"warm").await.unwrap();
    proxy.set(|f| f.stall = true).unwrap();
    let mut new = connect(proxy.addr()).await;
    for client in [&mut old, &mut new] {
        client.write_all(b"held").await.unwrap();
    }
    for client in [&mut old, &mut new] {
        let mut back = [0; 4];
        let held = timeout(ms(300), client.read_exact(&mut back)).await;
        assert!(held.is_err(), "bytes moved while stalled");
    }
    assert_eq!(proxy.stats().bytes_up, 4);

    let unstalled = Instant::now();
    proxy.set(|f| f.stall = false).unwrap();
    for client in [&mut old, &mut new] {
        let mut back = [0; 4];
        timeout(STEP, client.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&back, b"held");
    }
    assert!(unstalled.elapsed() < ms(100), "{:?}", unstalled.elapsed());
}

#[tokio::test]
async fn a_non_loopback_upstream_is_refused() {
    for upstream in ["10.0.0.1:5000", "0.0.0.0:5000", "[2001:db8::1]:443"] {
        let result = FaultProxy::start(upstream.parse().unwrap(), Faults::default()).await;
        let Err(ProxyError::NotLoopback(error)) = result else {
            panic!("{upstream} was accepted");
        };
        assert!(error.to_string().contains("not on loopback"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_changes_apply_to_running_connections() {
    let proxy = echo_proxy(Faults::default()).await;
    let mut client = connect(proxy.addr()).await;
    let quick = time_round_trip(&mut client, b"a").await;
    assert!(quick < ms(20), "{quick:?}");
    proxy.set(|f| f.latency = ms(80)).unwrap();
    let slow = time_round_trip(&mut client, b"b").await;
    assert!(slow >= ms(80), "{slow:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_resets_open_connections_and_stops_listening() {
    let proxy = echo_proxy(Faults::default()).await;
    let addr = proxy.addr();
    let mut client = connect(addr).await;
    round_trip(&mut client, b"hi").await.unwrap();
    timeout(STEP, proxy.shutdown()).await.unwrap();
    assert_reset(&mut client).await;
    let refused = TcpStream::connect(addr).await.map_err(|e| e.kind());
    assert_eq!(refused.err(), Some(ErrorKind::ConnectionRefused));
}
