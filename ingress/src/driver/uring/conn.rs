//! One connection on the ring, sans-io: the connection layer's [`Pump`] (session, effects,
//! deadlines), its TLS, the input it has not consumed, the bytes waiting for the socket, and
//! the phase of the socket. The event loop feeds it completions and check results and asks
//! it what to submit; it never touches the ring itself.

use std::io::{self, Read, Write};
use std::mem;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rustls::ServerConnection;
use tempmx_store::MessageId;

use super::checks::{Checks, Done, Job, Token};
use super::spares::{Buffers, Spare};
use super::timers::{Armed, Timers};
use crate::auth::{MessageCheck, SenderCheck};
use crate::connection::{Answer, Io, Pump, queue_replies};
use crate::driver::admission::Permit;
use crate::driver::core::Core;
use crate::driver::counters::bump;
use crate::driver::delivery::{self, Handed};
pub(super) use crate::driver::end::End;
use crate::greylist::{GreyVerdict, SharedStep};
use crate::session::{DeliveryFailure, PeerInfo, PendingMessage, SenderInput, Session};

/// Unconsumed input past which the connection stops receiving until the session catches up
/// (a client pipelining while a check runs must not grow memory without bound).
const INPUT_BYTES_PAUSE: usize = 64 * 1024;
/// Replies not yet sent past which the session reads no further input until they are (a
/// client pipelining commands and reading no replies must not grow memory without bound).
const OUTPUT_BYTES_PAUSE: usize = 64 * 1024;
/// Input handed to the pump per call, so one call's replies (at most a few dozen bytes per
/// byte of command) overshoot [`OUTPUT_BYTES_PAUSE`] by a bounded amount. A receive buffer's
/// worth by default, so ordinary input takes one call.
const FEED_SLICE_BYTES: usize = 16 * 1024;
/// Plaintext read out of rustls per call.
const TLS_PLAINTEXT_CHUNK: usize = 4096;

/// Where the socket is (the session's own state, waits included, is the pump's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting out the greet pause; input now makes an early talker.
    GreetPause(Instant),
    /// Reading commands and data, or waiting for a hand-off.
    Open,
    /// STARTTLS handshake running, bounded.
    Handshake(Instant),
    /// Last words going out, bounded; then the socket is shut.
    Closing(Instant),
    /// Shut down; waiting for in-flight operations before the slot is freed.
    Done,
}

/// What the pump asked for that the connection does once the pump's call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    StartTls,
    Close,
}

/// What a connection's calls need from its core: the core, the hand-off thread, and the
/// connection's token there.
#[derive(Clone, Copy)]
pub(super) struct Env<'a> {
    /// The core.
    pub(super) core: &'a Core,
    /// The hand-off thread.
    pub(super) checks: &'a Checks,
    /// This connection (slot and generation).
    pub(super) token: Token,
    /// The monotonic clock, read once per loop turn (deadlines are seconds; a turn is
    /// microseconds).
    pub(super) now: Instant,
    /// The wall clock, read with `now` (the Received header's date).
    pub(super) wall: SystemTime,
}

/// The part of a connection the pump's I/O calls act on.
struct Link {
    /// Bytes ready for the socket, not yet handed to a send.
    wire: Vec<u8>,
    tls: Option<Box<ServerConnection>>,
    after: Option<After>,
    /// The id and size of the message whose group commit is awaited.
    commit: Option<(MessageId, u64)>,
    peer_ip: IpAddr,
}

impl Link {
    /// Moves TLS records rustls has queued to the wire.
    fn stage_tls(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            while tls.wants_write() {
                if tls.write_tls(&mut self.wire).is_err() {
                    break;
                }
            }
        }
    }
}

/// The ring side of the connection layer's I/O: replies go to the wire (through rustls on
/// TLS), checks and commit waits to the hand-off thread, the store is written at once.
struct UringIo<'a> {
    link: &'a mut Link,
    env: Env<'a>,
}

/// The [`UringIo`] of a [`Conn`] (a macro, so the borrows stay field by field).
macro_rules! io {
    ($conn:expr, $env:expr) => {
        UringIo {
            link: &mut $conn.link,
            env: $env,
        }
    };
}

impl UringIo<'_> {
    /// Posts a check to the hand-off thread; `Now(None)` when this core does not authenticate.
    fn submit_check<T>(&self, job: impl FnOnce(Token) -> Job) -> Answer<Option<T>> {
        let Env {
            core,
            checks,
            token,
            ..
        } = self.env;
        if !core.auth_enabled() {
            tracing::error!(core = core.id, "check without an authenticator");
            return Answer::Now(None);
        }
        checks.submit(job(token));
        Answer::Later
    }
}

impl Io for UringIo<'_> {
    fn send(&mut self, replies: &mut Vec<u8>) {
        if self.link.tls.is_none() {
            return queue_replies(&mut self.link.wire, replies);
        }
        // rustls takes at most 64 KiB of unsent records: write what it takes, move its
        // records to the wire, and go on with the rest.
        let mut rest = &replies[..];
        while let Some(tls) = self.link.tls.as_deref_mut()
            && !rest.is_empty()
        {
            match tls.writer().write(rest) {
                Ok(n) if n > 0 => rest = &rest[n..],
                result => {
                    tracing::debug!(core = self.env.core.id, ?result, "tls write");
                    break;
                }
            }
            self.link.stage_tls();
        }
        replies.clear();
    }

    fn check_sender(&mut self, input: SenderInput<'_>) -> Answer<Option<SenderCheck>> {
        self.submit_check(|token| Job::Sender {
            token,
            ip: input.ip,
            helo: input.helo.to_owned(),
            mail_from: input.mail_from.to_owned(),
        })
    }

    fn check_message(
        &mut self,
        sender: &SenderCheck,
        message: &[u8],
    ) -> Answer<Option<MessageCheck>> {
        self.submit_check(|token| Job::Message {
            token,
            sender: sender.clone(),
            body: message.to_vec(),
        })
    }

    fn check_greylist(&mut self, step: SharedStep) -> Answer<GreyVerdict> {
        let Env {
            core,
            checks,
            token,
            ..
        } = self.env;
        let Some(greylist) = core.session_ctx.greylist.clone() else {
            return Answer::Now(GreyVerdict::Unavailable);
        };
        checks.submit(Job::Greylist {
            token,
            greylist,
            step,
        });
        Answer::Later
    }

    fn deliver(
        &mut self,
        message: &PendingMessage<'_>,
    ) -> Answer<Result<MessageId, DeliveryFailure>> {
        let Env {
            core,
            checks,
            token,
            ..
        } = self.env;
        match delivery::hand_off(core, message, self.link.peer_ip) {
            Handed::Now(result) => Answer::Now(result),
            Handed::Pending { id, bytes, done } => {
                self.link.commit = Some((id, bytes));
                // The connection's own deadline (the idle timeout) ends the wait first; this
                // bound only frees the hand-off thread's task.
                let bound = core.timing.idle + core.timing.final_write;
                checks.submit(Job::Commit { token, done, bound });
                Answer::Later
            }
        }
    }

    fn start_tls(&mut self) {
        self.link.after = Some(After::StartTls);
    }

    fn close(&mut self) {
        self.link.after = Some(After::Close);
    }
}

/// One connection's state.
pub(super) struct Conn {
    /// The socket (closed on the ring when the slot is freed, after every operation on it
    /// completed).
    pub(super) fd: OwnedFd,
    /// Generation of the slot, in every operation's user data.
    pub(super) generation: u32,
    /// A multishot receive is armed.
    pub(super) recv_armed: bool,
    /// A cancel of the armed receive was queued.
    pub(super) recv_cancelled: bool,
    /// Bytes the kernel is sending (the send operation points into them).
    pub(super) send_buf: Vec<u8>,
    /// How much of `send_buf` was sent.
    pub(super) send_pos: usize,
    /// A send operation is in flight.
    pub(super) sending: bool,
    /// A cancel of the send in flight was queued (the connection is shut).
    pub(super) send_cancelled: bool,
    /// The deadline armed for this connection.
    pub(super) timer: Option<Armed>,
    pump: Pump,
    link: Link,
    /// When the send in flight started (a client that stops reading is cut off).
    send_since: Instant,
    /// Plaintext input the session has not consumed.
    input: Vec<u8>,
    phase: Phase,
    /// The client shut its sending side while input or a hand-off was pending: the session
    /// ends as closed once that is served, as it would for a client that waited.
    peer_eof: bool,
    started: Instant,
    _permit: Permit,
}

impl Conn {
    /// A new connection on the buffers of an ended one; the greeting goes out now or after
    /// the greet pause.
    pub(super) fn new(
        env: Env<'_>,
        fd: OwnedFd,
        generation: u32,
        peer: PeerInfo,
        permit: Permit,
        spare: Spare,
    ) -> Self {
        let core = env.core;
        let now = env.now;
        // Empty already: a spare's buffers are emptied when their connection ends
        // (`Spare::new`), or new.
        let Buffers {
            session,
            input,
            wire,
            send_buf,
        } = spare.into_buffers();
        let session = Session::with_spare(Arc::clone(&core.session_ctx), peer, session);
        let mut conn = Self {
            fd,
            generation,
            recv_armed: false,
            recv_cancelled: false,
            send_buf,
            send_pos: 0,
            sending: false,
            send_cancelled: false,
            timer: None,
            pump: Pump::new(session, now, core.timing.idle, core.timing.session_max),
            link: Link {
                wire,
                tls: None,
                after: None,
                commit: None,
                peer_ip: peer.ip,
            },
            send_since: now,
            input,
            phase: Phase::Open,
            peer_eof: false,
            started: now,
            _permit: permit,
        };
        if core.timing.greet_pause.is_zero() {
            conn.greet(env);
        } else {
            conn.phase = Phase::GreetPause(now + core.timing.greet_pause);
        }
        conn
    }

    fn greet(&mut self, env: Env<'_>) {
        self.pump.greet(&mut io!(self, env), env.now);
        self.phase = Phase::Open;
    }

    /// Bytes received from the socket.
    pub(super) fn received(&mut self, env: Env<'_>, data: &[u8]) {
        bump(&env.core.counters().bytes_in, data.len() as u64);
        if matches!(self.phase, Phase::Closing(_) | Phase::Done) {
            return;
        }
        self.pump.received();
        if self.link.tls.is_some() {
            // The plaintext comes out of rustls into `input`; what came before a close_notify
            // is served before the close, as a plaintext client's commands before its FIN.
            let peer_closed = self.received_tls(env, data);
            self.feed(env, &[]);
            if peer_closed {
                self.eof(env, End::Closed);
            }
        } else {
            self.feed(env, data);
        }
    }

    /// The peer closed its side (or the socket failed).
    pub(super) fn eof(&mut self, env: Env<'_>, end: End) {
        if matches!(end, End::Closed) {
            // After the session ended itself (a pipelined QUIT): its last replies still go
            // out, within the final-write deadline, as they would to a client that waited.
            if matches!(self.phase, Phase::Closing(_)) {
                return;
            }
            // Input held or a hand-off running (a group commit the 250 waits for): served
            // first; `feed` ends the session when nothing is left.
            if self.phase == Phase::Open && (self.pump.is_waiting() || !self.input.is_empty()) {
                self.peer_eof = true;
                return;
            }
        }
        self.end(env, end);
    }

    /// Whether a receive should be (re)armed.
    pub(super) fn wants_recv(&self) -> bool {
        !matches!(self.phase, Phase::Closing(_) | Phase::Done)
            && !self.peer_eof
            && self.input.len() < INPUT_BYTES_PAUSE
    }

    /// Whether the armed receive should be cancelled (input piled up, or the session ended).
    pub(super) fn wants_recv_cancel(&self) -> bool {
        !self.wants_recv()
    }

    /// Whether the connection is shut and only waits for its operations to finish.
    pub(super) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The socket, for the ring to close, and the buffers for the next connection, emptied
    /// here (the one place they are); the rest (session state, TLS, admission permit) is
    /// dropped.
    pub(super) fn into_parts(self) -> (OwnedFd, Spare) {
        let session = self.pump.into_session().into_spare();
        let spare = Spare::new(session, self.input, self.link.wire, self.send_buf);
        (self.fd, spare)
    }

    /// Takes the bytes to send next, if no send is in flight; the caller submits the send.
    pub(super) fn next_send(&mut self, now: Instant) -> bool {
        if self.sending || self.link.wire.is_empty() || self.phase == Phase::Done {
            return false;
        }
        std::mem::swap(&mut self.send_buf, &mut self.link.wire);
        self.link.wire.clear();
        self.send_pos = 0;
        self.sending = true;
        self.send_since = now;
        true
    }

    /// A send completed with `result`; false when more of `send_buf` must be sent.
    pub(super) fn sent(&mut self, env: Env<'_>, result: i32) -> bool {
        if self.phase == Phase::Done {
            // Shut: the rest of the buffer is not sent.
            self.sending = false;
            return true;
        }
        if result <= 0 {
            self.sending = false;
            let e = match result {
                0 => io::ErrorKind::WriteZero.into(),
                e => io::Error::from_raw_os_error(-e),
            };
            self.abort(env, End::Io(e));
            return true;
        }
        self.send_pos += result as usize;
        if self.send_pos < self.send_buf.len() {
            return false;
        }
        bump(&env.core.counters().bytes_out, self.send_buf.len() as u64);
        self.sending = false;
        self.send_buf.clear();
        if !self.input.is_empty() && self.phase == Phase::Open {
            // Input held back while replies piled up.
            self.feed(env, &[]);
        }
        self.close_if_said(env);
        true
    }

    /// A hand-off result for this connection (ignored unless the session waits for one).
    pub(super) fn checked(&mut self, env: Env<'_>, done: Done) {
        if self.phase != Phase::Open || !self.pump.is_waiting() {
            return;
        }
        let mut io = io!(self, env);
        let now = env.now;
        match done {
            Done::Sender(_, check) => self.pump.sender_checked(&mut io, Some(check), now),
            Done::Message(_, check) => self.pump.message_checked(&mut io, Some(check), now),
            Done::Greylist(_, verdict) => self.pump.greylist_checked(&mut io, verdict, now),
            // Whichever check the session waits for goes on without it.
            Done::Skipped(_) => {
                self.pump.sender_checked(&mut io, None, now);
                self.pump.message_checked(&mut io, None, now);
            }
            Done::Commit(_, outcome) => {
                let Some((id, bytes)) = io.link.commit.take() else {
                    return;
                };
                let result = delivery::committed(env.core, id, bytes, outcome);
                self.pump.delivered(&mut io, result, now);
            }
            Done::Stop => {}
        }
        self.act(env);
        self.feed(env, &[]);
    }

    /// The deadline of the current phase.
    pub(super) fn deadline(&self, core: &Core) -> Option<Instant> {
        let stall = self.sending.then(|| self.send_since + core.timing.idle);
        let phase = match self.phase {
            Phase::GreetPause(at) | Phase::Handshake(at) | Phase::Closing(at) => Some(at),
            Phase::Open => self.pump.deadline().map(|(at, _)| at),
            Phase::Done => None,
        };
        match (stall, phase) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Arms the connection's entry in `timers` for its current deadline (see
    /// [`Timers::rearm`]: one that moved later keeps its earlier entry).
    pub(super) fn arm_timer(&mut self, timers: &mut Timers, core: &Core, slot: u32) {
        self.timer = timers.rearm(self.timer, self.deadline(core), slot);
    }

    /// The timer entry `seq` came due: false if it is not this connection's (a stale one);
    /// else the entry is gone and whatever is due now is done. Nothing is, when the deadline
    /// moved later since the entry was armed: the event loop then arms it again.
    pub(super) fn timer_fired(&mut self, env: Env<'_>, seq: u64) -> bool {
        if self.timer.map(|(_, armed)| armed) != Some(seq) {
            return false;
        }
        self.timer = None;
        self.timed_out(env);
        true
    }

    /// An armed deadline passed; it may be one that moved later since (then nothing is due).
    fn timed_out(&mut self, env: Env<'_>) {
        let now = env.now;
        if self.deadline(env.core).is_none_or(|at| now < at) {
            return;
        }
        if self.sending && now >= self.send_since + env.core.timing.idle {
            // A client that stops reading gets nothing more.
            return self.abort(env, End::Io(io::ErrorKind::TimedOut.into()));
        }
        match self.phase {
            Phase::GreetPause(_) => {
                self.greet(env);
                self.feed(env, &[]);
            }
            Phase::Handshake(_) => {
                bump(&env.core.counters().tls_handshakes_failed, 1);
                tracing::debug!(core = env.core.id, "tls handshake timed out");
                self.abort(env, End::TlsFailed);
            }
            Phase::Closing(_) => self.abort(env, End::Closed),
            Phase::Open => {
                if let Some((at, which)) = self.pump.deadline()
                    && now >= at
                {
                    self.end(env, End::TimedOut(which));
                }
            }
            Phase::Done => {}
        }
    }

    /// The shutdown's last stage: shut whatever is still open, without another word.
    pub(super) fn kill(&mut self, env: Env<'_>) {
        self.abort(env, End::Shutdown);
    }

    /// Shutdown reached this session: 421 4.3.2 (bounded), then close.
    pub(super) fn shutting_down(&mut self, env: Env<'_>) {
        if !matches!(self.phase, Phase::Closing(_) | Phase::Done) {
            self.end(env, End::Shutdown);
        }
    }

    /// Feeds the pending input and then `data` through the pump until the session waits or
    /// the input runs out; what the session leaves stays pending. With nothing pending,
    /// `data` goes to the pump straight from the receive buffer and only its rest is copied.
    fn feed(&mut self, env: Env<'_>, data: &[u8]) {
        if self.input.is_empty() {
            let n = self.pump_in(env, data);
            self.input.extend_from_slice(&data[n..]);
        } else {
            self.input.extend_from_slice(data);
            // Out of `self` while the pump reads it (nothing the pump calls touches it); the
            // allocation goes back.
            let mut input = mem::take(&mut self.input);
            let n = self.pump_in(env, &input);
            input.drain(..n);
            self.input = input;
        }
        if self.peer_eof
            && self.phase == Phase::Open
            && !self.pump.is_waiting()
            && self.input.is_empty()
        {
            self.end(env, End::Closed);
        }
        self.count_session(env.core);
    }

    /// Feeds `input` through the pump until the session waits, begins TLS or closes, or the
    /// input runs out; returns the bytes consumed.
    fn pump_in(&mut self, env: Env<'_>, input: &[u8]) -> usize {
        let mut pos = 0;
        while matches!(self.phase, Phase::Open | Phase::GreetPause(_))
            && pos < input.len()
            && self.unsent() < OUTPUT_BYTES_PAUSE
        {
            let slice = &input[pos..input.len().min(pos + FEED_SLICE_BYTES)];
            let n = self
                .pump
                .feed(&mut io!(self, env), slice, env.wall, env.now);
            pos += n;
            self.act(env);
            if n == 0 {
                break;
            }
        }
        pos
    }

    /// Reply bytes queued or in a send and not yet sent.
    pub(super) fn unsent(&self) -> usize {
        let sending = if self.sending {
            self.send_buf.len() - self.send_pos
        } else {
            0
        };
        self.link.wire.len() + sending
    }

    /// Does what the pump asked for beyond I/O calls: begin TLS, or close.
    fn act(&mut self, env: Env<'_>) {
        match self.link.after.take() {
            Some(After::StartTls) => self.start_tls(env),
            Some(After::Close) => self.end(env, End::Closed),
            None => {}
        }
    }

    /// The 220 went out in plaintext (the pump queued it); everything after it is TLS.
    fn start_tls(&mut self, env: Env<'_>) {
        let core = env.core;
        let Some(config) = core.tls.as_ref().map(crate::tls::ServerTls::current) else {
            tracing::error!(
                core = core.id,
                "session offered STARTTLS without a TLS config"
            );
            return self.end(env, End::TlsFailed);
        };
        match ServerConnection::new(config) {
            Ok(tls) => self.link.tls = Some(Box::new(tls)),
            Err(e) => {
                bump(&core.counters().tls_handshakes_failed, 1);
                tracing::debug!(core = core.id, error = %e, "tls setup failed");
                return self.end(env, End::TlsFailed);
            }
        }
        let until = self.pump.session_deadline().min(env.now + core.timing.idle);
        self.phase = Phase::Handshake(until);
    }

    /// Ciphertext in: to rustls, plaintext out of it into `input`; finishes the handshake.
    /// True when the peer's close_notify came: the caller ends the session after serving the
    /// input before it.
    fn received_tls(&mut self, env: Env<'_>, data: &[u8]) -> bool {
        let core = env.core;
        let Some(tls) = self.link.tls.as_deref_mut() else {
            return false;
        };
        let mut rest = data;
        let mut failed = None;
        let mut peer_closed = false;
        while !rest.is_empty() && failed.is_none() {
            if let Err(e) = tls.read_tls(&mut rest) {
                failed = Some(e.to_string());
                break;
            }
            if let Err(e) = tls.process_new_packets() {
                // The alert describing the failure is queued; stage_tls() sends it.
                failed = Some(e.to_string());
                break;
            }
            let mut chunk = [0u8; TLS_PLAINTEXT_CHUNK];
            loop {
                match tls.reader().read(&mut chunk) {
                    Ok(0) => {
                        peer_closed = true;
                        break;
                    }
                    Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        let handshaking = matches!(self.phase, Phase::Handshake(_));
        if let Some(e) = failed {
            if handshaking {
                bump(&core.counters().tls_handshakes_failed, 1);
            }
            tracing::debug!(core = core.id, error = %e, "tls failed");
            self.link.stage_tls();
            self.end(env, End::TlsFailed);
            return false;
        }
        if handshaking && !tls.is_handshaking() {
            bump(&core.counters().tls_handshakes_ok, 1);
            let summary = crate::tls::summary(tls);
            tracing::debug!(core = core.id, version = %summary.version, cipher = %summary.cipher, "tls up");
            self.pump.tls_started(summary, env.now);
            self.phase = Phase::Open;
        }
        self.link.stage_tls();
        peer_closed
    }

    /// Ends the session: the reply the end calls for goes out (bounded), then the socket is
    /// shut; an end that says nothing shuts it at once. Counted once.
    fn end(&mut self, env: Env<'_>, end: End) {
        match self.phase {
            Phase::Done => return,
            Phase::Closing(_) => return self.shut(env),
            _ => {}
        }
        let speak = end.account(env.core, &mut self.pump, &mut io!(self, env));
        // The pump's own close request is this end.
        self.link.after = None;
        self.phase = Phase::Closing(env.now + env.core.timing.final_write);
        if speak {
            if let Some(tls) = self.link.tls.as_deref_mut() {
                tls.send_close_notify();
                self.link.stage_tls();
            }
        } else if !matches!(end, End::TlsFailed) {
            // Nothing more goes out, except a TLS alert already staged.
            self.link.wire.clear();
        }
        self.close_if_said(env);
    }

    /// In Closing, shuts the socket once everything staged has been sent.
    fn close_if_said(&mut self, env: Env<'_>) {
        if matches!(self.phase, Phase::Closing(_)) && !self.sending && self.link.wire.is_empty() {
            self.shut(env);
        }
    }

    /// Errors past the session's end, or a stall: shut without another word.
    fn abort(&mut self, env: Env<'_>, end: End) {
        self.link.wire.clear();
        self.end(env, end);
        self.shut(env);
    }

    /// Ends the connection's I/O: the event loop cancels the receive and any send in flight
    /// on the ring, then closes the socket on the ring once both are finished (the peer sees
    /// EOF then). No shutdown(2): that would be a system call per connection, and the ring's
    /// own shutdown runs on a kernel worker thread.
    fn shut(&mut self, env: Env<'_>) {
        if self.phase == Phase::Done {
            return;
        }
        let core = env.core;
        self.phase = Phase::Done;
        self.count_session(core);
        let lived = env.now.saturating_duration_since(self.started);
        let micros = u64::try_from(lived.as_micros()).unwrap_or(u64::MAX);
        core.counters().session_ended(micros);
    }

    /// Adds what the session counted since the last call to the core's counters.
    fn count_session(&mut self, core: &Core) {
        self.pump
            .count(|before, now| core.counters().add_session_delta(before, now));
    }
}
