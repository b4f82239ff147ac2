//! Opening the store: validating the config, sizing and allocating every shard, and in
//! `disk` mode recovering the shard files, the part tables and the journal.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use parking_lot::{Mutex, RwLock};

use super::Store;
use super::journaled::compact;
use crate::arena::Arena;
use crate::clock::{Clock, SystemClock};
use crate::config::{CommitPolicy, Persistence, StoreConfig};
use crate::error::StoreError;
use crate::journal::{Journal, Tombs};
use crate::parts::Parts;
use crate::recovery::recover;
use crate::shard::Shard;
use crate::shared::Inner;
use crate::sizing::{self, Geometry};
use crate::stats::RecoveryReport;
use crate::writer::ShardWriter;

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

    use super::super::testing::{put, put_to};
    use super::shard_path;
    use crate::address::Mailbox;
    use crate::config::{CommitPolicy, Persistence, StoreConfig};
    use crate::frame;
    use crate::sink::MessageId;
    use crate::store::Store;

    /// A small disk store in `dir` that syncs every commit, without dedup.
    fn small_disk(dir: &std::path::Path) -> StoreConfig {
        StoreConfig {
            persistence: Persistence::Disk,
            dir: Some(dir.to_path_buf()),
            commit: CommitPolicy::Always,
            memory_bytes_max: 4 * (64 << 10) + (128 << 10),
            segment_bytes: 64 << 10,
            index_entries_per_mib: 8192,
            dedup_bytes_max: 0,
            ..StoreConfig::default()
        }
    }

    // Goal: records written before local parts were folded (an upper-case recipient on
    // disk) load into the folded mailbox: listed, contained and deletable under it, and the
    // deletion survives a restart. Method: a disk store, a record whose recipient text is
    // unfolded, reopen, read and delete through the folded mailbox, reopen again.
    #[test]
    fn unfolded_records_load_into_their_mailbox() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = small_disk(dir.path());
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

    // Goal: records of format version 2 (summary stored undecoded) still load and list
    // decoded. Method: a disk store with one record, rewritten on disk as a version 2
    // frame holding the raw encoded words, then reopened, listed and read.
    #[test]
    fn version_2_records_load_and_list_decoded() {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = small_disk(dir.path());
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
