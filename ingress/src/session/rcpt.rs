//! RCPT TO.

use super::{Output, Session};
use crate::policy::{RecipientVerdict, check_recipient};
use crate::proto::command::RcptPath;
use crate::proto::reply::Reply;

impl Session {
    /// RCPT: policy check, deduplication, then the recipient limit.
    pub(super) fn rcpt(&mut self, path: RcptPath, out: &mut Output) {
        if self.helo.is_none() {
            return self.fail(Reply::NeedHelo, out);
        }
        if self.txn.from.is_none() {
            return self.fail(Reply::NeedMail, out);
        }
        if self.txn.bdat {
            return self.fail(Reply::RcptAfterBdat, out);
        }
        let verdict = match path {
            RcptPath::Postmaster => RecipientVerdict::UnknownMailbox,
            RcptPath::Mailbox {
                mailbox,
                source_route,
            } => check_recipient(&self.ctx.policy, &mailbox, source_route),
        };
        let address = match verdict {
            RecipientVerdict::Accept(a) => a,
            RecipientVerdict::RelayDenied => return self.fail(Reply::RelayDenied, out),
            RecipientVerdict::DomainRetired => return self.fail(Reply::DomainRetired, out),
            RecipientVerdict::UnknownMailbox => return self.fail(Reply::UnknownMailbox, out),
        };
        let recipients = &mut self.txn.recipients;
        if !recipients.contains(&address) {
            if !self.budget.recipient_fits(recipients.len()) {
                // Not an error: RFC 5321 §4.5.3.1.10 expects the client to go on with the rest.
                self.count(Reply::TooManyRecipients);
                return Reply::TooManyRecipients.write(&mut out.replies);
            }
            recipients.push(address);
        }
        Reply::RecipientOk.write(&mut out.replies);
    }
}
