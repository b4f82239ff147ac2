//! Changes to stored mail: user deletions, per-mailbox TTLs and expiry. In `disk` mode
//! each is journaled (see `journaled`) so it holds after a restart.

use crate::address::Mailbox;
use crate::error::StoreError;
use crate::id::shard_of;
use crate::journal::Entry;
use crate::sink::MessageId;

use super::Store;

impl Store {
    /// Deletes a message from a mailbox; the record's bytes are zeroed once no mailbox
    /// references it. Returns whether it was there. In `disk` mode the deletion is written
    /// to the journal (synced unless `commit = "none"`) before this returns, so it
    /// survives a restart even while other mailboxes keep the record; so does the
    /// mailbox's cap floor (see `Shard::delete_message`), so copies the per-mailbox cap had
    /// hidden stay hidden after a restart too.
    pub fn delete_message(&self, mailbox: &Mailbox, id: MessageId) -> bool {
        let shard = shard_of(id);
        let Some(sh) = self.inner.shards.get(shard) else {
            return false;
        };
        let now = self.inner.clock.now_ms();
        let h = self.inner.hash(mailbox.as_str());
        let cut = self.cap_floor(mailbox, h, now);
        if id.0 < cut {
            return false;
        }
        // Copies the whole-mailbox cap hides in other shards would show again once this
        // one is gone: delete them first, as the per-shard floor below does in its shard.
        if cut > 0 {
            self.cut_below(mailbox, h, cut, now);
        }
        let Some(floor) = sh.write().delete_message(h, mailbox, id.0, now) else {
            return false;
        };
        let mut entries = Vec::with_capacity(2);
        // A floor at or above the id covers the deletion itself.
        if floor.is_none_or(|f| f < id.0) {
            entries.push(Entry::DeleteMessage {
                id: id.0,
                mailbox: mailbox.to_string(),
            });
        }
        entries.extend(floor.map(|upto_id| Entry::DeleteMailbox {
            shard: shard as u16,
            upto_id,
            mailbox: mailbox.to_string(),
        }));
        self.inner.journal_delete(&entries);
        true
    }

    /// Deletes `mailbox`'s copies older than `below` in every shard (the whole-mailbox
    /// cap hides them), journaled like a mailbox deletion up to `below - 1`.
    fn cut_below(&self, mailbox: &Mailbox, h: u64, below: u64, now: u64) {
        for (i, sh) in self.inner.shards.iter().enumerate() {
            if sh.write().cut_below(h, mailbox, below, now) {
                self.inner.journal_delete(&[Entry::DeleteMailbox {
                    shard: i as u16,
                    upto_id: below - 1,
                    mailbox: mailbox.to_string(),
                }]);
            }
        }
    }

    /// Deletes every message of a mailbox; returns how many it showed. Journaled in
    /// `disk` mode like [`Store::delete_message`].
    pub fn delete_mailbox(&self, mailbox: &Mailbox) -> usize {
        let h = self.inner.hash(mailbox.as_str());
        let now = self.inner.clock.now_ms();
        let mut n = 0;
        for (i, sh) in self.inner.shards.iter().enumerate() {
            let mut sh = sh.write();
            let upto_id = sh.ids.last();
            let (visible, any) = sh.delete_mailbox(h, mailbox, now);
            n += visible;
            drop(sh);
            // One entry covers every copy up to now, including ones the cap had cut.
            if any {
                self.inner.journal_delete(&[Entry::DeleteMailbox {
                    shard: i as u16,
                    upto_id,
                    mailbox: mailbox.to_string(),
                }]);
            }
        }
        // Shards hold up to the cap each; the mailbox showed the cap at most.
        n.min(self.inner.cfg.mailbox_records_max)
    }

    /// Sets (or with `None` clears) the TTL of messages that arrive for `mailbox` from
    /// now on, capped at `ttl_secs_max`. A message to several mailboxes gets the longest.
    /// In `disk` mode the override is journaled (synced unless `commit = "none"`) and
    /// restored at the next open; setting the value already in force writes nothing.
    pub fn set_mailbox_ttl(
        &self,
        mailbox: &Mailbox,
        ttl_secs: Option<u64>,
    ) -> Result<(), StoreError> {
        let max = self.inner.cfg.ttl_overrides_max;
        let ms = ttl_secs.map(|s| s.clamp(1, self.inner.cfg.ttl_secs_max) * 1000);
        // The journal lock (disk mode) orders this change with compaction, which copies
        // shard 0's table; every shard holds the same table.
        let journal = self.inner.journal.as_ref().map(|j| j.lock());
        if let Some(mut j) = journal {
            let entry = {
                let sh = self.inner.shards.first().map(|s| s.read());
                let current = sh
                    .as_ref()
                    .and_then(|s| s.ttl_overrides.get(mailbox.as_str()).copied());
                match ms {
                    Some(ms) if current == Some(ms) => None,
                    Some(ms) => {
                        let full = sh.as_ref().is_some_and(|s| s.ttl_overrides.len() >= max);
                        if full && current.is_none() {
                            return Err(StoreError::TtlOverrides(max));
                        }
                        Some(Entry::TtlSet {
                            mailbox: mailbox.to_string(),
                            ttl_ms: ms,
                        })
                    }
                    None if current.is_none() => None,
                    None => Some(Entry::TtlClear {
                        mailbox: mailbox.to_string(),
                    }),
                }
            };
            if let Some(e) = entry {
                j.append(std::slice::from_ref(&e))?;
            }
            let res = self.apply_ttl(mailbox, ms);
            if j.due() {
                self.inner.compact_journal(&mut j);
            }
            return res;
        }
        self.apply_ttl(mailbox, ms)
    }

    fn apply_ttl(&self, mailbox: &Mailbox, ms: Option<u64>) -> Result<(), StoreError> {
        let max = self.inner.cfg.ttl_overrides_max;
        for sh in &self.inner.shards {
            let mut sh = sh.write();
            match ms {
                Some(ms) => {
                    if sh.ttl_overrides.len() >= max
                        && !sh.ttl_overrides.contains_key(mailbox.as_str())
                    {
                        return Err(StoreError::TtlOverrides(max));
                    }
                    sh.ttl_overrides.insert(mailbox.to_string(), ms);
                }
                None => {
                    sh.ttl_overrides.remove(mailbox.as_str());
                }
            }
        }
        Ok(())
    }

    /// Recycles expired segments in every shard and zeroes what recycling left to the
    /// writer (call about once a second).
    pub fn expire(&self) {
        let now = self.inner.clock.now_ms();
        let mut oldest = Vec::with_capacity(self.inner.shards.len());
        for sh in &self.inner.shards {
            let mut sh = sh.write();
            sh.expire(now);
            sh.zero_stale();
            oldest.push(sh.oldest_id());
        }
        if let Some(j) = &self.inner.journal {
            let mut j = j.lock();
            if j.due_after_recycling(&oldest, now) {
                self.inner.compact_journal(&mut j);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::testing::{arena_has, put};
    use crate::address::Mailbox;
    use crate::clock::ManualClock;
    use crate::config::StoreConfig;
    use crate::store::Store;

    #[test]
    fn deleted_and_recycled_records_are_zeroed_in_memory() {
        // Goal: after delete, and after a segment is recycled, no byte of the message remains.
        let cfg = StoreConfig {
            memory_bytes_max: 4 * (64 << 10) + (128 << 10),
            segment_bytes: 64 << 10,
            index_entries_per_mib: 8192,
            dedup_part_bytes_min: 1024,
            dedup_bytes_max: 64 << 10,
            ..StoreConfig::default()
        };
        let clock = ManualClock::new(1_000_000);
        let (store, mut w, _) = Store::open_with_clock(&cfg, 1, Arc::new(clock)).expect("open");
        let id = put(&mut w[0], "a@p.test", b"Subject: s\r\n\r\nMARKER-DELETE-1");
        assert!(arena_has(&store, b"MARKER-DELETE-1"));
        let a = Mailbox::parse("a@p.test").expect("test address");
        assert!(store.delete_message(&a, id));
        assert!(!arena_has(&store, b"MARKER-DELETE-1"));
        assert!(!arena_has(&store, b"a@p.test"));
        let big = format!("Subject: s\r\n\r\nMARKER-PART-{}", "p".repeat(2000));
        let first = put(&mut w[0], "b@p.test", big.as_bytes());
        put(&mut w[0], "c@p.test", b"Subject: s\r\n\r\nMARKER-EVICT-2");
        for _ in 0..400 {
            put(&mut w[0], "d@p.test", "f".repeat(1500).as_bytes());
        }
        assert!(store.get(first).is_none());
        assert!(!arena_has(&store, b"MARKER-EVICT-2"));
        let parts_hold = store.inner.shards[0]
            .read()
            .parts
            .get(crate::Parts::key(&big.as_bytes()[14..]))
            .is_some();
        assert!(!parts_hold, "part released with its last record");
    }

    #[test]
    fn recycled_memory_is_zeroed_ahead_of_the_writer_and_all_of_it_by_expire() {
        // Goal: in memory mode a recycled segment is zeroed just ahead of the writer (its
        // frames sit on zeros, and the rest keeps old bytes only until `expire`), and after
        // `expire` no byte of any evicted message is left while kept ones read back whole.
        let cfg = StoreConfig {
            memory_bytes_max: 4 << 20,
            segment_bytes: 1 << 20,
            dedup_bytes_max: 0,
            ..StoreConfig::default()
        };
        let clock = ManualClock::new(1_000_000);
        let (store, mut w, _) = Store::open_with_clock(&cfg, 1, Arc::new(clock)).expect("open");
        let body = |i: usize| format!("Subject: s\r\n\r\n{}", format!("OLD{i:05}").repeat(1000));
        let marker = |i: usize| format!("OLD{i:05}OLD{i:05}");
        let mut ids = Vec::new();
        // Fill the ring, then write on until exactly one segment was recycled. One mailbox
        // per message, so the per-mailbox cap hides none. Bounded: the 4 MiB ring holds
        // under 1,000 of these 8 KiB messages.
        for i in 0..2_000 {
            if store.stats().totals.evicted_capacity > 0 {
                break;
            }
            ids.push(put(&mut w[0], &format!("a{i}@p.test"), body(i).as_bytes()));
        }
        assert!(
            store.stats().totals.evicted_capacity > 0,
            "the ring wrapped"
        );
        {
            let sh = store.inner.shards[0].read();
            let head = *sh.used.back().expect("head");
            let m = sh.segs[head];
            assert!(
                m.used > 0 && m.zeroed > m.used && m.zeroed < m.stale,
                "{m:?}"
            );
            let base = head * sh.seg_bytes;
            let bytes = sh.arena.bytes();
            assert!(
                bytes[base + m.used..base + m.zeroed]
                    .iter()
                    .all(|&b| b == 0)
            );
            assert!(
                bytes[base + m.zeroed..base + m.stale]
                    .iter()
                    .any(|&b| b != 0)
            );
        }
        let arena = || store.inner.shards[0].read().arena.bytes().to_vec();
        let holds =
            |bytes: &[u8], i: usize| memchr::memmem::find(bytes, marker(i).as_bytes()).is_some();
        let before = arena();
        let evicted: Vec<usize> = (0..ids.len())
            .filter(|&i| store.get(ids[i]).is_none())
            .collect();
        assert!(!evicted.is_empty());
        assert!(evicted.iter().any(|&i| holds(&before, i)));
        store.expire();
        let after = arena();
        for (i, id) in ids.iter().enumerate() {
            match store.get(*id) {
                Some(m) => assert_eq!(m.raw, body(i).as_bytes(), "message {i}"),
                None => assert!(!holds(&after, i), "evicted {i}"),
            }
        }
    }
}
