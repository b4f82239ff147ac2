//! One SO_REUSEPORT listening socket per core, all on the same address.
//!
//! SO_REUSEPORT alone would let a second tempmx (or a stale one) join the first one's group
//! and take half its connections silently. So the first core's socket binds and listens
//! *without* SO_REUSEPORT: the kernel's bind check is atomic and fails with EADDRINUSE if
//! anything else holds the address. Only then does that socket opt in to SO_REUSEPORT, and
//! the other cores' sockets join its group. A second instance does the same exclusive bind
//! first and is refused, whoever of the two started their binds first.

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

/// Binds `count` listeners on `addr`: the first decides the port (when `addr` says 0) and
/// fails if anyone else holds it; the rest join it through SO_REUSEPORT so the kernel spreads
/// connections over the cores.
pub(crate) fn bind_per_core(
    addr: SocketAddr,
    count: usize,
) -> io::Result<(Vec<BoundListener>, SocketAddr)> {
    let first = bind_one(addr, false)?;
    first.set_reuse_port(true)?;
    let first = TcpListener::from(first);
    let bound = first.local_addr()?;
    let mut listeners = Vec::with_capacity(count);
    listeners.push(with_stopper(first)?);
    for _ in 1..count {
        listeners.push(with_stopper(bind_one(bound, true)?.into())?);
    }
    Ok((listeners, bound))
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR only lets the bind pass over TIME_WAIT leftovers, never a listener.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    // Accepted sockets inherit it: replies go out at once, without a setsockopt each.
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket)
}

fn with_stopper(listener: TcpListener) -> io::Result<BoundListener> {
    let stopper = Socket::from(listener.try_clone()?);
    Ok(BoundListener { listener, stopper })
}
