//! A small SMTP client of its own: a sans-io reply parser and a thin async connection
//! that sends transactions (pipelined or not, DATA or BDAT, optional STARTTLS).
//!
//! It shares no code with tempmx-ingress on purpose, so the two cannot share a bug.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::tls::TlsStream;

/// Longest reply line accepted (RFC 5321 says 512; some servers send longer text).
pub const REPLY_LINE_BYTES_MAX: usize = 4096;
/// Most lines in one multi-line reply (an EHLO reply has one per extension).
pub const REPLY_LINES_MAX: usize = 128;
/// Bytes read from the socket at a time.
const READ_BYTES: usize = 16 * 1024;
/// "Service not available, closing transmission channel" (RFC 5321 4.2.3): the server
/// closes the connection after this reply, whatever command it answers.
pub const CLOSING: u16 = 421;

/// A malformed or oversized server reply.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line did not start with three digits and a space or dash.
    #[error("malformed reply line")]
    Malformed,
    /// A line was longer than [`REPLY_LINE_BYTES_MAX`].
    #[error("reply line longer than {REPLY_LINE_BYTES_MAX} bytes")]
    LineTooLong,
    /// A reply had more than [`REPLY_LINES_MAX`] lines.
    #[error("reply with more than {REPLY_LINES_MAX} lines")]
    TooManyLines,
    /// The lines of one multi-line reply carried different codes.
    #[error("multi-line reply with mixed codes")]
    MixedCodes,
}

/// Why a session or transaction failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A socket error.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// No (complete) reply within the reply timeout.
    #[error("timed out waiting for the server")]
    Timeout,
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// The server sent something that is not an SMTP reply.
    #[error("bad reply: {0}")]
    Reply(#[from] ReplyError),
    /// The server refused the session (greeting, EHLO or STARTTLS), with this code.
    #[error("session refused with {0}")]
    Refused(u16),
}

impl ClientError {
    /// Short cause for the report's error table; a refusal names its reply code.
    pub fn kind(&self) -> String {
        match self {
            Self::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => "connect_refused".into(),
            Self::Io(e) if e.kind() == io::ErrorKind::InvalidData => "tls".into(),
            Self::Io(_) => "io".into(),
            Self::Timeout => "timeout".into(),
            Self::Closed => "closed".into(),
            Self::Reply(_) => "bad_reply".into(),
            Self::Refused(code) => format!("session_refused {code}"),
        }
    }
}

/// One complete reply: its code and text lines (without code, separator and CRLF).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// Sans-io reply parser: push bytes in, take complete replies out.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    pos: usize,
}

impl ReplyParser {
    /// Appends bytes received from the server.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a returned reply.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Drops everything buffered (after STARTTLS: nothing sent in clear may be kept).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// The next complete reply, `Ok(None)` if more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        let mut at = self.pos;
        let mut code = None;
        let mut lines = Vec::new();
        loop {
            let rest = &self.buf[at..];
            let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
                if rest.len() > REPLY_LINE_BYTES_MAX {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(None);
            };
            if nl > REPLY_LINE_BYTES_MAX {
                return Err(ReplyError::LineTooLong);
            }
            let line = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
            let (c, last, text) = parse_line(line)?;
            if *code.get_or_insert(c) != c {
                return Err(ReplyError::MixedCodes);
            }
            if lines.len() == REPLY_LINES_MAX {
                return Err(ReplyError::TooManyLines);
            }
            lines.push(text);
            at += nl + 1;
            if last {
                self.pos = at;
                return Ok(code.map(|code| Reply { code, lines }));
            }
        }
    }
}

/// Splits one reply line into (code, is last line, text).
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) || line[0] < b'2' {
        return Err(ReplyError::Malformed);
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let last = match line.get(3) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        Some(_) => return Err(ReplyError::Malformed),
    };
    let text = String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned();
    Ok((code, last, text))
}

/// Extensions announced in an EHLO reply that the client uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Extensions {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// CHUNKING, i.e. BDAT (RFC 3030).
    pub chunking: bool,
}

impl Extensions {
    /// Reads the extensions from an EHLO reply (first line is the greeting text).
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut e = Self::default();
        for line in reply.lines.iter().skip(1) {
            let kw = line.split_ascii_whitespace().next().unwrap_or_default();
            match kw.to_ascii_uppercase().as_str() {
                "PIPELINING" => e.pipelining = true,
                "STARTTLS" => e.starttls = true,
                "CHUNKING" => e.chunking = true,
                _ => {}
            }
        }
        e
    }
}

/// How a transaction is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TxOptions {
    /// Send MAIL, RCPTs and DATA/BDAT in one write when the server allows it.
    pub pipelining: bool,
    /// Send the content with one `BDAT n LAST` instead of DATA when the server allows it.
    pub bdat: bool,
}

/// The end of one transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The server took the message (2xx after the content).
    Accepted,
    /// The server refused it; the code of the reply that ended the transaction.
    Rejected(u16),
}

/// The socket, plain or after STARTTLS.
#[derive(Debug)]
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
    /// Only while the plain stream is being moved into TLS (or if that failed).
    Detached,
}

/// One SMTP client session.
#[derive(Debug)]
pub struct Session {
    transport: Transport,
    parser: ReplyParser,
    rbuf: Box<[u8]>,
    out: Vec<u8>,
    timeout: Duration,
    ext: Extensions,
}

impl Session {
    /// Wraps a connected stream; `timeout` bounds every wait for a reply.
    pub fn new(tcp: TcpStream, timeout: Duration) -> Self {
        Self {
            transport: Transport::Plain(tcp),
            parser: ReplyParser::default(),
            rbuf: vec![0; READ_BYTES].into_boxed_slice(),
            out: Vec::with_capacity(READ_BYTES),
            timeout,
            ext: Extensions::default(),
        }
    }

    /// Extensions from the last EHLO.
    pub fn extensions(&self) -> Extensions {
        self.ext
    }

    /// Reads the greeting and sends EHLO; every reply code goes to `seen`.
    pub async fn open(
        &mut self,
        helo: &str,
        seen: &mut impl FnMut(u16),
    ) -> Result<(), ClientError> {
        let greeting = self.read_reply().await?;
        seen(greeting.code);
        if greeting.code != 220 {
            return Err(ClientError::Refused(greeting.code));
        }
        self.ehlo(helo, seen).await
    }

    async fn ehlo(&mut self, helo: &str, seen: &mut impl FnMut(u16)) -> Result<(), ClientError> {
        self.out.clear();
        self.out
            .extend_from_slice(format!("EHLO {helo}\r\n").as_bytes());
        self.flush().await?;
        let r = self.read_reply().await?;
        seen(r.code);
        if !r.is_positive() {
            return Err(ClientError::Refused(r.code));
        }
        self.ext = Extensions::from_ehlo(&r);
        Ok(())
    }

    /// STARTTLS, handshake, then EHLO again.
    pub async fn starttls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        helo: &str,
        seen: &mut impl FnMut(u16),
    ) -> Result<(), ClientError> {
        self.out.clear();
        self.out.extend_from_slice(b"STARTTLS\r\n");
        self.flush().await?;
        let r = self.read_reply().await?;
        seen(r.code);
        if r.code != 220 {
            return Err(ClientError::Refused(r.code));
        }
        // Anything the server sent in clear after 220 must not be trusted (RFC 3207).
        self.parser.clear();
        let Transport::Plain(tcp) = std::mem::replace(&mut self.transport, Transport::Detached)
        else {
            return Err(ClientError::Io(io::ErrorKind::NotConnected.into()));
        };
        let tls = tokio::time::timeout(self.timeout, TlsStream::connect(tcp, config, name))
            .await
            .map_err(|_| ClientError::Timeout)??;
        self.transport = Transport::Tls(Box::new(tls));
        self.ehlo(helo, seen).await
    }

    /// Sends one message; every reply code goes to `seen`.
    pub async fn send(
        &mut self,
        from: &str,
        rcpts: &[String],
        data: &[u8],
        opts: TxOptions,
        seen: &mut impl FnMut(u16),
    ) -> Result<Outcome, ClientError> {
        let pipelining = opts.pipelining && self.ext.pipelining;
        let bdat = opts.bdat && self.ext.chunking;
        if pipelining {
            self.send_pipelined(from, rcpts, data, bdat, seen).await
        } else {
            self.send_lockstep(from, rcpts, data, bdat, seen).await
        }
    }

    async fn send_pipelined(
        &mut self,
        from: &str,
        rcpts: &[String],
        data: &[u8],
        bdat: bool,
        seen: &mut impl FnMut(u16),
    ) -> Result<Outcome, ClientError> {
        self.out.clear();
        push_mail(&mut self.out, from);
        for r in rcpts {
            push_rcpt(&mut self.out, r);
        }
        if bdat {
            push_bdat(&mut self.out, data);
        } else {
            self.out.extend_from_slice(b"DATA\r\n");
        }
        self.flush().await?;
        let mut first_failure = None;
        for _ in 0..=rcpts.len() {
            let r = self.read_reply().await?;
            seen(r.code);
            if r.code == CLOSING {
                // The server closes now; the pipelined replies after this never come.
                return Ok(Outcome::Rejected(CLOSING));
            }
            if !r.is_positive() {
                first_failure.get_or_insert(r.code);
            }
        }
        let last = self.read_reply().await?;
        seen(last.code);
        if bdat {
            return Ok(final_outcome(last.code));
        }
        if last.code != 354 {
            return Ok(Outcome::Rejected(first_failure.unwrap_or(last.code)));
        }
        self.send_content(data, seen).await
    }

    async fn send_lockstep(
        &mut self,
        from: &str,
        rcpts: &[String],
        data: &[u8],
        bdat: bool,
        seen: &mut impl FnMut(u16),
    ) -> Result<Outcome, ClientError> {
        self.out.clear();
        push_mail(&mut self.out, from);
        let r = self.command().await?;
        seen(r);
        if !(200..300).contains(&r) {
            return Ok(Outcome::Rejected(r));
        }
        let mut accepted = 0;
        let mut last_failure = 0;
        for rcpt in rcpts {
            self.out.clear();
            push_rcpt(&mut self.out, rcpt);
            let r = self.command().await?;
            seen(r);
            if r == CLOSING {
                return Ok(Outcome::Rejected(CLOSING));
            }
            if (200..300).contains(&r) {
                accepted += 1;
            } else {
                last_failure = r;
            }
        }
        if accepted == 0 {
            self.out.clear();
            self.out.extend_from_slice(b"RSET\r\n");
            let r = self.command().await?;
            seen(r);
            return Ok(Outcome::Rejected(last_failure));
        }
        self.out.clear();
        if bdat {
            push_bdat(&mut self.out, data);
            let r = self.command().await?;
            seen(r);
            return Ok(final_outcome(r));
        }
        self.out.extend_from_slice(b"DATA\r\n");
        let r = self.command().await?;
        seen(r);
        if r != 354 {
            return Ok(Outcome::Rejected(r));
        }
        self.send_content(data, seen).await
    }

    /// Sends DATA content (already free of leading dots, ending CRLF) and the end mark.
    async fn send_content(
        &mut self,
        data: &[u8],
        seen: &mut impl FnMut(u16),
    ) -> Result<Outcome, ClientError> {
        self.out.clear();
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b".\r\n");
        let r = self.command().await?;
        seen(r);
        Ok(final_outcome(r))
    }

    /// Sends QUIT and closes, ignoring errors (the session is over either way).
    pub async fn quit(mut self, seen: &mut impl FnMut(u16)) {
        self.out.clear();
        self.out.extend_from_slice(b"QUIT\r\n");
        if let Ok(code) = self.command().await {
            seen(code);
        }
        if let Transport::Tls(t) = &mut self.transport {
            t.close().await;
        }
    }

    /// Flushes `out` and reads one reply code.
    async fn command(&mut self) -> Result<u16, ClientError> {
        self.flush().await?;
        Ok(self.read_reply().await?.code)
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        let fut = async {
            match &mut self.transport {
                Transport::Plain(s) => s.write_all(&self.out).await,
                Transport::Tls(t) => t.write_all(&self.out).await,
                Transport::Detached => Err(io::ErrorKind::NotConnected.into()),
            }
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout)??;
        Ok(())
    }

    /// Reads until one complete reply is parsed.
    pub async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            if let Some(r) = self.parser.next_reply()? {
                return Ok(r);
            }
            let read = async {
                match &mut self.transport {
                    Transport::Plain(s) => s.read(&mut self.rbuf).await,
                    Transport::Tls(t) => t.read(&mut self.rbuf).await,
                    Transport::Detached => Err(io::ErrorKind::NotConnected.into()),
                }
            };
            let n = tokio::time::timeout_at(deadline, read)
                .await
                .map_err(|_| ClientError::Timeout)??;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.parser.push(&self.rbuf[..n]);
        }
    }
}

fn final_outcome(code: u16) -> Outcome {
    if (200..300).contains(&code) {
        Outcome::Accepted
    } else {
        Outcome::Rejected(code)
    }
}

fn push_mail(out: &mut Vec<u8>, from: &str) {
    out.extend_from_slice(b"MAIL FROM:<");
    out.extend_from_slice(from.as_bytes());
    out.extend_from_slice(b">\r\n");
}

fn push_rcpt(out: &mut Vec<u8>, rcpt: &str) {
    out.extend_from_slice(b"RCPT TO:<");
    out.extend_from_slice(rcpt.as_bytes());
    out.extend_from_slice(b">\r\n");
}

fn push_bdat(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("BDAT {} LAST\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut p = ReplyParser::default();
        p.push(input);
        std::iter::from_fn(|| p.next_reply().transpose()).collect()
    }

    #[test]
    fn single_and_multi_line_replies() {
        // Goal: table of inputs -> (code, line count) for well-formed replies, including
        // a bare "250" and LF-only line ends.
        type Case<'a> = (&'a [u8], &'a [(u16, usize)]);
        let cases: &[Case] = &[
            (b"220 mx ESMTP\r\n", &[(220, 1)]),
            (b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n", &[(250, 3)]),
            (b"250\r\n354 go\r\n", &[(250, 1), (354, 1)]),
            (b"250 ok\n550 5.1.1 no\n", &[(250, 1), (550, 1)]),
            (b"", &[]),
        ];
        for (input, want) in cases {
            let got = parse_all(input).unwrap_or_default();
            let got: Vec<(u16, usize)> = got.iter().map(|r| (r.code, r.lines.len())).collect();
            assert_eq!(&got, want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn replies_split_at_every_byte() {
        // Goal: a multi-line reply fed one byte at a time comes out once, complete.
        let input = b"250-mx.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n250 2.1.0 ok\r\n";
        let mut p = ReplyParser::default();
        let mut got = Vec::new();
        for b in input {
            p.push(std::slice::from_ref(b));
            while let Ok(Some(r)) = p.next_reply() {
                got.push(r);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].lines, vec!["mx.test", "STARTTLS", "PIPELINING"]);
        assert_eq!(got[1].lines, vec!["2.1.0 ok"]);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn malformed_and_oversized_replies_are_errors() {
        // Goal: each limit and syntax rule gives its own error, never a panic.
        assert_eq!(parse_all(b"hello\r\n"), Err(ReplyError::Malformed));
        assert_eq!(parse_all(b"25\r\n"), Err(ReplyError::Malformed));
        assert_eq!(parse_all(b"250x\r\n"), Err(ReplyError::Malformed));
        assert_eq!(parse_all(b"099 x\r\n"), Err(ReplyError::Malformed));
        assert_eq!(
            parse_all(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::MixedCodes)
        );
        let long = format!("250 {}\r\n", "x".repeat(REPLY_LINE_BYTES_MAX));
        assert_eq!(parse_all(long.as_bytes()), Err(ReplyError::LineTooLong));
        let unterminated = "2".repeat(REPLY_LINE_BYTES_MAX + 1);
        assert_eq!(
            parse_all(unterminated.as_bytes()),
            Err(ReplyError::LineTooLong)
        );
        let at_limit = format!("250 {}\r\n", "x".repeat(REPLY_LINE_BYTES_MAX - 5));
        assert!(parse_all(at_limit.as_bytes()).is_ok());
        let many = "250-x\r\n".repeat(REPLY_LINES_MAX) + "250 x\r\n";
        assert_eq!(parse_all(many.as_bytes()), Err(ReplyError::TooManyLines));
        let just = "250-x\r\n".repeat(REPLY_LINES_MAX - 1) + "250 x\r\n";
        assert_eq!(parse_all(just.as_bytes()).map(|v| v.len()), Ok(1));
    }

    #[test]
    fn ehlo_extensions() {
        // Goal: keywords are found case-insensitively, parameters ignored, greeting skipped.
        let r = Reply {
            code: 250,
            lines: vec![
                "PIPELINING greets you".into(),
                "size 1000".into(),
                "pipelining".into(),
                "CHUNKING".into(),
            ],
        };
        let e = Extensions::from_ehlo(&r);
        assert!(e.pipelining && e.chunking && !e.starttls);
    }
}
