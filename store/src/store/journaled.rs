//! The store's writes to its journal: deletions appended as they happen, and compaction
//! once the journal is due (see `crate::journal` for the file itself).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::CommitPolicy;
use crate::journal::{Entry, Journal};
use crate::shared::Inner;

impl Inner {
    /// Appends deletions to the journal in one write; a failure is logged and counted
    /// (the deletion already holds in memory, so the caller still reports it done).
    pub(super) fn journal_delete(&self, entries: &[Entry]) {
        let Some(j) = &self.journal else { return };
        let mut j = j.lock();
        if let Err(err) = j.append(entries) {
            self.journal_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %err, "store journal: deletion not saved; it is undone by a restart");
            return;
        }
        if j.due() {
            self.compact_journal(&mut j);
        }
    }

    /// Rewrites the journal with what is still live; logs and counts a failure.
    pub(super) fn compact_journal(&self, j: &mut Journal) {
        let mut oldest = Vec::with_capacity(self.shards.len());
        let mut maps = Vec::new();
        let mut ttls = HashMap::new();
        for (i, sh) in self.shards.iter().enumerate() {
            let sh = sh.read();
            oldest.push(sh.oldest_id());
            maps.extend(sh.arena.mapping());
            if i == 0 {
                ttls = sh.ttl_overrides.clone();
            }
        }
        let res = compact(
            j,
            &oldest,
            &maps,
            &ttls,
            self.cfg.commit,
            self.clock.now_ms(),
        );
        if let Err(err) = res {
            self.journal_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %err, "store journal not compacted");
        }
    }
}

/// Compacts the journal. Before dropping a deletion whose record was recycled, the shard
/// files are synced (when the commit policy syncs at all), so the recycled bytes, not the
/// deleted record, are what a crash leaves on disk.
pub(super) fn compact(
    j: &mut Journal,
    oldest: &[u64],
    maps: &[Arc<memmap2::MmapRaw>],
    ttls: &HashMap<String, u64>,
    commit: CommitPolicy,
    now_ms: u64,
) -> std::io::Result<()> {
    if commit != CommitPolicy::None && j.would_drop(oldest) {
        for m in maps {
            m.flush()?;
        }
    }
    j.compact(oldest, ttls, now_ms)
}
