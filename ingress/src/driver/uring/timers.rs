//! The deadlines of one core's connections: a min-heap with lazy deletion (a connection that
//! moves its deadline pushes a new entry with a new sequence number; stale entries are
//! skipped when they surface), checked once per loop turn. Sequence numbers are unique per
//! core (64 bits, never reused), so a stale entry of a closed connection can never match the
//! connection that reuses its slot.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Deadlines of the connections of one core.
#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u32, u64)>>,
    next_seq: u64,
}

impl Timers {
    /// Arms a deadline at `at` for `slot`; returns its sequence number.
    pub(super) fn arm(&mut self, at: Instant, slot: u32) -> u64 {
        self.next_seq += 1;
        self.heap.push(Reverse((at, slot, self.next_seq)));
        self.next_seq
    }

    /// The earliest armed deadline (possibly stale).
    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes one entry due at `now`, if any.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(u32, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.heap.pop().map(|Reverse((_, slot, seq))| (slot, seq))
            }
            _ => None,
        }
    }
}
