//! The journal of a disk store: user deletions and per-mailbox TTL overrides.
//!
//! Records live in the shard files, but two changes are not a record: deleting one
//! mailbox's copy of a message that other mailboxes still reference (the frame must stay,
//! so nothing in the segment can say it), and a mailbox's TTL override. Both go to one
//! append-only file, [`FILE`] in the store directory, replayed at open before the shards
//! are recovered. Deletions and overrides are rare next to appends, so one file behind one
//! mutex, synced per change (unless `commit = "none"`), costs the write path nothing.
//!
//! Entry framing (entries are parsed into owned values, never read in place, so no
//! alignment):
//!
//! ```text
//! 0..4   magic  b"TMXJ"
//! 4..8   payload length (u32 LE)
//! 8..12  CRC32C of bytes 12..16 followed by the payload
//! 12..14 journal version (u16 LE)
//! 14     kind: 1 delete message, 2 delete mailbox, 3 set TTL, 4 clear TTL
//! 15     reserved, 0
//! ```
//!
//! Payloads: kind 1 `id u64 | mailbox`; kind 2 `upto_id u64 | shard u16 | mailbox`
//! (every record of that shard with an id up to `upto_id`: a mailbox deletion, or the
//! mailbox's cap floor written with a message deletion); kind 3 `ttl_ms u64 | mailbox`;
//! kind 4 `mailbox`. Integers are little-endian, the mailbox is the rest of the payload.
//!
//! Replay never panics: an entry that fails any check is skipped and counted, and the scan
//! resumes at the next magic that starts a valid entry (a torn tail simply ends the file).
//!
//! Bounds: a deletion is live while its record may still be in the ring (its id is not
//! older than the shard's oldest record), an override while it is set. The file is
//! rewritten with only live entries (compaction) at open, when it grows past twice its
//! size after the last compaction (at least [`COMPACT_BYTES_MIN`]), and from
//! `Store::expire` once segments were recycled past a deletion (at most once a minute). So
//! it stays below `max(COMPACT_BYTES_MIN, 2 * live)`, with live entries bounded by the
//! mailbox references the ring can hold plus `ttl_overrides_max`, each at most
//! `ENTRY_BYTES_MAX`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::address::fold_stored;
use crate::id::shard_of;
use crate::sink::MessageId;
use crate::stats::RecoveryReport;

/// File name of the journal inside the store directory.
pub const FILE: &str = "journal.tmx";
const MAGIC: [u8; 4] = *b"TMXJ";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 16;
/// Longest mailbox an entry carries (RFC 5321 paths are at most 256 octets).
pub const MAILBOX_BYTES_MAX: usize = 512;
// Every mailbox fits an entry, so a deletion is never refused for its length.
const _: () = assert!(crate::address::ADDRESS_BYTES_MAX <= MAILBOX_BYTES_MAX);
/// Largest entry on disk.
pub const ENTRY_BYTES_MAX: usize = HEADER_BYTES + 10 + MAILBOX_BYTES_MAX;
/// The file is never compacted below this size (compaction costs a rewrite and syncs).
pub const COMPACT_BYTES_MIN: u64 = 1 << 20;
/// Least time between compactions started by `Store::expire`.
pub const COMPACT_INTERVAL_MS: u64 = 60_000;

/// One journal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// One mailbox's copy of one message was deleted.
    DeleteMessage { id: u64, mailbox: String },
    /// Every copy in `shard` for `mailbox` with an id up to `upto_id` was deleted (the
    /// mailbox was), or is hidden (the cap's floor after a deletion in the mailbox).
    DeleteMailbox {
        shard: u16,
        upto_id: u64,
        mailbox: String,
    },
    /// New messages for `mailbox` live `ttl_ms`.
    TtlSet { mailbox: String, ttl_ms: u64 },
    /// `mailbox` has no override any more.
    TtlClear { mailbox: String },
}

impl Entry {
    fn mailbox(&self) -> &str {
        match self {
            Entry::DeleteMessage { mailbox, .. }
            | Entry::DeleteMailbox { mailbox, .. }
            | Entry::TtlSet { mailbox, .. }
            | Entry::TtlClear { mailbox } => mailbox,
        }
    }

    /// Appends the framed entry to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[0; 12]);
        let kind = match self {
            Entry::DeleteMessage { id, .. } => {
                out.extend_from_slice(&id.to_le_bytes());
                1
            }
            Entry::DeleteMailbox { shard, upto_id, .. } => {
                out.extend_from_slice(&upto_id.to_le_bytes());
                out.extend_from_slice(&shard.to_le_bytes());
                2
            }
            Entry::TtlSet { ttl_ms, .. } => {
                out.extend_from_slice(&ttl_ms.to_le_bytes());
                3
            }
            Entry::TtlClear { .. } => 4,
        };
        out.extend_from_slice(self.mailbox().as_bytes());
        let len = (out.len() - start - HEADER_BYTES) as u32;
        out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
        out[start + 12..start + 14].copy_from_slice(&VERSION.to_le_bytes());
        out[start + 14] = kind;
        let crc = crate::crc::crc32c_append(
            crate::crc::crc32c(&out[start + 12..start + 16]),
            &out[start + HEADER_BYTES..],
        );
        out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes the entry at the start of `b`; returns it and its length on disk.
    fn decode(b: &[u8]) -> Option<(Entry, usize)> {
        let head: &[u8; HEADER_BYTES] = b.get(..HEADER_BYTES)?.try_into().ok()?;
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let len = word(4) as usize;
        if head[0..4] != MAGIC
            || u16::from_le_bytes([head[12], head[13]]) != VERSION
            || head[15] != 0
            || len > ENTRY_BYTES_MAX - HEADER_BYTES
        {
            return None;
        }
        let payload = b.get(HEADER_BYTES..HEADER_BYTES + len)?;
        if crate::crc::crc32c_append(crate::crc::crc32c(&head[12..16]), payload) != word(8) {
            return None;
        }
        let num = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                payload.get(at..at + 8)?.try_into().ok()?,
            ))
        };
        let text = |at: usize| -> Option<String> {
            let s = std::str::from_utf8(payload.get(at..)?).ok()?;
            (!s.is_empty() && s.len() <= MAILBOX_BYTES_MAX).then(|| s.to_string())
        };
        let e = match head[14] {
            1 => Entry::DeleteMessage {
                id: num(0)?,
                mailbox: text(8)?,
            },
            2 => Entry::DeleteMailbox {
                upto_id: num(0)?,
                shard: u16::from_le_bytes(payload.get(8..10)?.try_into().ok()?),
                mailbox: text(10)?,
            },
            3 => Entry::TtlSet {
                ttl_ms: num(0)?,
                mailbox: text(8)?,
            },
            4 => Entry::TtlClear { mailbox: text(0)? },
            _ => return None,
        };
        Some((e, HEADER_BYTES + len))
    }
}

/// What a replay found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) entries: Vec<Entry>,
    /// Regions that did not decode (torn or corrupt entries).
    pub(crate) skipped: u64,
    /// Bytes in those regions.
    pub(crate) bytes_skipped: u64,
}

/// Decodes every valid entry of a journal file's bytes, skipping damaged regions.
pub(crate) fn parse(b: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    let mut off = 0;
    while off < b.len() {
        if let Some((e, n)) = Entry::decode(&b[off..]) {
            out.entries.push(e);
            off += n;
            continue;
        }
        // Resynchronise at the next magic that starts a valid entry, or give up the rest.
        let next = (off + 1..b.len())
            .filter(|&i| b[i..].starts_with(&MAGIC))
            .find(|&i| Entry::decode(&b[i..]).is_some())
            .unwrap_or(b.len());
        out.skipped += 1;
        out.bytes_skipped += (next - off) as u64;
        off = next;
    }
    out
}

/// Deleted copies of one mailbox.
#[derive(Clone, Debug, Default)]
struct Deleted {
    /// Exact message ids.
    ids: Vec<u64>,
    /// `(shard, upto_id)`: whole-mailbox deletions.
    cuts: Vec<(u16, u64)>,
}

/// The live deletions, keyed by mailbox.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tombs {
    by_mailbox: HashMap<String, Deleted>,
}

impl Tombs {
    /// Whether `mailbox`'s copy of record `id` in `shard` was deleted.
    pub(crate) fn hides(&self, shard: usize, id: u64, mailbox: &str) -> bool {
        self.by_mailbox.get(mailbox).is_some_and(|d| {
            d.ids.contains(&id)
                || d.cuts
                    .iter()
                    .any(|&(s, up)| s as usize == shard && id <= up)
        })
    }

    /// The highest id of `shard` a deletion names: ids handed out after a restart must be
    /// above it, or new mail could fall under an old deletion.
    pub(crate) fn last_id(&self, shard: usize) -> u64 {
        self.by_mailbox
            .values()
            .flat_map(|d| {
                let ids = d
                    .ids
                    .iter()
                    .copied()
                    .filter(move |&id| shard_of(MessageId(id)) == shard);
                let cuts = d
                    .cuts
                    .iter()
                    .filter(move |&&(s, _)| s as usize == shard)
                    .map(|&(_, up)| up);
                ids.chain(cuts)
            })
            .max()
            .unwrap_or(0)
    }

    fn apply(&mut self, e: &Entry) {
        match e {
            Entry::DeleteMessage { id, mailbox } => {
                let d = self
                    .by_mailbox
                    .entry(fold_stored(mailbox).into_owned())
                    .or_default();
                if !d.ids.contains(id) {
                    d.ids.push(*id);
                }
            }
            Entry::DeleteMailbox {
                shard,
                upto_id,
                mailbox,
            } => {
                let d = self
                    .by_mailbox
                    .entry(fold_stored(mailbox).into_owned())
                    .or_default();
                match d.cuts.iter_mut().find(|(s, _)| s == shard) {
                    Some(c) => c.1 = c.1.max(*upto_id),
                    None => d.cuts.push((*shard, *upto_id)),
                }
                // Exact deletions the cut covers are redundant.
                d.ids
                    .retain(|&id| shard_of(MessageId(id)) != *shard as usize || id > *upto_id);
            }
            Entry::TtlSet { .. } | Entry::TtlClear { .. } => {}
        }
    }

    /// Drops deletions of records older than their shard's oldest (`oldest[shard]`);
    /// returns how many were dropped.
    fn prune(&mut self, oldest: &[u64]) -> usize {
        let live = |shard: usize, id: u64| oldest.get(shard).is_some_and(|&o| id >= o);
        let mut dropped = 0;
        self.by_mailbox.retain(|_, d| {
            let before = d.ids.len() + d.cuts.len();
            d.ids.retain(|&id| live(shard_of(MessageId(id)), id));
            d.cuts.retain(|&(s, up)| live(s as usize, up));
            dropped += before - d.ids.len() - d.cuts.len();
            !(d.ids.is_empty() && d.cuts.is_empty())
        });
        dropped
    }

    /// Whether any deletion is of a record older than its shard's oldest.
    fn any_dead(&self, oldest: &[u64]) -> bool {
        let dead = |shard: usize, id: u64| oldest.get(shard).is_none_or(|&o| id < o);
        self.by_mailbox.values().any(|d| {
            d.ids.iter().any(|&id| dead(shard_of(MessageId(id)), id))
                || d.cuts.iter().any(|&(s, up)| dead(s as usize, up))
        })
    }

    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.by_mailbox.iter().flat_map(|(m, d)| {
            let ids = d.ids.iter().map(|&id| Entry::DeleteMessage {
                id,
                mailbox: m.clone(),
            });
            let cuts = d.cuts.iter().map(|&(shard, upto_id)| Entry::DeleteMailbox {
                shard,
                upto_id,
                mailbox: m.clone(),
            });
            ids.chain(cuts)
        })
    }

    fn is_empty(&self) -> bool {
        self.by_mailbox.is_empty()
    }
}

/// The open journal of a disk store.
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    sync: bool,
    bytes: u64,
    compact_at: u64,
    last_compact_ms: u64,
    tombs: Tombs,
    scratch: Vec<u8>,
}

/// Path of the journal under the store directory.
pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and replays it: returns the journal, the
    /// deletions to apply during shard recovery and the TTL overrides (ms) to install.
    pub(crate) fn open(
        dir: &Path,
        sync: bool,
        rep: &mut RecoveryReport,
    ) -> std::io::Result<(Self, Tombs, HashMap<String, u64>)> {
        let path = journal_path(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let parsed = parse(&bytes);
        rep.journal_entries += parsed.entries.len() as u64;
        rep.journal_skipped += parsed.skipped;
        if parsed.skipped > 0 {
            tracing::warn!(
                regions = parsed.skipped,
                bytes = parsed.bytes_skipped,
                "store journal: damaged entries skipped"
            );
        }
        let mut tombs = Tombs::default();
        let mut ttls = HashMap::new();
        for e in &parsed.entries {
            tombs.apply(e);
            match e {
                Entry::TtlSet { mailbox, ttl_ms } => {
                    ttls.insert(fold_stored(mailbox).into_owned(), *ttl_ms);
                }
                Entry::TtlClear { mailbox } => {
                    ttls.remove(fold_stored(mailbox).as_ref());
                }
                Entry::DeleteMessage { .. } | Entry::DeleteMailbox { .. } => {}
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let j = Self {
            path,
            file,
            sync,
            bytes: bytes.len() as u64,
            compact_at: COMPACT_BYTES_MIN,
            last_compact_ms: 0,
            tombs: tombs.clone(),
            scratch: Vec::with_capacity(ENTRY_BYTES_MAX),
        };
        Ok((j, tombs, ttls))
    }

    /// Appends entries with one write (synced unless the commit policy is `none`), so a
    /// crash keeps all of them or a prefix.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        if let Some(e) = entries
            .iter()
            .find(|e| e.mailbox().len() > MAILBOX_BYTES_MAX || e.mailbox().is_empty())
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "mailbox address of {} bytes too long for the store journal",
                    e.mailbox().len()
                ),
            ));
        }
        self.scratch.clear();
        entries.iter().for_each(|e| e.encode(&mut self.scratch));
        self.file.write_all(&self.scratch)?;
        if self.sync {
            self.file.sync_data()?;
        }
        self.bytes += self.scratch.len() as u64;
        entries.iter().for_each(|e| self.tombs.apply(e));
        Ok(())
    }

    /// Whether the file has grown enough to be rewritten.
    pub(crate) fn due(&self) -> bool {
        self.bytes > self.compact_at
    }

    /// Whether `expire` should compact: some deletion is dead and the last compaction was
    /// at least [`COMPACT_INTERVAL_MS`] ago.
    pub(crate) fn due_after_recycling(&self, oldest: &[u64], now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_compact_ms) >= COMPACT_INTERVAL_MS
            && !self.tombs.is_empty()
            && self.tombs.any_dead(oldest)
    }

    /// Whether compacting with `oldest` would drop any deletion (the caller must then make
    /// the shard files durable first, so a dropped deletion cannot resurrect its record).
    pub(crate) fn would_drop(&self, oldest: &[u64]) -> bool {
        self.tombs.any_dead(oldest)
    }

    /// Rewrites the file with the live deletions and `ttls` (mailbox → ms), atomically.
    pub(crate) fn compact(
        &mut self,
        oldest: &[u64],
        ttls: &HashMap<String, u64>,
        now_ms: u64,
    ) -> std::io::Result<()> {
        self.tombs.prune(oldest);
        let mut buf = Vec::new();
        for e in self.tombs.entries() {
            e.encode(&mut buf);
        }
        for (mailbox, &ttl_ms) in ttls {
            Entry::TtlSet {
                mailbox: mailbox.clone(),
                ttl_ms,
            }
            .encode(&mut buf);
        }
        let tmp = self.path.with_extension("tmx.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            if self.sync {
                f.sync_all()?;
            }
        }
        std::fs::rename(&tmp, &self.path)?;
        if self.sync
            && let Some(dir) = self.path.parent()
        {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.bytes = buf.len() as u64;
        self.compact_at = COMPACT_BYTES_MIN.max(2 * self.bytes);
        self.last_compact_ms = now_ms;
        tracing::debug!(bytes = self.bytes, "store journal compacted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn samples() -> Vec<Entry> {
        vec![
            Entry::DeleteMessage {
                id: (7 << 20) | (1 << 12),
                mailbox: "a@x.test".into(),
            },
            Entry::DeleteMailbox {
                shard: 1,
                upto_id: 9 << 20,
                mailbox: "b@x.test".into(),
            },
            Entry::TtlSet {
                mailbox: "c@x.test".into(),
                ttl_ms: 120_000,
            },
            Entry::TtlClear {
                mailbox: "c@x.test".into(),
            },
        ]
    }

    #[test]
    fn entries_round_trip_and_torn_tail_is_skipped() {
        // Goal: every kind round-trips; a torn last entry is skipped and counted, the rest kept.
        let mut b = Vec::new();
        samples().iter().for_each(|e| e.encode(&mut b));
        assert_eq!(parse(&b).entries, samples());
        for cut in 1..ENTRY_BYTES_MAX.min(20) {
            let p = parse(&b[..b.len() - cut]);
            assert_eq!(p.entries, samples()[..3].to_vec(), "cut {cut}");
            assert_eq!(p.skipped, 1);
        }
    }

    #[test]
    fn corrupt_middle_entry_is_skipped_and_replay_resumes() {
        // Goal: a flipped byte costs only its own entry; garbage never panics.
        let mut b = Vec::new();
        samples().iter().for_each(|e| e.encode(&mut b));
        let first_len = {
            let mut one = Vec::new();
            samples()[0].encode(&mut one);
            one.len()
        };
        b[first_len + HEADER_BYTES + 2] ^= 0x10;
        let p = parse(&b);
        assert_eq!(p.skipped, 1);
        let mut want = samples();
        want.remove(1);
        assert_eq!(p.entries, want);
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert!(parse(&junk).entries.is_empty());
        }
    }

    #[test]
    fn tombs_hide_prune_and_cuts_subsume_ids() {
        // Goal: exact and whole-mailbox deletions hide the right copies; pruning drops only
        // deletions older than their shard's oldest record.
        let id = |ms: u64, shard: u64| (ms << 20) | (shard << 12);
        let mut t = Tombs::default();
        t.apply(&Entry::DeleteMessage {
            id: id(5, 0),
            mailbox: "a@x.test".into(),
        });
        t.apply(&Entry::DeleteMessage {
            id: id(6, 1),
            mailbox: "a@x.test".into(),
        });
        t.apply(&Entry::DeleteMailbox {
            shard: 1,
            upto_id: id(8, 1),
            mailbox: "a@x.test".into(),
        });
        assert!(t.hides(0, id(5, 0), "a@x.test"));
        assert!(!t.hides(0, id(5, 0), "b@x.test"));
        assert!(!t.hides(0, id(6, 0), "a@x.test"));
        assert!(t.hides(1, id(7, 1), "a@x.test"));
        assert!(!t.hides(1, id(9, 1), "a@x.test"));
        assert_eq!(
            t.entries().count(),
            2,
            "the cut covers the exact id in shard 1"
        );
        assert_eq!(
            (t.last_id(0), t.last_id(1), t.last_id(2)),
            (id(5, 0), id(8, 1), 0)
        );
        assert!(!t.any_dead(&[id(5, 0), id(8, 1)]));
        assert!(t.any_dead(&[id(6, 0), 0]));
        assert_eq!(t.prune(&[id(6, 0), 0]), 1);
        assert!(!t.hides(0, id(5, 0), "a@x.test"));
        assert!(t.hides(1, id(7, 1), "a@x.test"));
    }

    proptest! {
        // Goal: a journal of arbitrary bytes never panics the replay, and valid entries
        // written after the damage are all found (replay resynchronises on them).
        #[test]
        fn arbitrary_bytes_before_valid_entries(junk in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut b = junk.clone();
            samples().iter().for_each(|e| e.encode(&mut b));
            let p = parse(&b);
            prop_assert_eq!(p.entries, samples());
            prop_assert_eq!(p.skipped, u64::from(!junk.is_empty()));
            prop_assert_eq!(p.bytes_skipped, junk.len() as u64);
            let _ = parse(&junk);
        }
    }
}
