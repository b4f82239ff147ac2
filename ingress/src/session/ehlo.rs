//! EHLO and HELO.

use super::{Output, Session};
use crate::proto::reply::{write_ehlo, write_helo};

impl Session {
    /// EHLO/HELO: remembers the name, resets any transaction (RFC 5321 §4.1.4).
    pub(super) fn ehlo(&mut self, name: String, extended: bool, out: &mut Output) {
        self.reset_transaction();
        let host = &self.ctx.hostname;
        if extended {
            let starttls = self.ctx.tls_available && self.tls.is_none();
            write_ehlo(
                &mut out.replies,
                host,
                self.ctx.limits.message_bytes_max,
                starttls,
            );
        } else {
            write_helo(&mut out.replies, host);
        }
        self.helo = Some((name, extended));
    }
}
