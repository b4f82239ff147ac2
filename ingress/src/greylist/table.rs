//! The striped LRU tables and the per-triplet and per-client state machines.
//!
//! Both tables are split into stripes, each a `parking_lot::Mutex` around an LRU map holding
//! its share of the bound. The stripe is chosen by the high 64 bits of the keyed fingerprint
//! and the map hashes the low 64 bits, so the two choices are independent and uniform.

use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;
use parking_lot::{Mutex, MutexGuard};

/// Hashes an already uniform fingerprint by taking its low 64 bits.
#[derive(Debug, Default)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than u128; fold the bytes in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// One stripe's LRU map.
pub type StripeMap<V> = LruCache<u128, V, BuildHasherDefault<FingerprintHasher>>;

/// A table of `u128` fingerprints split into independently locked LRU stripes.
#[derive(Debug)]
pub struct Striped<V> {
    stripes: Box<[Mutex<StripeMap<V>>]>,
    lock_wait: Duration,
}

impl<V> Striped<V> {
    /// A table holding at most `total` entries over `stripes` stripes (both validated >= 1,
    /// `total >= stripes`). Maps start empty and grow up to their share, so an idle table
    /// costs almost nothing.
    pub fn new(total: usize, stripes: usize, lock_wait: Duration) -> Self {
        let stripes = stripes.max(1);
        let (base, extra) = (total / stripes, total % stripes);
        let stripes = (0..stripes)
            .map(|i| {
                // The first `extra` stripes take one more, so the shares add up to `total`.
                let share = base + usize::from(i < extra);
                // `total >= stripes` is validated, so a share is never 0; MIN only guards.
                let cap = NonZeroUsize::new(share).unwrap_or(NonZeroUsize::MIN);
                let mut map = LruCache::unbounded_with_hasher(BuildHasherDefault::default());
                map.resize(cap);
                Mutex::new(map)
            })
            .collect();
        Self { stripes, lock_wait }
    }

    /// Locks the stripe holding `key`, or `None` when the lock is not obtained in time.
    pub fn lock(&self, key: u128) -> Option<MutexGuard<'_, StripeMap<V>>> {
        self.stripe(key).try_lock_for(self.lock_wait)
    }

    fn stripe(&self, key: u128) -> &Mutex<StripeMap<V>> {
        let n = self.stripes.len() as u64;
        let index = ((key >> 64) as u64 % n) as usize;
        // In bounds: the index is taken modulo the length, which `new` makes at least 1.
        &self.stripes[index]
    }

    /// Number of stripes.
    #[cfg(test)]
    pub(crate) fn stripe_count(&self) -> usize {
        self.stripes.len()
    }

    /// Entries held over all stripes (takes every lock).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.stripes.iter().map(|s| s.lock().len()).sum()
    }

    /// Sum of the stripes' capacities.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.stripes.iter().map(|s| s.lock().cap().get()).sum()
    }

    #[cfg(test)]
    pub(crate) fn stripe_for_test(&self, key: u128) -> &Mutex<StripeMap<V>> {
        self.stripe(key)
    }
}

/// Inserts `value` for a key known to be absent; true when an older entry was evicted.
pub fn insert_new<V>(map: &mut StripeMap<V>, key: u128, value: V) -> bool {
    map.push(key, value).is_some()
}

/// The timing settings of the state machine, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Minimum delay before a retry passes.
    pub delay_ms: u64,
    /// A retry later than this starts over.
    pub window_ms: u64,
    /// A passed triplet or allowlisted client is remembered this long after last use.
    pub lifetime_ms: u64,
}

/// What the table remembers about one triplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triplet {
    /// Deferred at least once, first seen at this time (ms since the Unix epoch).
    Waiting {
        /// First attempt of the current round.
        first_seen_ms: u64,
    },
    /// Passed; last used at this time.
    Passed {
        /// Last attempt that passed.
        last_use_ms: u64,
    },
}

/// The result of one step of the triplet state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answer 451 and ask for a retry in this many seconds (>= 1).
    Defer {
        /// Seconds until a retry can pass.
        retry_in_secs: u64,
    },
    /// The first retry after the delay: pass, having waited this long.
    Retried {
        /// Time between the first attempt and this retry.
        delay: Duration,
    },
    /// Passed before and still remembered.
    Known,
}

/// One step: the triplet's state (None if unknown) and the time → new state and outcome.
/// A clock that went backwards gives an elapsed time of 0, never a panic.
pub fn step(state: Option<Triplet>, now_ms: u64, t: Timing) -> (Triplet, Outcome) {
    let start_over = (
        Triplet::Waiting {
            first_seen_ms: now_ms,
        },
        Outcome::Defer {
            retry_in_secs: ceil_secs(t.delay_ms),
        },
    );
    match state {
        None => start_over,
        Some(Triplet::Waiting { first_seen_ms }) => {
            let elapsed = now_ms.saturating_sub(first_seen_ms);
            if elapsed < t.delay_ms {
                let retry_in_secs = ceil_secs(t.delay_ms - elapsed);
                (
                    Triplet::Waiting { first_seen_ms },
                    Outcome::Defer { retry_in_secs },
                )
            } else if elapsed > t.window_ms {
                start_over
            } else {
                let passed = Triplet::Passed {
                    last_use_ms: now_ms,
                };
                let delay = Duration::from_millis(elapsed);
                (passed, Outcome::Retried { delay })
            }
        }
        Some(Triplet::Passed { last_use_ms }) => {
            if now_ms.saturating_sub(last_use_ms) <= t.lifetime_ms {
                // max: a clock step backwards must not shorten the memory.
                let last_use_ms = last_use_ms.max(now_ms);
                (Triplet::Passed { last_use_ms }, Outcome::Known)
            } else {
                start_over
            }
        }
    }
}

/// Whole seconds, rounded up, at least 1 (a retry hint of 0 would invite a hot loop).
fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

/// What the auto-allowlist remembers about one client network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// Triplets from this network that passed after a retry, within the lifetime.
    pub passes: u32,
    /// Last pass or allowlisted use (ms since the Unix epoch).
    pub last_use_ms: u64,
}

impl Client {
    /// A first counted pass.
    pub fn first(now_ms: u64) -> Self {
        Self {
            passes: 1,
            last_use_ms: now_ms,
        }
    }

    fn fresh(&self, now_ms: u64, t: Timing) -> bool {
        now_ms.saturating_sub(self.last_use_ms) <= t.lifetime_ms
    }

    /// Whether the network skips greylisting; refreshes its last use when it does.
    pub fn allow(&mut self, now_ms: u64, needed: u32, t: Timing) -> bool {
        let allowed = self.passes >= needed && self.fresh(now_ms, t);
        if allowed {
            self.last_use_ms = self.last_use_ms.max(now_ms);
        }
        allowed
    }

    /// Counts one more passed triplet; a stale count starts again at 1.
    pub fn count_pass(&mut self, now_ms: u64, t: Timing) {
        if self.fresh(now_ms, t) {
            self.passes = self.passes.saturating_add(1);
            self.last_use_ms = self.last_use_ms.max(now_ms);
        } else {
            *self = Self::first(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        delay_ms: 60_000,
        window_ms: 14_400_000,
        lifetime_ms: 3_110_400_000,
    };

    #[test]
    fn step_covers_every_transition() {
        let t0 = 1_000_000;
        let waiting = Triplet::Waiting { first_seen_ms: t0 };
        assert_eq!(
            step(None, t0, T),
            (waiting, Outcome::Defer { retry_in_secs: 60 })
        );
        // Before the delay: the remaining time, rounded up.
        assert_eq!(
            step(Some(waiting), t0 + 59_001, T),
            (waiting, Outcome::Defer { retry_in_secs: 1 })
        );
        assert_eq!(
            step(Some(waiting), t0 + 30_500, T).1,
            Outcome::Defer { retry_in_secs: 30 }
        );
        // Exactly at the delay and exactly at the window end: pass.
        for at in [60_000, 14_400_000] {
            let passed = Triplet::Passed {
                last_use_ms: t0 + at,
            };
            let delay = Duration::from_millis(at);
            assert_eq!(
                step(Some(waiting), t0 + at, T),
                (passed, Outcome::Retried { delay })
            );
        }
        // After the window: start over.
        let late = t0 + 14_400_001;
        assert_eq!(
            step(Some(waiting), late, T),
            (
                Triplet::Waiting {
                    first_seen_ms: late
                },
                Outcome::Defer { retry_in_secs: 60 }
            )
        );
        // Passed: known within the lifetime (refreshed), start over after it.
        let passed = Triplet::Passed { last_use_ms: t0 };
        let at_end = t0 + T.lifetime_ms;
        assert_eq!(
            step(Some(passed), at_end, T),
            (
                Triplet::Passed {
                    last_use_ms: at_end
                },
                Outcome::Known
            )
        );
        assert_eq!(
            step(Some(passed), at_end + 1, T),
            (
                Triplet::Waiting {
                    first_seen_ms: at_end + 1
                },
                Outcome::Defer { retry_in_secs: 60 }
            )
        );
    }

    #[test]
    fn clock_going_backwards_saturates() {
        let t0 = 1_000_000;
        let waiting = Triplet::Waiting { first_seen_ms: t0 };
        assert_eq!(
            step(Some(waiting), 0, T),
            (waiting, Outcome::Defer { retry_in_secs: 60 })
        );
        let passed = Triplet::Passed { last_use_ms: t0 };
        assert_eq!(step(Some(passed), 0, T), (passed, Outcome::Known));
    }

    #[test]
    fn client_allow_needs_count_and_freshness() {
        let mut c = Client::first(0);
        assert!(!c.allow(1, 2, T));
        c.count_pass(2, T);
        assert!(c.allow(3, 2, T));
        assert_eq!(c.last_use_ms, 3);
        assert!(!c.allow(3 + T.lifetime_ms + 1, 2, T));
        c.count_pass(3 + T.lifetime_ms + 1, T);
        assert_eq!(c.passes, 1, "a stale count starts over");
    }

    #[test]
    fn shares_add_up_to_the_bound() {
        let s: Striped<()> = Striped::new(10, 3, Duration::ZERO);
        assert_eq!(s.capacity(), 10);
        assert_eq!(s.stripe_count(), 3);
        assert_eq!(s.len(), 0);
    }
}
