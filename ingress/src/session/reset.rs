//! RSET and the transaction reset shared by EHLO, STARTTLS and the end of a message.

use super::{Output, Session};
use crate::proto::reply::Reply;

impl Session {
    /// RSET: drops the transaction, keeps the EHLO name.
    pub(super) fn rset(&mut self, out: &mut Output) {
        self.reset_transaction();
        Reply::Ok.write(&mut out.replies);
    }

    /// Forgets the envelope and body; the buffers keep their allocations.
    pub(super) fn reset_transaction(&mut self) {
        let t = &mut self.txn;
        t.from = None;
        t.sender = None;
        t.auth.clear();
        t.recipients.clear();
        t.greylist_pending = None;
        t.smtputf8 = false;
        t.bdat = false;
        t.body.clear();
    }
}
