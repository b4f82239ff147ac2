//! How a session ends, and what each end says and counts; shared by both backends.

use std::io;

use super::core::Core;
use super::counters::bump;
use crate::session::{Output, Session, Timeout};

/// How a session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The client closed, or the session closed itself (QUIT, error limit, early talker).
    Closed,
    /// A timer expired; the session says 421 4.4.2.
    TimedOut(Timeout),
    /// Shutdown reached this session; it says 421 4.3.2.
    Shutdown,
    /// The socket failed or a write stalled; nothing more is sent.
    Io(io::Error),
    /// The TLS handshake failed; the channel is unusable.
    TlsFailed,
}

impl End {
    /// Counts the end on the core and has the session write its last reply, if this end has
    /// one; returns whether the connection should still send (the last reply, close_notify).
    pub(crate) fn account(&self, core: &Core, session: &mut Session, out: &mut Output) -> bool {
        let counters = core.counters();
        let (counter, speak) = match self {
            End::Closed => (&counters.sessions_closed, true),
            End::TimedOut(which) => {
                session.timed_out(*which, out);
                (&counters.sessions_timed_out, true)
            }
            End::Shutdown => {
                session.shutting_down(out);
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
