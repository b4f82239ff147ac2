//! The deadlines of one core's connections: one entry per connection with a deadline, in
//! an ordered map keyed by instant and sequence number, checked once per loop turn. A
//! connection that moves its deadline earlier or ends removes its entry, so the map holds at
//! most one entry per live connection; a deadline that moves later keeps its earlier entry,
//! which then fires early and is armed again (the event loop's `sync`). A heap with lazy
//! deletion would keep every moved or orphaned deadline until it came due: millions of
//! entries under connection churn, each pop a walk through them.
//! Sequence numbers are unique per core (64 bits, never reused), so an entry can never be
//! mistaken for one of the connection that reuses its slot.

use std::collections::BTreeMap;
use std::time::Instant;

/// An armed deadline: its instant and sequence number (the key of its entry).
pub(super) type Armed = (Instant, u64);

/// Deadlines of the connections of one core.
#[derive(Default)]
pub(super) struct Timers {
    armed: BTreeMap<Armed, u32>,
    next_seq: u64,
}

impl Timers {
    /// Arms a deadline at `at` for `slot`.
    pub(super) fn arm(&mut self, at: Instant, slot: u32) -> Armed {
        self.next_seq += 1;
        let key = (at, self.next_seq);
        self.armed.insert(key, slot);
        key
    }

    /// The entry of `slot` once its deadline is `deadline`, given the entry `armed` it has.
    /// A deadline that moved later keeps its earlier entry: when that fires, the connection
    /// finds nothing due and is armed again for its real deadline. The idle deadline moves
    /// later with every command line; this saves a map removal and insertion for each. An
    /// earlier deadline replaces the entry, and none removes it.
    pub(super) fn rearm(
        &mut self,
        armed: Option<Armed>,
        deadline: Option<Instant>,
        slot: u32,
    ) -> Option<Armed> {
        match (armed, deadline) {
            (Some(was), Some(at)) if at >= was.0 => Some(was),
            (was, at) => {
                if let Some(was) = was {
                    self.disarm(was);
                }
                at.map(|at| self.arm(at, slot))
            }
        }
    }

    /// Removes a deadline armed earlier (no-op if it fired already).
    pub(super) fn disarm(&mut self, armed: Armed) {
        self.armed.remove(&armed);
    }

    /// The earliest armed deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.armed.first_key_value().map(|((at, _), _)| *at)
    }

    /// Takes one entry due at `now`, if any: its slot and sequence number.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(u32, u64)> {
        match self.armed.first_key_value() {
            Some(((at, _), _)) if *at <= now => {
                self.armed.pop_first().map(|((_, seq), slot)| (slot, seq))
            }
            _ => None,
        }
    }

    /// How many deadlines are armed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.armed.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // Goal: a moved or disarmed deadline leaves no entry behind, and due entries come out in
    // order. Method: arm, move (disarm + arm) and disarm deadlines, then pop at instants.
    #[test]
    fn moved_and_disarmed_deadlines_leave_nothing() {
        let mut timers = Timers::default();
        let t0 = Instant::now();
        let a = timers.arm(t0 + Duration::from_secs(3), 1);
        let b = timers.arm(t0 + Duration::from_secs(1), 2);
        for i in 0..1000 {
            timers.disarm(a);
            let moved = timers.arm(t0 + Duration::from_millis(2000 + i), 1);
            timers.disarm(moved);
        }
        assert_eq!(timers.len(), 1);
        let c = timers.arm(t0 + Duration::from_secs(2), 3);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(5)), Some((2, b.1)));
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(5)), Some((3, c.1)));
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(5)), None);
        assert_eq!(timers.len(), 0);
    }

    // Goal: re-arming keeps the entry of a deadline that moved later (or stayed), replaces
    // it for one that moved earlier, and removes it when there is no deadline. Method: rearm
    // one slot through each case and look at the entries left.
    #[test]
    fn rearm_keeps_later_deadlines_and_replaces_earlier_ones() {
        let mut timers = Timers::default();
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let first = timers.rearm(None, Some(at(10)), 1).expect("armed");
        assert_eq!(timers.rearm(Some(first), Some(at(15)), 1), Some(first));
        assert_eq!(timers.rearm(Some(first), Some(at(10)), 1), Some(first));
        assert_eq!(timers.len(), 1);
        let earlier = timers.rearm(Some(first), Some(at(5)), 1).expect("moved");
        assert_eq!(earlier.0, at(5));
        assert_eq!((timers.len(), timers.next()), (1, Some(at(5))));
        assert_eq!(timers.rearm(Some(earlier), None, 1), None);
        assert_eq!(timers.len(), 0);
    }
}
