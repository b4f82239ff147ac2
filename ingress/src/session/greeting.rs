//! The greeting, early talkers, and the session-ending notices (timeouts, shutdown).

use super::{Output, Session, State, Timeout};
use crate::proto::reply::{Reply, write_greeting};

impl Session {
    /// Writes the 220 greeting; the session then reads commands.
    pub fn greeting(&mut self, out: &mut Output) {
        if matches!(self.state, State::Fresh) {
            write_greeting(&mut out.replies, &self.ctx.hostname);
            self.state = State::Command;
        }
    }

    /// A timer expired: 421 4.4.2 and close.
    pub fn timed_out(&mut self, which: Timeout, out: &mut Output) {
        tracing::debug!(session = self.peer.session_id, ?which, "session timed out");
        Reply::Timeout.write(&mut out.replies);
        self.close(out);
    }

    /// The appliance is shutting down: 421 4.3.2 and close.
    pub fn shutting_down(&mut self, out: &mut Output) {
        Reply::ShuttingDown.write(&mut out.replies);
        self.close(out);
    }

    /// Input before the greeting (a sender that does not wait): 554 5.5.0 and close.
    pub(super) fn early_talker(&mut self, input: &[u8], out: &mut Output) -> usize {
        tracing::debug!(session = self.peer.session_id, ip = %self.peer.ip, "early talker");
        Reply::EarlyTalker.write(&mut out.replies);
        self.count(Reply::EarlyTalker);
        self.close(out);
        input.len()
    }
}
