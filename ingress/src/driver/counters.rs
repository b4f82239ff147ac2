//! Per-core counters: one cache-line-aligned block per core, written only by its core.
//!
//! Each core is the single writer of its block, so an increment is a relaxed load and store
//! (no locked read-modify-write, no shared cache line); readers sum the blocks. The two
//! histograms are fixed arrays of such counters in the same block.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{MESSAGE_SIZE_BOUNDS_BYTES, SESSION_DURATION_BOUNDS_US};
use crate::session::SessionCounters;

/// Buckets of the session duration histogram (the last is +Inf).
const SESSION_BUCKETS: usize = SESSION_DURATION_BOUNDS_US.len();
/// Buckets of the message size histogram (the last is +Inf).
const SIZE_BUCKETS: usize = MESSAGE_SIZE_BOUNDS_BYTES.len();

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// Ingress totals over all cores since start.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct IngressCountersSnapshot {
            $($(#[doc = $doc])* pub $name: u64,)*
            /// Ended sessions by duration, microseconds, over
            /// [`SESSION_DURATION_BOUNDS_US`](crate::metrics::SESSION_DURATION_BOUNDS_US).
            pub session_duration: HistogramCounts<SESSION_BUCKETS>,
            /// Accepted messages by size, bytes, over
            /// [`MESSAGE_SIZE_BOUNDS_BYTES`](crate::metrics::MESSAGE_SIZE_BOUNDS_BYTES).
            pub message_size: HistogramCounts<SIZE_BUCKETS>,
        }

        /// The counters of one core.
        #[derive(Debug, Default)]
        #[repr(align(128))]
        pub(crate) struct CoreCounters {
            $(pub(crate) $name: AtomicU64,)*
            /// Ended sessions by duration (microseconds).
            pub(crate) session_duration: CoreHistogram<SESSION_BUCKETS>,
            /// Accepted messages by size (bytes).
            pub(crate) message_size: CoreHistogram<SIZE_BUCKETS>,
        }

        impl CoreCounters {
            /// Adds this core's values to `total`.
            fn add_to(&self, total: &mut IngressCountersSnapshot) {
                $(total.$name += self.$name.load(Ordering::Relaxed);)*
                self.session_duration.add_to(&mut total.session_duration);
                self.message_size.add_to(&mut total.message_size);
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

/// A histogram summed over cores: per-bucket counts (not cumulative) and the sum of the
/// observations, both in the metric's base unit (the bounds live in [`crate::metrics`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistogramCounts<const N: usize> {
    /// Observations per bucket; the last bucket is +Inf.
    pub counts: [u64; N],
    /// Sum of all observations.
    pub sum: u64,
}

impl<const N: usize> Default for HistogramCounts<N> {
    fn default() -> Self {
        Self {
            counts: [0; N],
            sum: 0,
        }
    }
}

impl<const N: usize> HistogramCounts<N> {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// One core's histogram over fixed `bounds` (the last `u64::MAX`): written like the other
/// counters, by its core only, so an observation is a bucket search and two plain stores.
#[derive(Debug)]
pub(crate) struct CoreHistogram<const N: usize> {
    counts: [AtomicU64; N],
    sum: AtomicU64,
}

impl<const N: usize> Default for CoreHistogram<N> {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> CoreHistogram<N> {
    /// Counts `value` in the first bucket whose bound is at least `value`.
    pub(crate) fn observe(&self, bounds: &[u64; N], value: u64) {
        let bucket = bounds.iter().position(|&b| value <= b).unwrap_or(N - 1);
        bump(&self.counts[bucket], 1);
        bump(&self.sum, value);
    }

    fn add_to(&self, total: &mut HistogramCounts<N>) {
        for (slot, count) in total.counts.iter_mut().zip(&self.counts) {
            *slot += count.load(Ordering::Relaxed);
        }
        total.sum += self.sum.load(Ordering::Relaxed);
    }
}

impl CoreCounters {
    /// Counts an ended session that lasted `micros`.
    pub(crate) fn session_ended(&self, micros: u64) {
        self.session_duration
            .observe(&SESSION_DURATION_BOUNDS_US, micros);
    }

    /// Counts an accepted message of `bytes`.
    pub(crate) fn message_stored(&self, bytes: u64) {
        self.message_size.observe(&MESSAGE_SIZE_BOUNDS_BYTES, bytes);
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: observations land in the first bucket whose bound holds them (bounds inclusive,
    // above every bound in +Inf), the sum adds up, and cores are summed. Method: two core
    // blocks, chosen values, read the summed snapshot.
    #[test]
    fn histograms_bucket_and_sum_across_cores() {
        let cores = [CoreCounters::default(), CoreCounters::default()];
        cores[0].session_ended(1_000);
        cores[0].session_ended(1_001);
        cores[1].session_ended(3_600_000_000);
        cores[1].message_stored(1024);
        cores[1].message_stored(1 << 27);
        let s = sum(&cores);
        let d = s.session_duration;
        assert_eq!(
            (d.counts[0], d.counts[1], d.counts[SESSION_BUCKETS - 1]),
            (1, 1, 1)
        );
        assert_eq!(d.count(), 3);
        assert_eq!(d.sum, 2_001 + 3_600_000_000);
        let m = s.message_size;
        assert_eq!(
            (m.counts[0], m.counts[SIZE_BUCKETS - 1], m.count()),
            (1, 1, 2)
        );
        assert_eq!(m.sum, 1024 + (1 << 27));
    }
}
