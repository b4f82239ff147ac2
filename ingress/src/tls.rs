//! STARTTLS: the rustls server configuration and the glue that drives a sans-io
//! `rustls::ServerConnection` over the epoll driver's owned-buffer connections (the io_uring
//! driver feeds its `ServerConnection` from its completions directly, with [`summary`]).
//!
//! The TLS state never owns the socket: every call borrows it, so the driver keeps the
//! connection and can shut it down on any path.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ProtocolVersion, ServerConfig, ServerConnection};
use tempmx_store::TlsSummary;

use crate::config::TlsConfig;
use crate::driver::conn::Connection;

/// Why the TLS configuration could not be built or a handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Only one of `cert_path` / `key_path` is set.
    #[error("tls: cert_path and key_path must be set together")]
    HalfConfigured,
    /// A PEM file could not be read or parsed.
    #[error("tls: cannot load {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("tls: no certificate in {0}")]
    NoCertificate(PathBuf),
    /// Generating the self-signed certificate failed.
    #[error("tls: cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration or the peer's handshake.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The socket failed or closed during the handshake.
    #[error("tls: i/o during handshake: {0}")]
    Io(#[from] io::Error),
    /// A reload asked to turn STARTTLS off; EHLO's offer is fixed at start.
    #[error("tls: STARTTLS cannot be turned off while running (restart to apply)")]
    DisabledAtReload,
}

/// The STARTTLS configuration in force, shared by every core: each new STARTTLS takes the
/// current one, a reload swaps it atomically, and sessions already in TLS keep theirs.
#[derive(Clone)]
pub struct ServerTls(Arc<ArcSwap<ServerConfig>>);

impl ServerTls {
    /// Shares `config` as the one in force.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self(Arc::new(ArcSwap::new(config)))
    }

    /// The configuration a STARTTLS starting now uses.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.0.load_full()
    }

    /// Builds the configuration from `cfg` (re-reading its PEM files) and swaps it in; on
    /// any error the one in force stays.
    pub fn reload(&self, cfg: &TlsConfig, hostname: &str) -> Result<(), TlsError> {
        let config = server_config(cfg, hostname)?.ok_or(TlsError::DisabledAtReload)?;
        self.0.store(config);
        Ok(())
    }
}

/// Builds the STARTTLS server configuration: `None` when TLS is disabled, the configured PEM
/// pair when given, else a self-signed certificate for `hostname` generated now.
pub fn server_config(
    cfg: &TlsConfig,
    hostname: &str,
) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    if cfg.disabled {
        return Ok(None);
    }
    let (chain, key) = match (&cfg.cert_path, &cfg.key_path) {
        (Some(cert), Some(key)) => (load_chain(cert)?, load_key(key)?),
        (None, None) => self_signed(hostname)?,
        _ => return Err(TlsError::HalfConfigured),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Some(Arc::new(config)))
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn self_signed(
    hostname: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certified = rcgen::generate_simple_self_signed(vec![hostname.to_owned()])?;
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    Ok((vec![certified.cert.der().clone()], key.into()))
}

/// The TLS side of one connection after STARTTLS.
pub(crate) struct TlsChannel {
    conn: ServerConnection,
    /// Ciphertext read from the socket; `raw[raw_pos..]` is not yet handed to rustls.
    raw: Vec<u8>,
    raw_pos: usize,
    /// rustls holds decrypted bytes not yet read (as of the last `process_new_packets`).
    plaintext_waiting: bool,
    /// Ciphertext to send; taken by the write op and put back when it completes.
    out: Vec<u8>,
}

impl TlsChannel {
    /// Starts a server connection; `raw` is the empty ciphertext read buffer to use (the
    /// read-buffer pool empties a buffer when it is given back).
    pub(crate) fn new(config: Arc<ServerConfig>, raw: Vec<u8>) -> Result<Self, TlsError> {
        debug_assert!(raw.is_empty(), "the ciphertext buffer starts empty");
        let conn = ServerConnection::new(config)?;
        Ok(Self {
            conn,
            raw,
            raw_pos: 0,
            plaintext_waiting: false,
            out: Vec::new(),
        })
    }

    /// Runs the handshake to completion; bytes the client sends right after it stay buffered.
    pub(crate) async fn handshake<C: Connection>(
        &mut self,
        io: &C,
    ) -> Result<TlsSummary, TlsError> {
        if let Err(e) = self.drive_handshake(io).await {
            // Send the alert rustls queued for the failure, if the socket still takes it.
            let _ = self.flush(io).await;
            return Err(e);
        }
        Ok(self.summary())
    }

    async fn drive_handshake<C: Connection>(&mut self, io: &C) -> Result<(), TlsError> {
        while self.conn.is_handshaking() {
            self.flush(io).await?;
            if !self.conn.wants_read() {
                return Err(TlsError::Io(io::Error::other("handshake stalled")));
            }
            if !self.feed()? && !self.fill(io).await? {
                return Err(TlsError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        self.flush(io).await
    }

    /// Reads plaintext into `buf` (from its start, up to its capacity); `Ok(0)` is end of stream.
    pub(crate) async fn read<C: Connection>(
        &mut self,
        io: &C,
        mut buf: Vec<u8>,
    ) -> (io::Result<usize>, Vec<u8>) {
        let capacity = buf.capacity();
        // Plaintext is copied out of rustls, so the slice must be initialised.
        buf.resize(capacity, 0);
        let result = self.read_plain(io, &mut buf).await;
        buf.truncate(*result.as_ref().unwrap_or(&0));
        (result, buf)
    }

    async fn read_plain<C: Connection>(&mut self, io: &C, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Key updates and alerts may be waiting to go out before we block on the peer.
            self.flush(io).await.map_err(tls_to_io)?;
            if self.feed().map_err(tls_to_io)? {
                continue;
            }
            if !self.fill(io).await.map_err(tls_to_io)? {
                return Ok(0);
            }
        }
    }

    /// Encrypts and sends all of `data`; gives the buffer back for reuse.
    pub(crate) async fn write_all<C: Connection>(
        &mut self,
        io: &C,
        data: Vec<u8>,
    ) -> (io::Result<()>, Vec<u8>) {
        let result = self.write_plain(io, &data).await;
        (result, data)
    }

    async fn write_plain<C: Connection>(&mut self, io: &C, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.conn.writer().write(data)?;
            data = &data[n..];
            self.flush(io).await.map_err(tls_to_io)?;
            if n == 0 && !data.is_empty() && !self.conn.wants_write() {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Sends close_notify (best effort; the caller bounds the time).
    pub(crate) async fn close<C: Connection>(&mut self, io: &C) {
        self.conn.send_close_notify();
        if let Err(e) = self.flush(io).await {
            tracing::debug!(error = %e, "tls close_notify not sent");
        }
    }

    /// Gives back the ciphertext read buffer for the pool.
    pub(crate) fn into_raw_buffer(self) -> Vec<u8> {
        self.raw
    }

    fn summary(&self) -> TlsSummary {
        summary(&self.conn)
    }

    /// Hands buffered ciphertext to rustls; false when there was none.
    fn feed(&mut self) -> Result<bool, TlsError> {
        if self.raw_pos >= self.raw.len() {
            return Ok(false);
        }
        while self.raw_pos < self.raw.len() {
            let mut rest = &self.raw[self.raw_pos..];
            match self.conn.read_tls(&mut rest) {
                Ok(n) => self.raw_pos += n,
                // rustls's plaintext buffer is full: the caller drains it and feeds again.
                Err(_) if self.plaintext_waiting => break,
                Err(e) => return Err(e.into()),
            }
            // On error the alert describing it is queued; the caller's flush or close sends it.
            let state = self.conn.process_new_packets()?;
            self.plaintext_waiting = state.plaintext_bytes_to_read() > 0;
        }
        Ok(true)
    }

    /// Reads more ciphertext from the socket; false on end of stream.
    async fn fill<C: Connection>(&mut self, io: &C) -> Result<bool, TlsError> {
        let (result, raw) = io.read(std::mem::take(&mut self.raw)).await;
        self.raw = raw;
        self.raw_pos = 0;
        let n = result?;
        if n == 0 {
            return Ok(false);
        }
        self.feed()?;
        Ok(true)
    }

    /// Sends every queued TLS record.
    async fn flush<C: Connection>(&mut self, io: &C) -> Result<(), TlsError> {
        while self.conn.wants_write() {
            self.out.clear();
            self.conn.write_tls(&mut self.out)?;
            let (result, out) = io.write_all(std::mem::take(&mut self.out)).await;
            self.out = out;
            result?;
        }
        Ok(())
    }
}

/// The protocol version and cipher suite a finished handshake agreed on.
pub(crate) fn summary(conn: &ServerConnection) -> TlsSummary {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("unknown");
    TlsSummary {
        version: version.to_owned(),
        cipher: cipher.to_owned(),
    }
}

fn tls_to_io(e: TlsError) -> io::Error {
    match e {
        TlsError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use rustls::pki_types::ServerName;

    use super::*;
    use crate::driver::EpollConn;

    const PAYLOAD_BYTES: usize = 64 * 1024;

    // Goal: the owned-buffer glue, with a deliberately small ciphertext buffer, completes a
    // handshake with a rustls client from PEM files, echoes a payload spanning many records
    // both ways, and sees the client's close_notify as end of stream.
    #[test]
    fn echo_over_loopback_tls13() {
        echo_over_loopback(&rustls::version::TLS13, "TLSv1.3");
    }

    #[test]
    fn echo_over_loopback_tls12() {
        echo_over_loopback(&rustls::version::TLS12, "TLSv1.2");
    }

    fn echo_over_loopback(version: &'static rustls::SupportedProtocolVersion, name: &'static str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let certified =
            rcgen::generate_simple_self_signed(vec!["mx.test".to_owned()]).expect("rcgen");
        let cfg = TlsConfig {
            disabled: false,
            cert_path: Some(dir.path().join("cert.pem")),
            key_path: Some(dir.path().join("key.pem")),
        };
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).expect("cert");
        std::fs::write(
            dir.path().join("key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .expect("key");
        let config = server_config(&cfg, "mx.test")
            .expect("config")
            .expect("enabled");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cert = certified.cert.der().clone();
        let client = std::thread::spawn(move || client(addr, cert, version));
        let echoed = serve_echo(listener, config, name);
        assert_eq!(echoed, PAYLOAD_BYTES);
        assert_eq!(client.join().expect("client"), PAYLOAD_BYTES);
    }

    fn serve_echo(
        listener: std::net::TcpListener,
        config: Arc<ServerConfig>,
        version: &str,
    ) -> usize {
        listener.set_nonblocking(true).expect("nonblocking");
        let rt = crate::driver::test_runtime();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let (stream, _) = listener.accept().await.expect("accept");
            let io = EpollConn::from_stream(stream);
            let mut tls = TlsChannel::new(config, Vec::with_capacity(1024)).expect("channel");
            let summary = tls.handshake(&io).await.expect("handshake");
            assert_eq!(summary.version, version);
            assert_ne!(summary.cipher, "unknown");
            let mut buf = Vec::with_capacity(700);
            let mut total = 0;
            for _ in 0..PAYLOAD_BYTES {
                let (n, b) = tls.read(&io, buf).await;
                let n = n.expect("read");
                if n == 0 {
                    break;
                }
                total += n;
                let (w, b) = tls.write_all(&io, b).await;
                w.expect("write");
                buf = b;
            }
            tls.close(&io).await;
            io.shutdown();
            total
        })
    }

    fn client(
        addr: std::net::SocketAddr,
        cert: CertificateDer<'static>,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> usize {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("mx.test").expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("conn");
        let mut sock = std::net::TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let payload: Vec<u8> = (0..PAYLOAD_BYTES).map(|i| (i % 251) as u8).collect();
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        stream.write_all(&payload).expect("write");
        let mut back = vec![0u8; PAYLOAD_BYTES];
        stream.read_exact(&mut back).expect("read back");
        assert_eq!(back, payload);
        conn.send_close_notify();
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        stream.flush().expect("flush");
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).expect("server close_notify");
        assert!(rest.is_empty());
        back.len()
    }
}
