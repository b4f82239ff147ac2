//! The shared store: opening, the read API for the HTTP side, deletion, subscriptions.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::address::Mailbox;
use crate::arena::Arena;
use crate::clock::{Clock, SystemClock};
use crate::config::{CommitPolicy, Persistence, StoreConfig};
use crate::error::StoreError;
use crate::id::shard_of;
use crate::journal::{Entry, Journal, Tombs};
use crate::parts::Parts;
use crate::recovery::recover;
use crate::shard::Shard;
use crate::sink::{MessageId, TlsSummary};
use crate::sizing::{self, Geometry};
use crate::stats::{Counters, RecoveryReport, StoreStats};
use crate::subscribe::{Queue, Subscription};
use crate::view::{MessageRef, MessageSummary, MessageView};
use crate::writer::ShardWriter;

/// State shared by the store handle, its writers and subscriptions.
pub(crate) struct Inner {
    pub(crate) shards: Vec<RwLock<Shard>>,
    pub(crate) cfg: StoreConfig,
    pub(crate) geometry: Geometry,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) dedup: bool,
    hasher: RandomState,
    subscribers: AtomicUsize,
    pub(crate) events_lost: AtomicU64,
    pub(crate) syncs: AtomicU64,
    /// Deletions and TTL overrides in `disk` mode (see `journal`).
    journal: Option<Mutex<Journal>>,
    journal_errors: AtomicU64,
    recovery: RecoveryReport,
}

impl Inner {
    /// Keyed hash of a mailbox (keys the index and subscriptions).
    pub(crate) fn hash(&self, mailbox: &str) -> u64 {
        self.hasher.hash_one(mailbox)
    }

    pub(crate) fn unsubscribe(&self, mbox: u64, q: &Arc<Queue>) {
        for sh in &self.shards {
            let mut sh = sh.write();
            if let Some(v) = sh.subs.get_mut(&mbox) {
                v.retain(|x| !Arc::ptr_eq(x, q));
                if v.is_empty() {
                    sh.subs.remove(&mbox);
                }
            }
        }
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Appends deletions to the journal in one write; a failure is logged and counted
    /// (the deletion already holds in memory, so the caller still reports it done).
    fn journal_delete(&self, entries: &[Entry]) {
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
    fn compact_journal(&self, j: &mut Journal) {
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
fn compact(
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

/// The message store. `Sync`: share it via `Arc` among readers; writes go through
/// the per-core [`ShardWriter`]s returned by [`Store::open`].
///
/// Who calls what: ingress cores call `MessageSink::accept` on their own writer; the HTTP
/// API calls `list`, `get_for` or `read_for`, `contains`, `delete_*` and `subscribe`; the control plane calls
/// `expire` on a timer (about once a second) so idle shards free expired segments, and
/// `set_mailbox_ttl`; `/metrics` calls `stats`. Expired messages are never served even
/// before `expire` runs.
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens a store with `shards` shards on the system clock.
    pub fn open(
        config: &StoreConfig,
        shards: usize,
    ) -> Result<(Arc<Store>, Vec<ShardWriter>, RecoveryReport), StoreError> {
        Self::open_with_clock(config, shards, Arc::new(SystemClock))
    }

    /// Opens a store on the given clock: validates the config (all errors at once),
    /// allocates every shard, and in `disk` mode recovers existing shard files.
    pub fn open_with_clock(
        config: &StoreConfig,
        shards: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<(Arc<Store>, Vec<ShardWriter>, RecoveryReport), StoreError> {
        config.validate(shards)?;
        let geometry = sizing::plan(config, shards)?;
        let hasher = RandomState::new();
        let mut report = RecoveryReport {
            shards: shards as u64,
            ..Default::default()
        };
        let (mut journal, tombs, ttls) = match (config.persistence, &config.dir) {
            (Persistence::Disk, Some(dir)) => {
                std::fs::create_dir_all(dir)?;
                let sync = config.commit != CommitPolicy::None;
                let (j, t, ttls) = Journal::open(dir, sync, &mut report)?;
                (Some(j), t, ttls)
            }
            _ => (None, Tombs::default(), HashMap::new()),
        };
        let mut built = Vec::with_capacity(shards);
        for i in 0..shards {
            built.push(open_shard(
                config,
                &geometry,
                i,
                &hasher,
                clock.as_ref(),
                &tombs,
                &mut report,
            )?);
        }
        let ttls = restore_ttls(config, ttls);
        for sh in &mut built {
            sh.ttl_overrides = ttls.clone();
        }
        if let Some(j) = &mut journal {
            let oldest: Vec<u64> = built.iter().map(Shard::oldest_id).collect();
            let maps: Vec<_> = built.iter().filter_map(|s| s.arena.mapping()).collect();
            compact(j, &oldest, &maps, &ttls, config.commit, clock.now_ms())?;
        }
        let inner = Arc::new(Inner {
            shards: built.into_iter().map(RwLock::new).collect(),
            cfg: config.clone(),
            geometry,
            dedup: sizing::dedup_enabled(config),
            clock,
            hasher,
            subscribers: AtomicUsize::new(0),
            events_lost: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            journal: journal.map(Mutex::new),
            journal_errors: AtomicU64::new(0),
            recovery: report.clone(),
        });
        let writers = (0..shards)
            .map(|i| ShardWriter::new(Arc::clone(&inner), i))
            .collect::<Result<_, _>>()?;
        tracing::info!(%report, segments = geometry.segments, segment_bytes = geometry.segment_bytes,
            entries = geometry.entries, "store opened");
        Ok((Arc::new(Store { inner }), writers, report))
    }

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
        Some(MessageView {
            summary: MessageSummary::from_frame(r, version, first),
            mailboxes: r.mailboxes.iter().map(|m| m.to_string()).collect(),
            mail_from: r.mail_from.to_string(),
            client_ip: r.client_ip.to_string(),
            helo: r.helo.to_string(),
            tls: r.tls.as_ref().map(|t| TlsSummary {
                version: t.version.to_string(),
                cipher: t.cipher.to_string(),
            }),
            raw: sh.raw_of(r)?,
        })
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
    fn cap_floor(&self, mailbox: &Mailbox, h: u64, now: u64) -> u64 {
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

    /// Subscribes to new messages of a mailbox.
    pub fn subscribe(&self, mailbox: &Mailbox) -> Result<Subscription, StoreError> {
        let max = self.inner.cfg.subscribers_max;
        if self.inner.subscribers.fetch_add(1, Ordering::Relaxed) >= max {
            self.inner.subscribers.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Subscribers(max));
        }
        let mbox = self.inner.hash(mailbox.as_str());
        let queue = Arc::new(Queue::new(
            mailbox.as_str(),
            self.inner.cfg.subscriber_queue_max,
        ));
        for sh in &self.inner.shards {
            sh.write()
                .subs
                .entry(mbox)
                .or_default()
                .push(Arc::clone(&queue));
        }
        Ok(Subscription {
            inner: Arc::clone(&self.inner),
            queue,
            mbox,
        })
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

fn open_shard(
    cfg: &StoreConfig,
    g: &Geometry,
    i: usize,
    hasher: &RandomState,
    clock: &dyn Clock,
    tombs: &Tombs,
    report: &mut RecoveryReport,
) -> Result<Shard, StoreError> {
    let len = g.arena_bytes();
    let (arena, existed) = match (cfg.persistence, &cfg.dir) {
        (Persistence::Disk, Some(dir)) => {
            std::fs::create_dir_all(dir)?;
            Arena::file(&shard_path(dir, i), len)?
        }
        _ => (Arena::heap(len)?, false),
    };
    // The part table is built here (file or heap), so the shard gets none of its own.
    let no_parts = Geometry {
        parts_bytes: 0,
        parts_max: 0,
        ..*g
    };
    let mut sh = Shard::new(i, arena, &no_parts, cfg.mailbox_records_max);
    let parts_existed = open_parts(cfg, g, i, &mut sh, report)?;
    if existed {
        report.shards_existing += 1;
        let hash = |m: &str| hasher.hash_one(m);
        recover(&mut sh, i, clock.now_ms(), &hash, tombs, report);
    } else {
        // A new shard file beside an old journal: ids stay above what its deletions name.
        sh.ids = crate::id::IdGen::new(i, tombs.last_id(i));
    }
    if parts_existed {
        finish_parts(cfg, &mut sh, report)?;
    }
    Ok(sh)
}

/// Gives the shard its part table: heap-backed in `memory` mode, the shard's parts file in
/// `disk` mode (scanned when it existed; returns whether it did). With dedup off, a parts
/// file left by an earlier configuration is removed: no record can use it any more
/// (recovery skips records that need a part), and its mail must not linger.
fn open_parts(
    cfg: &StoreConfig,
    g: &Geometry,
    i: usize,
    sh: &mut Shard,
    report: &mut RecoveryReport,
) -> Result<bool, StoreError> {
    let dir = match (cfg.persistence, &cfg.dir) {
        (Persistence::Disk, Some(dir)) => dir,
        _ => {
            sh.parts = Parts::new(g.parts_bytes, g.parts_max);
            return Ok(false);
        }
    };
    let path = parts_path(dir, i);
    if g.parts_bytes == 0 {
        if path.exists() {
            tracing::warn!(path = %path.display(), "store dedup is off; removing the old parts file");
            std::fs::remove_file(&path)?;
        }
        return Ok(false);
    }
    let (parts, existed) = Parts::file(&path, g.parts_bytes, g.parts_max)?;
    sh.parts = parts;
    if existed {
        sh.parts.scan(report);
    }
    Ok(existed)
}

/// Ends part recovery once the records hold their references: orphans and damage are
/// zeroed, and synced unless `commit = "none"` (deleted mail must not linger on disk).
fn finish_parts(
    cfg: &StoreConfig,
    sh: &mut Shard,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    let zeroed = sh.parts.finish_recovery(report);
    if zeroed
        && cfg.commit != CommitPolicy::None
        && let Some(m) = sh.parts.mapping()
    {
        m.flush()?;
    }
    Ok(())
}

/// The replayed TTL overrides as the current config allows them: capped at `ttl_secs_max`
/// and at `ttl_overrides_max` entries (the longest kept, as a message would get them).
fn restore_ttls(cfg: &StoreConfig, ttls: HashMap<String, u64>) -> HashMap<String, u64> {
    let max_ms = cfg.ttl_secs_max * 1000;
    let mut all: Vec<(String, u64)> = ttls
        .into_iter()
        .map(|(m, ms)| (m, ms.clamp(1000, max_ms)))
        .collect();
    if all.len() > cfg.ttl_overrides_max {
        tracing::warn!(
            found = all.len(),
            max = cfg.ttl_overrides_max,
            "store journal holds more TTL overrides than store.ttl_overrides_max; keeping the longest"
        );
        all.sort_unstable_by_key(|(_, ms)| std::cmp::Reverse(*ms));
        all.truncate(cfg.ttl_overrides_max);
    }
    all.into_iter().collect()
}

/// File of shard `i` under the store directory.
pub fn shard_path(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(format!("shard-{i:03}.tmx"))
}

/// Deduplicated-parts file of shard `i` under the store directory (see `parts`).
pub fn parts_path(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(format!("parts-{i:03}.tmx"))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::clock::ManualClock;
    use crate::frame;
    use crate::sink::{MessageSink, NewMessage};

    fn put(w: &mut ShardWriter, rcpt: &str, body: &[u8]) -> MessageId {
        put_to(w, Mailbox::parse(rcpt).expect("test address"), body)
    }

    /// Stores `body` for one recipient taken as it is (it may be an unfolded legacy one).
    fn put_to(w: &mut ShardWriter, rcpt: Mailbox, body: &[u8]) -> MessageId {
        let r = [rcpt];
        let m = NewMessage {
            received_at_ms: 0,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            helo: "h",
            mail_from: "s@x.test",
            recipients: &r,
            tls: None,
            trace_headers: b"",
            auth: &[],
            body,
        };
        w.accept(&m).expect("accept").id
    }

    fn arena_has(store: &Store, needle: &[u8]) -> bool {
        store.inner.shards.iter().any(|s| {
            s.read()
                .arena
                .bytes()
                .windows(needle.len())
                .any(|w| w == needle)
        })
    }

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

    // Goal: records written before local parts were folded (an upper-case recipient on
    // disk) load into the folded mailbox: listed, contained and deletable under it, and the
    // deletion survives a restart. Method: a disk store, a record whose recipient text is
    // unfolded, reopen, read and delete through the folded mailbox, reopen again.
    #[test]
    fn unfolded_records_load_into_their_mailbox() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = StoreConfig {
            persistence: Persistence::Disk,
            dir: Some(dir.path().to_path_buf()),
            commit: CommitPolicy::Always,
            memory_bytes_max: 4 * (64 << 10) + (128 << 10),
            segment_bytes: 64 << 10,
            index_entries_per_mib: 8192,
            dedup_bytes_max: 0,
            ..StoreConfig::default()
        };
        let legacy = Mailbox::unfolded("Legacy.User@pool.test");
        let folded = Mailbox::parse("legacy.user@pool.test").expect("valid");
        let id = {
            let (_, mut w, _) = Store::open(&cfg, 1).expect("open");
            put_to(&mut w[0], legacy, b"Subject: old\r\n\r\nx\r\n")
        };
        let (store, _, _) = Store::open(&cfg, 1).expect("reopen");
        let listed: Vec<MessageId> = store.list(&folded, None, 10).iter().map(|s| s.id).collect();
        assert_eq!(listed, [id]);
        assert!(store.contains(&folded, id));
        assert!(store.delete_message(&folded, id));
        drop(store);
        let (store, _, _) = Store::open(&cfg, 1).expect("reopen again");
        assert!(store.list(&folded, None, 10).is_empty());
    }

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

    // Goal: records of format version 2 (summary stored undecoded) still load and list
    // decoded. Method: a disk store with one record, rewritten on disk as a version 2
    // frame holding the raw encoded words, then reopened, listed and read.
    #[test]
    fn version_2_records_load_and_list_decoded() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = StoreConfig {
            persistence: Persistence::Disk,
            dir: Some(dir.path().to_path_buf()),
            commit: CommitPolicy::Always,
            memory_bytes_max: 4 * (64 << 10) + (128 << 10),
            segment_bytes: 64 << 10,
            index_entries_per_mib: 8192,
            dedup_bytes_max: 0,
            ..StoreConfig::default()
        };
        let id = {
            let (_, mut w, _) = Store::open(&cfg, 1).expect("open");
            put(
                &mut w[0],
                "a@p.test",
                b"Subject: =?utf-8?b?aMOkbGxv?=\r\n\r\nx\r\n",
            )
        };
        let path = shard_path(dir.path(), 0);
        let mut file = std::fs::read(&path).expect("shard file");
        let at = (0..file.len())
            .step_by(16)
            .find(|&o| file[o..o + 4] == frame::MAGIC)
            .expect("a frame");
        let h = frame::decode(file[at..at + 16].try_into().expect("16"), 1 << 16).expect("h");
        let mut payload = rkyv::util::AlignedVec::<16>::new();
        payload.extend_from_slice(&file[at + 16..at + 16 + h.len as usize]);
        let mut rec =
            crate::record::to_owned(crate::record::access_checked(&payload).expect("valid"))
                .expect("owned");
        rec.headers.from = "=?utf-8?q?J=C3=BCrgen?= <j@x.test>".into();
        rec.headers.subject = "=?utf-8?b?aMOkbGxv?=".into();
        let mut out = rkyv::util::AlignedVec::<16>::new();
        out.resize(crate::record::encoded_bound(&rec), 0);
        let n = crate::record::encode_into(&rec, &mut out).expect("encode");
        let header = frame::encode(&frame::Header {
            len: n as u32,
            crc: frame::checksum(&out[..n]),
            kind: frame::FrameKind::Record,
            version: 2,
        });
        let end = at + frame::frame_bytes(n.max(h.len as usize));
        file[at..end].fill(0);
        file[at..at + 16].copy_from_slice(&header);
        file[at + 16..at + 16 + n].copy_from_slice(&out[..n]);
        std::fs::write(&path, &file).expect("rewrite");
        let (store, _, report) = Store::open(&cfg, 1).expect("reopen");
        assert_eq!(report.records_skipped, 0, "{report}");
        let a = Mailbox::parse("a@p.test").expect("valid");
        let listed = store.list(&a, None, 10);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        assert_eq!(listed[0].from, "Jürgen <j@x.test>");
        assert_eq!(listed[0].subject, "hällo");
        let view = store.get_for(&a, id).expect("readable");
        assert_eq!(view.summary.subject, "hällo");
        assert_eq!(view.raw, b"Subject: =?utf-8?b?aMOkbGxv?=\r\n\r\nx\r\n");
    }
}
