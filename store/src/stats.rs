//! Counters and gauges for `/metrics` (the binary exports them; the store only records).

use std::fmt;

/// Why records left the store before a user deleted them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reclaim {
    /// Every record of the oldest segment had expired.
    Expired,
    /// The arena was full; the oldest segment was recycled early.
    Capacity,
    /// The index was full; the oldest segment was recycled early.
    IndexFull,
}

/// Per-shard counters (monotonic) kept under the shard lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records appended.
    pub appended: u64,
    /// Records recycled after they expired.
    pub expired: u64,
    /// Records evicted because the arena was full.
    pub evicted_capacity: u64,
    /// Records evicted because the index was full.
    pub evicted_index_full: u64,
    /// Mailbox references dropped by the per-mailbox cap.
    pub evicted_mailbox_cap: u64,
    /// Mailbox references deleted by users.
    pub deleted: u64,
    /// Bytes not stored thanks to part dedup.
    pub dedup_bytes_saved: u64,
    /// Bytes not stored thanks to storing multi-recipient messages once.
    pub multi_rcpt_bytes_saved: u64,
}

impl Counters {
    /// Adds another shard's counters.
    pub fn add(&mut self, o: &Counters) {
        self.appended += o.appended;
        self.expired += o.expired;
        self.evicted_capacity += o.evicted_capacity;
        self.evicted_index_full += o.evicted_index_full;
        self.evicted_mailbox_cap += o.evicted_mailbox_cap;
        self.deleted += o.deleted;
        self.dedup_bytes_saved += o.dedup_bytes_saved;
        self.multi_rcpt_bytes_saved += o.multi_rcpt_bytes_saved;
    }
}

/// Gauges and counters of one shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Arena size.
    pub bytes_capacity: u64,
    /// Bytes of frames in used segments.
    pub bytes_used: u64,
    /// Segments in the ring.
    pub segments_total: u64,
    /// Segments holding records.
    pub segments_used: u64,
    /// Index entries (one per message and mailbox).
    pub index_entries: u64,
    /// Mailboxes with visible messages.
    pub mailboxes: u64,
    /// Bytes allocated by the index.
    pub index_bytes: u64,
    /// Deduplicated parts stored.
    pub parts: u64,
    /// Bytes counted for deduplicated parts.
    pub part_bytes: u64,
    /// Counters.
    pub counters: Counters,
}

/// What a disk store found when it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Shard files opened.
    pub shards: u64,
    /// Shard files that existed (the rest were created).
    pub shards_existing: u64,
    /// Segments that held at least one valid frame.
    pub segments_with_data: u64,
    /// Records validated and indexed.
    pub records_recovered: u64,
    /// Valid records already expired (kept out of the index).
    pub records_expired: u64,
    /// Deleted records: frames marked deleted, plus valid records every copy of which the
    /// journal deleted (zeroed during recovery).
    pub records_deleted: u64,
    /// Frames that failed the header, CRC or rkyv check (torn or corrupt), skipped.
    pub records_skipped: u64,
    /// Bytes of unreadable tail zeroed so new frames never sit before garbage.
    pub bytes_zeroed: u64,
    /// Journal entries replayed (deletions and TTL overrides).
    pub journal_entries: u64,
    /// Damaged journal regions (a torn tail or a corrupt entry) skipped.
    pub journal_skipped: u64,
    /// Mailbox copies of recovered records kept hidden because the journal deleted them.
    pub copies_deleted: u64,
    /// Deduplicated parts recovered from the parts files and held by recovered records.
    pub parts_recovered: u64,
    /// Damaged regions of the parts files (a torn or corrupt frame) skipped; records that
    /// need a part lost this way count in `records_skipped`.
    pub parts_skipped: u64,
    /// Intact parts no recovered record references (a crash between a part's last
    /// release and its zeroing reaching the disk, or expired mail), zeroed and freed.
    pub parts_orphans_zeroed: u64,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shards={} existing={} segments_with_data={} recovered={} expired={} deleted={} skipped={} bytes_zeroed={} journal_entries={} journal_skipped={} copies_deleted={} parts_recovered={} parts_skipped={} parts_orphans_zeroed={}",
            self.shards,
            self.shards_existing,
            self.segments_with_data,
            self.records_recovered,
            self.records_expired,
            self.records_deleted,
            self.records_skipped,
            self.bytes_zeroed,
            self.journal_entries,
            self.journal_skipped,
            self.copies_deleted,
            self.parts_recovered,
            self.parts_skipped,
            self.parts_orphans_zeroed
        )
    }
}

/// A snapshot of the whole store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// One entry per shard.
    pub shards: Vec<ShardStats>,
    /// Sum of the shard counters.
    pub totals: Counters,
    /// Live subscriptions.
    pub subscribers: u64,
    /// Events dropped for slow subscribers.
    pub subscriber_events_lost: u64,
    /// Syncs issued to disk.
    pub syncs: u64,
    /// Journal writes that failed (the change holds in memory but not across a restart).
    pub journal_errors: u64,
    /// What recovery found at start.
    pub recovery: RecoveryReport,
}
