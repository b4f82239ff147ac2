//! The SMTP session state machine: bytes in, replies and effects out.
//!
//! No sockets, clocks or threads: the driver feeds bytes with [`Session::ingest`], writes
//! [`Output::replies`] and runs [`Output::effect`]. Each stage lives in its own file; this
//! module holds the state and a short dispatcher. Pipelined input gives the same replies as
//! input fed line by line or byte by byte, because every receiver is incremental.
//!
//! Decisions:
//! - Every negative reply to a command or message counts against `errors_max`, except the
//!   452 4.5.3 for recipients over `recipients_max` (a client that sends many recipients
//!   in one pipelined batch must not be cut off); the error that goes over the limit is
//!   answered 421 4.7.0 instead and the session closes.
//! - `messages_per_connection_max` counts finished transactions (accepted or refused); the
//!   MAIL after the last allowed one is answered 421 4.7.0 and the session closes.
//! - `<postmaster>` without a domain is refused 550 5.1.1: a temp-mail MX has no local
//!   postmaster; `postmaster@<pool domain>` goes through the normal recipient policy.
//! - Bare CR/LF (SMTP smuggling): a command line with one is answered 500 5.5.2 (a bare LF
//!   ends the line, so the reply comes at once and the line never runs); a message
//!   with one is drained to the real CRLF.CRLF and refused 550 5.6.0 (see `proto::receiver`).
//!   BDAT chunks are not checked: they have no terminator to fake (see `bdat`).
//! - Bytes after STARTTLS are dropped by the session too (defence in depth for CVE-2011-0411)
//!   until [`Session::tls_started`].
//! - Authentication (see `auth`): SPF runs after MAIL (its reply waits for
//!   [`Effect::CheckSender`]), DKIM/ARC/DMARC after the data ([`Effect::CheckMessage`]). Under
//!   `enforce` an SPF fail answers MAIL 550 5.7.23 and a DMARC failure under `p=reject` answers
//!   the data 550 5.7.1; a temperror never rejects (fail open, counted).
//! - Greylisting runs at RCPT, after the recipient policy; its 451 4.7.1 does not count against
//!   `errors_max` (a retrying sender is expected to come back). With shared (fleet) state
//!   the RCPT's reply waits for [`Effect::CheckGreylist`]; when that state is unavailable
//!   the reply is 451 4.3.0, not counted against `errors_max` either (our failure).

mod auth;
mod bdat;
mod budget;
mod data;
mod ehlo;
mod greeting;
mod mail;
mod rcpt;
mod received;
mod reset;
mod starttls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tempmx_store::{AuthResult, Mailbox, TlsSummary};

use crate::auth::{AuthMode, SenderCheck};
use crate::config::SessionLimits;
use crate::greylist::{Greylist, SharedStep};
use crate::policy::Policy;
use crate::proto::command::{self, Command, CommandError};
use crate::proto::receiver::{ChunkReceiver, DataReceiver, LineEvent, LineReceiver, MessageBuffer};
use crate::proto::reply::Reply;
pub use auth::SenderInput;
use budget::Budget;

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod tests;

/// Settings shared by all sessions of a core.
pub struct SessionContext {
    /// Our host name (greeting, EHLO, Received).
    pub hostname: String,
    /// Per-session limits.
    pub limits: SessionLimits,
    /// Whether STARTTLS can be offered.
    pub tls_available: bool,
    /// Recipient policy.
    pub policy: Arc<Policy>,
    /// Whether (and how) senders and messages are authenticated.
    pub auth_mode: AuthMode,
    /// The greylisting table, when greylisting is on for any domain.
    pub greylist: Option<Arc<Greylist>>,
}

/// The connecting peer.
#[derive(Clone, Copy, Debug)]
pub struct PeerInfo {
    /// Client address.
    pub ip: IpAddr,
    /// Client port.
    pub port: u16,
    /// Unique id of this session, used in the transaction id.
    pub session_id: u64,
}

/// What the driver has to do after writing the replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Check the sender of [`Session::pending_sender`], then call [`Session::sender_checked`].
    CheckSender,
    /// Check the message of [`Session::pending_auth`], then call [`Session::message_checked`].
    CheckMessage,
    /// Run [`Session::pending_greylist`] on the shared greylisting state, then call
    /// [`Session::greylist_checked`].
    CheckGreylist,
    /// Store [`Session::pending_message`], then call [`Session::delivered`].
    Deliver,
    /// Discard buffered plaintext, run the TLS handshake, then call [`Session::tls_started`].
    StartTls,
    /// Flush the replies and close the connection.
    Close,
}

/// Replies to write and at most one effect.
#[derive(Debug, Default)]
pub struct Output {
    /// Reply bytes, CRLF-terminated.
    pub replies: Vec<u8>,
    /// The effect to run after writing `replies`.
    pub effect: Option<Effect>,
}

/// Which timer expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// No input for `idle_timeout_ms`.
    Idle,
    /// The session ran for `session_duration_max_ms`.
    SessionDuration,
    /// A command line, message text line or BDAT stretch of `text_line_bytes_max` bytes was
    /// not completed within `idle_timeout_ms` (a slow drip that only resets the idle timer).
    Record,
    /// A check or store hand-off did not answer within `idle_timeout_ms` (see
    /// [`connection`](crate::connection)).
    Check,
}

/// Why the store did not take a message. There is no "out of space": the store is a ring
/// that makes room by evicting its oldest segment, so a full store still takes mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// Transient failure (451 4.3.0).
    Temporary,
    /// The message is larger than the store takes (552 5.3.4).
    TooLarge,
}

/// A message waiting for the store.
#[derive(Debug)]
pub struct PendingMessage<'a> {
    /// Reverse path; empty for `<>`.
    pub mail_from: &'a str,
    /// Deduplicated recipient mailboxes.
    pub recipients: &'a [Mailbox],
    /// The EHLO/HELO name.
    pub helo: &'a str,
    /// TLS parameters if on TLS.
    pub tls: Option<&'a TlsSummary>,
    /// Our trace header lines (Authentication-Results:, Received:), CRLF-terminated.
    pub trace_headers: &'a [u8],
    /// Authentication results (empty when authentication is off).
    pub auth: &'a [AuthResult],
    /// The message after dot-unstuffing.
    pub body: &'a [u8],
    /// When the end of data was seen.
    pub received_at: SystemTime,
}

/// Counters of one session; the driver sums them per core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Messages handed to the store and acknowledged with 250.
    pub messages_accepted: u64,
    /// Recipients refused as relaying attempts (550 5.7.1).
    pub rejected_relay: u64,
    /// Messages refused for size (552 5.3.4).
    pub rejected_size: u64,
    /// Syntax errors (500/501/555).
    pub rejected_syntax: u64,
    /// Messages or lines refused for bare CR/LF (smuggling defence).
    pub rejected_smuggling: u64,
    /// Refusals because a count limit was hit (recipients, messages, errors).
    pub rejected_rate: u64,
    /// MAIL refused because SPF failed (enforce mode).
    pub rejected_spf: u64,
    /// Messages refused by the sender domain's DMARC `p=reject` (enforce mode).
    pub rejected_dmarc: u64,
    /// Enforce-mode verdicts not applied because a check had a temperror (fail open).
    pub auth_fail_open: u64,
    /// Recipients deferred by greylisting (451 4.7.1).
    pub greylisted: u64,
}

/// Largest buffer an ended session hands on to the next ([`spare`]): one that grew past it
/// (a large message) is freed rather than held by a connection cache.
pub const SPARE_BYTES_MAX: usize = 16 * 1024;

/// `buf` emptied for reuse, or a new empty buffer if it is over [`SPARE_BYTES_MAX`].
///
/// The one place a buffer is emptied between connections: when its connection ends, before
/// anything else can hold it. A [`SessionSpare`] or the io_uring driver's spare holds only
/// buffers that went through it, or new ones (their `Default`), so the next connection
/// starts on empty buffers (the receivers' `with_buffer`, crate-private, assert it).
pub fn spare(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.capacity() > SPARE_BYTES_MAX {
        return Vec::new();
    }
    buf.clear();
    buf
}

/// The emptied buffers of an ended session, for the next session on the same core
/// ([`Session::into_spare`], [`Session::with_spare`]): capacity carries over, content never.
#[derive(Debug, Default)]
pub struct SessionSpare {
    line: Vec<u8>,
    body: Vec<u8>,
    trace: Vec<u8>,
}

/// One SMTP session.
pub struct Session {
    ctx: Arc<SessionContext>,
    peer: PeerInfo,
    state: State,
    lines: LineReceiver,
    /// The EHLO/HELO name and whether it was EHLO.
    helo: Option<(String, bool)>,
    tls: Option<TlsSummary>,
    txn: Transaction,
    budget: Budget,
    counters: SessionCounters,
    /// Our trace header for the pending message (reused buffer).
    trace: Vec<u8>,
    received_at: SystemTime,
    /// Records completed so far (see [`Session::records`]).
    records: u64,
}

/// Where the session is in the protocol.
#[derive(Debug)]
enum State {
    /// Before the greeting; any input is an early talker.
    Fresh,
    /// Reading command lines.
    Command,
    /// Reading DATA content.
    Data(DataReceiver),
    /// Reading a BDAT chunk; `refuse` is the reply for a chunk that is drained, not kept.
    Chunk {
        rx: ChunkReceiver,
        size: u64,
        last: bool,
        refuse: Option<Reply>,
    },
    /// Waiting for [`Session::sender_checked`].
    CheckingSender,
    /// Waiting for [`Session::message_checked`].
    CheckingMessage,
    /// Waiting for [`Session::greylist_checked`].
    CheckingGreylist,
    /// Waiting for [`Session::delivered`].
    Delivering,
    /// Waiting for [`Session::tls_started`]; input is dropped.
    TlsPending,
    /// Done; input is dropped.
    Closed,
}

/// The mail transaction in progress.
#[derive(Debug)]
struct Transaction {
    /// Reverse path once MAIL was accepted; empty string for `<>`.
    from: Option<String>,
    /// The sender check of this transaction (authentication on).
    sender: Option<SenderCheck>,
    /// Authentication results of the message (authentication on).
    auth: Vec<AuthResult>,
    recipients: Vec<Mailbox>,
    /// The recipient whose shared greylisting step runs, with the step.
    greylist_pending: Option<(Mailbox, SharedStep)>,
    smtputf8: bool,
    /// A BDAT chunk was accepted (DATA is then a sequence error).
    bdat: bool,
    body: MessageBuffer,
    /// Transactions started in this session, for the transaction id.
    seq: u64,
}

impl Session {
    /// Creates a session for a new connection.
    pub fn new(ctx: Arc<SessionContext>, peer: PeerInfo) -> Self {
        Self::with_spare(ctx, peer, SessionSpare::default())
    }

    /// As [`Session::new`], on the emptied buffers of an ended session: every field is new,
    /// only the allocations of `spare` are reused (empty since [`Session::into_spare`]).
    pub fn with_spare(ctx: Arc<SessionContext>, peer: PeerInfo, spare: SessionSpare) -> Self {
        let limits = &ctx.limits;
        let SessionSpare { line, body, trace } = spare;
        Self {
            state: State::Fresh,
            lines: LineReceiver::with_buffer(limits.command_line_bytes_max, line),
            helo: None,
            tls: None,
            txn: Transaction {
                from: None,
                sender: None,
                auth: Vec::new(),
                recipients: Vec::new(),
                greylist_pending: None,
                smtputf8: false,
                bdat: false,
                body: MessageBuffer::with_buffer(limits.message_bytes_max, body),
                seq: 0,
            },
            budget: Budget::new(limits),
            counters: SessionCounters::default(),
            trace,
            received_at: SystemTime::UNIX_EPOCH,
            records: 0,
            ctx,
            peer,
        }
    }

    /// Ends the session, keeping its buffers (emptied here by [`spare`], none over
    /// [`SPARE_BYTES_MAX`]) for [`Session::with_spare`].
    pub fn into_spare(self) -> SessionSpare {
        SessionSpare {
            line: spare(self.lines.into_buffer()),
            body: spare(self.txn.body.into_buffer()),
            trace: spare(self.trace),
        }
    }

    /// Consumes bytes until all are used or an effect needs the driver; returns bytes consumed.
    /// The caller re-feeds the unconsumed rest after handling the effect.
    pub fn ingest(&mut self, input: &[u8], now: SystemTime, out: &mut Output) -> usize {
        let mut pos = 0;
        while pos < input.len() && out.effect.is_none() {
            let rest = &input[pos..];
            pos += match self.state {
                State::Fresh => self.early_talker(rest, out),
                State::Command => self.ingest_line(rest, now, out),
                State::Data(_) => self.ingest_data(rest, now, out),
                State::Chunk { .. } => self.ingest_chunk(rest, now, out),
                State::TlsPending | State::Closed => rest.len(),
                State::CheckingSender
                | State::CheckingMessage
                | State::CheckingGreylist
                | State::Delivering => break,
            };
        }
        pos
    }

    /// Whether the session has ended (after a Close effect).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// This session's counters.
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    /// Records completed so far: command lines, message text lines, and BDAT chunks and
    /// stretches of `text_line_bytes_max` chunk bytes. The driver restarts its per-record
    /// deadline ([`Timeout::Record`]) only when this moves, so a trickle of bytes that
    /// completes nothing cannot hold the session open.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn ingest_line(&mut self, input: &[u8], now: SystemTime, out: &mut Output) -> usize {
        let (n, event) = self.lines.feed(input);
        if event.is_some() {
            self.records += 1;
        }
        match event {
            None => {}
            Some(LineEvent::TooLong) => self.fail(Reply::LineTooLong, out),
            Some(LineEvent::BareLineEnding) => self.fail(Reply::BareLineEndingCommand, out),
            Some(LineEvent::Line) => match command::parse(self.lines.line(), self.txn.smtputf8) {
                Ok(cmd) => self.dispatch(cmd, now, out),
                Err(e) => self.fail(parse_error_reply(e), out),
            },
        }
        n
    }

    fn dispatch(&mut self, cmd: Command, now: SystemTime, out: &mut Output) {
        match cmd {
            Command::Ehlo(name) => self.ehlo(name, true, out),
            Command::Helo(name) => self.ehlo(name, false, out),
            Command::Mail(m) => self.mail(m, out),
            Command::Rcpt(r) => self.rcpt(r, now, out),
            Command::Data => self.data(out),
            Command::Bdat { size, last } => self.bdat(size, last, now, out),
            Command::Rset => self.rset(out),
            Command::StartTls => self.starttls(out),
            Command::Noop => Reply::Ok.write(&mut out.replies),
            Command::Vrfy => Reply::CannotVerify.write(&mut out.replies),
            Command::Help => Reply::Help.write(&mut out.replies),
            Command::NotImplemented => self.fail(Reply::NotImplemented, out),
            Command::Quit => {
                Reply::Closing.write(&mut out.replies);
                self.close(out);
            }
        }
    }

    /// Writes a negative reply, counting it against `errors_max`.
    fn fail(&mut self, reply: Reply, out: &mut Output) {
        self.count(reply);
        if self.budget.error() {
            self.count(Reply::TooManyErrors);
            Reply::TooManyErrors.write(&mut out.replies);
            self.close(out);
            return;
        }
        reply.write(&mut out.replies);
    }

    fn close(&mut self, out: &mut Output) {
        self.state = State::Closed;
        out.effect = Some(Effect::Close);
    }

    fn count(&mut self, reply: Reply) {
        let c = &mut self.counters;
        match reply {
            Reply::RelayDenied => c.rejected_relay += 1,
            Reply::MessageTooLarge => c.rejected_size += 1,
            Reply::BareLineEndingCommand | Reply::BareLineEndingMessage => {
                c.rejected_smuggling += 1
            }
            Reply::UnknownCommand
            | Reply::SyntaxError
            | Reply::UnknownParameter
            | Reply::NeedsSmtputf8
            | Reply::LineTooLong => c.rejected_syntax += 1,
            Reply::TooManyRecipients | Reply::TooManyMessages | Reply::TooManyErrors => {
                c.rejected_rate += 1
            }
            Reply::SpfFailed => c.rejected_spf += 1,
            Reply::DmarcRejected => c.rejected_dmarc += 1,
            Reply::Greylisted => c.greylisted += 1,
            _ => {}
        }
    }
}

fn parse_error_reply(e: CommandError) -> Reply {
    match e {
        CommandError::Unknown => Reply::UnknownCommand,
        CommandError::Syntax => Reply::SyntaxError,
        CommandError::UnknownParameter => Reply::UnknownParameter,
        CommandError::NeedsSmtputf8 => Reply::NeedsSmtputf8,
    }
}
