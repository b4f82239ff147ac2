//! How a session ends, and what each end says and counts; shared by both backends.

use std::io;

use super::core::Core;
use super::counters::bump;
use crate::connection::{Io, Pump};
use crate::session::Timeout;

/// How a session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The client closed, or the session closed itself (QUIT, error limit, early talker).
    Closed,
    /// A timer expired (a hand-off's too); the session says 421 4.4.2.
    TimedOut(Timeout),
    /// Shutdown reached this session; it says 421 4.3.2.
    Shutdown,
    /// The socket failed or a write stalled; nothing more is sent.
    Io(io::Error),
    /// The TLS handshake failed; the channel is unusable.
    TlsFailed,
}

impl End {
    /// Counts the end on the core and has the session queue its last reply through `io`, if
    /// this end has one; returns whether the connection should still send (the last reply,
    /// close_notify).
    pub(crate) fn account(&self, core: &Core, pump: &mut Pump, io: &mut impl Io) -> bool {
        let counters = core.counters();
        let (counter, speak) = match self {
            End::Closed => (&counters.sessions_closed, true),
            End::TimedOut(which) => {
                pump.timed_out(io, *which);
                (&counters.sessions_timed_out, true)
            }
            End::Shutdown => {
                pump.shutting_down(io);
                (&counters.sessions_shutdown, true)
            }
            End::Io(e) => {
                tracing::debug!(core = core.id, error = %e, "session i/o ended");
                (&counters.sessions_aborted, false)
            }
            End::TlsFailed => (&counters.sessions_aborted, false),
        };
        bump(counter, 1);
        speak
    }
}
