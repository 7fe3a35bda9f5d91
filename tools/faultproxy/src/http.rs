//! Just enough HTTP/1.1 framing (RFC 9112) to find where each request and
//! response ends: message heads, `Content-Length` and chunked bodies, and
//! close-delimited responses. Anything else is an [`HttpError`], and the
//! connection falls back to plain forwarding.

/// Longest message head the proxy waits for before giving up on HTTP:
/// above the 32 KiB nginx and the AWS front ends accept by default.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Longest chunk-size or trailer line (RFC 9112 §7.1 sets no limit; real
/// ones are a few hex digits, or a short header).
pub const MAX_LINE_BYTES: usize = 4096;

/// Why bytes are not HTTP/1.1 the proxy can follow.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HttpError {
    #[error("message head is not UTF-8")]
    NotText,
    #[error("bad start line: {0:?}")]
    StartLine(String),
    #[error("bad header line: {0:?}")]
    Header(String),
    #[error("bad or conflicting Content-Length")]
    ContentLength,
    #[error("request Transfer-Encoding other than chunked, or with Content-Length")]
    TransferEncoding,
    #[error("bad chunk framing")]
    Chunk,
    #[error("message head longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLong,
}

/// Where the head at the start of `buf` ends (just past the blank line), if
/// it is all there.
pub(crate) fn head_end(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => Ok(Some(at + 4)),
        None if buf.len() > MAX_HEAD_BYTES => Err(HttpError::HeadTooLong),
        None => Ok(None),
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BodyKind {
    Length(u64),
    Chunked,
    /// Up to the end of the stream (responses only).
    UntilClose,
}

/// What the proxy needs from a request head.
#[derive(Debug, PartialEq)]
pub(crate) struct RequestHead {
    pub method: String,
    pub target: String,
    pub body: BodyKind,
    /// `CONNECT`, or an `Upgrade` header: the bytes after it may not be HTTP.
    pub leaves_http: bool,
    /// `Expect: 100-continue`: the client may wait for an interim answer.
    pub expects_continue: bool,
}

/// What the proxy needs from a response head.
#[derive(Debug, PartialEq)]
pub(crate) struct ResponseHead {
    pub status: u16,
    framing: Framing,
}

/// The framing headers of a message.
#[derive(Debug, Default, PartialEq)]
struct Framing {
    content_length: Option<u64>,
    /// Some transfer coding; `chunked` if the last one is chunked.
    transfer_encoding: Option<bool>,
    upgrade: bool,
    expects_continue: bool,
}

fn text(head: &[u8]) -> Result<&str, HttpError> {
    let head = std::str::from_utf8(head).map_err(|_| HttpError::NotText)?;
    Ok(head.strip_suffix("\r\n\r\n").unwrap_or(head))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_version(s: &str) -> bool {
    s == "HTTP/1.1" || s == "HTTP/1.0"
}

fn framing<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Framing, HttpError> {
    let mut framing = Framing::default();
    for line in lines {
        let bad = || HttpError::Header(line.to_owned());
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        if !is_token(name) {
            return Err(bad());
        }
        let value = value.trim();
        let values = || value.split(',').map(str::trim);
        if name.eq_ignore_ascii_case("content-length") {
            for length in values() {
                if length.is_empty() || !length.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HttpError::ContentLength);
                }
                let length = length.parse().map_err(|_| HttpError::ContentLength)?;
                if framing.content_length.is_some_and(|known| known != length) {
                    return Err(HttpError::ContentLength);
                }
                framing.content_length = Some(length);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = values().rfind(|coding| !coding.is_empty());
            framing.transfer_encoding =
                Some(last.is_some_and(|coding| coding.eq_ignore_ascii_case("chunked")));
        } else if name.eq_ignore_ascii_case("upgrade") {
            framing.upgrade = true;
        } else if name.eq_ignore_ascii_case("expect") {
            framing.expects_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    Ok(framing)
}

/// Reads a complete request head (up to and including the blank line).
pub(crate) fn parse_request_head(head: &[u8]) -> Result<RequestHead, HttpError> {
    let mut lines = text(head)?.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let bad_start = || HttpError::StartLine(start.to_owned());
    let mut parts = start.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_start());
    };
    if !is_token(method) || target.is_empty() || !is_version(version) {
        return Err(bad_start());
    }
    let framing = framing(lines)?;
    let body = match (framing.transfer_encoding, framing.content_length) {
        (Some(true), None) => BodyKind::Chunked,
        (Some(_), _) => return Err(HttpError::TransferEncoding),
        (None, length) => BodyKind::Length(length.unwrap_or(0)),
    };
    Ok(RequestHead {
        leaves_http: method == "CONNECT" || framing.upgrade,
        expects_continue: framing.expects_continue,
        method: method.to_owned(),
        target: target.to_owned(),
        body,
    })
}

/// Reads a complete response head (up to and including the blank line).
pub(crate) fn parse_response_head(head: &[u8]) -> Result<ResponseHead, HttpError> {
    let mut lines = text(head)?.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let bad_start = || HttpError::StartLine(start.to_owned());
    let mut parts = start.splitn(3, ' ');
    let (Some(version), Some(status)) = (parts.next(), parts.next()) else {
        return Err(bad_start());
    };
    if !is_version(version) || status.len() != 3 {
        return Err(bad_start());
    }
    let status = status.parse().map_err(|_| bad_start())?;
    Ok(ResponseHead {
        status,
        framing: framing(lines)?,
    })
}

impl ResponseHead {
    /// How this response's body is delimited, given the request it answers
    /// (RFC 9112 §6.3: no body after HEAD, 1xx, 204 or 304).
    pub(crate) fn body(&self, answers_head_request: bool) -> BodyKind {
        if answers_head_request || self.status < 200 || self.status == 204 || self.status == 304 {
            return BodyKind::Length(0);
        }
        match (self.framing.transfer_encoding, self.framing.content_length) {
            (Some(true), _) => BodyKind::Chunked,
            (Some(false), _) => BodyKind::UntilClose,
            (None, Some(length)) => BodyKind::Length(length),
            (None, None) => BodyKind::UntilClose,
        }
    }
}

/// Follows a body through the bytes after its head, wherever reads split it.
#[derive(Debug)]
pub(crate) struct BodyScanner {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailer,
    UntilClose,
    Done,
}

fn line_end(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(at) if at <= MAX_LINE_BYTES => Ok(Some(at)),
        None if buf.len() <= MAX_LINE_BYTES => Ok(None),
        _ => Err(HttpError::Chunk),
    }
}

fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let line = std::str::from_utf8(line).map_err(|_| HttpError::Chunk)?;
    let digits = line.split(';').next().unwrap_or_default().trim();
    if digits.is_empty() || digits.len() > 15 {
        return Err(HttpError::Chunk);
    }
    u64::from_str_radix(digits, 16).map_err(|_| HttpError::Chunk)
}

impl BodyScanner {
    pub(crate) fn new(kind: BodyKind) -> Self {
        let state = match kind {
            BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::ChunkSize,
            BodyKind::UntilClose => State::UntilClose,
        };
        Self { state }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// How many bytes at the start of `buf` belong to the body; after it,
    /// [`Self::is_done`] tells whether the body is complete. Bytes it does
    /// not take (a partial chunk-size line, the next message) stay in `buf`.
    pub(crate) fn scan(&mut self, buf: &[u8]) -> Result<usize, HttpError> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            match self.state {
                State::Done => return Ok(used),
                State::UntilClose => return Ok(buf.len()),
                State::Length(n) | State::ChunkData(n) => {
                    let take = n.min(rest.len() as u64);
                    if take == 0 {
                        return Ok(used);
                    }
                    used += take as usize;
                    self.state = match (self.state, n - take) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), left) => State::Length(left),
                        (_, 0) => State::ChunkDataEnd,
                        (_, left) => State::ChunkData(left),
                    };
                }
                State::ChunkDataEnd => {
                    if rest.len() < 2 {
                        return Ok(used);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(HttpError::Chunk);
                    }
                    used += 2;
                    self.state = State::ChunkSize;
                }
                State::ChunkSize => {
                    let Some(end) = line_end(rest)? else {
                        return Ok(used);
                    };
                    let size = chunk_size(&rest[..end])?;
                    used += end + 2;
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::Trailer => {
                    let Some(end) = line_end(rest)? else {
                        return Ok(used);
                    };
                    used += end + 2;
                    if end == 0 {
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_give_method_and_body_framing() {
        for (head, method, body) in [
            (
                "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET",
                BodyKind::Length(0),
            ),
            (
                "POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n",
                "POST",
                BodyKind::Length(12),
            ),
            (
                "POST /a?b HTTP/1.0\r\nContent-Length: 3, 3\r\n\r\n",
                "POST",
                BodyKind::Length(3),
            ),
            (
                "PUT /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "PUT",
                BodyKind::Chunked,
            ),
        ] {
            let parsed = parse_request_head(head.as_bytes()).unwrap();
            assert_eq!(
                (parsed.method.as_str(), parsed.body),
                (method, body),
                "{head}"
            );
            assert!(!parsed.leaves_http);
        }
    }

    #[test]
    fn requests_the_proxy_cannot_follow_are_errors() {
        for head in [
            "GET /\r\n\r\n",
            "GET / HTTP/2\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "GET / HTTP/1.1\r\nbad header\r\n\r\n",
            "GET / HTTP/1.1\r\n folded: no\r\n\r\n",
            "\u{16}\u{3}\u{1} TLS hello",
        ] {
            assert!(parse_request_head(head.as_bytes()).is_err(), "{head:?}");
        }
    }

    #[test]
    fn connect_and_upgrade_requests_leave_http() {
        let connect = parse_request_head(b"CONNECT h:443 HTTP/1.1\r\n\r\n").unwrap();
        let upgrade =
            parse_request_head(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").unwrap();
        assert!(connect.leaves_http && upgrade.leaves_http);
    }

    #[test]
    fn response_bodies_follow_rfc_9112_section_6_3() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                BodyKind::Length(5),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                BodyKind::Length(0),
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                false,
                BodyKind::Length(0),
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false,
                BodyKind::Length(0),
            ),
            ("HTTP/1.1 100 Continue\r\n\r\n", false, BodyKind::Length(0)),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                false,
                BodyKind::Chunked,
            ),
            ("HTTP/1.0 200 OK\r\n\r\n", false, BodyKind::UntilClose),
            (
                "HTTP/1.1 200\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                BodyKind::UntilClose,
            ),
        ];
        for (head, after_head_request, body) in cases {
            let parsed = parse_response_head(head.as_bytes()).unwrap();
            assert_eq!(parsed.body(after_head_request), body, "{head}");
        }
        assert!(parse_response_head(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
        assert!(parse_response_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn heads_end_at_the_blank_line_and_have_a_size_limit() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Ok(Some(18)));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost"), Ok(None));
        assert_eq!(
            head_end(&vec![b'a'; MAX_HEAD_BYTES + 1]),
            Err(HttpError::HeadTooLong)
        );
    }

    /// Feeds `bytes` to a scanner in pieces of `step`, as reads would.
    fn scan_in_pieces(kind: BodyKind, bytes: &[u8], step: usize) -> Result<usize, HttpError> {
        let mut scanner = BodyScanner::new(kind);
        let mut pending: Vec<u8> = Vec::new();
        let mut body = 0;
        for piece in bytes.chunks(step) {
            pending.extend_from_slice(piece);
            let used = scanner.scan(&pending)?;
            pending.drain(..used);
            body += used;
            if scanner.is_done() {
                return Ok(body);
            }
        }
        Err(HttpError::Chunk)
    }

    #[test]
    fn chunked_bodies_end_after_the_last_chunk_and_trailers_however_reads_split_them() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
        for step in [1, 2, 3, 7, bytes.len()] {
            assert_eq!(
                scan_in_pieces(BodyKind::Chunked, &bytes, step),
                Ok(body.len()),
                "step {step}"
            );
        }
    }

    #[test]
    fn length_bodies_take_exactly_their_length() {
        for step in [1, 4, 100] {
            assert_eq!(
                scan_in_pieces(BodyKind::Length(10), b"0123456789NEXT", step),
                Ok(10)
            );
        }
        assert!(BodyScanner::new(BodyKind::Length(0)).is_done());
    }

    #[test]
    fn broken_chunk_framing_is_an_error() {
        for bytes in [&b"zz\r\n"[..], b"3\r\nabcX\r\n", b"\r\n"] {
            let mut scanner = BodyScanner::new(BodyKind::Chunked);
            assert_eq!(scanner.scan(bytes), Err(HttpError::Chunk), "{bytes:?}");
        }
    }
}
