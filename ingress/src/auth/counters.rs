//! Per-core counters of authentication results and resolver health, summed by the caller for
//! `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::values::{AuthMethod, AuthValue};

/// Result counters of one ingress core (atomics, so the metrics thread can read them).
#[derive(Debug, Default)]
pub struct AuthCounters {
    results: [[AtomicU64; AuthValue::ALL.len()]; AuthMethod::ALL.len()],
    timeouts: AtomicU64,
    resolver_down: AtomicU64,
    resolver_up: AtomicU64,
    probes_answered: AtomicU64,
    probes_unanswered: AtomicU64,
    down_temperrors: AtomicU64,
    down_now: AtomicU64,
}

/// A plain copy of [`AuthCounters`] at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthCountersSnapshot {
    /// `[AuthMethod as usize][AuthValue as usize]`: one count per method per checked message
    /// (DKIM: per signature, or one `none` for an unsigned message).
    pub results: [[u64; 7]; 4],
    /// Checks cut by the message's `check_duration_max_ms` deadline.
    pub timeouts: u64,
    /// Times a resolver was marked down (`resolver_unanswered_max` unanswered checks in a row).
    pub resolver_down: u64,
    /// Times a probe found a down resolver answering again.
    pub resolver_up: u64,
    /// Probe queries answered.
    pub probes_answered: u64,
    /// Probe queries left unanswered (the resolver stays down).
    pub probes_unanswered: u64,
    /// Checks answered temperror at once, without a query, because the resolver was down.
    pub down_temperrors: u64,
    /// Cores whose resolver is down now (a gauge).
    pub resolvers_down: u64,
}

impl AuthCounters {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one result of `method`.
    pub fn count(&self, method: AuthMethod, value: AuthValue) {
        self.results[method as usize][value as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one check cut by its deadline.
    pub fn count_timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the resolver going down (`true`) or coming back (`false`).
    pub(crate) fn count_resolver_down(&self, down: bool) {
        if down {
            self.resolver_down.fetch_add(1, Ordering::Relaxed);
        } else {
            self.resolver_up.fetch_add(1, Ordering::Relaxed);
        }
        self.down_now.store(u64::from(down), Ordering::Relaxed);
    }

    /// Counts one probe query by whether it was answered.
    pub(crate) fn count_probe(&self, answered: bool) {
        let counter = if answered {
            &self.probes_answered
        } else {
            &self.probes_unanswered
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one check answered temperror from the down state.
    pub(crate) fn count_down_temperror(&self) {
        self.down_temperrors.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> AuthCountersSnapshot {
        let mut snap = AuthCountersSnapshot::default();
        for (row, counters) in snap.results.iter_mut().zip(&self.results) {
            for (slot, counter) in row.iter_mut().zip(counters) {
                *slot = counter.load(Ordering::Relaxed);
            }
        }
        snap.timeouts = self.timeouts.load(Ordering::Relaxed);
        snap.resolver_down = self.resolver_down.load(Ordering::Relaxed);
        snap.resolver_up = self.resolver_up.load(Ordering::Relaxed);
        snap.probes_answered = self.probes_answered.load(Ordering::Relaxed);
        snap.probes_unanswered = self.probes_unanswered.load(Ordering::Relaxed);
        snap.down_temperrors = self.down_temperrors.load(Ordering::Relaxed);
        snap.resolvers_down = self.down_now.load(Ordering::Relaxed);
        snap
    }
}

impl AuthCountersSnapshot {
    /// Adds `other` into `self` (summing cores).
    pub fn add(&mut self, other: &Self) {
        for (row, other_row) in self.results.iter_mut().zip(&other.results) {
            for (slot, value) in row.iter_mut().zip(other_row) {
                *slot += value;
            }
        }
        self.timeouts += other.timeouts;
        self.resolver_down += other.resolver_down;
        self.resolver_up += other.resolver_up;
        self.probes_answered += other.probes_answered;
        self.probes_unanswered += other.probes_unanswered;
        self.down_temperrors += other.down_temperrors;
        self.resolvers_down += other.resolvers_down;
    }

    /// The count of `value` results of `method`.
    pub fn get(&self, method: AuthMethod, value: AuthValue) -> u64 {
        self.results[method as usize][value as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_add_sum_per_method_and_value() {
        let counters = AuthCounters::new();
        counters.count(AuthMethod::Dkim, AuthValue::Pass);
        counters.count(AuthMethod::Dkim, AuthValue::Pass);
        counters.count(AuthMethod::Arc, AuthValue::PermError);
        counters.count_timeout();
        let mut sum = counters.snapshot();
        assert_eq!(sum.get(AuthMethod::Dkim, AuthValue::Pass), 2);
        assert_eq!(sum.results[3][6], 1);
        sum.add(&counters.snapshot());
        assert_eq!(sum.get(AuthMethod::Dkim, AuthValue::Pass), 4);
        assert_eq!(sum.timeouts, 2);
        assert_eq!(sum.get(AuthMethod::Spf, AuthValue::Pass), 0);
    }

    #[test]
    fn resolver_health_counters_sum_and_the_gauge_follows_the_state() {
        let counters = AuthCounters::new();
        counters.count_resolver_down(true);
        counters.count_probe(false);
        counters.count_down_temperror();
        counters.count_down_temperror();
        let down = counters.snapshot();
        assert_eq!((down.resolver_down, down.resolvers_down), (1, 1));
        assert_eq!((down.probes_unanswered, down.down_temperrors), (1, 2));
        counters.count_probe(true);
        counters.count_resolver_down(false);
        let mut sum = counters.snapshot();
        assert_eq!((sum.resolver_up, sum.resolvers_down), (1, 0));
        sum.add(&down);
        assert_eq!(sum.resolver_down, 2);
        assert_eq!(
            sum.resolvers_down, 1,
            "one of the two summed cores was down"
        );
        assert_eq!(sum.probes_answered + sum.probes_unanswered, 3);
    }
}
