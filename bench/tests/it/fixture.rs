//! Test fixtures: a tiny blocking SMTP responder (with STARTTLS), a UDP DNS responder
//! and a minimal HTTP/SSE API, all on 127.0.0.1:0. They exist to check the client's
//! counts, not to stand in for any part tempmx ships.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Most lines one fixture session reads, so a confused client cannot spin it forever.
const SESSION_LINES_MAX: usize = 1_000_000;

/// What the SMTP fixture saw.
#[derive(Debug, Default)]
pub struct SmtpCounts {
    pub data_msgs: AtomicU64,
    pub bdat_msgs: AtomicU64,
    pub rcpts: AtomicU64,
    pub tls: AtomicU64,
    pub bytes: AtomicU64,
}

/// Called with each accepted message's recipients (the e2e fixture hooks in here).
pub type OnMessage = Arc<dyn Fn(&[String]) + Send + Sync>;

/// Starts the SMTP fixture; it serves until the test process exits.
pub fn smtp_server(on_message: Option<OnMessage>) -> (SocketAddr, Arc<SmtpCounts>) {
    smtp_server_limited(on_message, u64::MAX)
}

/// The SMTP fixture with a per-connection message limit: the MAIL after the last allowed
/// message gets `421 4.7.0` and the connection is closed, as tempmx does at
/// `messages_per_connection_max`.
pub fn smtp_server_limited(
    on_message: Option<OnMessage>,
    messages_per_connection_max: u64,
) -> (SocketAddr, Arc<SmtpCounts>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    let counts = Arc::new(SmtpCounts::default());
    let c = Arc::clone(&counts);
    let tls = Arc::new(tls_config());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let c = Arc::clone(&c);
            let tls = Arc::clone(&tls);
            let hook = on_message.clone();
            std::thread::spawn(move || {
                smtp_session(s, &c, &tls, hook.as_ref(), messages_per_connection_max);
            });
        }
    });
    (addr, counts)
}

fn tls_config() -> ServerConfig {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(include_bytes!("test-cert.pem"))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("cert: {e}"));
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("test-key.pem"))
        .unwrap_or_else(|e| panic!("key: {e}"));
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .unwrap_or_else(|e| panic!("tls config: {e}"))
}

fn smtp_session(
    s: TcpStream,
    c: &SmtpCounts,
    tls: &Arc<ServerConfig>,
    hook: Option<&OnMessage>,
    limit: u64,
) {
    let Ok(mut w) = s.try_clone() else { return };
    let _ = w.write_all(b"220 fixture ESMTP\r\n");
    let mut r = BufReader::new(s);
    if converse(&mut r, &mut w, c, true, hook, limit) != Next::StartTls {
        return;
    }
    let Ok(conn) = ServerConnection::new(Arc::clone(tls)) else {
        return;
    };
    c.tls.fetch_add(1, Ordering::Relaxed);
    // The session reads and writes in turn on one thread, so one locked stream serves
    // as both halves without contention.
    let stream = Shared(Arc::new(Mutex::new(StreamOwned::new(conn, r.into_inner()))));
    let mut w = stream.clone();
    let mut r = BufReader::new(stream);
    converse(&mut r, &mut w, c, false, hook, limit);
}

/// A TLS stream usable as separate reader and writer.
#[derive(Clone)]
struct Shared(Arc<Mutex<StreamOwned<ServerConnection, TcpStream>>>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .read(buf)
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .flush()
    }
}

#[derive(PartialEq)]
enum Next {
    Done,
    StartTls,
}

fn converse(
    r: &mut impl BufRead,
    w: &mut impl Write,
    c: &SmtpCounts,
    offer_tls: bool,
    hook: Option<&OnMessage>,
    limit: u64,
) -> Next {
    let mut rcpts: Vec<String> = Vec::new();
    let mut messages = 0u64;
    let mut line = String::new();
    for _ in 0..SESSION_LINES_MAX {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return Next::Done;
        }
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let tls = if offer_tls { "250-STARTTLS\r\n" } else { "" };
            format!("250-fixture\r\n250-PIPELINING\r\n{tls}250-CHUNKING\r\n250 8BITMIME\r\n")
        } else if upper.starts_with("STARTTLS") {
            let _ = w.write_all(b"220 go ahead\r\n");
            let _ = w.flush();
            return Next::StartTls;
        } else if upper.starts_with("MAIL") && messages >= limit {
            let _ = w.write_all(b"421 4.7.0 too many messages on this connection\r\n");
            let _ = w.flush();
            return Next::Done;
        } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
            rcpts.clear();
            "250 ok\r\n".into()
        } else if upper.starts_with("RCPT") {
            if upper.contains("@BAD.TEST") {
                "550 5.1.1 no such user\r\n".into()
            } else {
                let addr = line
                    .trim()
                    .trim_start_matches("RCPT TO:<")
                    .trim_end_matches('>');
                rcpts.push(addr.to_owned());
                c.rcpts.fetch_add(1, Ordering::Relaxed);
                "250 ok\r\n".into()
            }
        } else if upper.starts_with("DATA") {
            if rcpts.is_empty() {
                "554 no valid recipients\r\n".into()
            } else {
                let _ = w.write_all(b"354 go\r\n");
                let _ = w.flush();
                read_data(r, c);
                c.data_msgs.fetch_add(1, Ordering::Relaxed);
                messages += 1;
                accepted(hook, &rcpts)
            }
        } else if let Some(n) = upper.strip_prefix("BDAT ") {
            let n: usize = n
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; n];
            if r.read_exact(&mut body).is_err() {
                return Next::Done;
            }
            c.bytes.fetch_add(n as u64, Ordering::Relaxed);
            if rcpts.is_empty() {
                "554 no valid recipients\r\n".into()
            } else {
                c.bdat_msgs.fetch_add(1, Ordering::Relaxed);
                messages += 1;
                accepted(hook, &rcpts)
            }
        } else if upper.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n");
            let _ = w.flush();
            return Next::Done;
        } else {
            "500 what\r\n".into()
        };
        if w.write_all(reply.as_bytes())
            .and_then(|_| w.flush())
            .is_err()
        {
            return Next::Done;
        }
    }
    Next::Done
}

fn accepted(hook: Option<&OnMessage>, rcpts: &[String]) -> String {
    if let Some(h) = hook {
        h(rcpts);
    }
    "250 2.0.0 queued\r\n".into()
}

fn read_data(r: &mut impl BufRead, c: &SmtpCounts) {
    let mut line = String::new();
    for _ in 0..SESSION_LINES_MAX {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == ".\r\n" {
            return;
        }
        c.bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
    }
}

/// Starts a UDP DNS responder: NOERROR for everything except names starting with
/// "drop" (no answer) and "nx" (NXDOMAIN). Returns its address and the query count.
pub fn dns_server() -> (SocketAddr, Arc<AtomicU64>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = s.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    let n = Arc::new(AtomicU64::new(0));
    let n2 = Arc::clone(&n);
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((len, peer)) = s.recv_from(&mut buf) {
            n2.fetch_add(1, Ordering::Relaxed);
            // The first label starts at byte 13 (12-byte header + its length byte).
            let q = &buf[..len];
            if len < 17 || q[13..].starts_with(b"drop") {
                continue;
            }
            let mut a = q.to_vec();
            a[2] |= 0x80;
            a[3] = if q[13..].starts_with(b"nx") { 3 } else { 0 };
            let _ = s.send_to(&a, peer);
        }
    });
    (addr, n)
}

/// Open SSE streams by mailbox address.
type Streams = Arc<Mutex<HashMap<String, TcpStream>>>;

/// Starts the e2e fixture: an SMTP responder whose accepted messages are announced on
/// a minimal HTTP API implementing the contract in `tempmx_bench::e2e`.
pub fn api_server() -> (SocketAddr, SocketAddr) {
    api_server_limited(u64::MAX)
}

/// The e2e fixture with a creation rate limit like tempmx's: `burst` mailboxes at once,
/// then one per second; a request over it gets 429 with `Retry-After: 1`.
pub fn api_server_limited(burst: u64) -> (SocketAddr, SocketAddr) {
    let streams: Streams = Arc::default();
    let s2 = Arc::clone(&streams);
    let seq = Arc::new(AtomicU64::new(0));
    let hook: OnMessage = Arc::new(move |rcpts: &[String]| {
        for r in rcpts {
            let id = seq.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = s2
                .lock()
                .ok()
                .and_then(|mut m| m.get_mut(r).and_then(|s| s.try_clone().ok()))
            {
                let ev = format!(": ping\n\nevent: new_message\ndata: {{\"id\":\"{id}\"}}\n\n");
                let chunk = format!("{:x}\r\n{ev}\r\n", ev.len());
                let mut s = s;
                let _ = s.write_all(chunk.as_bytes());
            }
        }
    });
    let (smtp, _) = smtp_server(Some(hook));
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let http = l.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    let boxes = Arc::new(AtomicU64::new(0));
    let limiter = Arc::new(Mutex::new(Limiter {
        burst,
        last: Instant::now(),
    }));
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let streams = Arc::clone(&streams);
            let boxes = Arc::clone(&boxes);
            let limiter = Arc::clone(&limiter);
            std::thread::spawn(move || http_request(s, &streams, &boxes, &limiter));
        }
    });
    (smtp, http)
}

/// Mailbox creations left in the burst, then one a second.
struct Limiter {
    burst: u64,
    last: Instant,
}

impl Limiter {
    fn allow(&mut self) -> bool {
        if self.burst > 0 {
            self.burst -= 1;
            self.last = Instant::now();
            return true;
        }
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            return true;
        }
        false
    }
}

fn http_request(s: TcpStream, streams: &Streams, boxes: &AtomicU64, limiter: &Mutex<Limiter>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut w) = s.try_clone() else { return };
    let mut r = BufReader::new(s);
    let mut head = Vec::new();
    let mut line = String::new();
    while head.len() < 100 {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_owned());
    }
    let first = head.first().cloned().unwrap_or_default();
    if first.starts_with("POST /api/v1/mailboxes ") {
        let mut body = [0u8; 2];
        let _ = r.read_exact(&mut body);
        if !limiter.lock().map(|mut l| l.allow()).unwrap_or(false) {
            let _ = w.write_all(
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
            );
            return;
        }
        let n = boxes.fetch_add(1, Ordering::Relaxed);
        let json = format!("{{\"address\":\"box{n}@tempmx.test\",\"token\":\"tok{n}\"}}");
        let resp = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        let _ = w.write_all(resp.as_bytes());
        return;
    }
    let Some(addr) = first
        .strip_prefix("GET /api/v1/mailboxes/")
        .and_then(|p| p.split_once("/events "))
        .map(|(a, _)| a.to_owned())
    else {
        let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let want = format!(
        "authorization: bearer tok{}",
        addr.trim_start_matches("box")
            .split('@')
            .next()
            .unwrap_or("")
    );
    if !head.iter().any(|h| h.to_ascii_lowercase() == want) {
        let _ = w.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let _ = w.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    if let Ok(mut m) = streams.lock() {
        m.insert(addr, w);
    }
}
