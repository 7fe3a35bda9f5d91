//! Local servers and clients the proxy is tested against: a TCP echo
//! server, a keep-alive HTTP/1.1 server that counts the requests it sees,
//! and a minimal HTTP/1.1 client on one connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Generous bound on any single step, so a broken proxy fails a test
/// instead of hanging it.
pub const STEP: Duration = Duration::from_secs(5);

/// A TCP server that echoes every connection until the client closes.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    addr
}

/// Writes `message` and reads the same number of bytes back.
pub async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(message).await?;
    let mut back = vec![0; message.len()];
    timeout(STEP, stream.read_exact(&mut back))
        .await
        .map_err(|_| std::io::Error::other("no echo in time"))??;
    Ok(back)
}

/// How long one [`round_trip`] takes.
pub async fn time_round_trip(stream: &mut TcpStream, message: &[u8]) -> Duration {
    let sent = std::time::Instant::now();
    round_trip(stream, message).await.unwrap();
    sent.elapsed()
}

/// Asserts that the next read on `stream` fails with a reset.
pub async fn assert_reset(stream: &mut TcpStream) {
    let read = timeout(STEP, stream.read(&mut [0]))
        .await
        .expect("a reset in time");
    assert_eq!(
        read.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionReset)
    );
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// A keep-alive HTTP/1.1 server. Each request gets `200` with the body
/// `"{path} #{n}"`, n counting the requests this server has seen; a path
/// `/sleep/{ms}` answers after that many milliseconds, `/chunked` answers
/// with a chunked body.
pub struct HttpUpstream {
    pub addr: SocketAddr,
    seen: Arc<AtomicUsize>,
}

impl HttpUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_http(stream, Arc::clone(&counter)));
            }
        });
        Self { addr, seen }
    }

    /// Requests the server has received.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

async fn serve_http(mut stream: TcpStream, seen: Arc<AtomicUsize>) {
    stream.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    while let Some(request) = read_message(&mut stream, &mut buf).await {
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        let path = request.start.split(' ').nth(1).unwrap_or("").to_owned();
        if let Some(ms) = path.strip_prefix("/sleep/") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        }
        let body = format!("{path} #{n}");
        let response = if path == "/chunked" {
            let (a, b) = body.split_at(body.len() / 2);
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A message read by [`read_message`]: start line, headers, body.
#[derive(Debug)]
pub struct Message {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn status(&self) -> u16 {
        self.start.split(' ').nth(1).unwrap().parse().unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Reads one message with a `Content-Length` (or chunked) body; `None` at
/// end of stream. `buf` keeps bytes of the next message.
pub async fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Message> {
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    };
    let head = String::from_utf8(buf.drain(..head_end).collect()).unwrap();
    let mut lines = head.trim_end().split("\r\n");
    let start = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();
    let mut message = Message {
        start,
        headers,
        body: Vec::new(),
    };
    if message.header("transfer-encoding") == Some("chunked") {
        loop {
            let line = read_line(stream, buf).await?;
            let size = usize::from_str_radix(&line, 16).unwrap();
            if size == 0 {
                read_line(stream, buf).await?;
                return Some(message);
            }
            fill(stream, buf, size + 2).await?;
            message.body.extend(buf.drain(..size));
            buf.drain(..2);
        }
    }
    let length: usize = message
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    fill(stream, buf, length).await?;
    message.body = buf.drain(..length).collect();
    Some(message)
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> Option<()> {
    while buf.len() < len {
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
    Some(())
}

async fn read_line(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8(buf.drain(..at).collect()).unwrap();
            buf.drain(..2);
            return Some(line);
        }
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// An HTTP/1.1 client on one keep-alive connection.
pub struct HttpClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: connect(addr).await,
            buf: Vec::new(),
        }
    }

    /// Sends a request with `body` and reads its response.
    pub async fn request(&mut self, method: &str, path: &str, body: &str) -> Message {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await.unwrap();
        timeout(STEP, read_message(&mut self.stream, &mut self.buf))
            .await
            .expect("a response in time")
            .expect("a response before the connection closed")
    }
}
