//! STARTTLS (RFC 3207).

use tempmx_store::TlsSummary;

use super::{Effect, Output, Session, State};
use crate::proto::reply::Reply;

impl Session {
    /// STARTTLS: 220 and [`Effect::StartTls`]; the session consumed exactly through this line.
    pub(super) fn starttls(&mut self, out: &mut Output) {
        if self.tls.is_some() {
            return self.fail(Reply::TlsActive, out);
        }
        if !self.ctx.tls_available {
            return self.fail(Reply::TlsUnavailable, out);
        }
        if self.helo.is_none() {
            return self.fail(Reply::NeedHelo, out);
        }
        if self.txn.from.is_some() {
            return self.fail(Reply::TlsInTransaction, out);
        }
        Reply::TlsReady.write(&mut out.replies);
        // RFC 3207 §4.2: everything learnt before TLS is forgotten, the HELO name too.
        self.helo = None;
        self.reset_transaction();
        self.state = State::TlsPending;
        out.effect = Some(Effect::StartTls);
    }

    /// TLS is up: the session restarts at the EHLO state (RFC 3207).
    pub fn tls_started(&mut self, tls: TlsSummary) {
        self.tls = Some(tls);
        if matches!(self.state, State::TlsPending) {
            self.state = State::Command;
        }
    }
}
