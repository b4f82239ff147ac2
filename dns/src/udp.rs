//! UDP workers: each owns one SO_REUSEPORT socket and answers inline, in
//! batches of up to `udp_batch_max` datagrams per recvmmsg/sendmmsg pair.
//!
//! In-flight queries are bounded by the batch size; what the worker cannot
//! take yet waits in (and beyond its size is dropped by) the socket buffer.
//! Syscalls dominate the cost of a query on small VMs, hence the batching.

use std::mem::{size_of, zeroed};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::warn;

use crate::counters::Counters;
use crate::respond::{self, Transport};
use crate::server::Shared;

/// Largest datagram we read; longer ones arrive with MSG_TRUNC and are dropped
/// (a query is a few hundred bytes; 4 KiB covers any EDNS option mix).
const RECV_BYTES: usize = 4096;
/// Pause after an unexpected socket error, so a persistent one cannot spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Buffers and message headers for one batch, allocated once per worker.
struct Batch {
    size: usize,
    recv_buf: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    recv_iov: Vec<libc::iovec>,
    recv_hdr: Vec<libc::mmsghdr>,
    out: Vec<Vec<u8>>,
    send_iov: Vec<libc::iovec>,
    send_hdr: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new(size: usize, payload_max: u16) -> Box<Self> {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for
        // which all-zero bytes are a valid value.
        let (addr, iov, hdr) = unsafe { (zeroed(), zeroed(), zeroed()) };
        let mut b = Box::new(Batch {
            size,
            recv_buf: vec![0; size * RECV_BYTES],
            addrs: vec![addr; size],
            recv_iov: vec![iov; size],
            recv_hdr: vec![hdr; size],
            out: (0..size)
                .map(|_| Vec::with_capacity(usize::from(payload_max).max(512)))
                .collect(),
            send_iov: vec![iov; size],
            send_hdr: vec![hdr; size],
        });
        // The vectors never grow, so these pointers stay valid for the Box's life.
        for i in 0..size {
            b.recv_iov[i].iov_base = b.recv_buf[i * RECV_BYTES..].as_mut_ptr().cast();
            b.recv_iov[i].iov_len = RECV_BYTES;
            let iov_ptr: *mut libc::iovec = &mut b.recv_iov[i];
            let addr_ptr: *mut libc::sockaddr_storage = &mut b.addrs[i];
            let h = &mut b.recv_hdr[i].msg_hdr;
            h.msg_iov = iov_ptr;
            h.msg_iovlen = 1;
            h.msg_name = addr_ptr.cast();
        }
        b
    }

    fn reset_recv(&mut self) {
        for h in &mut self.recv_hdr {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
    }
}

/// Runs one worker until `shared.stop` is set (checked at least every read timeout).
pub(crate) fn run(socket: UdpSocket, shared: Arc<Shared>, counters: Arc<Counters>) {
    let tr = Transport::Udp {
        payload_max: shared.config.edns_udp_payload_max,
    };
    let mut batch = Batch::new(
        shared.config.udp_batch_max,
        shared.config.edns_udp_payload_max,
    );
    let fd = socket.as_raw_fd();
    while !shared.stop.load(Ordering::Relaxed) {
        batch.reset_recv();
        // SAFETY: recv_hdr holds `size` initialised mmsghdrs whose iovecs and
        // names point into buffers owned by `batch`, alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                batch.recv_hdr.as_mut_ptr(),
                batch.size as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            recv_error();
            continue;
        }
        let count = answer_batch(&mut batch, n as usize, &shared, &counters, tr);
        send_batch(fd, &mut batch, count, &counters);
    }
}

fn recv_error() {
    let err = std::io::Error::last_os_error();
    match err.kind() {
        // Read timeout (shutdown check) or a signal.
        std::io::ErrorKind::WouldBlock
        | std::io::ErrorKind::TimedOut
        | std::io::ErrorKind::Interrupted => {}
        _ => {
            warn!(error = %err, "dns udp receive failed");
            std::thread::sleep(ERROR_PAUSE);
        }
    }
}

/// Answers the `n` received datagrams; fills `send_hdr[..count]`.
fn answer_batch(b: &mut Batch, n: usize, shared: &Shared, c: &Counters, tr: Transport) -> usize {
    // Loaded after the receive, so a publish that returned before a query
    // was sent is always seen by it.
    let table = shared.table.load();
    let mut count = 0;
    for i in 0..n.min(b.size) {
        let h = &b.recv_hdr[i];
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            c.dropped();
            continue;
        }
        let len = (h.msg_len as usize).min(RECV_BYTES);
        let packet = &b.recv_buf[i * RECV_BYTES..i * RECV_BYTES + len];
        if !respond::handle(&table, packet, &mut b.out[i], tr, c) {
            continue;
        }
        let name_len = h.msg_hdr.msg_namelen;
        let addr_ptr: *mut libc::sockaddr_storage = &mut b.addrs[i];
        b.send_iov[count].iov_base = b.out[i].as_mut_ptr().cast();
        b.send_iov[count].iov_len = b.out[i].len();
        let iov_ptr: *mut libc::iovec = &mut b.send_iov[count];
        let sh = &mut b.send_hdr[count];
        sh.msg_hdr.msg_name = addr_ptr.cast();
        sh.msg_hdr.msg_namelen = name_len;
        sh.msg_hdr.msg_iov = iov_ptr;
        sh.msg_hdr.msg_iovlen = 1;
        count += 1;
    }
    count
}

/// Sends `send_hdr[..count]`; a message the kernel rejects is skipped.
fn send_batch(fd: i32, b: &mut Batch, count: usize, c: &Counters) {
    let mut start = 0;
    // Each round sends at least one message or skips one, except on EINTR;
    // the cap keeps even a signal storm bounded.
    for _ in 0..2 * count + 2 {
        if start >= count {
            return;
        }
        // SAFETY: send_hdr[start..count] were filled by answer_batch with
        // pointers into `b`, which is not touched during the call.
        let sent = unsafe {
            libc::sendmmsg(
                fd,
                b.send_hdr[start..].as_mut_ptr(),
                (count - start) as u32,
                0,
            )
        };
        if sent > 0 {
            start += sent as usize;
            continue;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            c.dropped();
            start += 1;
        }
    }
}
