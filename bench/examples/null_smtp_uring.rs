//! A null SMTP responder on io_uring: the floor under any SMTP server on this machine.
//!
//! It does only the I/O an SMTP server cannot avoid for smtp-source's dialogue (a greeting,
//! one reply per command line, DATA until the lone dot, QUIT) and nothing else: no parsing
//! beyond line ends, no checks, no storage. Measured beside smtp-sink and tempmx by
//! `bench/run-smtp-table.sh` (`SERVERS="null …"`), its messages per CPU-second are the
//! kernel's loopback TCP cost plus the thinnest io_uring loop: what tempmx's io_uring driver
//! can approach and not pass.
//!
//! Usage: `null_smtp_uring ADDR [THREADS]` (default 2 threads, one ring and one
//! SO_REUSEPORT listener each). Runs until killed.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use io_uring::{IoUring, cqueue, opcode, squeue, types::Fd};
use socket2::{Domain, Protocol, Socket, Type};

const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
/// Bytes one receive may bring.
const RECV_BYTES: usize = 16 * 1024;
/// The end of DATA, matched one byte at a time across receives.
const DATA_END: &[u8] = b"\r\n.\r\n";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: null_smtp_uring ADDR [THREADS]"))?
        .parse()?;
    let threads: usize = args.next().map(|t| t.parse()).transpose()?.unwrap_or(2);
    let listeners = (0..threads)
        .map(|_| listen(addr))
        .collect::<io::Result<Vec<_>>>()?;
    eprintln!("null_smtp_uring listening on {addr} with {threads} threads");
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|listener| std::thread::spawn(move || serve(&listener)))
        .collect();
    for handle in handles {
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("a ring thread panicked"))??;
    }
    Ok(())
}

fn listen(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket)
}

/// One connection's state; its buffers stay put while an operation uses them.
struct Conn {
    fd: OwnedFd,
    inbuf: Box<[u8]>,
    /// Replies produced since the last send was queued.
    out: Vec<u8>,
    /// The replies of the send in flight, and how much of them the kernel took.
    sending: Vec<u8>,
    sent: usize,
    recv_inflight: bool,
    send_inflight: bool,
    in_data: bool,
    /// How much of [`DATA_END`] the bytes so far end with.
    data_match: usize,
    /// The first bytes of the command line being read.
    head: [u8; 4],
    /// How many bytes of `head` that line has filled.
    line_len: usize,
    quitting: bool,
    gone: bool,
}

impl Conn {
    fn new(fd: OwnedFd) -> Self {
        Conn {
            fd,
            inbuf: vec![0; RECV_BYTES].into_boxed_slice(),
            out: b"220 null ESMTP\r\n".to_vec(),
            sending: Vec::new(),
            sent: 0,
            recv_inflight: false,
            send_inflight: false,
            in_data: false,
            data_match: 0,
            head: [0; 4],
            line_len: 0,
            quitting: false,
            gone: false,
        }
    }

    /// Consumes `n` received bytes, queueing the replies they call for. Line ends and the
    /// end of DATA are found with memchr's vectorised searches, as a real server would.
    fn received(&mut self, n: usize) {
        let input = std::mem::take(&mut self.inbuf);
        let mut at = 0;
        while at < n {
            let rest = &input[at..n];
            at += if self.in_data {
                self.data(rest)
            } else {
                self.line(rest)
            };
        }
        self.inbuf = input;
    }

    /// Consumes DATA bytes up to and with the lone dot, if it is in `bytes`.
    fn data(&mut self, bytes: &[u8]) -> usize {
        // A match of DATA_END begun in the last receive.
        let mut i = 0;
        while self.data_match > 0 && i < bytes.len() {
            let b = bytes[i];
            self.data_match = match (self.data_match, b) {
                (m, _) if b == DATA_END[m] => m + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            i += 1;
            if self.data_match == DATA_END.len() {
                self.end_data();
                return i;
            }
        }
        let rest = &bytes[i..];
        if let Some(found) = memchr::memmem::find(rest, DATA_END) {
            self.end_data();
            return i + found + DATA_END.len();
        }
        // The longest end of `rest` that begins DATA_END, for the next receive.
        if !rest.is_empty() {
            self.data_match = (1..DATA_END.len())
                .rev()
                .find(|&k| rest.ends_with(&DATA_END[..k]))
                .unwrap_or(0);
        }
        bytes.len()
    }

    fn end_data(&mut self) {
        self.in_data = false;
        self.data_match = 0;
        self.out.extend_from_slice(b"250 2.0.0 ok\r\n");
    }

    /// Consumes command bytes up to and with the next line end, if it is in `bytes`.
    fn line(&mut self, bytes: &[u8]) -> usize {
        let end = memchr::memchr(b'\n', bytes);
        let text = &bytes[..end.unwrap_or(bytes.len())];
        for &b in text
            .iter()
            .take(self.head.len().saturating_sub(self.line_len))
        {
            self.head[self.line_len] = b.to_ascii_uppercase();
            self.line_len += 1;
        }
        match end {
            Some(end) => {
                self.command();
                self.line_len = 0;
                self.head = [0; 4];
                end + 1
            }
            None => bytes.len(),
        }
    }

    fn command(&mut self) {
        match &self.head {
            b"DATA" => {
                self.in_data = true;
                // DATA's own CRLF counts: a lone dot may follow at once.
                self.data_match = 2;
                self.out.extend_from_slice(b"354 go\r\n");
            }
            b"QUIT" => {
                self.quitting = true;
                self.out.extend_from_slice(b"221 bye\r\n");
            }
            _ => self.out.extend_from_slice(b"250 ok\r\n"),
        }
    }

    fn finished(&self) -> bool {
        !self.recv_inflight
            && !self.send_inflight
            && (self.gone
                || (self.quitting && self.out.is_empty() && self.sent == self.sending.len()))
    }
}

fn user_data(kind: u64, slot: usize) -> u64 {
    (kind << 56) | slot as u64
}

fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every entry points into a connection's boxed buffers, which live until the
        // operation's completion is reaped (a connection is dropped only with none in flight).
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

fn ring() -> io::Result<IoUring> {
    let mut fast = IoUring::builder();
    fast.setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(8192);
    fast.build(1024)
        .or_else(|_| IoUring::builder().setup_cqsize(8192).build(1024))
}

fn serve(listener: &Socket) -> io::Result<()> {
    let mut ring = ring()?;
    let accept = opcode::AcceptMulti::new(Fd(listener.as_raw_fd()))
        .build()
        .user_data(user_data(ACCEPT, 0));
    push(&mut ring, &accept)?;
    let mut slots: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut touched: Vec<usize> = Vec::new();
    let mut cqes: Vec<(u64, i32, u32)> = Vec::new();
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
        cqes.clear();
        cqes.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(data, result, flags) in &cqes {
            let slot = (data & 0xffff_ffff) as usize;
            match data >> 56 {
                ACCEPT => {
                    if !cqueue::more(flags) {
                        push(&mut ring, &accept)?;
                    }
                    if result < 0 {
                        continue;
                    }
                    // SAFETY: a successful accept returns a descriptor nobody else owns.
                    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(result) };
                    let slot = free.pop().unwrap_or_else(|| {
                        slots.push(None);
                        slots.len() - 1
                    });
                    slots[slot] = Some(Conn::new(fd));
                    touched.push(slot);
                }
                RECV => {
                    let Some(conn) = slots[slot].as_mut() else {
                        continue;
                    };
                    conn.recv_inflight = false;
                    if result > 0 {
                        conn.received(result as usize);
                    } else {
                        conn.gone = true;
                    }
                    touched.push(slot);
                }
                SEND => {
                    let Some(conn) = slots[slot].as_mut() else {
                        continue;
                    };
                    conn.send_inflight = false;
                    if result < 0 {
                        conn.gone = true;
                    } else {
                        conn.sent += result as usize;
                    }
                    touched.push(slot);
                }
                _ => {}
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for &slot in &touched {
            let Some(conn) = slots[slot].as_mut() else {
                continue;
            };
            let fd = Fd(conn.fd.as_raw_fd());
            if !conn.gone && !conn.send_inflight {
                if conn.sent == conn.sending.len() && !conn.out.is_empty() {
                    std::mem::swap(&mut conn.sending, &mut conn.out);
                    conn.out.clear();
                    conn.sent = 0;
                }
                if conn.sent < conn.sending.len() {
                    let rest = &conn.sending[conn.sent..];
                    let entry = opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32)
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                        .user_data(user_data(SEND, slot));
                    conn.send_inflight = true;
                    push(&mut ring, &entry)?;
                }
            }
            if !conn.gone && !conn.quitting && !conn.recv_inflight {
                let entry = opcode::Recv::new(fd, conn.inbuf.as_mut_ptr(), conn.inbuf.len() as u32)
                    .build()
                    .user_data(user_data(RECV, slot));
                conn.recv_inflight = true;
                push(&mut ring, &entry)?;
            }
            if conn.finished() {
                // Dropping the connection closes its socket.
                slots[slot] = None;
                free.push(slot);
            }
        }
        touched.clear();
    }
}
