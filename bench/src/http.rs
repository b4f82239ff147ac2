//! A minimal HTTP/1.1 client over tokio `TcpStream`: one JSON POST, and a GET that
//! streams Server-Sent Events. Only what the end-to-end load needs from the tempmx API
//! (no TLS, no redirects, no keep-alive); the response parsing is sans-io and bounded.

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest response head (status line and headers).
pub const HEAD_BYTES_MAX: usize = 16 * 1024;
/// Largest non-streaming response body.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Longest SSE line, and most data in one event.
pub const SSE_EVENT_BYTES_MAX: usize = 64 * 1024;
/// Longest chunk-size line in a chunked body.
const CHUNK_LINE_BYTES_MAX: usize = 1024;
/// Bytes read from the socket at a time.
const READ_BYTES: usize = 16 * 1024;

/// An HTTP failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The server closed before the response was complete.
    #[error("connection closed early")]
    Closed,
    /// The response head is malformed.
    #[error("malformed response head")]
    Head,
    /// A limit was exceeded (head, body, chunk line, SSE line or event).
    #[error("{0} exceeds its limit")]
    TooLarge(&'static str),
    /// A chunked body is malformed.
    #[error("malformed chunked body")]
    Chunked,
    /// The server answered with an unexpected status.
    #[error("status {0}")]
    Status(u16),
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Content-Length, if given.
    pub content_length: Option<usize>,
    /// Whether the body is chunked.
    pub chunked: bool,
    /// `Retry-After` in seconds (a 429 or 503 says when to ask again).
    pub retry_after_secs: Option<u64>,
}

/// Parses a response head from the start of `buf`: `Ok(None)` if incomplete, else the
/// head and its length in bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > HEAD_BYTES_MAX {
            return Err(HttpError::TooLarge("response head"));
        }
        return Ok(None);
    };
    if end > HEAD_BYTES_MAX {
        return Err(HttpError::TooLarge("response head"));
    }
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| HttpError::Head)?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or(HttpError::Head)?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(HttpError::Head);
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(HttpError::Head)?;
    let mut head = Head {
        status,
        content_length: None,
        chunked: false,
        retry_after_secs: None,
    };
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(HttpError::Head)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(value.parse().map_err(|_| HttpError::Head)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("retry-after") {
            // Only the delay-seconds form; an HTTP date is ignored (then a default applies).
            head.retry_after_secs = value.parse().ok();
        }
    }
    Ok(Some((head, end + 4)))
}

/// Sans-io decoder for `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    remaining: usize,
    in_data: bool,
    done: bool,
}

impl ChunkedDecoder {
    /// Moves decoded bytes from the front of `raw` into `out`; true once the last chunk
    /// was seen. Bytes of an incomplete size line stay in `raw`.
    pub fn decode(&mut self, raw: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<bool, HttpError> {
        let mut at = 0;
        while !self.done && at < raw.len() {
            if self.in_data {
                let take = self.remaining.min(raw.len() - at);
                out.extend_from_slice(&raw[at..at + take]);
                at += take;
                self.remaining -= take;
                if self.remaining == 0 {
                    self.in_data = false;
                }
                continue;
            }
            let Some(nl) = raw[at..].iter().position(|b| *b == b'\n') else {
                if raw.len() - at > CHUNK_LINE_BYTES_MAX {
                    return Err(HttpError::TooLarge("chunk line"));
                }
                break;
            };
            let line = std::str::from_utf8(&raw[at..at + nl]).map_err(|_| HttpError::Chunked)?;
            at += nl + 1;
            let line = line.trim();
            if line.is_empty() {
                continue; // the CRLF that ends a chunk's data
            }
            let size = line.split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size.trim(), 16).map_err(|_| HttpError::Chunked)?;
            if size == 0 {
                self.done = true;
            } else {
                self.remaining = size;
                self.in_data = true;
            }
        }
        raw.drain(..at);
        Ok(self.done)
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseEvent {
    /// The `event:` field ("message" if absent).
    pub event: String,
    /// The `data:` lines joined with '\n'.
    pub data: String,
}

/// Sans-io SSE parser: push body bytes in, take complete events out.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Appends decoded body bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, `Ok(None)` if more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, HttpError> {
        loop {
            let Some(nl) = self.buf.iter().position(|b| *b == b'\n') else {
                if self.buf.len() > SSE_EVENT_BYTES_MAX {
                    return Err(HttpError::TooLarge("SSE line"));
                }
                return Ok(None);
            };
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(ev) = self.dispatch() {
                    return Ok(Some(ev));
                }
                continue;
            }
            self.field(line)?;
        }
    }

    fn field(&mut self, line: &str) -> Result<(), HttpError> {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                let d = self.data.get_or_insert_with(String::new);
                if !d.is_empty() {
                    d.push('\n');
                }
                d.push_str(value);
                if d.len() > SSE_EVENT_BYTES_MAX {
                    return Err(HttpError::TooLarge("SSE event"));
                }
            }
            _ => {} // comments (":"), id, retry: not needed here
        }
        Ok(())
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let data = self.data.take()?;
        Some(SseEvent {
            event: event.unwrap_or_else(|| "message".into()),
            data,
        })
    }
}

/// POSTs a JSON body and returns the response head and body.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Result<(Head, Vec<u8>), HttpError> {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(timeout, async {
        let mut conn = Conn::open(addr, &req).await?;
        let head = conn.head().await?;
        let body = conn.body(&head).await?;
        Ok((head, body))
    })
    .await
    .map_err(|_| HttpError::Timeout)?
}

/// An open SSE stream.
#[derive(Debug)]
pub struct SseStream {
    conn: Conn,
    chunked: Option<ChunkedDecoder>,
    parser: SseParser,
    decoded: Vec<u8>,
}

impl SseStream {
    /// GETs `path` with a bearer token and expects `200` with an event stream.
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<Self, HttpError> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        );
        let (conn, head) = tokio::time::timeout(timeout, async {
            let mut conn = Conn::open(addr, &req).await?;
            let head = conn.head().await?;
            Ok::<_, HttpError>((conn, head))
        })
        .await
        .map_err(|_| HttpError::Timeout)??;
        if head.status != 200 {
            return Err(HttpError::Status(head.status));
        }
        Ok(Self {
            conn,
            chunked: head.chunked.then(ChunkedDecoder::default),
            parser: SseParser::default(),
            decoded: Vec::new(),
        })
    }

    /// The next event within `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<SseEvent, HttpError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(ev) = self.parser.next_event()? {
                return Ok(ev);
            }
            match &mut self.chunked {
                Some(dec) => {
                    self.decoded.clear();
                    if dec.decode(&mut self.conn.buf, &mut self.decoded)? {
                        return Err(HttpError::Closed);
                    }
                    self.parser.push(&self.decoded);
                }
                None => {
                    self.parser.push(&self.conn.buf);
                    self.conn.buf.clear();
                }
            }
            if let Some(ev) = self.parser.next_event()? {
                return Ok(ev);
            }
            tokio::time::timeout_at(deadline, self.conn.fill())
                .await
                .map_err(|_| HttpError::Timeout)??;
        }
    }
}

/// A connection with its receive buffer.
#[derive(Debug)]
struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr, request: &str) -> Result<Self, HttpError> {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(request.as_bytes()).await?;
        Ok(Self {
            tcp,
            buf: Vec::with_capacity(READ_BYTES),
        })
    }

    /// Reads more bytes; `Closed` on EOF.
    async fn fill(&mut self) -> Result<(), HttpError> {
        let mut chunk = [0u8; READ_BYTES];
        let n = self.tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(HttpError::Closed);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Reads and removes the response head.
    async fn head(&mut self) -> Result<Head, HttpError> {
        loop {
            if let Some((head, len)) = parse_head(&self.buf)? {
                self.buf.drain(..len);
                return Ok(head);
            }
            self.fill().await?;
        }
    }

    /// Reads a whole (bounded) body.
    async fn body(&mut self, head: &Head) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        if head.chunked {
            let mut dec = ChunkedDecoder::default();
            while !dec.decode(&mut self.buf, &mut out)? {
                check_body(&out)?;
                self.fill().await?;
            }
        } else if let Some(len) = head.content_length {
            if len > BODY_BYTES_MAX {
                return Err(HttpError::TooLarge("response body"));
            }
            while self.buf.len() < len {
                self.fill().await?;
            }
            out.extend_from_slice(&self.buf[..len]);
        } else {
            // No length: the body ends at EOF (we sent Connection: close).
            while self.fill().await.is_ok() {
                check_body(&self.buf)?;
            }
            out = std::mem::take(&mut self.buf);
        }
        check_body(&out)?;
        Ok(out)
    }
}

fn check_body(b: &[u8]) -> Result<(), HttpError> {
    if b.len() > BODY_BYTES_MAX {
        return Err(HttpError::TooLarge("response body"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parse() {
        // Goal: status, length and chunking are read; incomplete and bad heads are told apart.
        let raw = b"HTTP/1.1 201 Created\r\nContent-Length: 12\r\nX: y\r\n\r\nrest";
        let (h, len) = parse_head(raw)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no head"));
        assert_eq!(h.status, 201);
        assert_eq!(h.content_length, Some(12));
        assert!(!h.chunked);
        assert_eq!(&raw[len..], b"rest");
        let (h, _) = parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n")
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no head"));
        assert!(h.chunked);
        assert_eq!(h.retry_after_secs, None);
        let (h, _) = parse_head(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n\r\n")
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no head"));
        assert_eq!((h.status, h.retry_after_secs), (429, Some(3)));
        assert!(matches!(parse_head(b"HTTP/1.1 200 OK\r\n"), Ok(None)));
        assert!(matches!(
            parse_head(b"SMTP 220\r\n\r\n"),
            Err(HttpError::Head)
        ));
        let big = vec![b'a'; HEAD_BYTES_MAX + 1];
        assert!(matches!(parse_head(&big), Err(HttpError::TooLarge(_))));
    }

    #[test]
    fn chunked_body_split_anywhere() {
        // Goal: a chunked body fed one byte at a time decodes to the same bytes and ends.
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        let mut dec = ChunkedDecoder::default();
        let mut pending = Vec::new();
        let mut out = Vec::new();
        let mut done = false;
        for b in raw {
            pending.push(*b);
            done = dec.decode(&mut pending, &mut out).unwrap_or(false) || done;
        }
        assert!(done);
        assert_eq!(out, b"hello, world");
        let mut bad = b"zz\r\n".to_vec();
        assert!(
            ChunkedDecoder::default()
                .decode(&mut bad, &mut out)
                .is_err()
        );
        let mut long = vec![b'1'; CHUNK_LINE_BYTES_MAX + 1];
        assert!(matches!(
            ChunkedDecoder::default().decode(&mut long, &mut out),
            Err(HttpError::TooLarge(_))
        ));
    }

    #[test]
    fn sse_events() {
        // Goal: named events, multi-line data, comments and CRLF line ends per the SSE spec.
        let mut p = SseParser::default();
        p.push(b": keep-alive\n\nevent: new_message\r\ndata: {\"id\":\"1\"}\r\n\r\n");
        p.push(b"data: a\ndata: b\n\n");
        let e1 = p.next_event().ok().flatten();
        let e2 = p.next_event().ok().flatten();
        assert_eq!(
            e1,
            Some(SseEvent {
                event: "new_message".into(),
                data: "{\"id\":\"1\"}".into()
            })
        );
        assert_eq!(
            e2,
            Some(SseEvent {
                event: "message".into(),
                data: "a\nb".into()
            })
        );
        assert!(matches!(p.next_event(), Ok(None)));
        let mut big = SseParser::default();
        big.push(&vec![b'x'; SSE_EVENT_BYTES_MAX + 1]);
        assert!(matches!(big.next_event(), Err(HttpError::TooLarge(_))));
    }
}
