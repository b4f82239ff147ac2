//! Per-core counters of authentication results, summed by the caller for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::values::{AuthMethod, AuthValue};

/// Result counters of one ingress core (atomics, so the metrics thread can read them).
#[derive(Debug, Default)]
pub struct AuthCounters {
    results: [[AtomicU64; AuthValue::ALL.len()]; AuthMethod::ALL.len()],
    timeouts: AtomicU64,
}

/// A plain copy of [`AuthCounters`] at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthCountersSnapshot {
    /// `[AuthMethod as usize][AuthValue as usize]`: one count per method per checked message
    /// (DKIM: per signature, or one `none` for an unsigned message).
    pub results: [[u64; 7]; 4],
    /// Checks cut by `check_timeout_ms`.
    pub timeouts: u64,
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

    /// Counts one check cut by its timeout.
    pub fn count_timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
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
}
