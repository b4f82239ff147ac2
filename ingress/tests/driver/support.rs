//! Test support: a bounded in-memory sink, a server on 127.0.0.1:0, a raw SMTP client.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tempmx_ingress::auth::AuthMode;
use tempmx_ingress::driver::{self, IngressHandle};
use tempmx_ingress::policy::{DomainStatus, Policy, PoolSnapshot, RecipientMode};
use tempmx_ingress::{Backend, IngressConfig, TlsConfig};
use tempmx_store::{
    Accepted, AuthResult, Commit, MessageId, MessageSink, NewMessage, StoreError, TlsSummary,
};

/// The pool domain every test server accepts.
pub const DOMAIN: &str = "tempmx.test";
/// The server's host name (and the test certificate's name).
pub const HOSTNAME: &str = "mx.tempmx.test";
/// Messages one test sink keeps before it refuses.
const SINK_MESSAGES_MAX: usize = 1_000;
/// Longest any blocking read in a test waits.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply (or EOF drain) a test reads.
const REPLY_BYTES_MAX: usize = 64 * 1024;

/// A message as the sink saw it.
#[derive(Clone, Debug)]
pub struct Stored {
    pub client_ip: IpAddr,
    pub helo: String,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub tls: Option<TlsSummary>,
    pub trace_headers: Vec<u8>,
    pub auth: Vec<AuthResult>,
    pub body: Vec<u8>,
}

/// How the test sink answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkMode {
    /// Stored at once.
    Done,
    /// Stored, acknowledged later through the group-commit channel (from another thread).
    Pending,
    /// Refused with an I/O error.
    Fail,
    /// Stored at once, after blocking the core's thread for [`SLOW_SINK_PAUSE`] (so
    /// connections pile up in the kernel's accept queue meanwhile).
    Slow,
    /// Stored, with a group commit that never completes (its signal is kept, never sent).
    Hang,
}

/// How long a [`SinkMode::Slow`] sink blocks its core.
pub const SLOW_SINK_PAUSE: Duration = Duration::from_millis(800);

/// Messages of all cores' sinks, with a condition variable to wait on.
#[derive(Default)]
pub struct Shelf {
    messages: Mutex<Vec<Stored>>,
    arrived: Condvar,
}

impl Shelf {
    /// Waits (bounded) until at least `n` messages arrived; returns them.
    pub fn wait_for(&self, n: usize) -> Vec<Stored> {
        let guard = self.messages.lock().expect("shelf lock");
        let (guard, _) = self
            .arrived
            .wait_timeout_while(guard, READ_TIMEOUT, |m| m.len() < n)
            .expect("shelf lock");
        guard.clone()
    }

    /// The messages stored so far.
    pub fn all(&self) -> Vec<Stored> {
        self.messages.lock().expect("shelf lock").clone()
    }
}

/// A bounded in-memory sink for one core.
pub struct TestSink {
    shelf: Arc<Shelf>,
    mode: SinkMode,
    next_id: u64,
    /// Commit signals of [`SinkMode::Hang`], kept so they never fire.
    hung: Vec<tokio::sync::oneshot::Sender<Result<(), StoreError>>>,
}

impl MessageSink for TestSink {
    fn accept(&mut self, msg: &NewMessage<'_>) -> Result<Accepted, StoreError> {
        if self.mode == SinkMode::Fail {
            return Err(StoreError::Io(io::Error::other("test sink refuses")));
        }
        if self.mode == SinkMode::Slow {
            std::thread::sleep(SLOW_SINK_PAUSE);
        }
        let mut messages = self.shelf.messages.lock().expect("shelf lock");
        if messages.len() >= SINK_MESSAGES_MAX {
            return Err(StoreError::Io(io::Error::other("test sink full")));
        }
        messages.push(Stored {
            client_ip: msg.client_ip,
            helo: msg.helo.to_owned(),
            mail_from: msg.mail_from.to_owned(),
            recipients: msg.recipients.iter().map(|r| r.to_string()).collect(),
            tls: msg.tls.cloned(),
            trace_headers: msg.trace_headers.to_vec(),
            auth: msg.auth.to_vec(),
            body: msg.body.to_vec(),
        });
        self.shelf.arrived.notify_all();
        self.next_id += 1;
        let id = MessageId(self.next_id);
        let commit = match self.mode {
            SinkMode::Pending => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(Ok(()));
                });
                Commit::Pending(rx)
            }
            SinkMode::Hang => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.hung.push(tx);
                Commit::Pending(rx)
            }
            _ => Commit::Done,
        };
        Ok(Accepted { id, commit })
    }
}

/// Writes a fresh self-signed certificate for [`HOSTNAME`] and its key as `cert.pem` and
/// `key.pem` in `dir`; returns the TLS settings naming them and the cert (DER).
fn write_pem(dir: &Path) -> (TlsConfig, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec![HOSTNAME.to_owned()]).expect("rcgen");
    let cert_path: PathBuf = dir.join("cert.pem");
    let key_path: PathBuf = dir.join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");
    let tls = TlsConfig {
        cert_path: Some(cert_path),
        key_path: Some(key_path),
        ..TlsConfig::default()
    };
    (tls, certified.cert.der().to_vec())
}

/// A running ingress plus what its sinks received.
pub struct Server {
    pub handle: Option<IngressHandle>,
    pub addr: SocketAddr,
    pub shelf: Arc<Shelf>,
    _tls_dir: Option<tempfile::TempDir>,
}

/// The default test config: loopback, port 0, two cores, the given backend.
pub fn config(backend: Backend) -> IngressConfig {
    let mut config = IngressConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        hostname: HOSTNAME.to_owned(),
        cores: 2,
        backend,
        read_buffers_per_core: 8,
        shutdown_grace_ms: 200,
        ..IngressConfig::default()
    };
    config.limits.idle_timeout_ms = 10_000;
    // No DNS may leave the machine: tests that authenticate point it at a loopback server.
    config.auth.mode = AuthMode::Off;
    config
}

/// The recipient policy of every test server.
pub fn policy() -> Arc<Policy> {
    let snapshot = PoolSnapshot::new(
        [(
            tempmx_store::Domain::parse(DOMAIN).expect("test domain"),
            DomainStatus::Active,
        )],
        RecipientMode::CatchAll,
    );
    Arc::new(Policy::new(snapshot, None))
}

impl Server {
    /// Starts a server with `config` and sinks in `mode`.
    pub fn start_with(config: IngressConfig, mode: SinkMode) -> Self {
        let shelf = Arc::new(Shelf::default());
        let sinks = (0..config.cores)
            .map(|_| {
                Box::new(TestSink {
                    shelf: Arc::clone(&shelf),
                    mode,
                    next_id: 0,
                    hung: Vec::new(),
                }) as Box<dyn MessageSink + Send>
            })
            .collect();
        let handle = driver::start(&config, policy(), sinks).expect("ingress starts");
        assert_eq!(handle.backend(), config.backend);
        let addr = handle.local_addr();
        Self {
            handle: Some(handle),
            addr,
            shelf,
            _tls_dir: None,
        }
    }

    /// Starts a default server on `backend`, after `tweak` adjusted the config.
    pub fn start(backend: Backend, tweak: impl FnOnce(&mut IngressConfig)) -> Self {
        let mut config = config(backend);
        tweak(&mut config);
        Self::start_with(config, SinkMode::Done)
    }

    /// Starts a server whose certificate comes from PEM files; returns it with the cert (DER).
    pub fn start_with_pem(backend: Backend) -> (Self, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tls, cert) = write_pem(dir.path());
        let mut config = config(backend);
        config.tls = tls;
        let mut server = Self::start_with(config, SinkMode::Done);
        server._tls_dir = Some(dir);
        (server, cert)
    }

    /// Writes a new self-signed pair over the files of a [`Self::start_with_pem`] server
    /// (as a renewal does); returns their settings and the new cert (DER).
    pub fn renew_pem(&self) -> (TlsConfig, Vec<u8>) {
        let dir = self
            ._tls_dir
            .as_ref()
            .expect("a server started with PEM files");
        write_pem(dir.path())
    }

    /// The running handle.
    pub fn handle(&self) -> &IngressHandle {
        self.handle.as_ref().expect("server running")
    }

    /// Connects a raw client and reads the greeting.
    pub fn connect(&self) -> Raw {
        let mut raw = Raw::connect(self.addr);
        raw.expect("220");
        raw
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
        }
    }
}

/// A raw SMTP client over a blocking socket with read timeouts.
pub struct Raw {
    pub stream: TcpStream,
    pending: Vec<u8>,
}

impl Raw {
    /// Connects without reading anything.
    pub fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Connects from a chosen loopback source address (SPF and greylisting see it).
    pub fn connect_from(addr: SocketAddr, source: IpAddr) -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .expect("bind source");
        socket.connect(&addr.into()).expect("connect");
        let mut raw = Self::from_stream(socket.into());
        raw.expect("220");
        raw
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("write timeout");
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one complete (possibly multi-line) reply.
    pub fn reply(&mut self) -> String {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if let Some(end) = reply_end(&self.pending) {
                let reply: Vec<u8> = self.pending.drain(..end).collect();
                return String::from_utf8_lossy(&reply).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no complete reply: {:?}",
                String::from_utf8_lossy(&self.pending)
            );
            assert!(self.pending.len() < REPLY_BYTES_MAX, "reply too long");
            let mut chunk = [0u8; 4096];
            let n = match self.stream.read(&mut chunk) {
                // Signals reach the test's threads too (io_uring workers); just retry.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other.expect("read reply"),
            };
            assert!(
                n > 0,
                "EOF while waiting for a reply; got {:?}",
                String::from_utf8_lossy(&self.pending)
            );
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads one reply and asserts its start (code, or code and enhanced status).
    pub fn expect(&mut self, start: &str) -> String {
        let reply = self.reply();
        assert!(
            reply.starts_with(start),
            "expected {start:?}, got {reply:?}"
        );
        reply
    }

    /// Sends a command line and asserts the reply's start.
    pub fn cmd(&mut self, line: &str, start: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.expect(start)
    }

    /// Asserts the server closes: everything until EOF (bounded) is returned.
    pub fn expect_eof(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.pending);
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "no EOF");
            assert!(rest.len() < REPLY_BYTES_MAX, "too much data before EOF");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return rest,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A reset after our unread input is an EOF too.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return rest,
                Err(e) => panic!("waiting for EOF: {e}"),
            }
        }
    }

    /// EHLO, MAIL, RCPT, DATA with `body` (already dot-stuffed, without the final dot).
    pub fn send_mail(&mut self, to: &str, body: &str) {
        self.cmd("EHLO client.test", "250");
        self.cmd("MAIL FROM:<sender@example.test>", "250");
        self.cmd(&format!("RCPT TO:<{to}>"), "250");
        self.cmd("DATA", "354");
        self.send(body.as_bytes());
        self.cmd(".", "250");
    }
}

/// End of the first complete reply in `buf`: the line whose code is followed by a space.
pub fn reply_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(lf) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + lf + 1];
        start += lf + 1;
        if line.len() < 4 || line[3] != b'-' {
            return Some(start);
        }
    }
    None
}

/// Generates `mod name { fn uring(); fn epoll(); }` tests calling `name(backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn uring() {
                    super::$name(tempmx_ingress::Backend::Uring);
                }
                #[test]
                fn epoll() {
                    super::$name(tempmx_ingress::Backend::Epoll);
                }
            }
        )*
    };
}

/// A sink that refuses everything (for tests that deliver nothing).
pub struct NullSink;

impl MessageSink for NullSink {
    fn accept(&mut self, _: &NewMessage<'_>) -> Result<Accepted, StoreError> {
        Err(StoreError::Io(io::Error::other("null sink")))
    }
}
