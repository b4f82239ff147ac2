//! The deadlines of one core's connections: a min-heap with lazy deletion (a connection that
//! moves its deadline pushes a new entry with a new sequence number; stale entries are
//! skipped when they surface), checked once per loop turn.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Deadlines of the connections of one core.
#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
}

impl Timers {
    /// Arms `(slot, seq)` for `at`.
    pub(super) fn arm(&mut self, at: Instant, slot: u32, seq: u32) {
        self.heap.push(Reverse((at, slot, seq)));
    }

    /// The earliest armed deadline (possibly stale).
    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes one entry due at `now`, if any.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(u32, u32)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.heap.pop().map(|Reverse((_, slot, seq))| (slot, seq))
            }
            _ => None,
        }
    }
}
