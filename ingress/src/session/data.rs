//! DATA, the end of a message (shared with BDAT) and the hand-off to the store.

use std::time::SystemTime;

use tempmx_store::MessageId;

use super::{DeliveryFailure, Effect, Output, PendingMessage, Session, State};
use crate::proto::receiver::{DataFault, DataReceiver};
use crate::proto::reply::Reply;

impl Session {
    /// DATA: 354 after the sequence checks; content follows.
    pub(super) fn data(&mut self, out: &mut Output) {
        if let Some(r) = self.transaction_not_ready() {
            return self.fail(r, out);
        }
        if self.txn.bdat {
            return self.fail(Reply::DataAfterBdat, out);
        }
        Reply::StartData.write(&mut out.replies);
        self.state = State::Data(DataReceiver::new(self.ctx.limits.text_line_bytes_max));
    }

    /// The sequence error for a DATA or BDAT here, if any.
    pub(super) fn transaction_not_ready(&self) -> Option<Reply> {
        if self.helo.is_none() {
            Some(Reply::NeedHelo)
        } else if self.txn.from.is_none() {
            Some(Reply::NeedMail)
        } else if self.txn.recipients.is_empty() {
            Some(Reply::NeedRcpt)
        } else {
            None
        }
    }

    pub(super) fn ingest_data(&mut self, input: &[u8], now: SystemTime, out: &mut Output) -> usize {
        let State::Data(rx) = &mut self.state else {
            return 0;
        };
        let lines = rx.lines();
        let (n, done) = rx.feed(input, &mut self.txn.body);
        self.records += rx.lines() - lines;
        if done {
            // Order of verdicts: smuggling first (security), then size, then line length.
            let fault = match (rx.fault(), self.txn.body.is_over()) {
                (Some(DataFault::BareLineEnding), _) => Some(Reply::BareLineEndingMessage),
                (_, true) => Some(Reply::MessageTooLarge),
                (Some(DataFault::LineTooLong), false) => Some(Reply::TextLineTooLong),
                (None, false) => None,
            };
            self.state = State::Command;
            self.end_of_message(fault, now, out);
        }
        n
    }

    /// The message is complete: refuse it, or build the trace header and ask for delivery.
    pub(super) fn end_of_message(
        &mut self,
        fault: Option<Reply>,
        now: SystemTime,
        out: &mut Output,
    ) {
        self.budget.message_done();
        if let Some(reply) = fault {
            if reply == Reply::BareLineEndingMessage {
                let (session, ip) = (self.peer.session_id, self.peer.ip);
                tracing::info!(session, %ip, "message with bare CR/LF refused (SMTP smuggling defence)");
            }
            self.reset_transaction();
            return self.fail(reply, out);
        }
        self.received_at = now;
        self.write_received(now);
        if self.txn.sender.is_some() {
            self.state = State::CheckingMessage;
            out.effect = Some(Effect::CheckMessage);
        } else {
            self.state = State::Delivering;
            out.effect = Some(Effect::Deliver);
        }
    }

    /// After [`Effect::Deliver`]: the message to store (valid until [`Session::delivered`]).
    pub fn pending_message(&self) -> Option<PendingMessage<'_>> {
        if !matches!(self.state, State::Delivering) {
            return None;
        }
        Some(PendingMessage {
            mail_from: self.txn.from.as_deref().unwrap_or_default(),
            recipients: &self.txn.recipients,
            helo: self.helo.as_ref().map_or("", |(h, _)| h.as_str()),
            tls: self.tls.as_ref(),
            trace_headers: &self.trace,
            auth: &self.txn.auth,
            body: self.txn.body.as_slice(),
            received_at: self.received_at,
        })
    }

    /// The store's verdict for the pending message; writes 250 2.0.0 with the id or the error.
    pub fn delivered(&mut self, result: Result<MessageId, DeliveryFailure>, out: &mut Output) {
        if !matches!(self.state, State::Delivering) {
            return;
        }
        self.state = State::Command;
        self.reset_transaction();
        match result {
            Ok(id) => {
                self.counters.messages_accepted += 1;
                Reply::Stored.write_detail(&mut out.replies, &id.hex());
            }
            Err(failure) => {
                let reply = match failure {
                    DeliveryFailure::Temporary => Reply::StoreTemporary,
                    DeliveryFailure::TooLarge => Reply::MessageTooLarge,
                };
                // Our side failed, so this does not count against the client's errors.
                self.count(reply);
                reply.write(&mut out.replies);
            }
        }
    }
}
