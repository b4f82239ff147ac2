//! Start-up sizing: how `memory_bytes_max` is split into arenas, index and part tables.
//!
//! Per shard, with `B = memory_bytes_max / shards`:
//!
//! ```text
//! B >= arena + index + parts
//! arena  = segments * segment_bytes                          (segments >= 2)
//! entries = max(record_mailboxes_max, arena_MiB * index_entries_per_mib)   (the budget)
//! index  = bytes_max(entries), the most the index can hold:
//!          (entries / 128 + 2) blocks * (2560 + 8)           (entry ring: 20 B entries in
//!                                                              blocks of 128, on demand)
//!        + entries * 40                                      (mailbox heads: at most one
//!                                                              mailbox per entry, 10 B slots
//!                                                              kept at least a quarter full)
//!        + tables * (24 + 8 * 10)  with tables = entries / 2048 (head tables; one resize
//!                                                              moves one table)
//!        (about 60 B per entry of budget)
//! parts  = dedup_bytes_max / shards                          (data + 48 B per part; the
//!                                                              heap region in `memory` mode,
//!                                                              the parts file in `disk` mode)
//!        + map_bytes(parts_max, 32)   with parts_max = parts_budget / dedup_part_bytes_min
//! ```
//!
//! `segments` is the largest count that satisfies the first line. The arena and part-map
//! are allocated at `open`; the index allocates as it fills, up to its line above: a
//! full ring holds 20 B per entry plus 13 to 40 B per mailbox (at most 64 B per stored
//! message to unique mailboxes, by `examples/index_overhead.rs`), and the shard reclaims
//! its oldest segment (`IndexFull`) before the budget would be passed. Nothing else on the
//! write path allocates beyond these lines except part data, counted inside `parts`, and
//! each writer's scratch: one record being built, kept between appends (about one
//! message; buffers over 256 KiB are freed after use).
//!
//! In `disk` mode the arena and the part region are memory-mapped files
//! (`shard-<i>.tmx`, `parts-<i>.tmx`); their pages count against the budget like the heap
//! they replace.

use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::frame::HEADER_BYTES;
use crate::index::{self, DELTA_MAX, map_bytes};
use crate::parts::PART_OVERHEAD_BYTES;

/// The layout of one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Segments in the ring.
    pub segments: usize,
    /// Bytes per segment.
    pub segment_bytes: usize,
    /// Index entry budget: the index allocates as it fills, up to this many entries.
    pub entries: usize,
    /// Part table budget in bytes (0 = dedup off).
    pub parts_bytes: usize,
    /// Part table slots.
    pub parts_max: usize,
}

impl Geometry {
    /// Arena bytes.
    pub fn arena_bytes(&self) -> usize {
        self.segments * self.segment_bytes
    }

    /// The largest raw message (trace headers + body) a record may carry: a segment less
    /// its frame header and the room kept for envelope and summary.
    pub fn record_bytes_max(&self) -> usize {
        let seg = self.segment_bytes;
        seg - HEADER_BYTES - (seg / 8).min(64 << 10)
    }

    /// Most bytes the index may hold (its entry ring and mailbox heads at the budget).
    pub fn index_bytes_max(&self) -> usize {
        index::bytes_max(self.entries)
    }

    /// Most bytes the geometry allocates in total.
    pub fn total_bytes(&self) -> usize {
        self.arena_bytes()
            + self.index_bytes_max()
            + self.parts_bytes
            + parts_map_bytes(self.parts_max)
    }
}

fn parts_map_bytes(parts_max: usize) -> usize {
    if parts_max == 0 {
        0
    } else {
        map_bytes(parts_max, 32)
    }
}

/// Whether part dedup is on: it needs a threshold and a budget, in either persistence mode.
///
/// In `disk` mode the parts of a shard live in their own file, `parts-<shard>.tmx`, sized
/// to the shard's share of `dedup_bytes_max` and memory-mapped like the shard file (see
/// `parts`). That answers what kept dedup off on disk:
/// - A part's lifetime is its reference count, not ring order, so it lives outside the
///   segments and is never recycled with one; it is freed (and zeroed) when its last
///   referrer is recycled or deleted.
/// - The file has its own allocator (best fit over zeroed free space, merged on free) and
///   a geometry check at open like the shard files.
/// - Durability spans both files: the 250 of a record goes out only once the part frames
///   it wrote are synced too (`batch`: one group commit syncs the batch's part span, then
///   its records; `always`: the parts, then the record).
/// - Recovery loads intact part frames (damage is skipped and counted), lets each valid
///   record hold its parts (a record whose part is missing is skipped and counted), then
///   zeroes and frees what nothing holds: orphans of a crash and parts of deleted mail.
///
/// Dedup within one segment (the rejected alternative) would have needed a record format
/// bump and saved nothing across segments.
pub fn dedup_enabled(cfg: &StoreConfig) -> bool {
    cfg.dedup_part_bytes_min > 0 && cfg.dedup_bytes_max > 0
}

/// Computes the per-shard geometry; the config must already be valid.
pub fn plan(cfg: &StoreConfig, shards: usize) -> Result<Geometry, StoreError> {
    let per_shard = (cfg.memory_bytes_max / shards as u64) as usize;
    let segment_bytes = cfg.segment_bytes as usize;
    let (parts_bytes, parts_max) = if dedup_enabled(cfg) {
        let b = (cfg.dedup_bytes_max / shards as u64) as usize;
        (b, b / (cfg.dedup_part_bytes_min + PART_OVERHEAD_BYTES))
    } else {
        (0, 0)
    };
    let mut segments = per_shard / segment_bytes;
    while segments >= 2 {
        let arena = segments * segment_bytes;
        let per_mib = cfg.index_entries_per_mib as usize;
        let entries = ((arena as u128 * per_mib as u128) >> 20) as usize;
        let entries = entries.max(cfg.record_mailboxes_max);
        let g = Geometry {
            segments,
            segment_bytes,
            entries,
            parts_bytes,
            parts_max,
        };
        if g.total_bytes() <= per_shard && entries <= DELTA_MAX as usize {
            return Ok(g);
        }
        segments -= 1;
    }
    Err(StoreError::Config(vec![format!(
        "store.memory_bytes_max leaves less than two segments per shard after index and dedup budgets ({per_shard} bytes per shard)"
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fits_and_uses_most_memory() {
        // Goal: the default layout stays within budget and wastes less than a segment + index.
        // Up to 4 shards: the appliance caps its automatic core count to that for the default
        // budget (control's `resolve_cores`).
        let cfg = StoreConfig::default();
        for shards in [1, 2, 4] {
            let g = plan(&cfg, shards).expect("plan");
            let per = (cfg.memory_bytes_max / shards as u64) as usize;
            assert!(g.total_bytes() <= per);
            assert!(per - g.total_bytes() < 2 * g.segment_bytes, "{g:?}");
        }
    }
}
