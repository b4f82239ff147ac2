//! MAIL FROM.

use super::{Effect, Output, Session, State};
use crate::auth::AuthMode;
use crate::proto::command::MailCommand;
use crate::proto::reply::Reply;

impl Session {
    /// MAIL: starts a transaction after the sequence, count and SIZE checks.
    pub(super) fn mail(&mut self, cmd: MailCommand, out: &mut Output) {
        if self.helo.is_none() {
            return self.fail(Reply::NeedHelo, out);
        }
        if self.txn.from.is_some() {
            return self.fail(Reply::NestedMail, out);
        }
        if self.budget.messages_exhausted() {
            self.count(Reply::TooManyMessages);
            Reply::TooManyMessages.write(&mut out.replies);
            return self.close(out);
        }
        let limit = self.ctx.limits.message_bytes_max as u64;
        if cmd.size.is_some_and(|s| s > limit) {
            return self.fail(Reply::MessageTooLarge, out);
        }
        self.txn.from = Some(cmd.from.map(|m| m.to_address()).unwrap_or_default());
        self.txn.smtputf8 = cmd.smtputf8;
        self.txn.seq += 1;
        if self.ctx.auth_mode == AuthMode::Off {
            return Reply::SenderOk.write(&mut out.replies);
        }
        // The reply waits for SPF: under enforce a fail refuses the MAIL itself.
        self.state = State::CheckingSender;
        out.effect = Some(Effect::CheckSender);
    }
}
