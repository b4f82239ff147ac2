//! One connection on the ring, sans-io: the session, its TLS, the input it has not consumed,
//! the bytes waiting for the socket, and the deadline of its current phase. The event loop
//! feeds it completions and check results and asks it what to submit; it never touches the
//! ring itself.

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rustls::ServerConnection;
use tempmx_store::{Accepted, Commit, MessageId};

use super::checks::{Checks, Done, Job, Token};
use crate::driver::admission::Permit;
use crate::driver::core::Core;
use crate::driver::counters::bump;
use crate::driver::delivery;
pub(super) use crate::driver::end::End;
use crate::driver::record::RecordClock;
use crate::session::{
    DeliveryFailure, Effect, Output, PeerInfo, Session, SessionCounters, Timeout,
};

/// Unconsumed input past which the connection stops receiving until the session catches up
/// (a client pipelining while a check runs must not grow memory without bound).
const INPUT_BYTES_PAUSE: usize = 64 * 1024;
/// Plaintext read out of rustls per call.
const TLS_PLAINTEXT_CHUNK: usize = 4096;

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting out the greet pause; input now makes an early talker.
    GreetPause(Instant),
    /// Reading commands and data.
    Open,
    /// An effect is with the hand-off thread.
    Waiting,
    /// STARTTLS handshake running, bounded.
    Handshake(Instant),
    /// Last words going out, bounded; then the socket is shut.
    Closing(Instant),
    /// Shut down; waiting for in-flight operations before the slot is freed.
    Done,
}

/// One connection's state.
pub(super) struct Conn {
    /// The socket (closed when the slot is freed, after every operation on it completed).
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
    /// The timer entry armed for this connection (sequence number and instant).
    pub(super) timer: (u64, Option<Instant>),
    session: Session,
    out: Output,
    /// Bytes ready for the socket, not yet handed to a send.
    wire: Vec<u8>,
    /// When the send in flight started (a client that stops reading is cut off).
    send_since: Instant,
    /// Plaintext input the session has not consumed.
    input: Vec<u8>,
    tls: Option<Box<ServerConnection>>,
    phase: Phase,
    record: RecordClock,
    session_deadline: Instant,
    started: Instant,
    counted: SessionCounters,
    peer_ip: IpAddr,
    /// The id the store gave the message whose group commit is awaited.
    pending_id: MessageId,
    _permit: Permit,
}

impl Conn {
    /// A new connection; the greeting goes out now or after the greet pause.
    pub(super) fn new(
        core: &Core,
        fd: OwnedFd,
        generation: u32,
        peer: PeerInfo,
        permit: Permit,
    ) -> Self {
        let now = Instant::now();
        let mut conn = Self {
            fd,
            generation,
            recv_armed: false,
            recv_cancelled: false,
            send_buf: Vec::new(),
            send_pos: 0,
            sending: false,
            timer: (0, None),
            session: Session::new(Arc::clone(&core.session_ctx), peer),
            out: Output::default(),
            wire: Vec::new(),
            send_since: now,
            input: Vec::new(),
            tls: None,
            phase: Phase::Open,
            record: RecordClock::new(now),
            session_deadline: now + core.timing.session_max,
            started: now,
            counted: SessionCounters::default(),
            peer_ip: peer.ip,
            pending_id: MessageId(0),
            _permit: permit,
        };
        if core.timing.greet_pause.is_zero() {
            conn.greet(core);
        } else {
            conn.phase = Phase::GreetPause(now + core.timing.greet_pause);
        }
        conn
    }

    fn greet(&mut self, core: &Core) {
        self.session.greeting(&mut self.out);
        self.phase = Phase::Open;
        self.record.restart();
        self.stage(core);
    }

    /// Bytes received from the socket.
    pub(super) fn received(&mut self, core: &Core, checks: &Checks, token: Token, data: &[u8]) {
        bump(&core.counters().bytes_in, data.len() as u64);
        if matches!(self.phase, Phase::Closing(_) | Phase::Done) {
            return;
        }
        self.record.input();
        match self.tls.is_some() {
            true => self.received_tls(core, data),
            false => self.input.extend_from_slice(data),
        }
        self.pump(core, checks, token);
    }

    /// The peer closed its side (or the socket failed).
    pub(super) fn eof(&mut self, core: &Core, end: End) {
        self.end(core, end);
    }

    /// Whether a receive should be (re)armed.
    pub(super) fn wants_recv(&self) -> bool {
        !matches!(self.phase, Phase::Closing(_) | Phase::Done)
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

    /// Takes the bytes to send next, if no send is in flight; the caller submits the send.
    pub(super) fn next_send(&mut self) -> bool {
        if self.sending || self.wire.is_empty() || self.phase == Phase::Done {
            return false;
        }
        std::mem::swap(&mut self.send_buf, &mut self.wire);
        self.wire.clear();
        self.send_pos = 0;
        self.sending = true;
        self.send_since = Instant::now();
        true
    }

    /// A send completed with `result`; false when more of `send_buf` must be sent.
    pub(super) fn sent(&mut self, core: &Core, result: i32) -> bool {
        if result <= 0 {
            self.sending = false;
            let e = match result {
                0 => io::ErrorKind::WriteZero.into(),
                e => io::Error::from_raw_os_error(-e),
            };
            self.abort(core, End::Io(e));
            return true;
        }
        self.send_pos += result as usize;
        if self.send_pos < self.send_buf.len() {
            return false;
        }
        bump(&core.counters().bytes_out, self.send_buf.len() as u64);
        self.sending = false;
        self.send_buf.clear();
        self.close_if_said(core);
        true
    }

    /// A hand-off result for this connection.
    pub(super) fn checked(&mut self, core: &Core, checks: &Checks, token: Token, done: Done) {
        if self.phase != Phase::Waiting {
            return;
        }
        self.phase = Phase::Open;
        match done {
            Done::Sender(_, check) => self.session.sender_checked(check, &mut self.out),
            Done::Message(_, check) => self.session.message_checked(check, &mut self.out),
            Done::Skipped(_) => self.session.auth_skipped(&mut self.out),
            Done::Commit(_, outcome) => {
                let result = match outcome {
                    Some(Ok(())) => Ok(()),
                    Some(Err(e)) => {
                        tracing::warn!(core = core.id, error = %e, "store commit failed");
                        Err(delivery::failure_of(&e))
                    }
                    None => {
                        tracing::warn!(core = core.id, "store commit did not complete");
                        Err(DeliveryFailure::Temporary)
                    }
                };
                self.delivered(core, result.map(|()| self.pending_id));
            }
            Done::Stop => {}
        }
        self.effects(core, checks, token);
        self.pump(core, checks, token);
    }

    /// The deadline of the current phase.
    pub(super) fn deadline(&self, core: &Core) -> Option<Instant> {
        let stall = self.sending.then(|| self.send_since + core.timing.idle);
        let phase = match self.phase {
            Phase::GreetPause(at) | Phase::Handshake(at) | Phase::Closing(at) => Some(at),
            Phase::Open => Some(
                self.record
                    .deadline(core.timing.idle)
                    .0
                    .min(self.session_deadline),
            ),
            Phase::Waiting | Phase::Done => None,
        };
        match (stall, phase) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The deadline passed (the caller checked it is the current one).
    pub(super) fn timed_out(&mut self, core: &Core, checks: &Checks, token: Token, now: Instant) {
        if self.sending && now >= self.send_since + core.timing.idle {
            // A client that stops reading gets nothing more.
            return self.abort(core, End::Io(io::ErrorKind::TimedOut.into()));
        }
        match self.phase {
            Phase::GreetPause(_) => {
                self.greet(core);
                self.pump(core, checks, token);
            }
            Phase::Handshake(_) => {
                bump(&core.counters().tls_handshakes_failed, 1);
                tracing::debug!(core = core.id, "tls handshake timed out");
                self.abort(core, End::TlsFailed);
            }
            Phase::Closing(_) => self.abort(core, End::Closed),
            Phase::Open => {
                let (_, which) = self.record.deadline(core.timing.idle);
                let which = if now >= self.session_deadline {
                    Timeout::SessionDuration
                } else {
                    which
                };
                self.end(core, End::TimedOut(which));
            }
            Phase::Waiting | Phase::Done => {}
        }
    }

    /// The shutdown's last stage: shut whatever is still open, without another word.
    pub(super) fn kill(&mut self, core: &Core) {
        self.abort(core, End::Shutdown);
    }

    /// Shutdown reached this session: 421 4.3.2 (bounded), then close.
    pub(super) fn shutting_down(&mut self, core: &Core) {
        if !matches!(self.phase, Phase::Closing(_) | Phase::Done) {
            self.end(core, End::Shutdown);
        }
    }

    /// Feeds unconsumed input to the session until it waits for an effect or input runs out.
    fn pump(&mut self, core: &Core, checks: &Checks, token: Token) {
        while matches!(self.phase, Phase::Open | Phase::GreetPause(_)) && !self.input.is_empty() {
            let n = self
                .session
                .ingest(&self.input, SystemTime::now(), &mut self.out);
            self.input.drain(..n);
            let effect = self.out.effect.is_some();
            self.effects(core, checks, token);
            if n == 0 && !effect {
                break;
            }
        }
        self.count_session(core);
        self.record.progress(self.session.records());
        self.stage(core);
    }

    /// Runs the effect chain the session asked for (a handler may ask for the next).
    fn effects(&mut self, core: &Core, checks: &Checks, token: Token) {
        while let Some(effect) = self.out.effect.take() {
            match effect {
                Effect::CheckSender => self.check_sender(core, checks, token),
                Effect::CheckMessage => self.check_message(core, checks, token),
                Effect::Deliver => self.deliver(core, checks, token),
                Effect::StartTls => self.start_tls(core),
                Effect::Close => self.end(core, End::Closed),
            }
        }
    }

    fn check_sender(&mut self, core: &Core, checks: &Checks, token: Token) {
        match (core.auth_enabled(), self.session.pending_sender()) {
            (true, Some(input)) => {
                checks.submit(Job::Sender {
                    token,
                    ip: input.ip,
                    helo: input.helo.to_owned(),
                    mail_from: input.mail_from.to_owned(),
                });
                self.phase = Phase::Waiting;
            }
            _ => {
                tracing::error!(core = core.id, "sender check without an authenticator");
                self.session.auth_skipped(&mut self.out);
            }
        }
    }

    fn check_message(&mut self, core: &Core, checks: &Checks, token: Token) {
        match (core.auth_enabled(), self.session.pending_auth()) {
            (true, Some((sender, body))) => {
                checks.submit(Job::Message {
                    token,
                    sender: sender.clone(),
                    body: body.to_vec(),
                });
                self.phase = Phase::Waiting;
            }
            _ => {
                tracing::error!(core = core.id, "message check without an authenticator");
                self.session.auth_skipped(&mut self.out);
            }
        }
    }

    fn deliver(&mut self, core: &Core, checks: &Checks, token: Token) {
        match delivery::store(core, &self.session, self.peer_ip) {
            Ok(Accepted {
                id,
                commit: Commit::Done,
            }) => self.delivered(core, Ok(id)),
            Ok(Accepted {
                id,
                commit: Commit::Pending(done),
            }) => {
                self.pending_id = id;
                checks.submit(Job::Commit {
                    token,
                    done,
                    bound: core.timing.idle,
                });
                self.phase = Phase::Waiting;
            }
            Err(e) => {
                tracing::warn!(core = core.id, error = %e, "store refused message");
                self.delivered(core, Err(delivery::failure_of(&e)));
            }
        }
    }

    fn delivered(&mut self, core: &Core, result: Result<MessageId, DeliveryFailure>) {
        let size = self
            .session
            .pending_message()
            .map_or(0, |m| m.body.len() as u64);
        match result {
            Ok(_) => core.counters().message_stored(size),
            Err(_) => bump(&core.counters().messages_store_failed, 1),
        }
        self.session.delivered(result, &mut self.out);
    }

    /// The 220 goes out in plaintext; everything after it is TLS. Unread plaintext is
    /// dropped (command injection, RFC 3207 §4.2).
    fn start_tls(&mut self, core: &Core) {
        self.input.clear();
        self.stage(core);
        let Some(config) = core.tls.as_ref().map(crate::tls::ServerTls::current) else {
            tracing::error!(
                core = core.id,
                "session offered STARTTLS without a TLS config"
            );
            return self.end(core, End::TlsFailed);
        };
        match ServerConnection::new(config) {
            Ok(tls) => self.tls = Some(Box::new(tls)),
            Err(e) => {
                bump(&core.counters().tls_handshakes_failed, 1);
                tracing::debug!(core = core.id, error = %e, "tls setup failed");
                return self.end(core, End::TlsFailed);
            }
        }
        let until = self.session_deadline.min(Instant::now() + core.timing.idle);
        self.phase = Phase::Handshake(until);
    }

    /// Ciphertext in: to rustls, plaintext out of it into `input`; finishes the handshake.
    fn received_tls(&mut self, core: &Core, data: &[u8]) {
        let Some(tls) = self.tls.as_deref_mut() else {
            return;
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
                // The alert describing the failure is queued; stage() sends it.
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
            self.stage(core);
            return self.end(core, End::TlsFailed);
        }
        if handshaking && !tls.is_handshaking() {
            bump(&core.counters().tls_handshakes_ok, 1);
            let summary = crate::tls::summary(tls);
            tracing::debug!(core = core.id, version = %summary.version, cipher = %summary.cipher, "tls up");
            self.session.tls_started(summary);
            self.phase = Phase::Open;
            self.record.restart();
        }
        self.stage(core);
        if peer_closed {
            self.end(core, End::Closed);
        }
    }

    /// Moves the session's replies (encrypted, on TLS) and queued TLS records to the wire.
    fn stage(&mut self, core: &Core) {
        if !self.out.replies.is_empty() {
            match self.tls.as_deref_mut() {
                Some(tls) => {
                    if let Err(e) = tls.writer().write_all(&self.out.replies) {
                        tracing::debug!(core = core.id, error = %e, "tls write");
                    }
                }
                None => self.wire.extend_from_slice(&self.out.replies),
            }
            self.out.replies.clear();
        }
        if let Some(tls) = self.tls.as_deref_mut() {
            while tls.wants_write() {
                if tls.write_tls(&mut self.wire).is_err() {
                    break;
                }
            }
        }
    }

    /// Ends the session: the reply the end calls for goes out (bounded), then the socket is
    /// shut; an end that says nothing shuts it at once. Counted once.
    fn end(&mut self, core: &Core, end: End) {
        match self.phase {
            Phase::Done => return,
            Phase::Closing(_) => return self.shut(core),
            _ => {}
        }
        let speak = end.account(core, &mut self.session, &mut self.out);
        // The session's own Close effect is this end.
        self.out.effect = None;
        self.phase = Phase::Closing(Instant::now() + core.timing.final_write);
        if speak {
            self.stage(core);
            if let Some(tls) = self.tls.as_deref_mut() {
                tls.send_close_notify();
                self.stage(core);
            }
        } else if !matches!(end, End::TlsFailed) {
            // Nothing more goes out, except a TLS alert already staged.
            self.wire.clear();
        }
        self.close_if_said(core);
    }

    /// In Closing, shuts the socket once everything staged has been sent.
    fn close_if_said(&mut self, core: &Core) {
        if matches!(self.phase, Phase::Closing(_)) && !self.sending && self.wire.is_empty() {
            self.shut(core);
        }
    }

    /// Errors past the session's end, or a stall: shut without another word.
    fn abort(&mut self, core: &Core, end: End) {
        self.wire.clear();
        self.end(core, end);
        self.shut(core);
    }

    /// Shuts both directions: the multishot receive ends, a send in flight fails, the peer
    /// sees EOF. The descriptor itself closes when the slot is freed.
    fn shut(&mut self, core: &Core) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        self.wire.clear();
        // SAFETY: shutdown(2) on a descriptor this connection owns.
        unsafe {
            libc::shutdown(std::os::fd::AsRawFd::as_raw_fd(&self.fd), libc::SHUT_RDWR);
        }
        self.count_session(core);
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        core.counters().session_ended(micros);
    }

    /// Adds what the session counted since the last call to the core's counters.
    fn count_session(&mut self, core: &Core) {
        let now = *self.session.counters();
        core.counters().add_session_delta(&self.counted, &now);
        self.counted = now;
    }
}
