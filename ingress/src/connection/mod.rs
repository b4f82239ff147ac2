//! The connection layer: the one loop that turns a session's effects into I/O, and the
//! session's deadlines. Both drivers run it, and so do the session's test harnesses and the
//! session fuzz target, so they test the code the drivers run.
//!
//! Sans-io like the session: a [`Pump`] owns the [`Session`] and calls a small [`Io`] trait
//! the driver implements (queue reply bytes, start a check, hand a message to the store,
//! begin TLS, close). A hand-off the driver cannot answer at once ([`Answer::Later`]) makes
//! the connection wait; the driver reports the result through the matching `Pump` method
//! and feeds the rest of the input again. It reads no clock: every call that starts or
//! restarts a timer is given the time by the driver (the io_uring driver reads it once per
//! loop turn, the epoll driver at each call).
//!
//! Decisions:
//! - Replies are handed over once per call (at the end of a feed, before TLS begins, at a
//!   close, when a wait starts), in the session's reply buffer: a driver that has nothing
//!   queued swaps buffers, so a reply is not copied on the way to the socket.
//! - The plaintext after STARTTLS is dropped here (RFC 3207 §4.2, CVE-2011-0411): a feed
//!   that began TLS reports all of its input consumed.
//! - A connection waiting for a hand-off (sender, message or shared greylisting check,
//!   store commit) has a deadline of its own: the idle timeout, counted from when the wait
//!   began (a client is kept waiting for our reply no longer than we wait for its input).
//!   On expiry the session says 421 4.4.2 and closes, like every other timeout
//!   ([`Timeout::Check`]): 421 because the connection closes (RFC 5321 §3.8), the same
//!   4.4.2 as any of our timeouts. A result that arrives after that is ignored; a message
//!   whose store commit timed out was not acknowledged, so the client sends it again.

mod record;
#[cfg(test)]
mod tests;

use std::mem;
use std::time::{Duration, Instant, SystemTime};

use tempmx_store::MessageId;

use self::record::RecordClock;
use crate::auth::{MessageCheck, SenderCheck};
use crate::greylist::{GreyVerdict, SharedStep};
use crate::session::{
    DeliveryFailure, Effect, Output, PendingMessage, SenderInput, Session, SessionCounters, Timeout,
};

/// The answer to a hand-off.
#[derive(Debug)]
pub enum Answer<T> {
    /// Known now: the session goes on at once.
    Now(T),
    /// The driver runs it and reports the result through the matching [`Pump`] method; the
    /// connection waits meanwhile (bounded, see [`Pump::deadline`]).
    Later,
}

/// The I/O primitives a driver gives the connection layer.
pub trait Io {
    /// Queues reply bytes (plaintext; the driver encrypts them on TLS) and leaves `replies`
    /// empty. Swapping it with an empty buffer of the driver's keeps both allocations.
    fn send(&mut self, replies: &mut Vec<u8>);
    /// Starts the sender check of `input`; `Now(None)` when no authenticator can run it (the
    /// session goes on without). A later result goes to [`Pump::sender_checked`].
    fn check_sender(&mut self, input: SenderInput<'_>) -> Answer<Option<SenderCheck>>;
    /// Starts the message check; as [`Io::check_sender`], reported to
    /// [`Pump::message_checked`].
    fn check_message(
        &mut self,
        sender: &SenderCheck,
        message: &[u8],
    ) -> Answer<Option<MessageCheck>>;
    /// Starts a step on the shared greylisting state (fleet mode); a later verdict goes to
    /// [`Pump::greylist_checked`]. A driver without a way to run it answers `Unavailable`
    /// (451 4.3.0): greylisting never passes a recipient it could not check.
    fn check_greylist(&mut self, step: SharedStep) -> Answer<GreyVerdict> {
        let _ = step;
        Answer::Now(GreyVerdict::Unavailable)
    }
    /// Hands the message to the store; a commit still pending goes to [`Pump::delivered`].
    fn deliver(
        &mut self,
        message: &PendingMessage<'_>,
    ) -> Answer<Result<MessageId, DeliveryFailure>>;
    /// Begins TLS: the 220 was queued through [`Io::send`] before. The driver calls
    /// [`Pump::tls_started`] once the handshake is done.
    fn start_tls(&mut self);
    /// The session ended itself (QUIT, error limit, early talker): close once the queued
    /// replies are sent.
    fn close(&mut self);
}

/// What a waiting connection waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Sender,
    Message,
    Greylist,
    Store,
}

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The session reads input.
    Reading,
    /// A hand-off runs; input waits.
    Waiting(Wait, Instant),
    /// TLS is being set up; input is not the session's.
    Tls,
    /// The session ended.
    Closed,
}

/// A session with its effect loop and deadlines: what one connection runs.
pub struct Pump {
    session: Session,
    out: Output,
    phase: Phase,
    record: RecordClock,
    idle: Duration,
    session_deadline: Instant,
    /// Session counters already reported through [`Pump::count`].
    counted: SessionCounters,
}

impl Pump {
    /// Runs `session` on a connection admitted `now`, with the idle timeout `idle` (also the
    /// per-record and the hand-off deadline) and the total session time `session_max`.
    pub fn new(session: Session, now: Instant, idle: Duration, session_max: Duration) -> Self {
        Self {
            session,
            out: Output::default(),
            phase: Phase::Reading,
            record: RecordClock::new(now),
            idle,
            session_deadline: now + session_max,
            counted: SessionCounters::default(),
        }
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Ends the connection: its session, for [`Session::into_spare`].
    pub fn into_session(self) -> Session {
        self.session
    }

    /// The session, for the session's unit tests that call it directly.
    #[cfg(test)]
    pub(crate) fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// When the session's total time runs out.
    pub fn session_deadline(&self) -> Instant {
        self.session_deadline
    }

    /// Whether a hand-off is running (input waits).
    pub fn is_waiting(&self) -> bool {
        matches!(self.phase, Phase::Waiting(..))
    }

    /// Whether the session ended.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Queues the greeting; the idle timer starts `now`.
    pub fn greet(&mut self, io: &mut impl Io, now: Instant) {
        self.session.greeting(&mut self.out);
        self.flush(io);
        self.record.restart(now);
    }

    /// Notes that input arrived (a stalled record then times out as [`Timeout::Record`]).
    pub fn received(&mut self) {
        self.record.input();
    }

    /// Feeds input received by `wall` (the `Received:` date) and `now` until it is used up or
    /// the session waits, begins TLS or closes; returns the bytes consumed. The caller keeps
    /// the rest and feeds it again after the wait; after TLS began or the session closed
    /// everything counts as consumed (it is dropped).
    pub fn feed(
        &mut self,
        io: &mut impl Io,
        input: &[u8],
        wall: SystemTime,
        now: Instant,
    ) -> usize {
        let mut pos = 0;
        while pos < input.len() && self.phase == Phase::Reading {
            let n = self.session.ingest(&input[pos..], wall, &mut self.out);
            pos += n;
            if self.out.effect.is_none() && n == 0 {
                // Unreachable: a reading session consumes input or raises an effect.
                break;
            }
            self.run_effects(io, now);
        }
        self.flush(io);
        self.record.progress(self.session.records(), now);
        match self.phase {
            Phase::Tls | Phase::Closed => input.len(),
            Phase::Reading | Phase::Waiting(..) => pos,
        }
    }

    /// The sender check's result (`None`: go on without it), reported `now`; ignored unless
    /// the connection waits for it.
    pub fn sender_checked(&mut self, io: &mut impl Io, check: Option<SenderCheck>, now: Instant) {
        if self.resume(Wait::Sender, now) {
            self.apply_sender(check);
            self.run_effects(io, now);
            self.flush(io);
        }
    }

    /// The message check's result (`None`: go on without it), reported `now`; ignored unless
    /// waited for.
    pub fn message_checked(&mut self, io: &mut impl Io, check: Option<MessageCheck>, now: Instant) {
        if self.resume(Wait::Message, now) {
            self.apply_message(check);
            self.run_effects(io, now);
            self.flush(io);
        }
    }

    /// The shared greylisting state's verdict on the waiting RCPT, reported `now`; ignored
    /// unless waited for.
    pub fn greylist_checked(&mut self, io: &mut impl Io, verdict: GreyVerdict, now: Instant) {
        if self.resume(Wait::Greylist, now) {
            self.session.greylist_checked(verdict, &mut self.out);
            self.run_effects(io, now);
            self.flush(io);
        }
    }

    /// The store's verdict on the pending message, reported `now`; ignored unless waited for.
    pub fn delivered(
        &mut self,
        io: &mut impl Io,
        result: Result<MessageId, DeliveryFailure>,
        now: Instant,
    ) {
        if self.resume(Wait::Store, now) {
            self.session.delivered(result, &mut self.out);
            self.run_effects(io, now);
            self.flush(io);
        }
    }

    /// TLS is up `now`: the session restarts (RFC 3207) and so does the idle timer.
    pub fn tls_started(&mut self, tls: tempmx_store::TlsSummary, now: Instant) {
        self.session.tls_started(tls);
        if self.phase == Phase::Tls {
            self.phase = Phase::Reading;
        }
        self.record.restart(now);
    }

    /// When the connection times out next, and as which timeout; `None` while TLS is set up
    /// (the driver bounds the handshake) or after the end.
    pub fn deadline(&self) -> Option<(Instant, Timeout)> {
        let (at, which) = match self.phase {
            Phase::Reading => self.record.deadline(self.idle),
            Phase::Waiting(_, since) => (since + self.idle, Timeout::Check),
            Phase::Tls | Phase::Closed => return None,
        };
        Some(if self.session_deadline < at {
            (self.session_deadline, Timeout::SessionDuration)
        } else {
            (at, which)
        })
    }

    /// A deadline passed: 421 4.4.2 is queued and the session ends. The caller is already
    /// closing, so [`Io::close`] is not called.
    pub fn timed_out(&mut self, io: &mut impl Io, which: Timeout) {
        self.session.timed_out(which, &mut self.out);
        self.ended(io);
    }

    /// Shutdown reached the session: 421 4.3.2 is queued and the session ends (no
    /// [`Io::close`], as for [`Pump::timed_out`]).
    pub fn shutting_down(&mut self, io: &mut impl Io) {
        self.session.shutting_down(&mut self.out);
        self.ended(io);
    }

    /// Reports the session counters gained since the last call as `add(before, now)`.
    pub fn count(&mut self, add: impl FnOnce(&SessionCounters, &SessionCounters)) {
        let now = *self.session.counters();
        add(&self.counted, &now);
        self.counted = now;
    }

    fn ended(&mut self, io: &mut impl Io) {
        // The session's Close effect is the caller's own close.
        self.out.effect = None;
        self.phase = Phase::Closed;
        self.flush(io);
    }

    /// Runs the effect chain the session asked for (an answer may raise the next effect)
    /// until it is done or waits (a wait starts `now`).
    fn run_effects(&mut self, io: &mut impl Io, now: Instant) {
        while let Some(effect) = self.out.effect.take() {
            match effect {
                Effect::CheckSender => {
                    let answer = match self.session.pending_sender() {
                        Some(input) => io.check_sender(input),
                        None => Answer::Now(None),
                    };
                    match answer {
                        Answer::Now(check) => self.apply_sender(check),
                        Answer::Later => self.wait(io, Wait::Sender, now),
                    }
                }
                Effect::CheckMessage => {
                    let answer = match self.session.pending_auth() {
                        Some((sender, message)) => io.check_message(sender, message),
                        None => Answer::Now(None),
                    };
                    match answer {
                        Answer::Now(check) => self.apply_message(check),
                        Answer::Later => self.wait(io, Wait::Message, now),
                    }
                }
                Effect::CheckGreylist => {
                    let answer = match self.session.pending_greylist() {
                        Some(step) => io.check_greylist(step),
                        None => Answer::Now(GreyVerdict::Unavailable),
                    };
                    match answer {
                        Answer::Now(verdict) => {
                            self.session.greylist_checked(verdict, &mut self.out)
                        }
                        Answer::Later => self.wait(io, Wait::Greylist, now),
                    }
                }
                Effect::Deliver => {
                    let answer = match self.session.pending_message() {
                        Some(message) => io.deliver(&message),
                        None => Answer::Now(Err(DeliveryFailure::Temporary)),
                    };
                    match answer {
                        Answer::Now(result) => self.session.delivered(result, &mut self.out),
                        Answer::Later => self.wait(io, Wait::Store, now),
                    }
                }
                Effect::StartTls => {
                    self.flush(io);
                    self.phase = Phase::Tls;
                    io.start_tls();
                }
                Effect::Close => {
                    self.flush(io);
                    self.phase = Phase::Closed;
                    io.close();
                }
            }
        }
    }

    fn apply_sender(&mut self, check: Option<SenderCheck>) {
        match check {
            Some(check) => self.session.sender_checked(check, &mut self.out),
            None => self.session.auth_skipped(&mut self.out),
        }
    }

    fn apply_message(&mut self, check: Option<MessageCheck>) {
        match check {
            Some(check) => self.session.message_checked(check, &mut self.out),
            None => self.session.auth_skipped(&mut self.out),
        }
    }

    /// The replies so far go out before the wait (the client sees what it can).
    fn wait(&mut self, io: &mut impl Io, what: Wait, now: Instant) {
        self.flush(io);
        self.phase = Phase::Waiting(what, now);
    }

    /// Ends a wait for `what` `now`; false if the connection does not wait for it (a late
    /// result).
    fn resume(&mut self, what: Wait, now: Instant) -> bool {
        match self.phase {
            Phase::Waiting(w, _) if w == what => {
                self.phase = Phase::Reading;
                // The client waited for us, not we for it: its idle time starts now.
                self.record.restart(now);
                true
            }
            _ => false,
        }
    }

    fn flush(&mut self, io: &mut impl Io) {
        if !self.out.replies.is_empty() {
            io.send(&mut self.out.replies);
        }
    }
}

/// Queues `replies` behind `queued`: a swap when nothing is queued (no copy), else an append.
pub fn queue_replies(queued: &mut Vec<u8>, replies: &mut Vec<u8>) {
    if queued.is_empty() {
        mem::swap(queued, replies);
    } else {
        queued.extend_from_slice(replies);
        replies.clear();
    }
}
