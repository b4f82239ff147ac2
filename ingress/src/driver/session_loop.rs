//! The thin shell around one session: read (with deadlines) → `Session::ingest` → run
//! effects → write the replies of one read in one write. Generic over the backend.

use std::future::Future;
use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use tempmx_store::{Accepted, Commit, MessageId, StoreError};
use tokio::sync::watch;
use tokio::time::Instant;

use super::admission::Permit;
use super::conn::{Connection, Transport};
use super::core::Core;
use super::counters::bump;
use super::delivery;
use super::end::End;
use super::record::RecordClock;
use crate::session::{
    DeliveryFailure, Effect, Output, PeerInfo, Session, SessionCounters, Timeout,
};
use crate::tls::ServerTls;

/// Serves one admitted connection to the end, then shuts the socket down.
pub(crate) async fn serve<C: Connection>(
    core: Rc<Core>,
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
    let mut conn = Conn {
        buf: core.buffers.take(),
        transport: Transport::new(io),
        session,
        out: Output::default(),
        started,
        session_deadline: started + core.timing.session_max,
        record: RecordClock::new(started.into_std()),
        counted: SessionCounters::default(),
        peer_ip: info.ip,
        abort,
        core,
    };
    let end = conn.run().await;
    conn.finish(end).await;
    drop(permit);
}

struct Conn<C> {
    core: Rc<Core>,
    transport: Transport<C>,
    session: Session,
    out: Output,
    /// The read buffer; empty of capacity 0 while a read holds it.
    buf: Vec<u8>,
    /// When the connection was admitted (for the duration histogram).
    started: Instant,
    session_deadline: Instant,
    record: RecordClock,
    /// Session counters already added to the core's counters.
    counted: SessionCounters,
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
            self.session.greeting(&mut self.out);
            self.write_replies().await?;
            self.record.restart();
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
                self.session.greeting(&mut self.out);
                let replies = mem::take(&mut self.out.replies);
                let bytes = replies.len() as u64;
                match tokio::time::timeout(self.core.timing.idle, io.write_all(replies)).await {
                    Ok((Ok(()), mut replies)) => {
                        bump(&self.core.counters().bytes_out, bytes);
                        replies.clear();
                        self.out.replies = replies;
                    }
                    Ok((Err(e), _)) => return Err(End::Io(e)),
                    Err(_) => return Err(End::Io(io::ErrorKind::TimedOut.into())),
                }
                self.record.restart();
                let early = with_deadlines(
                    read,
                    self.session_deadline,
                    self.record.deadline(self.core.timing.idle),
                    &mut self.abort,
                );
                early.await?
            }
        };
        self.buf = buf;
        let n = self.got(result)?;
        self.record.input();
        Ok(Some(n))
    }

    /// Reads the next input, bounded by the idle and session timers and the abort signal.
    async fn read(&mut self) -> Result<usize, End> {
        let read = self.transport.read(mem::take(&mut self.buf));
        let (result, buf) = with_deadlines(
            read,
            self.session_deadline,
            self.record.deadline(self.core.timing.idle),
            &mut self.abort,
        )
        .await?;
        self.buf = buf;
        let n = self.got(result)?;
        self.record.input();
        Ok(n)
    }

    fn got(&self, result: io::Result<usize>) -> Result<usize, End> {
        match result {
            Ok(0) => Err(End::Closed),
            Ok(n) => {
                bump(&self.core.counters().bytes_in, n as u64);
                Ok(n)
            }
            Err(e) => Err(End::Io(e)),
        }
    }

    /// Feeds `buf[..len]` to the session, runs its effects, then writes all replies at once.
    async fn process(&mut self, len: usize) -> Option<End> {
        let buf = mem::take(&mut self.buf);
        let end = self.ingest_all(&buf[..len]).await;
        self.buf = buf;
        self.count_session();
        if let Some(end) = end {
            return Some(end);
        }
        let end = self.write_replies().await.err();
        self.record.progress(self.session.records());
        end
    }

    async fn ingest_all(&mut self, data: &[u8]) -> Option<End> {
        let mut pos = 0;
        // Every effect but the last consumes at least one byte, so this bound is never hit.
        for _ in 0..=data.len() {
            pos += self
                .session
                .ingest(&data[pos..], SystemTime::now(), &mut self.out);
            // An effect's handler may ask for the next one (check → deliver): run the chain.
            while let Some(effect) = self.out.effect.take() {
                match effect {
                    Effect::CheckSender => self.check_sender().await,
                    Effect::CheckMessage => self.check_message().await,
                    Effect::Deliver => self.deliver().await,
                    // Bytes after STARTTLS are dropped unread (command injection, RFC 3207 §4.2).
                    Effect::StartTls => return self.start_tls().await,
                    Effect::Close => return Some(End::Closed),
                }
            }
            if pos >= data.len() {
                return None;
            }
        }
        None
    }

    /// Runs SPF for the pending sender (bounded by the authenticator's own timeout); other
    /// sessions of the core go on meanwhile.
    async fn check_sender(&mut self) {
        let core = Rc::clone(&self.core);
        let (Some(auth), Some(input)) = (core.auth.as_ref(), self.session.pending_sender()) else {
            tracing::error!(core = self.core.id, "sender check without an authenticator");
            return self.session.auth_skipped(&mut self.out);
        };
        let check = auth
            .check_sender(input.ip, input.helo, input.mail_from)
            .await;
        self.session.sender_checked(check, &mut self.out);
    }

    /// Runs DKIM, ARC and DMARC on the pending message.
    async fn check_message(&mut self) {
        let core = Rc::clone(&self.core);
        let (Some(auth), Some((sender, message))) =
            (core.auth.as_ref(), self.session.pending_auth())
        else {
            tracing::error!(
                core = self.core.id,
                "message check without an authenticator"
            );
            return self.session.auth_skipped(&mut self.out);
        };
        let check = auth.check_message(sender, message).await;
        self.session.message_checked(check, &mut self.out);
    }

    /// Stores the pending message and tells the session the verdict.
    async fn deliver(&mut self) {
        let size = self
            .session
            .pending_message()
            .map_or(0, |m| m.body.len() as u64);
        let result = match delivery::store(&self.core, &self.session, self.peer_ip) {
            Ok(Accepted {
                id,
                commit: Commit::Done,
            }) => Ok(id),
            Ok(Accepted {
                id,
                commit: Commit::Pending(done),
            }) => self.await_commit(id, done).await,
            Err(e) => {
                tracing::warn!(core = self.core.id, error = %e, "store refused message");
                Err(delivery::failure_of(&e))
            }
        };
        match result {
            Ok(_) => self.core.counters().message_stored(size),
            Err(_) => bump(&self.core.counters().messages_store_failed, 1),
        }
        self.session.delivered(result, &mut self.out);
    }

    /// Waits for a group commit, bounded by the idle timeout (the client waits just as long).
    async fn await_commit(
        &self,
        id: MessageId,
        done: tokio::sync::oneshot::Receiver<Result<(), StoreError>>,
    ) -> Result<MessageId, DeliveryFailure> {
        match tokio::time::timeout(self.core.timing.idle, done).await {
            Ok(Ok(Ok(()))) => Ok(id),
            Ok(Ok(Err(e))) => {
                tracing::warn!(core = self.core.id, error = %e, "store commit failed");
                Err(delivery::failure_of(&e))
            }
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(core = self.core.id, "store commit did not complete");
                Err(DeliveryFailure::Temporary)
            }
        }
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
        let raw = self.core.buffers.take();
        let deadline = self
            .session_deadline
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
                self.session.tls_started(summary);
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

    /// Writes the collected replies in one write, bounded by the idle timeout.
    async fn write_replies(&mut self) -> Result<(), End> {
        if self.out.replies.is_empty() {
            return Ok(());
        }
        let replies = mem::take(&mut self.out.replies);
        let bytes = replies.len() as u64;
        let write = self.transport.write_all(replies);
        // A client that stops reading must not hold the session forever.
        let (result, mut replies) = tokio::time::timeout(self.core.timing.idle, write)
            .await
            .map_err(|_| End::Io(io::ErrorKind::TimedOut.into()))?;
        replies.clear();
        self.out.replies = replies;
        result.map_err(End::Io)?;
        bump(&self.core.counters().bytes_out, bytes);
        Ok(())
    }

    /// Sends the last reply the end calls for (bounded), closes TLS, shuts the socket down,
    /// returns the buffers and counts the outcome.
    async fn finish(mut self, end: End) {
        let speak = end.account(&self.core, &mut self.session, &mut self.out);
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
            self.core.buffers.give(raw);
        }
        self.core.buffers.give(mem::take(&mut self.buf));
    }

    /// Adds what the session counted since the last call to the core's counters.
    fn count_session(&mut self) {
        let now = *self.session.counters();
        self.core.counters().add_session_delta(&self.counted, &now);
        self.counted = now;
    }
}

/// Awaits an owned-buffer read unless the record or session timer or the abort signal fires
/// first (the read is then dropped with its buffer; the caller closes the connection).
async fn with_deadlines<F>(
    read: F,
    session_deadline: Instant,
    (record_deadline, record): (std::time::Instant, Timeout),
    abort: &mut watch::Receiver<bool>,
) -> Result<(io::Result<usize>, Vec<u8>), End>
where
    F: Future<Output = (io::Result<usize>, Vec<u8>)>,
{
    let record_deadline = Instant::from_std(record_deadline);
    let (deadline, which) = if record_deadline <= session_deadline {
        (record_deadline, record)
    } else {
        (session_deadline, Timeout::SessionDuration)
    };
    tokio::select! {
        done = read => Ok(done),
        () = tokio::time::sleep_until(deadline) => Err(End::TimedOut(which)),
        _ = abort.wait_for(|a| *a) => Err(End::Shutdown),
    }
}
