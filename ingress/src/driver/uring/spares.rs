//! The buffers of ended connections, kept by the core for new ones: a connection that starts
//! on a spare allocates nothing for its session, input and output. The cache is bounded twice:
//! a core keeps at most [`SPARES_MAX`] spares, and no buffer over
//! [`SPARE_BYTES_MAX`](crate::session::SPARE_BYTES_MAX) (one that grew for a large message is
//! freed, not kept).

use crate::session::{SessionSpare, spare};

/// Most ended connections' buffers a core keeps for new connections.
const SPARES_MAX: usize = 64;

/// The emptied buffers of one ended connection. Its fields are private and [`Spare::new`]
/// empties them, so a spare never carries a byte of the connection it came from.
#[derive(Debug, Default)]
pub(super) struct Spare {
    session: SessionSpare,
    input: Vec<u8>,
    wire: Vec<u8>,
    send_buf: Vec<u8>,
}

impl Spare {
    /// The buffers of an ended connection: the session's (emptied by
    /// [`Session::into_spare`](crate::session::Session::into_spare)) and the connection's own
    /// pending input, staged output and send buffer, emptied here by [`spare`].
    pub(super) fn new(
        session: SessionSpare,
        input: Vec<u8>,
        wire: Vec<u8>,
        send_buf: Vec<u8>,
    ) -> Self {
        Self {
            session,
            input: spare(input),
            wire: spare(wire),
            send_buf: spare(send_buf),
        }
    }

    /// The buffers, empty, for a new connection: the session's, then input, wire and send
    /// buffer.
    pub(super) fn into_buffers(self) -> (SessionSpare, Vec<u8>, Vec<u8>, Vec<u8>) {
        (self.session, self.input, self.wire, self.send_buf)
    }
}

/// The spares of one core.
#[derive(Default)]
pub(super) struct Spares {
    kept: Vec<Spare>,
}

impl Spares {
    /// A kept spare, or new (unallocated) buffers when there is none.
    pub(super) fn take(&mut self) -> Spare {
        self.kept.pop().unwrap_or_default()
    }

    /// Keeps `spare` for a later connection; frees it when the core keeps [`SPARES_MAX`]
    /// already.
    pub(super) fn keep(&mut self, spare: Spare) {
        if self.kept.len() < SPARES_MAX {
            self.kept.push(spare);
        }
    }
}
