//! Per-core counters: one cache-line-aligned block per core, written only by its core.
//!
//! Each core is the single writer of its block, so an increment is a relaxed load and store
//! (no locked read-modify-write, no shared cache line); readers sum the blocks.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::session::SessionCounters;

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// Ingress totals over all cores since start.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct IngressCountersSnapshot {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        /// The counters of one core.
        #[derive(Debug, Default)]
        #[repr(align(128))]
        pub(crate) struct CoreCounters {
            $(pub(crate) $name: AtomicU64,)*
        }

        impl CoreCounters {
            /// Adds this core's values to `total`.
            fn add_to(&self, total: &mut IngressCountersSnapshot) {
                $(total.$name += self.$name.load(Ordering::Relaxed);)*
            }
        }
    };
}

counters! {
    /// Connections admitted to a session.
    connections_accepted,
    /// Connections refused with 421 4.7.0 because the core was full.
    connections_refused_core,
    /// Connections refused with 421 4.7.0 because their IP was at its cap.
    connections_refused_ip,
    /// Sessions that ended by the client (QUIT, close, or a session-side close).
    sessions_closed,
    /// Sessions ended by the idle or duration timer (421 4.4.2).
    sessions_timed_out,
    /// Sessions ended by an I/O or TLS error.
    sessions_aborted,
    /// Sessions ended by shutdown (421 4.3.2).
    sessions_shutdown,
    /// Messages stored and acknowledged with 250.
    messages_accepted,
    /// Messages the store did not take (4xx/5xx after the data).
    messages_store_failed,
    /// Recipients refused as relaying attempts.
    rejected_relay,
    /// Messages refused for size.
    rejected_size,
    /// Syntax errors.
    rejected_syntax,
    /// Input refused for bare CR/LF.
    rejected_smuggling,
    /// Refusals because a count limit was hit.
    rejected_rate,
    /// MAIL refused because SPF failed (enforce).
    rejected_spf,
    /// Messages refused by a DMARC `p=reject` policy (enforce).
    rejected_dmarc,
    /// Enforce-mode verdicts not applied because of a temperror (fail open).
    auth_fail_open,
    /// Recipients deferred by greylisting.
    greylisted,
    /// Bytes read from clients (plaintext after TLS).
    bytes_in,
    /// Reply bytes written to clients (plaintext before TLS).
    bytes_out,
    /// Completed STARTTLS handshakes.
    tls_handshakes_ok,
    /// Failed STARTTLS handshakes.
    tls_handshakes_failed,
}

/// Adds `n` to a counter of the calling core (the only writer of that block).
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl CoreCounters {
    /// Adds what a session counted since `before`.
    pub(crate) fn add_session_delta(&self, before: &SessionCounters, now: &SessionCounters) {
        let pairs = [
            (
                &self.messages_accepted,
                now.messages_accepted,
                before.messages_accepted,
            ),
            (
                &self.rejected_relay,
                now.rejected_relay,
                before.rejected_relay,
            ),
            (&self.rejected_size, now.rejected_size, before.rejected_size),
            (
                &self.rejected_syntax,
                now.rejected_syntax,
                before.rejected_syntax,
            ),
            (
                &self.rejected_smuggling,
                now.rejected_smuggling,
                before.rejected_smuggling,
            ),
            (&self.rejected_rate, now.rejected_rate, before.rejected_rate),
            (&self.rejected_spf, now.rejected_spf, before.rejected_spf),
            (
                &self.rejected_dmarc,
                now.rejected_dmarc,
                before.rejected_dmarc,
            ),
            (
                &self.auth_fail_open,
                now.auth_fail_open,
                before.auth_fail_open,
            ),
            (&self.greylisted, now.greylisted, before.greylisted),
        ];
        for (counter, now, before) in pairs {
            bump(counter, now.saturating_sub(before));
        }
    }
}

/// Sums the blocks of all cores.
pub(crate) fn sum(cores: &[CoreCounters]) -> IngressCountersSnapshot {
    let mut total = IngressCountersSnapshot::default();
    for core in cores {
        core.add_to(&mut total);
    }
    total
}
