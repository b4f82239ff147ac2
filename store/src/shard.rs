//! One shard: a ring of segments in an arena, its index, part table and subscribers.
//!
//! A shard is written by exactly one [`crate::ShardWriter`]; it sits behind an `RwLock`
//! that no other writer ever takes, so the write lock is uncontended except while a
//! reader (rare next to writes) looks at this shard.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use rkyv::ser::allocator::Arena as SerArena;

use crate::address::Mailbox;
use crate::arena::Arena;
use crate::error::StoreError;
use crate::frame::{self, FrameKind, HEADER_BYTES, Header};
use crate::id::IdGen;
use crate::index::Index;
use crate::parts::Parts;
use crate::queue::Queue;
use crate::record::{self, ArchivedChunk, ArchivedMessageRecord, MessageRecord, RecordSource};
use crate::sizing::Geometry;
use crate::stats::{Counters, Reclaim, ShardStats};
use crate::view::MessageSummary;

/// Bytes a heap arena zeroes ahead of its writer at a time: a quarter of the 1 MiB L2 of
/// the machine it was measured on, so the frames written next land in lines the zeroing
/// just brought in.
/// Zeroing a whole recycled 16 MiB segment at once instead leaves those lines in memory,
/// and every copy then fetches them back (`append_floor`: about 450 vs 320 ns per 4 KiB).
const ZERO_AHEAD_BYTES: usize = 256 << 10;

/// Bookkeeping of one segment.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SegMeta {
    pub(crate) used: usize,
    pub(crate) records: u32,
    pub(crate) max_expires_ms: u64,
    pub(crate) first_id: u64,
    /// Bytes `zeroed..stale` may still hold frames from the segment's previous use (heap
    /// arenas only, see [`Shard::zero_ahead`]); every other byte past `used` is zero.
    pub(crate) zeroed: usize,
    pub(crate) stale: usize,
}

/// The state of one shard (always accessed under its lock).
pub(crate) struct Shard {
    pub(crate) arena: Arena,
    pub(crate) seg_bytes: usize,
    pub(crate) segs: Vec<SegMeta>,
    /// Segments holding data, oldest first; the back is the head being written.
    pub(crate) used: VecDeque<usize>,
    pub(crate) free: Vec<usize>,
    pub(crate) index: Index,
    pub(crate) parts: Parts,
    pub(crate) subs: HashMap<u64, Vec<Arc<Queue>>>,
    pub(crate) ttl_overrides: HashMap<String, u64>,
    pub(crate) counters: Counters,
    pub(crate) ids: IdGen,
}

impl Shard {
    /// An empty shard over `arena` (all segments free except segment 0, the head).
    pub(crate) fn new(shard: usize, arena: Arena, g: &Geometry, mailbox_max: usize) -> Self {
        Self {
            arena,
            seg_bytes: g.segment_bytes,
            segs: vec![SegMeta::default(); g.segments],
            used: VecDeque::from([0]),
            free: (1..g.segments).rev().collect(),
            index: Index::new(g.entries, mailbox_max),
            parts: Parts::new(g.parts_bytes, g.parts_max),
            subs: HashMap::new(),
            ttl_overrides: HashMap::new(),
            counters: Counters::default(),
            ids: IdGen::new(shard, 0),
        }
    }

    fn head(&self) -> usize {
        self.used.back().copied().unwrap_or(0)
    }

    /// Appends a record referenced by `mboxes`; returns the frame's byte range. `ser` is the
    /// serializer's scratch memory, kept by the writer between appends.
    pub(crate) fn append(
        &mut self,
        src: &RecordSource<'_>,
        ser: &mut SerArena,
        mboxes: &[u64],
        has_parts: bool,
        now_ms: u64,
    ) -> Result<(usize, usize), StoreError> {
        // The head slots are the append's likeliest cache misses: start loading them now,
        // so the miss overlaps the encoding and the CRC.
        for &m in mboxes {
            self.index.prefetch(m);
        }
        let rec = src.rec;
        let need = frame::frame_bytes(src.encoded_bound());
        if need > self.seg_bytes {
            return Err(StoreError::TooLarge {
                size: need,
                limit: self.seg_bytes,
            });
        }
        self.expire(now_ms);
        for _ in 0..=self.segs.len() {
            if self.index.room() >= mboxes.len() {
                break;
            }
            self.reclaim_oldest(Reclaim::IndexFull);
        }
        if self.segs[self.head()].used + need > self.seg_bytes {
            self.advance();
        }
        let head = self.head();
        self.zero_ahead(head, need);
        let start = head * self.seg_bytes + self.segs[head].used;
        let seg_end = (head + 1) * self.seg_bytes;
        let out = &mut self.arena.bytes_mut()[start + HEADER_BYTES..seg_end];
        let n = src
            .encode_into(out, ser)
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let h = Header {
            len: n as u32,
            crc: frame::checksum(&out[..n]),
            kind: FrameKind::Record,
            version: frame::FORMAT_VERSION,
        };
        self.arena.bytes_mut()[start..start + HEADER_BYTES].copy_from_slice(&frame::encode(&h));
        let len = frame::frame_bytes(n);
        self.note_frame(head, len, rec.id, rec.expires_at_ms);
        let loc = (start / 16) as u32;
        for &m in mboxes {
            self.counters.evicted_mailbox_cap += self.index.push(rec.id, m, loc, has_parts) as u64;
        }
        self.counters.appended += 1;
        Ok((start, len))
    }

    pub(crate) fn note_frame(&mut self, seg: usize, len: usize, id: u64, expires_ms: u64) {
        let m = &mut self.segs[seg];
        if m.records == 0 {
            m.first_id = id;
        }
        m.used += len;
        m.records += 1;
        m.max_expires_ms = m.max_expires_ms.max(expires_ms);
    }

    /// Pushes the summary to subscribers of the record's mailboxes.
    pub(crate) fn publish(&self, rec: &MessageRecord, mboxes: &[u64], lost: &AtomicU64) {
        if self.subs.is_empty() {
            return;
        }
        for (m, name) in mboxes.iter().zip(&rec.mailboxes) {
            for q in self
                .subs
                .get(m)
                .into_iter()
                .flatten()
                .filter(|q| q.mailbox == *name)
            {
                q.push(summary_of(rec, name), lost);
            }
        }
    }

    /// Makes the next `need` bytes of head segment `s` zero: zeroes its old bytes up to
    /// there, and at least [`ZERO_AHEAD_BYTES`] of them, so the frames that follow are
    /// written into cache.
    fn zero_ahead(&mut self, s: usize, need: usize) {
        let m = &mut self.segs[s];
        let end = m.used + need;
        if m.zeroed >= m.stale || end <= m.zeroed {
            return;
        }
        let to = end.max(m.zeroed + ZERO_AHEAD_BYTES).min(m.stale);
        let base = s * self.seg_bytes;
        self.arena.bytes_mut()[base + m.zeroed..base + to].fill(0);
        m.zeroed = to;
    }

    /// Zeroes every old byte left in segment `s`.
    fn zero_rest(&mut self, s: usize) {
        let m = &mut self.segs[s];
        if m.zeroed < m.stale {
            let base = s * self.seg_bytes;
            self.arena.bytes_mut()[base + m.zeroed..base + m.stale].fill(0);
        }
        (m.zeroed, m.stale) = (0, 0);
    }

    /// Whether recycled segments are zeroed just ahead of the writer rather than at once:
    /// in heap arenas, where no recovery scan ever reads past the last frame. At most two
    /// segments then hold old bytes, the head and the next free one, and
    /// [`Shard::zero_stale`] (once a second) zeroes both, so mail the ring dropped stays
    /// in memory about a second longer at most. Files are zeroed at once: recovery must
    /// find zeros after a segment's last frame.
    fn zero_lazily(&self) -> bool {
        self.arena.is_heap()
    }

    /// Zeroes the old bytes the ring still holds (see [`Shard::zero_lazily`]).
    pub(crate) fn zero_stale(&mut self) {
        let head = self.head();
        self.zero_rest(head);
        if let Some(&s) = self.free.last() {
            self.zero_rest(s);
        }
    }

    /// Opens a new head segment, recycling the oldest if none is free.
    fn advance(&mut self) {
        // The head's slack past its last frame may still hold old bytes.
        let old = self.head();
        self.zero_rest(old);
        if self.free.is_empty() {
            self.reclaim_oldest(Reclaim::Capacity);
        }
        if let Some(s) = self.free.pop() {
            self.used.push_back(s);
        }
    }

    /// Recycles every oldest segment whose records have all expired.
    pub(crate) fn expire(&mut self, now_ms: u64) {
        for _ in 0..self.segs.len() {
            let Some(&s) = self.used.front() else { return };
            let m = self.segs[s];
            if m.records == 0 || m.max_expires_ms > now_ms {
                return;
            }
            self.reclaim_oldest(Reclaim::Expired);
        }
    }

    /// Drops the oldest segment's entries, releases parts, zeroes its bytes.
    pub(crate) fn reclaim_oldest(&mut self, why: Reclaim) {
        let Some(&s) = self.used.front() else { return };
        let lo = (s * self.seg_bytes / 16) as u32;
        let hi = ((s + 1) * self.seg_bytes / 16) as u32;
        let mut last_loc = None;
        while let Some(e) = self.index.front().copied() {
            if e.loc < lo || e.loc >= hi {
                break;
            }
            self.index.pop_front();
            if last_loc == Some(e.loc) {
                continue;
            }
            last_loc = Some(e.loc);
            if self.record_at(e.loc).is_some() {
                self.count_reclaim(why);
                if e.has_parts() {
                    self.release_parts(e.loc);
                }
            }
        }
        let start = s * self.seg_bytes;
        let old = self.segs[s];
        self.segs[s] = SegMeta::default();
        if self.zero_lazily() {
            // Old bytes start at 0; the slack past `used` may be old too (never reached).
            self.segs[s].stale = old.used.max(old.stale);
        } else {
            self.arena.bytes_mut()[start..start + old.used].fill(0);
        }
        if self.used.len() > 1 {
            self.used.pop_front();
            // Only the next free segment may keep old bytes (the one `advance` takes).
            if let Some(&next) = self.free.last() {
                self.zero_rest(next);
            }
            self.free.push(s);
        }
    }

    fn count_reclaim(&mut self, why: Reclaim) {
        let c = &mut self.counters;
        match why {
            Reclaim::Expired => c.expired += 1,
            Reclaim::Capacity => c.evicted_capacity += 1,
            Reclaim::IndexFull => c.evicted_index_full += 1,
        }
    }

    fn release_parts(&mut self, loc: u32) {
        let keys: Vec<u64> = match self.record_at(loc) {
            Some(r) => r
                .raw
                .iter()
                .filter_map(|c| match c {
                    ArchivedChunk::Shared { key, .. } => Some(key.to_native()),
                    ArchivedChunk::Inline(_) => None,
                })
                .collect(),
            None => return,
        };
        for k in keys {
            self.parts.release(k);
        }
    }

    /// The live record at `loc`, if its frame is a record.
    pub(crate) fn record_at(&self, loc: u32) -> Option<&ArchivedMessageRecord> {
        self.versioned_at(loc).map(|(r, _)| r)
    }

    /// The live record at `loc` with its frame's format version (which tells how its
    /// summary is stored; see `frame::FORMAT_VERSION`).
    pub(crate) fn versioned_at(&self, loc: u32) -> Option<(&ArchivedMessageRecord, u16)> {
        let off = loc as usize * 16;
        let seg_end = (off / self.seg_bytes + 1) * self.seg_bytes;
        let bytes = self.arena.bytes();
        let hb: &[u8; HEADER_BYTES] = bytes.get(off..off + HEADER_BYTES)?.try_into().ok()?;
        let h = frame::decode(hb, seg_end - off - HEADER_BYTES).ok()?;
        if h.kind != FrameKind::Record {
            return None;
        }
        let payload = &bytes[off + HEADER_BYTES..off + HEADER_BYTES + h.len as usize];
        // SAFETY: frames in the arena were written by `append` in this process or passed
        // CRC and rkyv validation in recovery, and are only changed under the write lock.
        Some((unsafe { record::access_trusted(payload) }, h.version))
    }

    /// Unlinks entry `seq`; zeroes the record when no mailbox references it any more.
    pub(crate) fn delete_seq(&mut self, seq: u64) -> bool {
        let Some(e) = self.index.get(seq).copied() else {
            return false;
        };
        if !self.index.unlink(seq) {
            return false;
        }
        self.counters.deleted += 1;
        let range = self.index.find_id(e.id());
        let live = range
            .clone()
            .filter_map(|s| self.index.get(s))
            .any(|x| x.loc == e.loc && x.linked());
        if !live {
            if e.has_parts() {
                self.release_parts(e.loc);
            }
            self.zero_record(e.loc);
        }
        true
    }

    /// A user deletes `mailbox`'s (hash `mbox`) copy of record `id`. The list is first cut
    /// back to the cap (the cap is applied lazily, so copies past it may still be linked),
    /// so the deletion never brings back a copy the cap had hidden. Returns `None` when the
    /// mailbox does not show the copy, else the mailbox's cap floor: the id up to which no
    /// copy of the list's mailboxes in this shard is visible any more (below its oldest
    /// entry; every id, if it is empty), `None` inside when the ring holds nothing older.
    ///
    /// The journal keeps the floor, because a restart rebuilds the cap from the records
    /// alone and, once newer copies were deleted, would show older ones again. It is an id
    /// rather than a count, so a record recovery skips cannot move it onto a copy that
    /// was visible.
    pub(crate) fn delete_message(
        &mut self,
        mbox: u64,
        mailbox: &Mailbox,
        id: u64,
        now_ms: u64,
    ) -> Option<Option<u64>> {
        self.counters.evicted_mailbox_cap += self.index.trim_now(mbox) as u64;
        let seq = self.find(mbox, mailbox, id, now_ms)?;
        if !self.delete_seq(seq) {
            return None;
        }
        let floor = match self.index.list(mbox).last() {
            Some(&seq) => self.index.get(seq).and_then(|e| e.id().checked_sub(1)),
            None => Some(self.ids.last()),
        };
        Some(floor.filter(|&f| f >= self.oldest_id()))
    }

    /// Deletes `mailbox`'s (hash `mbox`) copies with an id below `below`, after cutting
    /// the list back to the cap (so no copy past it moves up into view); returns whether
    /// any was linked.
    pub(crate) fn cut_below(
        &mut self,
        mbox: u64,
        mailbox: &Mailbox,
        below: u64,
        now_ms: u64,
    ) -> bool {
        self.counters.evicted_mailbox_cap += self.index.trim_now(mbox) as u64;
        let old: Vec<u64> = self
            .index
            .list(mbox)
            .into_iter()
            .filter(|&s| {
                self.index.get(s).is_some_and(|e| e.id() < below)
                    && self.visible(s, mailbox, now_ms).is_some()
            })
            .collect();
        let mut any = false;
        for seq in old {
            any |= self.delete_seq(seq);
        }
        any
    }

    /// Deletes every copy `mailbox` (hash `mbox`) holds; returns how many were visible at
    /// `now_ms` and whether there was any copy at all.
    pub(crate) fn delete_mailbox(
        &mut self,
        mbox: u64,
        mailbox: &Mailbox,
        now_ms: u64,
    ) -> (usize, bool) {
        let mut visible = 0;
        let mut any = false;
        // The cap is applied lazily, so repeat until the list is empty; each round
        // removes at least one entry or stops.
        for _ in 0..3 {
            let mine: Vec<u64> = self
                .index
                .list(mbox)
                .into_iter()
                .filter(|&s| {
                    self.index
                        .get(s)
                        .and_then(|e| self.record_at(e.loc))
                        .is_some_and(|r| r.mailboxes.iter().any(|m| mailbox.matches_stored(m)))
                })
                .collect();
            if mine.is_empty() {
                break;
            }
            any = true;
            for seq in mine {
                let was_visible = self.visible(seq, mailbox, now_ms).is_some();
                if self.delete_seq(seq) && was_visible {
                    visible += 1;
                }
            }
        }
        (visible, any)
    }

    /// Zeroes the record at `loc` and marks it deleted (a tombstone keeping its id).
    pub(crate) fn zero_record(&mut self, loc: u32) {
        let Some(id) = self.record_at(loc).map(|r| r.id.to_native()) else {
            return;
        };
        let off = loc as usize * 16;
        let seg_end = (off / self.seg_bytes + 1) * self.seg_bytes;
        let bytes = self.arena.bytes_mut();
        let Ok(hb) = <[u8; HEADER_BYTES]>::try_from(&bytes[off..off + HEADER_BYTES]) else {
            return;
        };
        let Ok(h) = frame::decode(&hb, seg_end - off - HEADER_BYTES) else {
            return;
        };
        frame::tombstone(&mut bytes[off..seg_end], h.len, id);
    }

    /// Id of the oldest record still in the ring; past the last id when there is none.
    /// A journal deletion of an older id can no longer match anything.
    pub(crate) fn oldest_id(&self) -> u64 {
        self.used
            .iter()
            .map(|&s| self.segs[s])
            .find(|m| m.records > 0)
            .map_or(self.ids.last().saturating_add(1), |m| m.first_id)
    }

    /// The entry `seq` if visible for `mailbox` at `now_ms`, with its record.
    pub(crate) fn visible(
        &self,
        seq: u64,
        mailbox: &Mailbox,
        now_ms: u64,
    ) -> Option<&ArchivedMessageRecord> {
        self.visible_versioned(seq, mailbox, now_ms).map(|(r, _)| r)
    }

    /// [`Shard::visible`] with the record's format version.
    pub(crate) fn visible_versioned(
        &self,
        seq: u64,
        mailbox: &Mailbox,
        now_ms: u64,
    ) -> Option<(&ArchivedMessageRecord, u16)> {
        let e = self.index.get(seq)?;
        if !e.linked() {
            return None;
        }
        let (r, version) = self.versioned_at(e.loc)?;
        let ok = r.expires_at_ms.to_native() > now_ms
            && r.mailboxes.iter().any(|m| mailbox.matches_stored(m));
        ok.then_some((r, version))
    }

    /// Sequence of the visible entry of `id` in `mailbox`: one its listing shows, so not
    /// one past the cap that the lazy trim has not cut yet.
    pub(crate) fn find(&self, mbox: u64, mailbox: &Mailbox, id: u64, now_ms: u64) -> Option<u64> {
        self.index
            .find_id(id)
            .filter(|&s| self.index.get(s).is_some_and(|e| e.is_for(mbox)))
            .find(|&s| self.visible(s, mailbox, now_ms).is_some() && self.index.shows(mbox, s))
    }

    /// The raw bytes of a record: borrowed from the arena when they are one inline chunk
    /// (a record without shared parts), else reassembled.
    pub(crate) fn raw_ref<'a>(&'a self, r: &'a ArchivedMessageRecord) -> Option<Cow<'a, [u8]>> {
        match r.raw.as_slice() {
            [ArchivedChunk::Inline(b)] => Some(Cow::Borrowed(b.as_slice())),
            _ => self.raw_of(r).map(Cow::Owned),
        }
    }

    /// Reassembles the raw bytes of a record.
    pub(crate) fn raw_of(&self, r: &ArchivedMessageRecord) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(r.headers.size.to_native() as usize);
        for c in r.raw.iter() {
            match c {
                ArchivedChunk::Inline(b) => out.extend_from_slice(b),
                ArchivedChunk::Shared { key, .. } => {
                    out.extend_from_slice(self.parts.get(key.to_native())?)
                }
            }
        }
        Some(out)
    }

    /// TTL for a message to these mailboxes: the longest override, else the default.
    pub(crate) fn ttl_ms(&self, mailboxes: &[Mailbox], default_ms: u64) -> u64 {
        if self.ttl_overrides.is_empty() {
            return default_ms;
        }
        mailboxes
            .iter()
            .filter_map(|m| self.ttl_overrides.get(m.as_str()).copied())
            .max()
            .unwrap_or(default_ms)
    }

    pub(crate) fn stats(&self) -> ShardStats {
        ShardStats {
            bytes_capacity: self.arena.len() as u64,
            bytes_used: self.used.iter().map(|&s| self.segs[s].used as u64).sum(),
            segments_total: self.segs.len() as u64,
            segments_used: self
                .used
                .iter()
                .filter(|&&s| self.segs[s].records > 0)
                .count() as u64,
            index_entries: self.index.len() as u64,
            mailboxes: self.index.mailboxes() as u64,
            index_bytes: self.index.allocated_bytes() as u64,
            parts: self.parts.len() as u64,
            part_bytes: self.parts.bytes() as u64,
            counters: self.counters,
        }
    }
}

/// Summary from an owned record (the write path has it at hand).
pub(crate) fn summary_of(rec: &MessageRecord, mailbox: &str) -> MessageSummary {
    MessageSummary {
        id: crate::MessageId(rec.id),
        mailbox: mailbox.to_string(),
        from: rec.headers.from.clone(),
        subject: rec.headers.subject.clone(),
        date: rec.headers.date.clone(),
        message_id: rec.headers.message_id.clone(),
        received_at_ms: rec.received_at_ms,
        expires_at_ms: rec.expires_at_ms,
        size: rec.headers.size,
        has_attachments: rec.headers.has_attachments,
        auth: rec.auth.clone(),
    }
}
