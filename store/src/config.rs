//! Store configuration (`[store]` in the TOML file) and its start-up checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Where segments live.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// Nothing on disk; everything is lost on restart.
    #[default]
    Memory,
    /// One memory-mapped file per shard under `dir`, recovered on start.
    Disk,
}

/// When a record counts as durable in `disk` mode.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CommitPolicy {
    /// Never sync explicitly; the kernel writes pages back when it likes.
    None,
    /// Group commit: one msync covers every record queued when it starts (and those that
    /// arrive within `batch_wait_us` after the first).
    #[default]
    Batch,
    /// One msync per record before the 250.
    Always,
}

/// Configuration of the message store.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Total memory for all shards: segment arenas, index and shared parts.
    pub memory_bytes_max: u64,
    /// Size of one ring segment; the largest record must fit in one segment.
    pub segment_bytes: u64,
    /// Default time to live of a message, in seconds.
    pub ttl_secs: u64,
    /// Upper bound for per-mailbox TTL overrides, in seconds.
    pub ttl_secs_max: u64,
    /// Messages kept per mailbox (per shard); the oldest goes first.
    pub mailbox_records_max: usize,
    /// Recipients one record may carry.
    pub record_mailboxes_max: usize,
    /// Index entry budget per MiB of arena (one entry per message and mailbox): the index
    /// allocates as it fills, up to this; reaching it evicts the oldest segment. The
    /// default, 1,024 (one entry per KiB), lets a full arena of the `dedup_ratio` corpus's
    /// records (about 1.1 KiB of frame per mailbox copy once parts are shared) be used
    /// whole; 256 stopped it at about half. It sets aside about 60 bytes per entry.
    pub index_entries_per_mib: u64,
    /// MIME parts at least this large are stored once by content (0 turns dedup off).
    pub dedup_part_bytes_min: usize,
    /// Memory for deduplicated parts across all shards (counted in `memory_bytes_max`).
    pub dedup_bytes_max: u64,
    /// Events buffered per subscriber before it is told it lagged.
    pub subscriber_queue_max: usize,
    /// Live subscriptions across the store.
    pub subscribers_max: usize,
    /// Per-mailbox TTL overrides the store keeps.
    pub ttl_overrides_max: usize,
    /// `memory` (default) or `disk`.
    pub persistence: Persistence,
    /// Directory of the shard files; required for `disk`.
    pub dir: Option<PathBuf>,
    /// Commit policy for `disk`: `none`, `batch` (default) or `always`.
    pub commit: CommitPolicy,
    /// Longest time a `batch` commit waits for company before it syncs, in microseconds.
    /// 0 (default) syncs at once: records that arrive during a sync share the next one,
    /// so batches grow with load by themselves and no 250 waits for a timer. A wait only
    /// trades latency for fewer syncs per second.
    pub batch_wait_us: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            memory_bytes_max: 256 << 20,
            segment_bytes: 16 << 20,
            ttl_secs: 3600,
            ttl_secs_max: 7 * 24 * 3600,
            mailbox_records_max: 100,
            record_mailboxes_max: 100,
            index_entries_per_mib: 1024,
            dedup_part_bytes_min: 4096,
            dedup_bytes_max: 32 << 20,
            subscriber_queue_max: 64,
            subscribers_max: 10_000,
            ttl_overrides_max: 10_000,
            persistence: Persistence::Memory,
            dir: None,
            commit: CommitPolicy::Batch,
            batch_wait_us: 0,
        }
    }
}

/// Largest segment: offsets inside a shard are kept in 32-bit units of 16 bytes.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;
/// Smallest segment that still holds a useful message.
pub const SEGMENT_BYTES_MIN: u64 = 64 << 10;
/// Largest shard arena: frame offsets are 32-bit in units of 16 bytes.
pub const ARENA_BYTES_MAX: u64 = 16 << 32;
/// Group commit waits at most this long (the bound).
pub const BATCH_WAIT_US_MAX: u64 = 2000;

impl StoreConfig {
    /// Checks every field and their relations; returns all problems at once.
    pub fn validate(&self, shards: usize) -> Result<(), StoreError> {
        let mut errs = Vec::new();
        self.check_sizes(shards, &mut errs);
        self.check_limits(&mut errs);
        if self.persistence == Persistence::Disk && self.dir.is_none() {
            errs.push("store.dir is required when store.persistence = \"disk\"".to_string());
        }
        if self.batch_wait_us > BATCH_WAIT_US_MAX {
            errs.push(format!(
                "store.batch_wait_us must be at most {BATCH_WAIT_US_MAX}"
            ));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Config(errs))
        }
    }

    fn check_sizes(&self, shards: usize, errs: &mut Vec<String>) {
        if shards == 0 || shards > crate::id::SHARDS_MAX {
            errs.push(format!("shard count must be 1..={}", crate::id::SHARDS_MAX));
        }
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes)
            || !self.segment_bytes.is_power_of_two()
        {
            errs.push(format!(
                "store.segment_bytes must be a power of two in {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}"
            ));
        }
        if self.dedup_bytes_max > self.memory_bytes_max / 2 {
            errs.push(
                "store.dedup_bytes_max must be at most half of store.memory_bytes_max".into(),
            );
        }
        if self.index_entries_per_mib == 0 || self.index_entries_per_mib > 1 << 16 {
            errs.push("store.index_entries_per_mib must be 1..=65536".into());
        }
        let per_shard = self.memory_bytes_max / shards.max(1) as u64;
        if per_shard > ARENA_BYTES_MAX {
            errs.push(format!(
                "store.memory_bytes_max / shards must be at most {ARENA_BYTES_MAX}"
            ));
        }
        if per_shard < 2 * self.segment_bytes {
            errs.push(format!(
                "store.memory_bytes_max gives {per_shard} bytes per shard; need at least two segments of {} bytes",
                self.segment_bytes
            ));
        }
    }

    fn check_limits(&self, errs: &mut Vec<String>) {
        if self.ttl_secs == 0 || self.ttl_secs > self.ttl_secs_max {
            errs.push("store.ttl_secs must be 1..=store.ttl_secs_max".into());
        }
        if self.mailbox_records_max == 0 || self.mailbox_records_max > 30_000 {
            errs.push("store.mailbox_records_max must be 1..=30000".into());
        }
        if self.record_mailboxes_max == 0 || self.record_mailboxes_max > 10_000 {
            errs.push("store.record_mailboxes_max must be 1..=10000".into());
        }
        if self.subscriber_queue_max == 0 || self.subscribers_max == 0 {
            errs.push(
                "store.subscriber_queue_max and store.subscribers_max must be positive".into(),
            );
        }
        if self.dedup_part_bytes_min != 0 && self.dedup_part_bytes_min < 256 {
            errs.push("store.dedup_part_bytes_min must be 0 (off) or at least 256".into());
        }
    }
}
