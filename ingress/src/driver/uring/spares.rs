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

    /// The buffers, empty, for a new connection.
    pub(super) fn into_buffers(self) -> Buffers {
        Buffers {
            session: self.session,
            input: self.input,
            wire: self.wire,
            send_buf: self.send_buf,
        }
    }
}

/// A spare's buffers handed to a new connection, by name (three are the same type).
pub(super) struct Buffers {
    pub(super) session: SessionSpare,
    pub(super) input: Vec<u8>,
    pub(super) wire: Vec<u8>,
    pub(super) send_buf: Vec<u8>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SPARE_BYTES_MAX;

    /// A buffer of `capacity` bytes, full of `byte`.
    fn full(capacity: usize, byte: u8) -> Vec<u8> {
        let mut buf = Vec::with_capacity(capacity);
        buf.resize(capacity, byte);
        buf
    }

    // Goal: a core keeps at most SPARES_MAX spares; the ones over it are freed. Method: keep
    // SPARES_MAX + 5 spares whose input buffer has a capacity, then take: SPARES_MAX takes
    // give a kept spare (input allocated), the next one new buffers (nothing allocated).
    #[test]
    fn a_core_keeps_at_most_spares_max() {
        let mut spares = Spares::default();
        for _ in 0..SPARES_MAX + 5 {
            let spare = Spare::new(
                SessionSpare::default(),
                full(64, b'x'),
                Vec::new(),
                Vec::new(),
            );
            spares.keep(spare);
        }
        assert_eq!(spares.kept.len(), SPARES_MAX);
        for _ in 0..SPARES_MAX {
            let spare = spares.take();
            assert!(spare.input.is_empty(), "a spare is empty");
            assert!(
                spare.input.capacity() >= 64,
                "a kept spare keeps its allocation"
            );
        }
        assert_eq!(
            spares.take().input.capacity(),
            0,
            "none kept past SPARES_MAX"
        );
    }

    // Goal: a buffer over SPARE_BYTES_MAX is freed, not kept; the others are kept, emptied.
    // Method: a spare from an input buffer just over the bound, a wire buffer at the bound and
    // a small send buffer, all full of bytes; keep it and take it back.
    #[test]
    fn a_buffer_over_spare_bytes_max_is_freed() {
        let mut spares = Spares::default();
        spares.keep(Spare::new(
            SessionSpare::default(),
            full(SPARE_BYTES_MAX + 1, b'i'),
            full(SPARE_BYTES_MAX, b'w'),
            full(100, b's'),
        ));
        let Buffers {
            input,
            wire,
            send_buf,
            ..
        } = spares.take().into_buffers();
        assert_eq!(input.capacity(), 0, "the oversized input buffer was freed");
        assert!(wire.is_empty() && wire.capacity() == SPARE_BYTES_MAX);
        assert!(send_buf.is_empty() && send_buf.capacity() >= 100);
    }
}
