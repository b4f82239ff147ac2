//! The epoll backend: plain tokio sockets behind the connection interface.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::task::{Context, Poll, Waker};

use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};

use super::conn::{Connection, Listener};

/// Builds the per-thread tokio runtime (current thread: a connection never leaves its core).
pub(crate) fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// An accepted tokio stream.
pub(crate) struct EpollConn(TcpStream);

#[cfg(test)]
impl EpollConn {
    /// Wraps a connected stream (unit tests of the TLS glue).
    pub(crate) fn from_stream(stream: TcpStream) -> Self {
        Self(stream)
    }
}

impl Connection for EpollConn {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        buf.clear();
        loop {
            if let Err(e) = self.0.readable().await {
                return (Err(e), buf);
            }
            // The buffer is empty, so this reads up to its capacity without growing it.
            match self.0.try_read_buf(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return (result, buf),
            }
        }
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut written = 0;
        while written < buf.len() {
            if let Err(e) = self.0.writable().await {
                return (Err(e), buf);
            }
            match self.0.try_write(&buf[written..]) {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    fn shutdown(&self) {
        if let Err(e) = SockRef::from(&self.0).shutdown(Shutdown::Both) {
            tracing::trace!(error = %e, "shutdown");
        }
    }
}

/// A core's listener on tokio.
pub(crate) struct EpollListener(TcpListener);

impl EpollListener {
    /// Wraps a bound, non-blocking std listener (must run inside the tokio runtime).
    pub(crate) fn new(listener: std::net::TcpListener) -> io::Result<Self> {
        Ok(Self(TcpListener::from_std(listener)?))
    }
}

impl Listener for EpollListener {
    type Conn = EpollConn;

    async fn accept(&self) -> io::Result<(EpollConn, SocketAddr)> {
        // TCP_NODELAY is inherited from the listener.
        let (stream, peer) = self.0.accept().await?;
        Ok((EpollConn(stream), peer))
    }

    fn try_accept(&self) -> Option<io::Result<(EpollConn, SocketAddr)>> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.0.poll_accept(&mut cx) {
            Poll::Ready(accepted) => Some(accepted.map(|(s, peer)| (EpollConn(s), peer))),
            Poll::Pending => None,
        }
    }
}
