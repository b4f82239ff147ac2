//! Reading: listings from the summaries taken at ingest, one message in place under its
//! shard's lock, and counters for `/metrics`.

use crate::address::Mailbox;
use crate::id::shard_of;
use crate::sink::MessageId;
use crate::sizing::Geometry;
use crate::stats::{Counters, StoreStats};
use crate::view::{MessageRef, MessageSummary, MessageView};
use std::sync::atomic::Ordering;

use super::Store;

impl Store {
    /// The largest raw message (trace headers + body) the store accepts; advertise
    /// below this in SMTP `SIZE`. Envelope and summary need the rest of a segment.
    pub fn record_bytes_max(&self) -> usize {
        self.inner.geometry.record_bytes_max()
    }

    /// The per-shard layout chosen at start-up.
    pub fn geometry(&self) -> Geometry {
        self.inner.geometry
    }

    /// Messages of a mailbox, newest first, older than `before` if given, at most
    /// `limit` (capped at `mailbox_records_max`).
    pub fn list(
        &self,
        mailbox: &Mailbox,
        before: Option<MessageId>,
        limit: usize,
    ) -> Vec<MessageSummary> {
        let limit = limit.min(self.inner.cfg.mailbox_records_max);
        let h = self.inner.hash(mailbox.as_str());
        let now = self.inner.clock.now_ms();
        let floor = self.cap_floor(mailbox, h, now);
        let before = before.map_or(u64::MAX, |b| b.0);
        let mut out = Vec::new();
        for sh in &self.inner.shards {
            let sh = sh.read();
            let mut taken = 0;
            for seq in sh.index.list(h) {
                if taken >= limit {
                    break;
                }
                let Some((r, version)) = sh.visible_versioned(seq, mailbox, now) else {
                    continue;
                };
                let id = r.id.to_native();
                if id < before && id >= floor {
                    out.push(MessageSummary::from_frame(r, version, mailbox.as_str()));
                    taken += 1;
                }
            }
        }
        out.sort_unstable_by_key(|s| std::cmp::Reverse(s.id));
        out.truncate(limit);
        out
    }

    /// Message `id` as `mailbox` shows it, copied out; `None` when the mailbox does not
    /// show it (another mailbox's, expired, deleted or past the cap). See [`Store::read_for`].
    pub fn get_for(&self, mailbox: &Mailbox, id: MessageId) -> Option<MessageView> {
        self.read_for(mailbox, id, |m| m.to_view())
    }

    /// Runs `f` on message `id` as `mailbox` shows it, in place under its shard's read
    /// lock, taken once; `None` when the mailbox does not show it. The raw bytes are
    /// borrowed from the arena unless the record shares parts. `f` holds up that shard's
    /// writer while it runs: keep it to reading and rendering, bounded work.
    pub fn read_for<R>(
        &self,
        mailbox: &Mailbox,
        id: MessageId,
        f: impl FnOnce(&MessageRef<'_>) -> R,
    ) -> Option<R> {
        let lock = self.inner.shards.get(shard_of(id))?;
        let now = self.inner.clock.now_ms();
        let h = self.inner.hash(mailbox.as_str());
        // The whole-mailbox cap reads every shard, so it comes before this shard's lock.
        if id.0 < self.cap_floor(mailbox, h, now) {
            return None;
        }
        let sh = lock.read();
        let seq = sh.find(h, mailbox, id.0, now)?;
        let (r, version) = sh.visible_versioned(seq, mailbox, now)?;
        let m = MessageRef::new(r, version, mailbox.as_str(), sh.raw_ref(r)?);
        Some(f(&m))
    }

    /// The whole message, with its raw bytes reassembled, if it is stored and not expired.
    pub fn get(&self, id: MessageId) -> Option<MessageView> {
        let sh = self.inner.shards.get(shard_of(id))?.read();
        let now = self.inner.clock.now_ms();
        let seq = sh
            .index
            .find_id(id.0)
            .find(|&s| sh.index.get(s).is_some_and(|e| e.linked()))?;
        let (r, version) = sh.versioned_at(sh.index.get(seq)?.loc)?;
        if r.expires_at_ms.to_native() <= now {
            return None;
        }
        let first = r.mailboxes.first().map_or("", |m| m.as_str());
        Some(MessageRef::new(r, version, first, sh.raw_ref(r)?).to_view())
    }

    /// Whether `mailbox` currently shows message `id` (for requests that act on a
    /// message without reading it; readers use [`Store::get_for`]).
    pub fn contains(&self, mailbox: &Mailbox, id: MessageId) -> bool {
        let Some(sh) = self.inner.shards.get(shard_of(id)) else {
            return false;
        };
        let now = self.inner.clock.now_ms();
        let h = self.inner.hash(mailbox.as_str());
        sh.read().find(h, mailbox, id.0, now).is_some() && id.0 >= self.cap_floor(mailbox, h, now)
    }

    /// The oldest id `mailbox` shows: its listing is the newest `mailbox_records_max`
    /// visible messages over all shards, so a mailbox whose mail arrives through several
    /// ingress cores (one shard each) keeps its cap as a whole, the newest kept. 0 while
    /// it shows fewer. Each shard's list is capped already, so this reads at most the
    /// cap per shard.
    pub(super) fn cap_floor(&self, mailbox: &Mailbox, h: u64, now: u64) -> u64 {
        let cap = self.inner.cfg.mailbox_records_max;
        if self.inner.shards.len() < 2 || cap == 0 {
            return 0;
        }
        let mut ids = Vec::new();
        for sh in &self.inner.shards {
            let sh = sh.read();
            ids.extend(
                sh.index
                    .list(h)
                    .into_iter()
                    .filter_map(|seq| sh.visible(seq, mailbox, now).map(|r| r.id.to_native())),
            );
        }
        if ids.len() <= cap {
            return 0;
        }
        let (_, nth, _) = ids.select_nth_unstable_by(cap - 1, |a, b| b.cmp(a));
        *nth
    }

    /// A snapshot of counters and gauges.
    pub fn stats(&self) -> StoreStats {
        let shards: Vec<_> = self.inner.shards.iter().map(|s| s.read().stats()).collect();
        let mut totals = Counters::default();
        for s in &shards {
            totals.add(&s.counters);
        }
        StoreStats {
            shards,
            totals,
            subscribers: self.inner.subscribers.load(Ordering::Relaxed) as u64,
            subscriber_events_lost: self.inner.events_lost.load(Ordering::Relaxed),
            syncs: self.inner.syncs.load(Ordering::Relaxed),
            journal_errors: self.inner.journal_errors.load(Ordering::Relaxed),
            recovery: self.inner.recovery.clone(),
        }
    }

    /// References held on a deduplicated part (diagnostics and tests).
    pub fn part_refs(&self, key: u64) -> u32 {
        self.inner
            .shards
            .iter()
            .map(|s| s.read().parts.refs(key))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::testing::put;
    use crate::address::Mailbox;
    use crate::clock::ManualClock;
    use crate::config::StoreConfig;
    use crate::frame;
    use crate::sink::MessageId;
    use crate::store::Store;

    // Goal: `get_for` serves a message only to a mailbox that shows it. Method: one store,
    // two mailboxes; read a message for its own mailbox, for the other one, for an unknown
    // id, then after the manual clock passes its expiry.
    #[test]
    fn get_for_serves_only_the_mailbox_that_shows_the_message() {
        let clock = ManualClock::new(1_000_000);
        let (store, mut w, _) =
            Store::open_with_clock(&StoreConfig::default(), 1, Arc::new(clock.clone()))
                .expect("open");
        let id = put(&mut w[0], "a@p.test", b"Subject: s\r\n\r\nbody-a\r\n");
        let a = Mailbox::parse("a@p.test").expect("valid");
        let b = Mailbox::parse("b@p.test").expect("valid");
        let view = store.get_for(&a, id).expect("own mailbox reads it");
        assert_eq!(view.raw, b"Subject: s\r\n\r\nbody-a\r\n");
        assert_eq!(view.summary.mailbox, "a@p.test");
        assert!(store.get_for(&b, id).is_none(), "another mailbox");
        assert!(
            store.get_for(&a, MessageId(id.0 + 1)).is_none(),
            "unknown id"
        );
        let borrowed = store.read_for(&a, id, |m| matches!(m.raw(), [b'S', ..]));
        assert_eq!(borrowed, Some(true));
        clock.advance(view.summary.expires_at_ms - 1_000_000);
        assert!(store.get_for(&a, id).is_none(), "expired");
    }

    // Goal: the listing shows From and Subject decoded at ingest, and a message without
    // From lists with an empty one. Method: store an encoded-word message and one without
    // From, list the mailbox, and read the stored record's fields directly.
    #[test]
    fn listing_shows_the_summary_decoded_at_ingest() {
        let (store, mut w, _) = Store::open(&StoreConfig::default(), 1).expect("open");
        let enc = put(
            &mut w[0],
            "a@p.test",
            b"From: =?utf-8?q?J=C3=BCrgen?= <j@x.test>\r\nSubject: =?utf-8?b?aMOkbGxv?=\r\n\r\nx\r\n",
        );
        let bare = put(&mut w[0], "a@p.test", b"Subject: no sender\r\n\r\nx\r\n");
        let a = Mailbox::parse("a@p.test").expect("valid");
        let listed = store.list(&a, None, 10);
        let by = |id| listed.iter().find(|s| s.id == id).expect("listed");
        assert_eq!(by(enc).from, "Jürgen <j@x.test>");
        assert_eq!(by(enc).subject, "hällo");
        assert_eq!(by(bare).from, "");
        assert_eq!(by(bare).subject, "no sender");
        let sh = store.inner.shards[0].read();
        let loc = sh
            .index
            .get(sh.index.find_id(enc.0).next().expect("entry"))
            .expect("e")
            .loc;
        let (r, version) = sh.versioned_at(loc).expect("record");
        assert_eq!(
            (r.headers.subject.as_str(), version),
            ("hällo", frame::FORMAT_VERSION)
        );
    }
}
