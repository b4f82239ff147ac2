//! The small connection interface both backends implement, and the transport that layers
//! STARTTLS on top of it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use tempmx_store::TlsSummary;

use crate::tls::{TlsChannel, TlsError};

/// An accepted TCP connection with owned-buffer I/O.
///
/// Methods take `&self` so a read can stay in flight while a reply is written (greet pause).
pub(crate) trait Connection {
    /// Reads into `buf` from its start, up to its capacity; returns it with `len() == n`.
    async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>);
    /// Writes all of `buf[..len]`; gives the buffer back.
    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>);
    /// Shuts both directions down; pending reads end and the peer sees EOF.
    fn shutdown(&self);
}

/// A listening socket of one core.
pub(crate) trait Listener {
    /// The connection type it yields.
    type Conn: Connection + 'static;
    /// Waits for the next connection.
    async fn accept(&self) -> io::Result<(Self::Conn, SocketAddr)>;
    /// A connection the kernel already queued, without waiting.
    fn try_accept(&self) -> Option<io::Result<(Self::Conn, SocketAddr)>>;
}

/// A connection, plaintext or after STARTTLS.
pub(crate) struct Transport<C> {
    io: C,
    tls: Option<Box<TlsChannel>>,
}

impl<C: Connection> Transport<C> {
    /// Wraps a fresh plaintext connection.
    pub(crate) fn new(io: C) -> Self {
        Self { io, tls: None }
    }

    /// The underlying socket (for the greet pause, which runs before any TLS).
    pub(crate) fn io(&self) -> &C {
        &self.io
    }

    /// Reads (and decrypts, on TLS) into `buf`; see [`Connection::read`].
    pub(crate) async fn read(&mut self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match &mut self.tls {
            None => self.io.read(buf).await,
            Some(tls) => tls.read(&self.io, buf).await,
        }
    }

    /// Writes (and encrypts, on TLS) all of `buf`.
    pub(crate) async fn write_all(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match &mut self.tls {
            None => self.io.write_all(buf).await,
            Some(tls) => tls.write_all(&self.io, buf).await,
        }
    }

    /// Runs the server handshake; `raw` becomes the ciphertext read buffer.
    pub(crate) async fn start_tls(
        &mut self,
        config: Arc<ServerConfig>,
        raw: Vec<u8>,
    ) -> Result<TlsSummary, TlsError> {
        let tls = self.tls.insert(Box::new(TlsChannel::new(config, raw)?));
        tls.handshake(&self.io).await
    }

    /// Sends close_notify on TLS; the caller bounds the time and then calls [`Self::shutdown`].
    pub(crate) async fn close_tls(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.close(&self.io).await;
        }
    }

    /// Shuts the socket down (both directions).
    pub(crate) fn shutdown(&self) {
        self.io.shutdown();
    }

    /// Gives back the TLS ciphertext buffer, if TLS was started.
    pub(crate) fn take_tls_buffer(&mut self) -> Option<Vec<u8>> {
        self.tls.take().map(|tls| tls.into_raw_buffer())
    }
}
