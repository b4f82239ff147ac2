//! Per-session count limits: errors, messages per connection, recipients per message.

use crate::config::SessionLimits;

/// What this session has used of its limits.
#[derive(Debug)]
pub(super) struct Budget {
    errors: usize,
    errors_max: usize,
    messages: usize,
    messages_max: usize,
    recipients_max: usize,
}

impl Budget {
    pub(super) fn new(limits: &SessionLimits) -> Self {
        Self {
            errors: 0,
            errors_max: limits.errors_max,
            messages: 0,
            messages_max: limits.messages_per_connection_max,
            recipients_max: limits.recipients_max,
        }
    }

    /// Counts one error; true when the session is now over `errors_max`.
    pub(super) fn error(&mut self) -> bool {
        self.errors += 1;
        self.errors > self.errors_max
    }

    /// Counts one finished transaction.
    pub(super) fn message_done(&mut self) {
        self.messages += 1;
    }

    /// Whether no further transaction may start.
    pub(super) fn messages_exhausted(&self) -> bool {
        self.messages >= self.messages_max
    }

    /// Whether a transaction with `count` recipients may take another.
    pub(super) fn recipient_fits(&self, count: usize) -> bool {
        count < self.recipients_max
    }
}
