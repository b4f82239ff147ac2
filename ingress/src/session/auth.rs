//! The authentication stage: the sender check after MAIL, the message check after the data.

use std::net::IpAddr;

use super::{Effect, Output, Session, State};
use crate::auth::{AuthMode, MessageCheck, SenderCheck};
use crate::proto::reply::Reply;

/// What the sender check needs (valid until [`Session::sender_checked`]).
#[derive(Debug)]
pub struct SenderInput<'a> {
    /// Client address.
    pub ip: IpAddr,
    /// The EHLO/HELO name.
    pub helo: &'a str,
    /// Reverse path; empty for `<>` (SPF then checks the HELO identity).
    pub mail_from: &'a str,
}

impl Session {
    /// After [`Effect::CheckSender`]: the sender to check.
    pub fn pending_sender(&self) -> Option<SenderInput<'_>> {
        if !matches!(self.state, State::CheckingSender) {
            return None;
        }
        Some(SenderInput {
            ip: self.peer.ip,
            helo: self.helo.as_ref().map_or("", |(h, _)| h.as_str()),
            mail_from: self.txn.from.as_deref().unwrap_or_default(),
        })
    }

    /// The sender check's verdict: answers the MAIL (550 5.7.23 on an enforced SPF fail).
    pub fn sender_checked(&mut self, check: SenderCheck, out: &mut Output) {
        if !matches!(self.state, State::CheckingSender) {
            return;
        }
        self.state = State::Command;
        if check.rejects() {
            self.reset_transaction();
            return self.fail(Reply::SpfFailed, out);
        }
        if self.ctx.auth_mode == AuthMode::Enforce && check.temperror() {
            self.counters.auth_fail_open += 1;
        }
        self.txn.sender = Some(check);
        Reply::SenderOk.write(&mut out.replies);
    }

    /// After [`Effect::CheckMessage`]: the sender check and the message as received.
    pub fn pending_auth(&self) -> Option<(&SenderCheck, &[u8])> {
        if !matches!(self.state, State::CheckingMessage) {
            return None;
        }
        Some((self.txn.sender.as_ref()?, self.txn.body.as_slice()))
    }

    /// The message check's verdict: refuses the message (550 5.7.1 on an enforced DMARC
    /// reject), or drops forged Authentication-Results fields, adds ours and asks for delivery.
    pub fn message_checked(&mut self, check: MessageCheck, out: &mut Output) {
        if !matches!(self.state, State::CheckingMessage) {
            return;
        }
        if check.rejects() {
            self.state = State::Command;
            self.reset_transaction();
            return self.fail(Reply::DmarcRejected, out);
        }
        if self.ctx.auth_mode == AuthMode::Enforce && check.temperror() {
            self.counters.auth_fail_open += 1;
        }
        // RFC 8601 §5: fields claiming our authserv-id did not come from us.
        self.txn.body.remove_ranges(check.forged_headers());
        self.trace.splice(0..0, check.header().iter().copied());
        self.txn.auth.clear();
        self.txn.auth.extend_from_slice(check.results());
        self.state = State::Delivering;
        out.effect = Some(Effect::Deliver);
    }

    /// Goes on without the pending check, as with authentication off (the driver could not
    /// run it).
    pub fn auth_skipped(&mut self, out: &mut Output) {
        match self.state {
            State::CheckingSender => {
                self.state = State::Command;
                Reply::SenderOk.write(&mut out.replies);
            }
            State::CheckingMessage => {
                self.state = State::Delivering;
                out.effect = Some(Effect::Deliver);
            }
            _ => {}
        }
    }
}
