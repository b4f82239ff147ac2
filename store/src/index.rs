//! Per-shard index: entries in append order plus mailbox heads of newest-first lists.
//!
//! One [`Entry`] (24 bytes) exists per (record, mailbox) pair, in a preallocated ring in
//! append order, addressed by a sequence number. Entries of one mailbox form a singly
//! linked list, newest first, through a backward delta. The mailbox map holds one packed
//! `u64` per mailbox (newest sequence, count) keyed by a keyed 64-bit hash of the address,
//! so the index stores no strings; readers confirm the address in the record itself.
//!
//! The per-mailbox cap is enforced lazily: a list may grow to twice the cap, then one walk
//! cuts it back to the cap, so the walk costs two steps per append amortised. Readers never
//! look past the cap.

use std::collections::hash_map::Entry as Entry_;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

const LINKED: u32 = 1 << 31;
const PARTS: u32 = 1 << 29;
/// Largest backward link; the entry ring is never larger than this.
pub const DELTA_MAX: u32 = (1 << 29) - 1;
const SEQ_BITS: u32 = 48;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// Bytes of one entry.
pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
/// Bytes of one mailbox-map slot (key, packed head).
pub const HEAD_BYTES: usize = 16;

/// One (record, mailbox) reference: 20 bytes, 4-aligned (the id is split so no field
/// forces 8-byte alignment and padding).
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    id_hi: u32,
    id_lo: u32,
    /// Mailbox key (see [`Index`]).
    mbox: u32,
    /// Frame offset in the arena, in 16-byte units.
    pub loc: u32,
    link: u32,
}

impl Entry {
    /// Message id.
    pub fn id(&self) -> u64 {
        (u64::from(self.id_hi) << 32) | u64::from(self.id_lo)
    }

    /// Whether the entry belongs to the mailbox with hash `mbox` (up to key collisions).
    pub fn is_for(&self, mbox: u64) -> bool {
        self.mbox == key(mbox)
    }

    /// Whether the entry is in its mailbox list (visible to readers).
    pub fn linked(&self) -> bool {
        self.link & LINKED != 0
    }

    /// Whether the record references shared parts.
    pub fn has_parts(&self) -> bool {
        self.link & PARTS != 0
    }

    fn delta(&self) -> u32 {
        self.link & DELTA_MAX
    }
}

/// Hasher for keys that are already hashes: one multiply spreads them over all 64 bits
/// (hashbrown takes the bucket from the low bits and the tag from the top 7).
#[derive(Default)]
pub struct PassThrough(u64);

const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(SPREAD);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(SPREAD);
    }
}

type Heads = HashMap<u32, u64, BuildHasherDefault<PassThrough>>;

/// The index key of a mailbox hash.
fn key(mbox: u64) -> u32 {
    mbox as u32
}

/// Bytes hashbrown allocates for a table created with capacity `n` of `slot`-byte items.
pub fn map_bytes(n: usize, slot: usize) -> usize {
    let buckets = if n < 4 {
        4
    } else if n < 8 {
        8
    } else {
        (n * 8 / 7).next_power_of_two()
    };
    buckets * slot + buckets + 16
}

/// The index of one shard.
pub struct Index {
    entries: VecDeque<Entry>,
    cap: usize,
    front_seq: u64,
    heads: Heads,
    mailbox_max: usize,
}

impl Index {
    /// An index with room for `cap` entries, lists capped at `mailbox_max`.
    pub fn new(cap: usize, mailbox_max: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(cap),
            cap,
            front_seq: 0,
            // Twice the entries: hashbrown then always rehashes in place to clear
            // tombstones instead of growing, so the map never reallocates.
            heads: Heads::with_capacity_and_hasher(2 * cap, BuildHasherDefault::default()),
            mailbox_max,
        }
    }

    /// Free entry slots.
    pub fn room(&self) -> usize {
        self.cap - self.entries.len()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Mailboxes with at least one visible entry.
    pub fn mailboxes(&self) -> usize {
        self.heads.len()
    }

    /// Bytes allocated by the index.
    pub fn allocated_bytes(&self) -> usize {
        self.entries.capacity() * ENTRY_BYTES + map_bytes(self.heads.capacity(), HEAD_BYTES)
    }

    /// The oldest entry, if any.
    pub fn front(&self) -> Option<&Entry> {
        self.entries.front()
    }

    /// Entry by sequence number.
    pub fn get(&self, seq: u64) -> Option<&Entry> {
        self.entries
            .get(usize::try_from(seq.checked_sub(self.front_seq)?).ok()?)
    }

    /// Appends an entry and links it first in its mailbox list; returns entries cut by the cap.
    /// The caller ensures `room() > 0`.
    pub fn push(&mut self, id: u64, mbox: u64, loc: u32, has_parts: bool) -> usize {
        let mbox = key(mbox);
        let seq = self.front_seq + self.entries.len() as u64;
        // One probe of the head map: it is the write path's likeliest cache miss.
        let (delta, count) = match self.heads.entry(mbox) {
            Entry_::Occupied(mut o) => {
                let h = *o.get();
                let d = seq - (h & SEQ_MASK);
                let count = (h >> SEQ_BITS) + 1;
                o.insert((seq & SEQ_MASK) | (count << SEQ_BITS));
                (
                    if d <= u64::from(DELTA_MAX) {
                        d as u32
                    } else {
                        0
                    },
                    count,
                )
            }
            Entry_::Vacant(v) => {
                v.insert((seq & SEQ_MASK) | (1 << SEQ_BITS));
                (0, 1)
            }
        };
        let flags = LINKED | if has_parts { PARTS } else { 0 };
        self.entries.push_back(Entry {
            id_hi: (id >> 32) as u32,
            id_lo: id as u32,
            mbox,
            loc,
            link: flags | delta,
        });
        if count as usize >= 2 * self.mailbox_max {
            self.trim(mbox)
        } else {
            0
        }
    }

    /// Sequence numbers of a mailbox's visible entries, newest first, at most the cap.
    pub fn list(&self, mbox: u64) -> Vec<u64> {
        self.list_key(key(mbox))
    }

    fn list_key(&self, mbox: u32) -> Vec<u64> {
        let mut out = Vec::new();
        let mut cur = self.heads.get(&mbox).map(|h| self.abs_seq(h & SEQ_MASK));
        while let Some(seq) = cur {
            if out.len() >= self.mailbox_max {
                break;
            }
            out.push(seq);
            cur = self.older(seq);
        }
        out
    }

    /// Sequence range of entries with this id (ids ascend with sequence).
    pub fn find_id(&self, id: u64) -> std::ops::Range<u64> {
        let lo = self.entries.partition_point(|e| e.id() < id);
        let hi = self.entries.partition_point(|e| e.id() <= id);
        self.front_seq + lo as u64..self.front_seq + hi as u64
    }

    /// Removes the oldest entry, unlinking it (it is the tail of its list).
    pub fn pop_front(&mut self) -> Option<Entry> {
        let e = self.entries.pop_front()?;
        self.front_seq += 1;
        if e.linked() {
            self.dec_head(e.mbox, None);
        }
        Some(e)
    }

    /// Unlinks entry `seq` from its mailbox list (a user deleted it).
    pub fn unlink(&mut self, seq: u64) -> bool {
        let Some(e) = self.get(seq).copied() else {
            return false;
        };
        if !e.linked() {
            return false;
        }
        let older = self.older(seq);
        let Some(&h) = self.heads.get(&e.mbox) else {
            return false;
        };
        let mut cur = self.abs_seq(h & SEQ_MASK);
        if cur == seq {
            self.dec_head(e.mbox, Some(older));
        } else {
            // Walk to the newer neighbour; bounded by the list length (at most twice the cap).
            loop {
                match self.older(cur) {
                    Some(next) if next == seq => break,
                    Some(next) => cur = next,
                    None => return false,
                }
            }
            let delta = older.map_or(0, |o| (cur - o) as u32);
            self.set_link(cur, delta);
            self.dec_head(e.mbox, None);
        }
        if let Some(x) = self.get_mut(seq) {
            x.link &= PARTS;
        }
        true
    }

    fn trim(&mut self, mbox: u32) -> usize {
        let list = self.list_key(mbox);
        let Some(&last) = list.last() else { return 0 };
        let mut cut = self.older(last);
        self.set_link(last, 0);
        let mut dropped = 0;
        while let Some(seq) = cut {
            cut = self.older(seq);
            if let Some(x) = self.get_mut(seq) {
                x.link &= PARTS;
            }
            dropped += 1;
        }
        if let Some(h) = self.heads.get_mut(&mbox) {
            *h = (*h & SEQ_MASK) | ((list.len() as u64) << SEQ_BITS);
        }
        dropped
    }

    fn dec_head(&mut self, mbox: u32, new_newest: Option<Option<u64>>) {
        let Some(h) = self.heads.get_mut(&mbox) else {
            return;
        };
        let count = (*h >> SEQ_BITS).saturating_sub(1);
        let newest = match new_newest {
            Some(Some(s)) => s & SEQ_MASK,
            Some(None) => {
                self.heads.remove(&mbox);
                return;
            }
            None => *h & SEQ_MASK,
        };
        if count == 0 {
            self.heads.remove(&mbox);
        } else {
            *h = newest | (count << SEQ_BITS);
        }
    }

    fn older(&self, seq: u64) -> Option<u64> {
        let d = u64::from(self.get(seq)?.delta());
        let o = seq.checked_sub(d)?;
        (d != 0 && o >= self.front_seq).then_some(o)
    }

    fn set_link(&mut self, seq: u64, delta: u32) {
        if let Some(x) = self.get_mut(seq) {
            x.link = (x.link & !DELTA_MAX) | delta;
        }
    }

    fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let i = usize::try_from(seq.checked_sub(self.front_seq)?).ok()?;
        self.entries.get_mut(i)
    }

    /// Recovers a full sequence number from its low 48 bits (the head map stores those).
    fn abs_seq(&self, low: u64) -> u64 {
        let high = (self.front_seq + self.entries.len() as u64) & !SEQ_MASK;
        let s = high | low;
        if s > self.front_seq + self.entries.len() as u64 {
            s.wrapping_sub(1 << SEQ_BITS)
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_small() {
        // Goal: the per-message index cost stays as designed.
        assert_eq!(ENTRY_BYTES, 20);
    }

    #[test]
    fn lists_newest_first_and_cap() {
        // Goal: per-mailbox cap keeps the newest `max`; evicted count is reported; pops unlink.
        let mut ix = Index::new(1000, 3);
        let mut cut = 0;
        for i in 0..10u64 {
            cut += ix.push(100 + i, 7, i as u32, false);
            ix.push(200 + i, 8, i as u32, false);
        }
        let ids: Vec<u64> = ix
            .list(7)
            .iter()
            .map(|&s| ix.get(s).map_or(0, |e| e.id()))
            .collect();
        assert_eq!(ids, vec![109, 108, 107]);
        assert!(cut >= 3);
        while ix.pop_front().is_some() {}
        assert_eq!(ix.mailboxes(), 0);
    }

    #[test]
    fn unlink_middle_head_and_tail() {
        // Goal: deleting any position keeps the list consistent and counts right.
        let mut ix = Index::new(100, 10);
        for i in 0..5u64 {
            ix.push(i, 1, 0, false);
        }
        assert!(ix.unlink(2));
        assert!(ix.unlink(4));
        assert!(ix.unlink(0));
        assert!(!ix.unlink(0));
        let ids: Vec<u64> = ix.list(1);
        assert_eq!(ids, vec![3, 1]);
        assert!(ix.unlink(3));
        assert!(ix.unlink(1));
        assert_eq!(ix.mailboxes(), 0);
        assert_eq!(ix.find_id(3), 3..4);
    }
}
