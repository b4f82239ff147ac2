//! RCPT TO.

use std::time::SystemTime;

use tempmx_store::Mailbox;

use super::{Effect, Output, Session, State};
use crate::greylist::{GreyCheck, GreyRequest, GreyVerdict, SharedStep};
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
            match self.greylist_begin(&mailbox, now) {
                None => {}
                Some(GreyCheck::Done(verdict)) => {
                    return self.greylist_answer(mailbox, verdict, out);
                }
                Some(GreyCheck::Shared(step)) => {
                    self.txn.greylist_pending = Some((mailbox, step));
                    self.state = State::CheckingGreylist;
                    out.effect = Some(Effect::CheckGreylist);
                    return;
                }
            }
            self.txn.recipients.push(mailbox);
        }
        Reply::RecipientOk.write(&mut out.replies);
    }

    /// After [`Effect::CheckGreylist`]: the step the shared greylisting state must run.
    pub fn pending_greylist(&self) -> Option<SharedStep> {
        if !matches!(self.state, State::CheckingGreylist) {
            return None;
        }
        self.txn.greylist_pending.as_ref().map(|(_, step)| *step)
    }

    /// The shared greylisting state's verdict: answers the waiting RCPT.
    pub fn greylist_checked(&mut self, verdict: GreyVerdict, out: &mut Output) {
        if !matches!(self.state, State::CheckingGreylist) {
            return;
        }
        self.state = State::Command;
        if let Some((mailbox, _)) = self.txn.greylist_pending.take() {
            self.greylist_answer(mailbox, verdict, out);
        }
    }

    /// Answers a recipient the greylist decided on: 250 (kept), 451 4.7.1 or 451 4.3.0.
    fn greylist_answer(&mut self, mailbox: Mailbox, verdict: GreyVerdict, out: &mut Output) {
        match verdict {
            GreyVerdict::Pass(_) => {
                self.txn.recipients.push(mailbox);
                Reply::RecipientOk.write(&mut out.replies);
            }
            GreyVerdict::Defer { retry_in_secs } => {
                // Not an error either: a greylisted sender is expected to come back.
                self.count(Reply::Greylisted);
                let hint = format!("in {retry_in_secs} seconds");
                Reply::Greylisted.write_detail(&mut out.replies, hint.as_bytes());
            }
            GreyVerdict::Unavailable => {
                // Our failure, not the client's: not counted against its errors (the
                // greylist counts it).
                Reply::GreylistUnavailable.write(&mut out.replies);
            }
        }
    }

    /// How greylisting goes on for this recipient; `None` when it does not apply.
    fn greylist_begin(&self, mailbox: &Mailbox, now: SystemTime) -> Option<GreyCheck> {
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
        Some(greylist.begin(&request, now))
    }
}
