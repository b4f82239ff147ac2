//! The io_uring backend: tokio-uring sockets behind the connection interface.

use std::io;
use std::net::{Shutdown, SocketAddr};

use tokio_uring::net::{TcpListener, TcpStream};

use super::conn::{Connection, Listener};

/// Reads retried after EINTR before the error is passed on.
const READ_INTERRUPTS_MAX: usize = 8;

/// Whether an io_uring instance can be set up here (seccomp and the
/// `io_uring_disabled` sysctl make setup fail with EPERM; old kernels with ENOSYS).
pub(crate) fn probe() -> io::Result<()> {
    tokio_uring::uring_builder().build(8).map(drop)
}

/// Builds the per-thread tokio-uring runtime.
pub(crate) fn runtime() -> io::Result<tokio_uring::Runtime> {
    tokio_uring::Runtime::new(&tokio_uring::builder())
}

/// An accepted tokio-uring stream.
pub(crate) struct UringConn(TcpStream);

impl Connection for UringConn {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        for _ in 0..READ_INTERRUPTS_MAX {
            // tokio-uring reads into the buffer from its start up to its capacity.
            buf.clear();
            let (result, back) = self.0.read(buf).await;
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => buf = back,
                result => return (result, back),
            }
        }
        (Err(io::ErrorKind::Interrupted.into()), buf)
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        self.0.write_all(buf).await
    }

    fn shutdown(&self) {
        // A dropped tokio-uring op is not cancelled and keeps the descriptor open, so the
        // peer only sees EOF through an explicit shutdown.
        if let Err(e) = self.0.shutdown(Shutdown::Both) {
            tracing::trace!(error = %e, "shutdown");
        }
    }
}

/// A core's listener on tokio-uring.
pub(crate) struct UringListener(TcpListener);

impl UringListener {
    /// Wraps a bound std listener (must run inside the tokio-uring runtime).
    pub(crate) fn new(listener: std::net::TcpListener) -> Self {
        Self(TcpListener::from_std(listener))
    }
}

impl Listener for UringListener {
    type Conn = UringConn;

    async fn accept(&self) -> io::Result<(UringConn, SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::trace!(error = %e, "set_nodelay");
        }
        Ok((UringConn(stream), peer))
    }
}
