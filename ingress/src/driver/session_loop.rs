//! The epoll shell around one connection: read (with deadlines) → the connection layer
//! ([`Pump`]) → await the hand-offs it asked for (bounded by its deadline) → write the
//! replies of one read in one write. Generic over the socket.

use std::future::Future;
use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use tempmx_store::{MessageId, StoreError};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::admission::Permit;
use super::buffers::BufferPool;
use super::conn::{Connection, Transport};
use super::core::Core;
use super::counters::bump;
use super::delivery::{self, Handed};
use super::end::End;
use crate::auth::{MessageCheck, SenderCheck};
use crate::connection::{Answer, Io, Pump, queue_replies};
use crate::greylist::{GreyVerdict, SharedStep};
use crate::session::{DeliveryFailure, PeerInfo, PendingMessage, SenderInput, Session, Timeout};
use crate::tls::ServerTls;

/// Serves one admitted connection to the end, then shuts the socket down.
pub(crate) async fn serve<C: Connection>(
    core: Rc<Core>,
    buffers: Rc<BufferPool>,
    io: C,
    peer: SocketAddr,
    permit: Permit,
    abort: watch::Receiver<bool>,
) {
    let info = PeerInfo {
        ip: peer.ip().to_canonical(),
        port: peer.port(),
        session_id: core.next_session_id(),
    };
    let session = Session::new(Arc::clone(&core.session_ctx), info);
    let started = Instant::now();
    let timing = core.timing;
    let mut conn = Conn {
        buf: buffers.take(),
        buffers,
        transport: Transport::new(io),
        pump: Pump::new(session, started.into_std(), timing.idle, timing.session_max),
        queued: Vec::new(),
        next: Next::Nothing,
        started,
        peer_ip: info.ip,
        abort,
        core,
    };
    let end = conn.run().await;
    conn.finish(end).await;
    drop(permit);
}

/// What the connection layer asked for that this shell must await or act on, after the
/// layer's call returned.
enum Next {
    Nothing,
    /// Run the sender check of the session's pending sender.
    Sender,
    /// Run the session's pending step on the shared greylisting state.
    Greylist,
    /// Run the message check of the session's pending message.
    Message,
    /// Wait for the group commit of message `id` (`bytes` long).
    Commit {
        id: MessageId,
        bytes: u64,
        done: oneshot::Receiver<Result<(), StoreError>>,
    },
    StartTls,
    Close,
}

/// The epoll side of the connection layer's I/O: replies are queued for the one write per
/// read, the store is written at once, everything that waits is left in `next`.
struct EpollIo<'a> {
    core: &'a Core,
    queued: &'a mut Vec<u8>,
    next: &'a mut Next,
    peer_ip: IpAddr,
}

/// The [`EpollIo`] of a [`Conn`] (a macro, so the borrows stay field by field).
macro_rules! io {
    ($conn:expr) => {
        EpollIo {
            core: &$conn.core,
            queued: &mut $conn.queued,
            next: &mut $conn.next,
            peer_ip: $conn.peer_ip,
        }
    };
}

impl EpollIo<'_> {
    /// Leaves a check for the task to run; `Now(None)` when this core has no authenticator.
    fn later<T>(&mut self, check: Next) -> Answer<Option<T>> {
        if self.core.auth.is_none() {
            tracing::error!(core = self.core.id, "check without an authenticator");
            return Answer::Now(None);
        }
        *self.next = check;
        Answer::Later
    }
}

impl Io for EpollIo<'_> {
    fn send(&mut self, replies: &mut Vec<u8>) {
        queue_replies(self.queued, replies);
    }

    fn check_sender(&mut self, _: SenderInput<'_>) -> Answer<Option<SenderCheck>> {
        self.later(Next::Sender)
    }

    fn check_message(&mut self, _: &SenderCheck, _: &[u8]) -> Answer<Option<MessageCheck>> {
        self.later(Next::Message)
    }

    fn check_greylist(&mut self, _: SharedStep) -> Answer<GreyVerdict> {
        *self.next = Next::Greylist;
        Answer::Later
    }

    fn deliver(
        &mut self,
        message: &PendingMessage<'_>,
    ) -> Answer<Result<MessageId, DeliveryFailure>> {
        match delivery::hand_off(self.core, message, self.peer_ip) {
            Handed::Now(result) => Answer::Now(result),
            Handed::Pending { id, bytes, done } => {
                *self.next = Next::Commit { id, bytes, done };
                Answer::Later
            }
        }
    }

    fn start_tls(&mut self) {
        *self.next = Next::StartTls;
    }

    fn close(&mut self) {
        *self.next = Next::Close;
    }
}

struct Conn<C> {
    core: Rc<Core>,
    transport: Transport<C>,
    pump: Pump,
    /// Replies the pump queued, written once per read.
    queued: Vec<u8>,
    next: Next,
    /// The read buffer; empty of capacity 0 while a read holds it.
    buf: Vec<u8>,
    /// The core's read buffers (the read buffer and the TLS one come from there).
    buffers: Rc<BufferPool>,
    /// When the connection was admitted (for the duration histogram).
    started: Instant,
    peer_ip: IpAddr,
    abort: watch::Receiver<bool>,
}

impl<C: Connection> Conn<C> {
    async fn run(&mut self) -> End {
        match self.greet().await {
            Ok(Some(early)) => {
                if let Some(end) = self.process(early).await {
                    return end;
                }
            }
            Ok(None) => {}
            Err(end) => return end,
        }
        loop {
            let n = match self.read().await {
                Ok(n) => n,
                Err(end) => return end,
            };
            if let Some(end) = self.process(n).await {
                return end;
            }
        }
    }

    /// Sends the greeting, after the greet pause if configured. Input that arrives during
    /// the pause is returned unprocessed and fed to the session before any greeting, which
    /// refuses the early talker.
    async fn greet(&mut self) -> Result<Option<usize>, End> {
        let pause = self.core.timing.greet_pause;
        if pause.is_zero() {
            self.pump.greet(&mut io!(self), now());
            self.write_replies().await?;
            return Ok(None);
        }
        let io = self.transport.io();
        // The read stays in flight across the pause and the greeting: on io_uring a dropped
        // read is not cancelled and would swallow the client's first bytes.
        let mut read = pin!(io.read(mem::take(&mut self.buf)));
        let early = tokio::select! {
            done = &mut read => Some(done),
            () = tokio::time::sleep(pause) => None,
            _ = self.abort.wait_for(|a| *a) => return Err(End::Shutdown),
        };
        let (result, buf) = match early {
            Some(done) => done,
            None => {
                self.pump.greet(&mut io!(self), now());
                let replies = mem::take(&mut self.queued);
                let bytes = replies.len() as u64;
                match tokio::time::timeout(self.core.timing.idle, io.write_all(replies)).await {
                    Ok((Ok(()), mut replies)) => {
                        bump(&self.core.counters().bytes_out, bytes);
                        replies.clear();
                        self.queued = replies;
                    }
                    Ok((Err(e), _)) => return Err(End::Io(e)),
                    Err(_) => return Err(End::Io(io::ErrorKind::TimedOut.into())),
                }
                bounded(read, self.pump.deadline(), &mut self.abort).await?
            }
        };
        self.buf = buf;
        let n = got(&self.core, result)?;
        self.pump.received();
        Ok(Some(n))
    }

    /// Reads the next input, bounded by the connection's deadline and the abort signal.
    async fn read(&mut self) -> Result<usize, End> {
        let read = self.transport.read(mem::take(&mut self.buf));
        let (result, buf) = bounded(read, self.pump.deadline(), &mut self.abort).await?;
        self.buf = buf;
        let n = got(&self.core, result)?;
        self.pump.received();
        Ok(n)
    }

    /// Feeds `buf[..len]` through the connection layer, runs its hand-offs, then writes all
    /// replies at once.
    async fn process(&mut self, len: usize) -> Option<End> {
        let buf = mem::take(&mut self.buf);
        let end = self.ingest_all(&buf[..len]).await;
        self.buf = buf;
        self.count_session();
        if let Some(end) = end {
            return Some(end);
        }
        self.write_replies().await.err()
    }

    async fn ingest_all(&mut self, data: &[u8]) -> Option<End> {
        let mut pos = 0;
        // Every round consumes input or finishes a hand-off that consumed input to start, so
        // this bound is never hit.
        for _ in 0..=2 * data.len() + 1 {
            let done = match mem::replace(&mut self.next, Next::Nothing) {
                Next::Nothing if pos >= data.len() => return None,
                Next::Nothing => {
                    let input = &data[pos..];
                    pos += self
                        .pump
                        .feed(&mut io!(self), input, SystemTime::now(), now());
                    Ok(())
                }
                Next::Sender => self.check_sender().await,
                Next::Message => self.check_message().await,
                Next::Greylist => self.check_greylist().await,
                Next::Commit { id, bytes, done } => self.await_commit(id, bytes, done).await,
                // Bytes after STARTTLS are dropped unread (command injection, RFC 3207 §4.2).
                Next::StartTls => return self.start_tls().await,
                Next::Close => return Some(End::Closed),
            };
            if let Err(end) = done {
                return Some(end);
            }
        }
        None
    }

    /// Runs SPF for the pending sender (bounded by the authenticator's own timeout and the
    /// connection's deadline); other sessions of the core go on meanwhile.
    async fn check_sender(&mut self) -> Result<(), End> {
        let core = Rc::clone(&self.core);
        let check = match (core.auth.as_ref(), self.pump.session().pending_sender()) {
            (Some(auth), Some(input)) => {
                let check = auth.check_sender(input.ip, input.helo, input.mail_from);
                Some(bounded(check, self.pump.deadline(), &mut self.abort).await?)
            }
            _ => None,
        };
        self.pump.sender_checked(&mut io!(self), check, now());
        Ok(())
    }

    /// Runs DKIM, ARC and DMARC on the pending message, bounded the same way.
    async fn check_message(&mut self) -> Result<(), End> {
        let core = Rc::clone(&self.core);
        let check = match (core.auth.as_ref(), self.pump.session().pending_auth()) {
            (Some(auth), Some((sender, message))) => {
                let check = auth.check_message(sender, message);
                Some(bounded(check, self.pump.deadline(), &mut self.abort).await?)
            }
            _ => None,
        };
        self.pump.message_checked(&mut io!(self), check, now());
        Ok(())
    }

    /// Runs the pending step on the shared greylisting state (one cluster round trip),
    /// bounded by the connection's deadline; other sessions of the core go on meanwhile.
    async fn check_greylist(&mut self) -> Result<(), End> {
        let core = Rc::clone(&self.core);
        let pending = (
            core.session_ctx.greylist.as_ref(),
            self.pump.session().pending_greylist(),
        );
        let verdict = match pending {
            (Some(greylist), Some(step)) => {
                bounded(
                    greylist.resolve(step),
                    self.pump.deadline(),
                    &mut self.abort,
                )
                .await?
            }
            _ => GreyVerdict::Unavailable,
        };
        self.pump.greylist_checked(&mut io!(self), verdict, now());
        Ok(())
    }

    /// Waits for a group commit, bounded by the connection's deadline.
    async fn await_commit(
        &mut self,
        id: MessageId,
        bytes: u64,
        done: oneshot::Receiver<Result<(), StoreError>>,
    ) -> Result<(), End> {
        let outcome = bounded(done, self.pump.deadline(), &mut self.abort).await?;
        let result = delivery::committed(&self.core, id, bytes, outcome.ok());
        self.pump.delivered(&mut io!(self), result, now());
        Ok(())
    }

    /// Writes the 220, drops unread plaintext, runs the handshake, restarts the session.
    async fn start_tls(&mut self) -> Option<End> {
        if let Err(end) = self.write_replies().await {
            return Some(end);
        }
        let Some(config) = self.core.tls.as_ref().map(ServerTls::current) else {
            tracing::error!(
                core = self.core.id,
                "session offered STARTTLS without a TLS config"
            );
            return Some(End::TlsFailed);
        };
        let raw = self.buffers.take();
        let deadline = Instant::from_std(self.pump.session_deadline())
            .min(Instant::now() + self.core.timing.idle);
        let handshake = self.transport.start_tls(config, raw);
        let result = tokio::select! {
            r = tokio::time::timeout_at(deadline, handshake) => r,
            _ = self.abort.wait_for(|a| *a) => return Some(End::TlsFailed),
        };
        match result {
            Ok(Ok(summary)) => {
                bump(&self.core.counters().tls_handshakes_ok, 1);
                tracing::debug!(core = self.core.id, version = %summary.version, cipher = %summary.cipher, "tls up");
                self.pump.tls_started(summary, now());
                None
            }
            Ok(Err(e)) => {
                bump(&self.core.counters().tls_handshakes_failed, 1);
                tracing::debug!(core = self.core.id, error = %e, "tls handshake failed");
                Some(End::TlsFailed)
            }
            Err(_) => {
                bump(&self.core.counters().tls_handshakes_failed, 1);
                tracing::debug!(core = self.core.id, "tls handshake timed out");
                Some(End::TlsFailed)
            }
        }
    }

    /// Writes the queued replies in one write, bounded by the idle timeout.
    async fn write_replies(&mut self) -> Result<(), End> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let replies = mem::take(&mut self.queued);
        let bytes = replies.len() as u64;
        let write = self.transport.write_all(replies);
        // A client that stops reading must not hold the session forever.
        let (result, mut replies) = tokio::time::timeout(self.core.timing.idle, write)
            .await
            .map_err(|_| End::Io(io::ErrorKind::TimedOut.into()))?;
        replies.clear();
        self.queued = replies;
        result.map_err(End::Io)?;
        bump(&self.core.counters().bytes_out, bytes);
        Ok(())
    }

    /// Sends the last reply the end calls for (bounded), closes TLS, shuts the socket down,
    /// returns the buffers and counts the outcome.
    async fn finish(mut self, end: End) {
        let speak = end.account(&self.core, &mut self.pump, &mut io!(self));
        if speak {
            let bound = self.core.timing.final_write;
            let last_words = async {
                if self.write_replies().await.is_ok() {
                    self.transport.close_tls().await;
                }
            };
            let _ = tokio::time::timeout(bound, last_words).await;
        }
        self.transport.shutdown();
        self.count_session();
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.core.counters().session_ended(micros);
        if let Some(raw) = self.transport.take_tls_buffer() {
            self.buffers.give(raw);
        }
        self.buffers.give(mem::take(&mut self.buf));
    }

    /// Adds what the session counted since the last call to the core's counters.
    fn count_session(&mut self) {
        let core = &self.core;
        self.pump
            .count(|before, now| core.counters().add_session_delta(before, now));
    }
}

/// The monotonic clock for a call into the pump, read at each call: an epoll session runs as
/// a task of its own, with no loop turn whose one reading it could share.
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// The bytes a read gave (counted), or how the session ends.
fn got(core: &Core, result: io::Result<usize>) -> Result<usize, End> {
    match result {
        Ok(0) => Err(End::Closed),
        Ok(n) => {
            bump(&core.counters().bytes_in, n as u64);
            Ok(n)
        }
        Err(e) => Err(End::Io(e)),
    }
}

/// Awaits `work` unless the connection's deadline passes or the abort signal fires first (the
/// work is then dropped, a read with its buffer; the caller closes the connection).
async fn bounded<F: Future>(
    work: F,
    deadline: Option<(std::time::Instant, Timeout)>,
    abort: &mut watch::Receiver<bool>,
) -> Result<F::Output, End> {
    let Some((at, which)) = deadline else {
        return tokio::select! {
            done = work => Ok(done),
            _ = abort.wait_for(|a| *a) => Err(End::Shutdown),
        };
    };
    tokio::select! {
        done = work => Ok(done),
        () = tokio::time::sleep_until(Instant::from_std(at)) => Err(End::TimedOut(which)),
        _ = abort.wait_for(|a| *a) => Err(End::Shutdown),
    }
}
