//! The accepts a core keeps in flight on its listener: single-shot accepts, each with an
//! address buffer of its own. A multishot accept returns no peer address (its completions
//! could not share one buffer), so it cost a getpeername(2) per connection; here the kernel
//! writes the address with the accept, and the buffer is read when that accept's completion
//! is reaped, before the same accept is queued again.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use io_uring::types::Fd;
use io_uring::{opcode, squeue};
use socket2::{SockAddr, SockAddrStorage};

/// Accepts in flight per core: a burst of connections is taken several per loop turn, while
/// each pending accept wakes alone (the kernel's accept polls exclusively).
pub(super) const IN_FLIGHT: u32 = 4;

/// One accept's address buffer.
struct Addr {
    storage: SockAddrStorage,
    len: libc::socklen_t,
}

/// The address buffers of a core's accepts (boxed: the kernel holds pointers into them).
pub(super) struct Accepts {
    addrs: Box<[Addr]>,
}

impl Accepts {
    /// Buffers for [`IN_FLIGHT`] accepts.
    pub(super) fn new() -> Self {
        let addrs = (0..IN_FLIGHT)
            .map(|_| Addr {
                storage: SockAddrStorage::zeroed(),
                len: 0,
            })
            .collect();
        Self { addrs }
    }

    /// The accept number `i` on `listener`; its buffer must not be read or freed before its
    /// completion is reaped (the ring is dropped before this).
    pub(super) fn entry(&mut self, listener: RawFd, i: u32) -> squeue::Entry {
        let addr = &mut self.addrs[i as usize];
        addr.storage = SockAddrStorage::zeroed();
        addr.len = addr.storage.size_of();
        // SAFETY: `sockaddr` is a socket address type of this platform, and smaller than the
        // storage.
        let ptr: *mut libc::sockaddr = unsafe { addr.storage.view_as::<libc::sockaddr>() };
        opcode::Accept::new(Fd(listener), ptr, &mut addr.len)
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }

    /// The peer address that the completed accept number `i` wrote; `None` if not inet.
    pub(super) fn peer(&mut self, i: u32) -> Option<SocketAddr> {
        let addr = self.addrs.get_mut(i as usize)?;
        let storage = std::mem::replace(&mut addr.storage, SockAddrStorage::zeroed());
        // SAFETY: the kernel wrote a socket address of `len` bytes (its family says which)
        // into the zeroed storage for this successful accept.
        unsafe { SockAddr::new(storage, addr.len) }.as_socket()
    }
}
