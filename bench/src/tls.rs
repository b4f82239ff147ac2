//! TLS for STARTTLS: a rustls client (ring provider) driven by hand over a tokio
//! `TcpStream`, and a certificate verifier that accepts any certificate.
//!
//! Accepting any certificate is deliberate: this is a load generator aimed at test
//! servers with self-signed certificates, and what it measures is the cost of the
//! handshake and encryption, not the trust chain. Handshake signatures are still
//! checked, so the TLS work on both sides is the real work. Never reuse this
//! verifier for anything that sends real mail.

use std::io::{self, Read as _, Write as _};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Bytes read from the socket at a time while TLS is on.
const TLS_READ_BYTES: usize = 16 * 1024;

/// Accepts any server certificate but verifies handshake signatures (see module docs).
#[derive(Debug)]
struct AcceptAnyCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client configuration with the ring provider that accepts any server certificate.
pub fn insecure_client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let config = ClientConfig::builder_with_provider(Arc::<CryptoProvider>::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS client session over a TCP stream, driven with rustls's buffered sans-io API.
#[derive(Debug)]
pub struct TlsStream {
    tcp: TcpStream,
    conn: ClientConnection,
    rbuf: Box<[u8]>,
    wbuf: Vec<u8>,
}

impl TlsStream {
    /// Runs the client handshake on an already connected stream.
    pub async fn connect(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Self> {
        let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut s = Self {
            tcp,
            conn,
            rbuf: vec![0; TLS_READ_BYTES].into_boxed_slice(),
            wbuf: Vec::with_capacity(TLS_READ_BYTES),
        };
        while s.conn.is_handshaking() {
            s.flush().await?;
            if s.conn.wants_read() && !s.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        s.flush().await?;
        Ok(s)
    }

    /// Encrypts and sends all of `data`.
    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            // rustls buffers a bounded amount of plaintext; send what it took, then more.
            let n = self.conn.writer().write(data)?;
            data = &data[n..];
            self.flush().await?;
        }
        Ok(())
    }

    /// Reads decrypted bytes; `Ok(0)` means the peer closed.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.fill().await? {
                        return Ok(0);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends close_notify (best effort; the connection is being dropped anyway).
    pub async fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush().await;
    }

    async fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.wbuf.clear();
            self.conn.write_tls(&mut self.wbuf)?;
            self.tcp.write_all(&self.wbuf).await?;
        }
        Ok(())
    }

    /// Reads TLS records from the socket; false on EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        let n = self.tcp.read(&mut self.rbuf).await?;
        if n == 0 {
            return Ok(false);
        }
        let mut rest = &self.rbuf[..n];
        while !rest.is_empty() {
            self.conn.read_tls(&mut rest)?;
            if let Err(e) = self.conn.process_new_packets() {
                // Send the alert rustls queued so the server sees why we give up.
                let _ = self.flush().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        // A handshake message may need an answer right away (e.g. key update).
        self.flush().await?;
        Ok(true)
    }
}
