//! The per-record deadline (slowloris defence): the idle timeout counts from the moment the
//! last record (command line, text line, BDAT stretch) was completed, so bytes that complete
//! nothing do not push it back.

use std::time::{Duration, Instant};

use crate::session::Timeout;

/// When the current record of a session started, and whether bytes of it arrived.
pub(super) struct RecordClock {
    /// When the last record was completed (or the greeting sent).
    since: Instant,
    /// Records the session had completed then.
    seen: u64,
    /// Bytes arrived since `since` (the timeout is then a stalled record, not silence).
    partial: bool,
}

impl RecordClock {
    /// A clock started at `now`.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            since: now,
            seen: 0,
            partial: false,
        }
    }

    /// Restarts the clock at `now` (after the greeting).
    pub(super) fn restart(&mut self, now: Instant) {
        self.since = now;
        self.partial = false;
    }

    /// Notes that input arrived.
    pub(super) fn input(&mut self) {
        self.partial = true;
    }

    /// Restarts the clock at `now` if the session completed records since the last call.
    pub(super) fn progress(&mut self, records: u64, now: Instant) {
        if records != self.seen {
            self.seen = records;
            self.restart(now);
        }
    }

    /// When the current record times out, and which timer that is.
    pub(super) fn deadline(&self, idle: Duration) -> (Instant, Timeout) {
        let which = if self.partial {
            Timeout::Record
        } else {
            Timeout::Idle
        };
        (self.since + idle, which)
    }
}
