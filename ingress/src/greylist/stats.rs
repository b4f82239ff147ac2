//! Greylisting counters (atomics, Relaxed: they are statistics, not synchronisation) and the
//! histogram of the delay greylisted-then-accepted triplets suffered.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::GreyVerdict;

/// Upper bounds (seconds) of the delay buckets: short test delays up to the 4 h window.
pub const DELAY_BOUNDS_SECS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// A snapshot of the greylisting counters, for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct GreylistStats {
    /// Defer verdicts.
    pub deferred: u64,
    /// Pass verdicts by reason (index = `PassReason as usize`).
    pub passed: [u64; 6],
    /// Checks the shared state could not answer (each one answered 451 4.3.0).
    pub unavailable: u64,
    /// Triplets dropped by the LRU bound.
    pub evicted: u64,
    /// Triplets held now.
    pub entries: u64,
    /// Client networks dropped by the LRU bound.
    pub clients_evicted: u64,
    /// Client networks held now.
    pub clients: u64,
    /// Stripe locks not obtained in time (each one failed open).
    pub lock_timeouts: u64,
    /// Delay suffered by each greylisted-then-accepted triplet (Retried passes).
    pub delay: DelayHistogram,
}

/// A Prometheus-style histogram snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayHistogram {
    /// Bucket upper bounds, seconds, ascending.
    pub bounds_secs: &'static [f64],
    /// Observations per bucket, not cumulative; `len = bounds_secs.len() + 1`, the last is +Inf.
    pub counts: Vec<u64>,
    /// Sum of all observations, seconds.
    pub sum_secs: f64,
    /// Number of observations.
    pub count: u64,
}

/// The live counters behind [`GreylistStats`].
#[derive(Debug)]
pub struct Counters {
    deferred: AtomicU64,
    passed: [AtomicU64; 6],
    unavailable: AtomicU64,
    evicted: AtomicU64,
    entries: AtomicU64,
    clients_evicted: AtomicU64,
    clients: AtomicU64,
    lock_timeouts: AtomicU64,
    delay_counts: Vec<AtomicU64>,
    delay_sum_ms: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            deferred: AtomicU64::new(0),
            passed: Default::default(),
            unavailable: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            clients_evicted: AtomicU64::new(0),
            clients: AtomicU64::new(0),
            lock_timeouts: AtomicU64::new(0),
            delay_counts: (0..=DELAY_BOUNDS_SECS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            delay_sum_ms: AtomicU64::new(0),
        }
    }
}

impl Counters {
    /// Counts a verdict.
    pub fn count(&self, verdict: GreyVerdict) {
        let counter = match verdict {
            GreyVerdict::Pass(reason) => &self.passed[reason as usize],
            GreyVerdict::Defer { .. } => &self.deferred,
            GreyVerdict::Unavailable => &self.unavailable,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Counts a lock not obtained in time.
    pub fn lock_timeout(&self) {
        self.lock_timeouts.fetch_add(1, Relaxed);
    }

    /// Tracks a triplet added (and maybe one evicted to make room).
    pub fn triplet_added(&self, evicted: bool) {
        track_added(&self.entries, &self.evicted, evicted);
    }

    /// Tracks a client network added (and maybe one evicted to make room).
    pub fn client_added(&self, evicted: bool) {
        track_added(&self.clients, &self.clients_evicted, evicted);
    }

    /// Records the delay a greylisted-then-accepted triplet suffered.
    pub fn delay(&self, delay: Duration) {
        let secs = delay.as_secs_f64();
        let bucket = DELAY_BOUNDS_SECS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(DELAY_BOUNDS_SECS.len());
        if let Some(slot) = self.delay_counts.get(bucket) {
            slot.fetch_add(1, Relaxed);
        }
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_sum_ms.fetch_add(ms, Relaxed);
    }

    /// A consistent-enough snapshot (each counter read once, Relaxed).
    pub fn snapshot(&self) -> GreylistStats {
        let counts: Vec<u64> = self.delay_counts.iter().map(|c| c.load(Relaxed)).collect();
        GreylistStats {
            deferred: self.deferred.load(Relaxed),
            passed: std::array::from_fn(|i| self.passed[i].load(Relaxed)),
            unavailable: self.unavailable.load(Relaxed),
            evicted: self.evicted.load(Relaxed),
            entries: self.entries.load(Relaxed),
            clients_evicted: self.clients_evicted.load(Relaxed),
            clients: self.clients.load(Relaxed),
            lock_timeouts: self.lock_timeouts.load(Relaxed),
            delay: DelayHistogram {
                bounds_secs: DELAY_BOUNDS_SECS,
                count: counts.iter().sum(),
                counts,
                sum_secs: self.delay_sum_ms.load(Relaxed) as f64 / 1000.0,
            },
        }
    }
}

/// A new entry raises the gauge unless it replaced an evicted one.
fn track_added(held: &AtomicU64, evicted_total: &AtomicU64, evicted: bool) {
    if evicted {
        evicted_total.fetch_add(1, Relaxed);
    } else {
        held.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_land_in_their_buckets_and_sum() {
        let c = Counters::default();
        // 1 s is in the first bucket (upper bound inclusive), 60.5 s in the 120 s one,
        // 5 h above every bound in +Inf.
        c.delay(Duration::from_secs(1));
        c.delay(Duration::from_millis(60_500));
        c.delay(Duration::from_secs(5 * 3600));
        let h = c.snapshot().delay;
        assert_eq!(h.counts.len(), DELAY_BOUNDS_SECS.len() + 1);
        assert_eq!(h.counts[0], 1);
        let b120 = DELAY_BOUNDS_SECS
            .iter()
            .position(|&b| b == 120.0)
            .expect("bound");
        assert_eq!(h.counts[b120], 1);
        assert_eq!(h.counts[DELAY_BOUNDS_SECS.len()], 1);
        assert_eq!(h.counts.iter().sum::<u64>(), 3);
        assert_eq!(h.count, 3);
        assert!((h.sum_secs - (1.0 + 60.5 + 18_000.0)).abs() < 1e-9);
    }

    #[test]
    fn bounds_ascend() {
        assert!(DELAY_BOUNDS_SECS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn gauges_follow_adds_and_evictions() {
        let c = Counters::default();
        c.triplet_added(false);
        c.triplet_added(false);
        c.triplet_added(true);
        c.client_added(false);
        c.client_added(true);
        let s = c.snapshot();
        assert_eq!((s.entries, s.evicted), (2, 1));
        assert_eq!((s.clients, s.clients_evicted), (1, 1));
    }
}
