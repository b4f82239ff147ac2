//! The completion loop of one core: multishot accept on the core's listener, multishot
//! receive into the buffer ring, sends batched per loop turn, the hand-off eventfd, the
//! timers, and the graceful shutdown. One `io_uring_enter` per turn submits everything queued
//! and waits for completions or the next deadline.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode};
use socket2::{SockRef, Socket};

use super::bufring::{self, BufRing};
use super::checks::{Checks, Done, Token};
use super::conn::{Conn, End, Env};
use super::ring;
use super::spares::Spares;
use super::timers::Timers;
use crate::config::IngressConfig;
use crate::driver::admission::Refusal;
use crate::driver::core::{Core, CoreParts, build_authenticator, shutting_down_line};
use crate::driver::counters::bump;
use crate::driver::listener::BoundListener;
use crate::driver::runtime::{Ready, report_ready};
use crate::proto::reply;
use crate::session::PeerInfo;

/// Kinds of operation, in the top byte of the user data.
const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const WAKE: u64 = 4;
const CANCEL: u64 = 5;
const CLOSE: u64 = 6;
/// Generations are kept modulo 2^24 in the user data.
const GENERATION_MASK: u32 = (1 << 24) - 1;
/// Fewest buffers in a core's buffer ring.
const RING_BUFFERS_MIN: usize = 64;
/// Pause before re-arming an accept that failed for want of descriptors or memory, so the
/// loop does not spin while that lasts.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(20);
/// How long the last stage of a shutdown waits for shut sockets' operations to finish.
const DRAIN_MAX: Duration = Duration::from_secs(1);

fn user_data(kind: u64, slot: u32, generation: u32) -> u64 {
    (kind << 56) | (u64::from(generation & GENERATION_MASK) << 32) | u64::from(slot)
}

fn split(user_data: u64) -> (u64, u32, u32) {
    (
        user_data >> 56,
        user_data as u32,
        (user_data >> 32) as u32 & GENERATION_MASK,
    )
}

/// Where a stopping core is.
#[derive(Clone, Copy)]
enum Stopping {
    /// Sessions may finish until then.
    Grace(Instant),
    /// Sessions were told 421 4.3.2; their last words may take until then.
    LastWords(Instant),
    /// Every socket is shut; operations are finishing until then.
    Drain(Instant),
}

struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

/// One core's loop. Field order is drop order: the ring goes first, so the kernel is done
/// with every buffer and send before they are freed.
struct EventLoop {
    ring: IoUring,
    bufs: BufRing,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    timers: Timers,
    core: Core,
    checks: Checks,
    listener: TcpListener,
    stopper: Socket,
    /// The eventfd counter a posted read fills.
    wake_buf: Box<[u8; 8]>,
    /// Emptied buffers of ended connections, for new ones.
    spares: Spares,
    /// Connections that had events this turn (synced once at its end).
    touched: Vec<u32>,
    cqes: Vec<(u64, i32, u32)>,
    done: Vec<Done>,
    stopping: Option<Stopping>,
    /// When to re-arm an accept that failed hard.
    accept_retry: Option<Instant>,
    /// The monotonic clock, read once per turn when `io_uring_enter` returned.
    now: Instant,
    /// The wall clock, read with `now`.
    wall: SystemTime,
}

/// Runs one core on io_uring until the ingress stops; reports on `ready` once it accepts.
pub(crate) fn run(
    config: &IngressConfig,
    parts: CoreParts,
    ready: &mut Option<mpsc::Sender<Ready>>,
) -> io::Result<()> {
    let (ring, setup) = ring::build()?;
    let buffers = config.read_buffers_per_core.max(RING_BUFFERS_MIN);
    let bufs = BufRing::new(&ring, buffers, config.read_buffer_bytes)?;
    let auth_config = config.clone();
    let auth_counters = std::sync::Arc::clone(&parts.auth_counters);
    let checks = Checks::start(parts.id, parts.stop.clone(), move || {
        build_authenticator(&auth_config, auth_counters)
    })?;
    let (core, bound, _stop) = Core::new(config, parts, None)?;
    let mut this = EventLoop {
        ring,
        bufs,
        slots: Vec::new(),
        free: Vec::new(),
        live: 0,
        timers: Timers::default(),
        core,
        checks,
        listener: bound.listener,
        stopper: bound.stopper,
        wake_buf: Box::new([0; 8]),
        spares: Spares::default(),
        touched: Vec::new(),
        cqes: Vec::new(),
        done: Vec::new(),
        stopping: None,
        accept_retry: None,
        now: Instant::now(),
        wall: SystemTime::now(),
    };
    this.arm_accept()?;
    this.arm_wake()?;
    tracing::debug!(core = this.core.id, setup, buffers, "io_uring core ready");
    report_ready(ready, this.core.id);
    this.serve()
}

impl EventLoop {
    fn serve(&mut self) -> io::Result<()> {
        loop {
            // Measured from the start of the last turn: a deadline fires late by at most the
            // time that turn took (microseconds; deadlines are seconds).
            let wait = self
                .next_deadline()
                .map(|at| at.saturating_duration_since(self.now));
            self.enter(wait)?;
            self.now = Instant::now();
            self.wall = SystemTime::now();
            self.reap()?;
            self.fire_timers();
            if let Some(at) = self.accept_retry
                && self.now >= at
            {
                self.accept_retry = None;
                if self.stopping.is_none() {
                    self.arm_accept()?;
                }
            }
            self.sync_touched()?;
            if self.stop_step()? {
                // The closes queued by the last turn.
                self.ring.submit()?;
                tracing::debug!(core = self.core.id, "core stopped");
                return Ok(());
            }
        }
    }

    /// Submits everything queued and waits for one completion or `wait`.
    fn enter(&mut self, wait: Option<Duration>) -> io::Result<()> {
        let result = match wait {
            None => self.ring.submit_and_wait(1),
            Some(wait) => {
                let ts = Timespec::new()
                    .sec(wait.as_secs())
                    .nsec(wait.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                // Timed out, interrupted, or completions to reap first: all fine.
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(e),
            },
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let stop = self.stopping.map(|s| match s {
            Stopping::Grace(at) | Stopping::LastWords(at) | Stopping::Drain(at) => at,
        });
        [self.timers.next(), stop, self.accept_retry]
            .into_iter()
            .flatten()
            .min()
    }

    fn reap(&mut self) -> io::Result<()> {
        self.cqes.clear();
        self.cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for i in 0..self.cqes.len() {
            let (data, result, flags) = self.cqes[i];
            let (kind, slot, generation) = split(data);
            match kind {
                ACCEPT => self.accepted(result, flags)?,
                RECV => self.received(slot, generation, result, flags),
                SEND => self.sent(slot, generation, result)?,
                WAKE => self.woken()?,
                CANCEL => self.cancelled(slot, generation, result),
                _ => {}
            }
        }
        Ok(())
    }

    fn accepted(&mut self, result: i32, flags: u32) -> io::Result<()> {
        let rearm = !cqueue::more(flags) && self.stopping.is_none();
        if result < 0 {
            let e = io::Error::from_raw_os_error(-result);
            match -result {
                libc::ECANCELED | libc::ECONNABORTED | libc::EINTR => {
                    tracing::debug!(error = %e, "accept");
                    if rearm {
                        self.arm_accept()?;
                    }
                }
                // Out of descriptors or memory: pause so the loop does not spin while it lasts.
                _ => {
                    tracing::warn!(error = %e, "accept failed");
                    if rearm {
                        self.accept_retry = Some(self.now + ACCEPT_RETRY_PAUSE);
                    }
                }
            }
            return Ok(());
        }
        if rearm {
            self.arm_accept()?;
        }
        // SAFETY: a successful accept returns a new descriptor that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(result) };
        self.admit(fd);
        Ok(())
    }

    fn admit(&mut self, fd: OwnedFd) {
        if self.stopping.is_some() {
            return refuse(fd, &shutting_down_line());
        }
        let peer = match SockRef::from(&fd).peer_addr().map(|a| a.as_socket()) {
            Ok(Some(peer)) => peer,
            // The client is gone already (or not inet): nothing to serve.
            _ => return,
        };
        match self.core.admission.admit(peer.ip().to_canonical()) {
            Ok(permit) => {
                bump(&self.core.counters().connections_accepted, 1);
                let slot = self.alloc();
                let generation = self.slots[slot as usize].generation;
                let info = peer_info(&self.core, peer);
                let env = Env {
                    core: &self.core,
                    checks: &self.checks,
                    token: (slot, generation & GENERATION_MASK),
                    now: self.now,
                    wall: self.wall,
                };
                let conn = Conn::new(env, fd, generation, info, permit, self.spares.take());
                self.slots[slot as usize].conn = Some(conn);
                self.live += 1;
                self.touched.push(slot);
            }
            Err(refusal) => {
                let counter = match refusal {
                    Refusal::CoreFull => &self.core.counters().connections_refused_core,
                    Refusal::IpFull => &self.core.counters().connections_refused_ip,
                };
                bump(counter, 1);
                tracing::debug!(core = self.core.id, %peer, ?refusal, "connection refused");
                refuse(fd, reply::too_many_connections());
            }
        }
    }

    fn alloc(&mut self) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                s.generation = s.generation.wrapping_add(1);
                slot
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn received(&mut self, slot: u32, generation: u32, result: i32, flags: u32) {
        let buffer = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let Self {
            slots,
            bufs,
            core,
            checks,
            touched,
            now,
            wall,
            ..
        } = self;
        if let Some(conn) = live(slots, slot, generation) {
            if !more {
                conn.recv_armed = false;
            }
            let env = Env {
                core,
                checks,
                token: (slot, generation),
                now: *now,
                wall: *wall,
            };
            match (result, buffer) {
                (n, Some(bid)) if n > 0 => conn.received(env, bufs.get(bid, n as usize)),
                (0, _) => conn.eof(env, End::Closed),
                (n, _) if n < 0 => match -n {
                    // Out of buffers: the receive is re-armed once this turn returned some.
                    libc::ENOBUFS | libc::ECANCELED => {}
                    e => conn.eof(env, End::Io(io::Error::from_raw_os_error(e))),
                },
                _ => {}
            }
            touched.push(slot);
        }
        if let Some(bid) = buffer {
            bufs.recycle(bid);
        }
    }

    fn sent(&mut self, slot: u32, generation: u32, result: i32) -> io::Result<()> {
        let Self {
            slots,
            core,
            checks,
            now,
            wall,
            ..
        } = self;
        let Some(conn) = live(slots, slot, generation) else {
            return Ok(());
        };
        let env = Env {
            core,
            checks,
            token: (slot, generation),
            now: *now,
            wall: *wall,
        };
        if !conn.sent(env, result) {
            let entry = send_entry(conn, slot);
            ring::push(&mut self.ring, &entry)?;
        }
        self.touched.push(slot);
        Ok(())
    }

    /// A cancel completed: if its target was busy, cancel again at the end of the turn.
    fn cancelled(&mut self, slot: u32, generation: u32, result: i32) {
        if result != -libc::EALREADY {
            return;
        }
        if let Some(conn) = live(&mut self.slots, slot, generation) {
            conn.recv_cancelled = false;
            conn.send_cancelled = false;
            self.touched.push(slot);
        }
    }

    fn woken(&mut self) -> io::Result<()> {
        self.arm_wake()?;
        self.checks.take(&mut self.done);
        let mut done = std::mem::take(&mut self.done);
        for d in done.drain(..) {
            let token: Token = match &d {
                Done::Stop => {
                    self.begin_stop()?;
                    continue;
                }
                Done::Sender(t, _)
                | Done::Message(t, _)
                | Done::Greylist(t, _)
                | Done::Commit(t, _)
                | Done::Skipped(t) => *t,
            };
            let Self {
                slots,
                core,
                checks,
                touched,
                now,
                wall,
                ..
            } = self;
            if let Some(conn) = live(slots, token.0, token.1) {
                conn.checked(
                    Env {
                        core,
                        checks,
                        token,
                        now: *now,
                        wall: *wall,
                    },
                    d,
                );
                touched.push(token.0);
            }
        }
        self.done = done;
        Ok(())
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        while let Some((slot, seq)) = self.timers.pop_due(now) {
            let Self {
                slots,
                core,
                checks,
                touched,
                wall,
                ..
            } = self;
            let Some(s) = slots.get_mut(slot as usize) else {
                continue;
            };
            let generation = s.generation & GENERATION_MASK;
            let Some(conn) = s.conn.as_mut() else {
                continue;
            };
            let env = Env {
                core,
                checks,
                token: (slot, generation),
                now,
                wall: *wall,
            };
            if conn.timer_fired(env, seq) {
                touched.push(slot);
            }
        }
    }

    /// Queues what the touched connections need: a send, a receive armed or cancelled, a
    /// new deadline; frees the finished ones.
    fn sync_touched(&mut self) -> io::Result<()> {
        self.touched.sort_unstable();
        self.touched.dedup();
        let touched = std::mem::take(&mut self.touched);
        for &slot in &touched {
            self.sync(slot)?;
        }
        self.touched = touched;
        self.touched.clear();
        Ok(())
    }

    fn sync(&mut self, slot: u32) -> io::Result<()> {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return Ok(());
        };
        let generation = s.generation;
        let Some(conn) = s.conn.as_mut() else {
            return Ok(());
        };
        let fd = Fd(conn.fd.as_raw_fd());
        if conn.next_send(self.now) {
            let entry = send_entry(conn, slot);
            ring::push(&mut self.ring, &entry)?;
        }
        if conn.wants_recv() && !conn.recv_armed {
            let entry = opcode::RecvMulti::new(fd, bufring::GROUP)
                .build()
                .user_data(user_data(RECV, slot, generation));
            conn.recv_armed = true;
            conn.recv_cancelled = false;
            ring::push(&mut self.ring, &entry)?;
        } else if conn.wants_recv_cancel() && conn.recv_armed && !conn.recv_cancelled {
            let entry = opcode::AsyncCancel::new(user_data(RECV, slot, generation))
                .build()
                .user_data(user_data(CANCEL, slot, generation));
            conn.recv_cancelled = true;
            ring::push(&mut self.ring, &entry)?;
        }
        if conn.is_done() && conn.sending && !conn.send_cancelled {
            let entry = opcode::AsyncCancel::new(user_data(SEND, slot, generation))
                .build()
                .user_data(user_data(CANCEL, slot, generation));
            conn.send_cancelled = true;
            ring::push(&mut self.ring, &entry)?;
        }
        if conn.is_done() && !conn.recv_armed && !conn.sending {
            if let Some(armed) = conn.timer {
                self.timers.disarm(armed);
            }
            // Dropping the connection releases its admission slot; its socket is closed on
            // the ring with this turn's submission (no close(2) of its own).
            if let Some(conn) = self.slots[slot as usize].conn.take() {
                let (fd, spare) = conn.into_parts();
                self.spares.keep(spare);
                let entry = opcode::Close::new(Fd(fd.into_raw_fd()))
                    .build()
                    .user_data(user_data(CLOSE, slot, generation));
                ring::push(&mut self.ring, &entry)?;
            }
            self.free.push(slot);
            self.live -= 1;
            return Ok(());
        }
        conn.arm_timer(&mut self.timers, &self.core, slot);
        Ok(())
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(Fd(self.listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(ACCEPT, 0, 0));
        ring::push(&mut self.ring, &entry)
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let entry = opcode::Read::new(Fd(self.checks.wake_fd()), self.wake_buf.as_mut_ptr(), 8)
            .build()
            .user_data(user_data(WAKE, 0, 0));
        ring::push(&mut self.ring, &entry)
    }

    /// The stop signal: no more accepting; connections already queued for this core are told
    /// 421 4.3.2; sessions get the grace period.
    fn begin_stop(&mut self) -> io::Result<()> {
        if self.stopping.is_some() {
            return Ok(());
        }
        let now = self.now;
        self.stopping = Some(Stopping::Grace(now + self.core.timing.shutdown_grace));
        let cancel = opcode::AsyncCancel::new(user_data(ACCEPT, 0, 0))
            .build()
            .user_data(user_data(CANCEL, 0, 0));
        ring::push(&mut self.ring, &cancel)?;
        // The listener is non-blocking: take what the kernel already queued, then close it.
        while let Ok((stream, _)) = self.listener.accept() {
            self.admit(OwnedFd::from(stream));
        }
        BoundListener::stop(&self.stopper);
        tracing::debug!(core = self.core.id, open = self.live, "core draining");
        Ok(())
    }

    /// Advances the shutdown; true when the loop should end.
    fn stop_step(&mut self) -> io::Result<bool> {
        let Some(stopping) = self.stopping else {
            return Ok(false);
        };
        if self.live == 0 {
            return Ok(true);
        }
        let now = self.now;
        match stopping {
            Stopping::Grace(at) if now >= at => {
                self.each_conn(|conn, env| conn.shutting_down(env));
                let last = now + self.core.timing.final_write * 2;
                self.stopping = Some(Stopping::LastWords(last));
            }
            Stopping::LastWords(at) if now >= at => {
                self.each_conn(|conn, env| conn.kill(env));
                self.stopping = Some(Stopping::Drain(now + DRAIN_MAX));
            }
            Stopping::Drain(at) if now >= at => {
                tracing::warn!(
                    core = self.core.id,
                    open = self.live,
                    "operations still in flight at exit"
                );
                return Ok(true);
            }
            _ => {}
        }
        self.sync_touched()?;
        Ok(false)
    }

    fn each_conn(&mut self, f: impl Fn(&mut Conn, Env<'_>)) {
        for (slot, s) in self.slots.iter_mut().enumerate() {
            if let Some(conn) = s.conn.as_mut() {
                let env = Env {
                    core: &self.core,
                    checks: &self.checks,
                    token: (slot as u32, s.generation & GENERATION_MASK),
                    now: self.now,
                    wall: self.wall,
                };
                f(conn, env);
                self.touched.push(slot as u32);
            }
        }
    }
}

/// The connection in `slot` if it is still the one of `generation`.
fn live(slots: &mut [Slot], slot: u32, generation: u32) -> Option<&mut Conn> {
    slots
        .get_mut(slot as usize)?
        .conn
        .as_mut()
        .filter(|c| c.generation & GENERATION_MASK == generation)
}

fn send_entry(conn: &Conn, slot: u32) -> io_uring::squeue::Entry {
    let rest = &conn.send_buf[conn.send_pos..];
    opcode::Send::new(Fd(conn.fd.as_raw_fd()), rest.as_ptr(), rest.len() as u32)
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(user_data(SEND, slot, conn.generation))
}

fn peer_info(core: &Core, peer: SocketAddr) -> PeerInfo {
    PeerInfo {
        ip: peer.ip().to_canonical(),
        port: peer.port(),
        session_id: core.next_session_id(),
    }
}

/// Writes a one-line refusal to a fresh socket and closes it. The socket's send buffer is
/// empty, so the non-blocking send takes the whole line or the client is already gone.
fn refuse(fd: OwnedFd, line: &[u8]) {
    // SAFETY: send(2)/shutdown(2) on a descriptor we own, from a live slice.
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            line.as_ptr().cast(),
            line.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        );
        libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR);
    }
}
