//! RCPT TO.

use std::time::SystemTime;

use tempmx_store::Mailbox;

use super::{Output, Session};
use crate::greylist::{GreyRequest, GreyVerdict};
use crate::policy::{RecipientVerdict, check_recipient};
use crate::proto::command::RcptPath;
use crate::proto::reply::Reply;

impl Session {
    /// RCPT: policy check, deduplication, the recipient limit, then greylisting.
    pub(super) fn rcpt(&mut self, path: RcptPath, now: SystemTime, out: &mut Output) {
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
        let mailbox = match verdict {
            RecipientVerdict::Accept(a) => a,
            RecipientVerdict::RelayDenied => return self.fail(Reply::RelayDenied, out),
            RecipientVerdict::DomainRetired => return self.fail(Reply::DomainRetired, out),
            RecipientVerdict::UnknownMailbox => return self.fail(Reply::UnknownMailbox, out),
        };
        if !self.txn.recipients.contains(&mailbox) {
            if !self.budget.recipient_fits(self.txn.recipients.len()) {
                // Not an error: RFC 5321 §4.5.3.1.10 expects the client to go on with the rest.
                self.count(Reply::TooManyRecipients);
                return Reply::TooManyRecipients.write(&mut out.replies);
            }
            if let Some(retry_in_secs) = self.greylisted(&mailbox, now) {
                // Not an error either: a greylisted sender is expected to come back.
                self.count(Reply::Greylisted);
                let hint = format!("in {retry_in_secs} seconds");
                return Reply::Greylisted.write_detail(&mut out.replies, hint);
            }
            self.txn.recipients.push(mailbox);
        }
        Reply::RecipientOk.write(&mut out.replies);
    }

    /// Seconds to wait if greylisting defers this recipient.
    fn greylisted(&self, mailbox: &Mailbox, now: SystemTime) -> Option<u64> {
        let greylist = self.ctx.greylist.as_ref()?;
        if !greylist.applies_to(&mailbox.to_domain()) {
            return None;
        }
        let request = GreyRequest {
            client: self.peer.ip,
            sender: self.txn.from.as_deref().unwrap_or_default(),
            recipient: mailbox,
            sender_trusted: self.txn.sender.as_ref().is_some_and(|s| s.trusted()),
        };
        match greylist.check(&request, now) {
            GreyVerdict::Pass(_) => None,
            GreyVerdict::Defer { retry_in_secs } => Some(retry_in_secs),
        }
    }
}
