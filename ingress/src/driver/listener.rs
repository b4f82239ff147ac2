//! One SO_REUSEPORT listening socket per core, all on the same address.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Backlog of each core's accept queue.
const BACKLOG: i32 = 1024;

/// A bound listener plus a duplicate descriptor used to stop it.
pub(crate) struct BoundListener {
    /// The socket the core accepts on.
    pub(crate) listener: TcpListener,
    /// A dup of the same socket: `shutdown` on it ends pending accepts, which matters on
    /// io_uring where an accept op in flight keeps the descriptor open after drop.
    pub(crate) stopper: Socket,
}

impl BoundListener {
    /// Stops accepting: in-flight accepts fail and queued connections are reset.
    pub(crate) fn stop(stopper: &Socket) {
        if let Err(e) = stopper.shutdown(Shutdown::Both) {
            tracing::debug!(error = %e, "listener shutdown");
        }
    }
}

/// Binds `count` listeners on `addr`: the first decides the port (when `addr` says 0), the
/// rest join it through SO_REUSEPORT so the kernel spreads connections over the cores.
pub(crate) fn bind_per_core(
    addr: SocketAddr,
    count: usize,
) -> io::Result<(Vec<BoundListener>, SocketAddr)> {
    let first = bind_one(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = Vec::with_capacity(count);
    listeners.push(with_stopper(first)?);
    for _ in 1..count {
        listeners.push(with_stopper(bind_one(bound)?)?);
    }
    Ok((listeners, bound))
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn with_stopper(listener: TcpListener) -> io::Result<BoundListener> {
    let stopper = Socket::from(listener.try_clone()?);
    Ok(BoundListener { listener, stopper })
}
