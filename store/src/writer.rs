//! The per-core write side: [`ShardWriter`] implements the ingress's [`MessageSink`].

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender};
use memmap2::MmapRaw;
use rkyv::ser::allocator::Arena as SerArena;
use tokio::sync::oneshot;

use crate::config::{CommitPolicy, Persistence};
use crate::error::StoreError;
use crate::frame;
use crate::mime::{self, Scan};
use crate::parts::Interned;
use crate::record::{self, ChunkPlan, MessageRecord, RecordSource, TlsRecord};
use crate::shard::Shard;
use crate::shared::Inner;
use crate::sink::{Accepted, Commit, MessageId, MessageSink, NewMessage};
use crate::summary;

/// Commits queued for one group sync at most.
const BATCH_COMMITS_MAX: usize = 4096;

struct CommitReq {
    off: usize,
    len: usize,
    /// Part frames the record references that are not yet synced: `(offset, length)`.
    parts: Option<(usize, usize)>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Writes into one shard; one per ingress core, `Send` but not shared.
pub struct ShardWriter {
    inner: Arc<Inner>,
    shard: usize,
    commits: Option<Sender<CommitReq>>,
    scratch: Scratch,
}

/// Per-append working memory kept between appends, so a warm write path does not
/// allocate: the record being built (its `raw` stays empty: `plan` says where the chunks
/// are in the message), its mailbox keys, the MIME scan and the serializer's memory.
#[derive(Default)]
struct Scratch {
    rec: MessageRecord,
    plan: Vec<ChunkPlan>,
    mboxes: Vec<u64>,
    keys: Vec<u64>,
    scan: Scan,
    /// The address `rec.client_ip` holds in text (a connection sends many messages).
    ip: Option<std::net::IpAddr>,
    ser: SerArena,
}

impl ShardWriter {
    /// A writer of `shard`; in `disk` mode with `batch` commits it starts the shard's
    /// group-commit thread, and failing to start it is an error (see
    /// [`StoreError::CommitSpawn`]).
    pub(crate) fn new(inner: Arc<Inner>, shard: usize) -> Result<Self, StoreError> {
        let cfg = &inner.cfg;
        let (mapping, parts_map) = {
            let sh = inner.shards[shard].read();
            (sh.arena.mapping(), sh.parts.mapping())
        };
        let commits = match (cfg.persistence, cfg.commit, mapping) {
            (Persistence::Disk, CommitPolicy::Batch, Some(map)) => {
                let maps = Maps {
                    records: map,
                    parts: parts_map,
                };
                let (tx, rx) = channel::bounded(BATCH_COMMITS_MAX);
                let wait = Duration::from_micros(cfg.batch_wait_us);
                let inner2 = Arc::clone(&inner);
                std::thread::Builder::new()
                    .name(format!("store-commit-{shard}"))
                    .spawn(move || commit_loop(&rx, &maps, wait, &inner2))
                    .map_err(|source| StoreError::CommitSpawn { shard, source })?;
                Some(tx)
            }
            _ => None,
        };
        Ok(Self {
            inner,
            shard,
            commits,
            scratch: Scratch::default(),
        })
    }

    /// The shard this writer owns.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Makes the record at `off..off+len` durable under the commit policy, together with
    /// the part frames written for it: a record may only be acknowledged once the parts
    /// it names are durable too.
    fn commit(&self, off: usize, len: usize, sh: &mut Shard) -> Result<Commit, StoreError> {
        let cfg = &self.inner.cfg;
        let parts = sh.parts.take_dirty();
        if cfg.persistence == Persistence::Memory || cfg.commit == CommitPolicy::None {
            return Ok(Commit::Done);
        }
        if cfg.commit == CommitPolicy::Always {
            if let Some((p_off, p_len)) = parts {
                sh.parts.sync(p_off, p_len)?;
                self.inner.syncs.fetch_add(1, Ordering::Relaxed);
            }
            sh.arena.sync(off, len)?;
            self.inner.syncs.fetch_add(1, Ordering::Relaxed);
            return Ok(Commit::Done);
        }
        let tx = self.commits.as_ref().ok_or(StoreError::CommitStopped)?;
        let (done, rx) = oneshot::channel();
        // A full queue blocks this core briefly: the commit thread drains it every batch.
        tx.send(CommitReq {
            off,
            len,
            parts,
            done,
        })
        .map_err(|_| StoreError::CommitStopped)?;
        Ok(Commit::Pending(rx))
    }
}

impl MessageSink for ShardWriter {
    fn accept(&mut self, msg: &NewMessage<'_>) -> Result<Accepted, StoreError> {
        let inner = &*self.inner;
        let cfg = &inner.cfg;
        let n = msg.recipients.len();
        if n == 0 || n > cfg.record_mailboxes_max {
            return Err(StoreError::Recipients {
                count: n,
                limit: cfg.record_mailboxes_max,
            });
        }
        let part_min = if inner.dedup {
            cfg.dedup_part_bytes_min
        } else {
            0
        };
        let sc = &mut self.scratch;
        mime::scan_into(msg.body, part_min, &mut sc.scan);
        fill(&mut sc.rec, msg, &mut sc.scan);
        if sc.ip != Some(msg.client_ip) {
            sc.rec.client_ip.clear();
            // Writing to a String cannot fail.
            let _ = write!(sc.rec.client_ip, "{}", msg.client_ip);
            sc.ip = Some(msg.client_ip);
        }
        let size = msg.trace_headers.len() + msg.body.len();
        // Acceptance must not depend on dedup, so size the record as if all inline.
        let worst = frame::frame_bytes(record::encoded_bound(&sc.rec) + size);
        let seg = inner.geometry.segment_bytes;
        if worst > seg {
            return Err(StoreError::TooLarge {
                size,
                limit: size.saturating_sub(worst - seg),
            });
        }
        sc.mboxes.clear();
        sc.mboxes
            .extend(msg.recipients.iter().map(|m| inner.hash(m.as_str())));
        let now = inner.clock.now_ms();
        let mut sh = inner.shards[self.shard].write();
        sc.rec.id = sh.ids.next(now).0;
        sc.rec.expires_at_ms = now + sh.ttl_ms(msg.recipients, cfg.ttl_secs * 1000);
        plan(&mut sh, msg, &sc.scan, &mut sc.plan, &mut sc.keys);
        let src = RecordSource {
            rec: &sc.rec,
            trace: msg.trace_headers,
            body: msg.body,
            plan: &sc.plan,
        };
        let has_parts = !sc.keys.is_empty();
        let (off, len) = match sh.append(&src, &mut sc.ser, &sc.mboxes, has_parts, now) {
            Ok(r) => r,
            Err(e) => {
                sc.keys.iter().for_each(|&k| sh.parts.release(k));
                return Err(e);
            }
        };
        sh.counters.multi_rcpt_bytes_saved += (size * (n - 1)) as u64;
        sh.publish(&sc.rec, &sc.mboxes, &inner.events_lost);
        let id = MessageId(sc.rec.id);
        let commit = self.commit(off, len, &mut sh)?;
        Ok(Accepted { id, commit })
    }
}

/// Fills the record except id, expiry, raw chunks (planned separately, under the shard
/// lock) and the client IP (cached by the caller), reusing its buffers; the summary
/// strings are swapped out of `scan`.
pub(crate) fn fill(rec: &mut MessageRecord, msg: &NewMessage<'_>, scan: &mut Scan) {
    rec.id = 0;
    rec.received_at_ms = msg.received_at_ms;
    rec.expires_at_ms = 0;
    rec.mailboxes.truncate(msg.recipients.len());
    let held = rec.mailboxes.len();
    for (d, s) in rec.mailboxes.iter_mut().zip(msg.recipients) {
        set(d, s.as_str());
    }
    rec.mailboxes
        .extend(msg.recipients[held..].iter().map(|m| m.to_string()));
    set(&mut rec.mail_from, msg.mail_from);
    set(&mut rec.helo, msg.helo);
    match (msg.tls, &mut rec.tls) {
        (Some(t), Some(r)) => {
            set(&mut r.version, &t.version);
            set(&mut r.cipher, &t.cipher);
        }
        (t, r) => {
            *r = t.map(|t| TlsRecord {
                version: t.version.clone(),
                cipher: t.cipher.clone(),
            })
        }
    }
    clone_into_vec(&mut rec.auth, msg.auth);
    let h = &mut rec.headers;
    std::mem::swap(&mut h.from, &mut scan.from);
    std::mem::swap(&mut h.subject, &mut scan.subject);
    std::mem::swap(&mut h.date, &mut scan.date);
    std::mem::swap(&mut h.message_id, &mut scan.message_id);
    summary::decode_in_place(&mut h.from, &mut h.subject);
    h.size = (msg.trace_headers.len() + msg.body.len()) as u64;
    h.has_attachments = scan.has_attachments;
}

fn set(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}

/// `dst = src.to_vec()`, reusing the allocations `dst` already holds.
fn clone_into_vec<T: Clone>(dst: &mut Vec<T>, src: &[T]) {
    dst.truncate(src.len());
    let held = dst.len();
    dst.iter_mut().zip(src).for_each(|(d, s)| d.clone_from(s));
    dst.extend_from_slice(&src[held..]);
}

/// Plans the raw message's chunks into `out`, interning shareable parts (their keys go to
/// `keys`). Inline chunks are ranges of the message, copied only when encoded.
fn plan(
    sh: &mut Shard,
    msg: &NewMessage<'_>,
    scan: &Scan,
    out: &mut Vec<ChunkPlan>,
    keys: &mut Vec<u64>,
) {
    keys.clear();
    out.clear();
    // The pending inline chunk: the trace headers while not yet placed, then the body range
    // since the last shared part (pieces cover the body in order, so it is contiguous).
    let mut trace = !msg.trace_headers.is_empty();
    let mut cur = 0..0;
    for p in &scan.pieces {
        let bytes = &msg.body[p.range.clone()];
        let key = if p.shared {
            match sh.parts.intern(bytes) {
                Interned::New(k) => Some(k),
                Interned::Hit(k) => {
                    sh.counters.dedup_bytes_saved += bytes.len() as u64;
                    Some(k)
                }
                Interned::Inline => None,
            }
        } else {
            None
        };
        match key {
            Some(k) => {
                if trace || !cur.is_empty() {
                    out.push(ChunkPlan::Inline {
                        trace,
                        body: std::mem::replace(&mut cur, 0..0),
                    });
                    trace = false;
                }
                out.push(ChunkPlan::Shared {
                    key: k,
                    len: bytes.len() as u32,
                });
                keys.push(k);
            }
            None if cur.is_empty() => cur = p.range.clone(),
            None => cur.end = p.range.end,
        }
    }
    if trace || !cur.is_empty() || out.is_empty() {
        out.push(ChunkPlan::Inline { trace, body: cur });
    }
}

/// The mappings a shard's commit thread syncs.
struct Maps {
    records: Arc<MmapRaw>,
    /// The parts file, when dedup is on.
    parts: Option<Arc<MmapRaw>>,
}

/// Group commit: wait for the first request, take every request already queued (and, with
/// a `wait`, those arriving until it ends), then sync the part frames the batch references
/// and the batch's records (one sync each) before answering any of them. Requests that
/// arrive during the sync form the next batch.
fn commit_loop(rx: &Receiver<CommitReq>, maps: &Maps, wait: Duration, inner: &Inner) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + wait;
        let mut batch = vec![first];
        while batch.len() < BATCH_COMMITS_MAX {
            let next = if wait.is_zero() {
                rx.try_recv().ok()
            } else {
                rx.recv_deadline(deadline).ok()
            };
            match next {
                Some(r) => batch.push(r),
                None => break,
            }
        }
        let res = sync_parts(&batch, maps, inner).and_then(|()| {
            let lo = batch.iter().map(|r| r.off).min().unwrap_or(0);
            let hi = batch.iter().map(|r| r.off + r.len).max().unwrap_or(0);
            inner.syncs.fetch_add(1, Ordering::Relaxed);
            maps.records.flush_range(lo, hi - lo)
        });
        if let Err(e) = &res {
            tracing::error!(error = %e, "store group commit failed");
        }
        for r in batch {
            let out = res
                .as_ref()
                .map(|_| ())
                .map_err(|e| StoreError::Io(std::io::Error::new(e.kind(), e.to_string())));
            let _ = r.done.send(out);
        }
    }
}

/// Syncs the span of part frames a batch of commits references, if any.
fn sync_parts(batch: &[CommitReq], maps: &Maps, inner: &Inner) -> std::io::Result<()> {
    let (Some(map), Some(lo)) = (
        &maps.parts,
        batch.iter().filter_map(|r| r.parts.map(|p| p.0)).min(),
    ) else {
        return Ok(());
    };
    let hi = batch
        .iter()
        .filter_map(|r| r.parts.map(|(o, l)| o + l))
        .max()
        .unwrap_or(lo);
    inner.syncs.fetch_add(1, Ordering::Relaxed);
    map.flush_range(lo, hi - lo)
}
