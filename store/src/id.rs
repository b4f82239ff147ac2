//! Message id layout: `ms since epoch (44 bits) | shard (8 bits) | sequence (12 bits)`.
//!
//! Ids sort by time across shards, are unique without coordination, and name their shard,
//! so `get(id)` goes straight to one shard.

use crate::sink::MessageId;

/// Shards the id layout can name.
pub const SHARDS_MAX: usize = 256;
const SEQ_BITS: u32 = 12;
const SHARD_BITS: u32 = 8;
const SEQ_MAX: u64 = (1 << SEQ_BITS) - 1;

/// The shard an id was written by.
pub fn shard_of(id: MessageId) -> usize {
    ((id.0 >> SEQ_BITS) & ((1 << SHARD_BITS) - 1)) as usize
}

/// Hands out strictly increasing ids for one shard.
#[derive(Debug)]
pub struct IdGen {
    shard: u64,
    last: u64,
}

impl IdGen {
    /// A generator for `shard` that continues after `last` (0 for a new store).
    pub fn new(shard: usize, last: u64) -> Self {
        Self {
            shard: shard as u64,
            last,
        }
    }

    /// The last id handed out (or the one it continues after).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The next id at time `now_ms`; stays increasing if the clock steps back or
    /// more than 4096 ids are taken in one millisecond (it borrows from the next ms).
    pub fn next(&mut self, now_ms: u64) -> MessageId {
        let base = (now_ms << (SEQ_BITS + SHARD_BITS)) | (self.shard << SEQ_BITS);
        let id = if base > self.last {
            base
        } else if self.last & SEQ_MAX < SEQ_MAX {
            self.last + 1
        } else {
            ((self.last >> (SEQ_BITS + SHARD_BITS)) + 1) << (SEQ_BITS + SHARD_BITS)
                | (self.shard << SEQ_BITS)
        };
        self.last = id;
        MessageId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_name_their_shard() {
        // Goal: ids stay unique and ordered when the clock stalls or steps back.
        let mut g = IdGen::new(3, 0);
        let mut prev = MessageId(0);
        for i in 0..10_000u64 {
            let id = g.next(1_000 - (i % 3));
            assert!(id > prev);
            assert_eq!(shard_of(id), 3);
            prev = id;
        }
    }
}
