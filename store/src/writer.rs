//! The per-core write side: [`ShardWriter`] implements the ingress's [`MessageSink`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender};
use memmap2::MmapRaw;
use tokio::sync::oneshot;

use crate::config::{CommitPolicy, Persistence};
use crate::error::StoreError;
use crate::frame;
use crate::mime::{self, Scan};
use crate::parts::Interned;
use crate::record::{self, Chunk, HeaderSummary, MessageRecord, TlsRecord};
use crate::shard::Shard;
use crate::sink::{Accepted, Commit, MessageId, MessageSink, NewMessage};
use crate::store::Inner;

/// Commits queued for one group sync at most.
const BATCH_COMMITS_MAX: usize = 4096;

struct CommitReq {
    off: usize,
    len: usize,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Writes into one shard; one per ingress core, `Send` but not shared.
pub struct ShardWriter {
    inner: Arc<Inner>,
    shard: usize,
    commits: Option<Sender<CommitReq>>,
}

impl ShardWriter {
    pub(crate) fn new(inner: Arc<Inner>, shard: usize) -> Self {
        let cfg = &inner.cfg;
        let mapping = inner.shards[shard].read().arena.mapping();
        let commits = match (cfg.persistence, cfg.commit, mapping) {
            (Persistence::Disk, CommitPolicy::Batch, Some(map)) => {
                let (tx, rx) = channel::bounded(BATCH_COMMITS_MAX);
                let wait = Duration::from_micros(cfg.batch_wait_us);
                let inner2 = Arc::clone(&inner);
                std::thread::Builder::new()
                    .name(format!("store-commit-{shard}"))
                    .spawn(move || commit_loop(&rx, &map, wait, &inner2))
                    .ok()
                    .map(|_| tx)
            }
            _ => None,
        };
        Self {
            inner,
            shard,
            commits,
        }
    }

    /// The shard this writer owns.
    pub fn shard(&self) -> usize {
        self.shard
    }

    fn commit(&self, off: usize, len: usize, sh: &Shard) -> Result<Commit, StoreError> {
        let cfg = &self.inner.cfg;
        if cfg.persistence == Persistence::Memory || cfg.commit == CommitPolicy::None {
            return Ok(Commit::Done);
        }
        if cfg.commit == CommitPolicy::Always {
            sh.arena.sync(off, len)?;
            self.inner.syncs.fetch_add(1, Ordering::Relaxed);
            return Ok(Commit::Done);
        }
        let tx = self.commits.as_ref().ok_or(StoreError::CommitStopped)?;
        let (done, rx) = oneshot::channel();
        // A full queue blocks this core briefly: the commit thread drains it every batch.
        tx.send(CommitReq { off, len, done })
            .map_err(|_| StoreError::CommitStopped)?;
        Ok(Commit::Pending(rx))
    }
}

impl MessageSink for ShardWriter {
    fn accept(&mut self, msg: &NewMessage<'_>) -> Result<Accepted, StoreError> {
        let cfg = &self.inner.cfg;
        let n = msg.recipients.len();
        if n == 0 || n > cfg.record_mailboxes_max {
            return Err(StoreError::Recipients {
                count: n,
                limit: cfg.record_mailboxes_max,
            });
        }
        let part_min = if self.inner.dedup {
            cfg.dedup_part_bytes_min
        } else {
            0
        };
        let scan = mime::scan(msg.body, part_min);
        let mut rec = skeleton(msg, &scan);
        let size = msg.trace_headers.len() + msg.body.len();
        // Acceptance must not depend on dedup, so size the record as if all inline.
        let worst = frame::frame_bytes(record::encoded_bound(&rec) + size);
        let seg = self.inner.geometry.segment_bytes;
        if worst > seg {
            return Err(StoreError::TooLarge {
                size,
                limit: size.saturating_sub(worst - seg),
            });
        }
        let mboxes: Vec<u64> = msg.recipients.iter().map(|m| self.inner.hash(m)).collect();
        let now = self.inner.clock.now_ms();
        let mut sh = self.inner.shards[self.shard].write();
        rec.id = sh.ids.next(now).0;
        rec.expires_at_ms = now + sh.ttl_ms(msg.recipients, cfg.ttl_secs * 1000);
        let keys = chunk(&mut sh, msg, &scan, &mut rec.raw);
        let (off, len) = match sh.append(&rec, &mboxes, !keys.is_empty(), now) {
            Ok(r) => r,
            Err(e) => {
                keys.iter().for_each(|&k| sh.parts.release(k));
                return Err(e);
            }
        };
        sh.counters.multi_rcpt_bytes_saved += (size * (n - 1)) as u64;
        sh.publish(&rec, &mboxes, &self.inner.events_lost);
        let commit = self.commit(off, len, &sh)?;
        Ok(Accepted {
            id: MessageId(rec.id),
            commit,
        })
    }
}

/// The record without id, expiry and raw chunks (those need the shard lock).
fn skeleton(msg: &NewMessage<'_>, scan: &Scan) -> MessageRecord {
    MessageRecord {
        id: 0,
        received_at_ms: msg.received_at_ms,
        expires_at_ms: 0,
        mailboxes: msg.recipients.to_vec(),
        mail_from: msg.mail_from.to_string(),
        client_ip: msg.client_ip.to_string(),
        helo: msg.helo.to_string(),
        tls: msg.tls.map(|t| TlsRecord {
            version: t.version.clone(),
            cipher: t.cipher.clone(),
        }),
        auth: msg.auth.to_vec(),
        headers: HeaderSummary {
            from: scan.from.clone(),
            subject: scan.subject.clone(),
            date: scan.date.clone(),
            message_id: scan.message_id.clone(),
            size: (msg.trace_headers.len() + msg.body.len()) as u64,
            has_attachments: scan.has_attachments,
        },
        raw: Vec::new(),
    }
}

/// Splits the raw message into chunks, interning shareable parts; returns the part keys.
fn chunk(sh: &mut Shard, msg: &NewMessage<'_>, scan: &Scan, out: &mut Vec<Chunk>) -> Vec<u64> {
    let mut keys = Vec::new();
    let mut cur = msg.trace_headers.to_vec();
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
                if !cur.is_empty() {
                    out.push(Chunk::Inline(std::mem::take(&mut cur)));
                }
                out.push(Chunk::Shared {
                    key: k,
                    len: bytes.len() as u32,
                });
                keys.push(k);
            }
            None => cur.extend_from_slice(bytes),
        }
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(Chunk::Inline(cur));
    }
    keys
}

/// Group commit: wait for the first request, gather more for at most `wait`, sync once.
fn commit_loop(rx: &Receiver<CommitReq>, map: &MmapRaw, wait: Duration, inner: &Inner) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + wait;
        let mut batch = vec![first];
        while batch.len() < BATCH_COMMITS_MAX {
            match rx.recv_deadline(deadline) {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let lo = batch.iter().map(|r| r.off).min().unwrap_or(0);
        let hi = batch.iter().map(|r| r.off + r.len).max().unwrap_or(0);
        let res = map.flush_range(lo, hi - lo);
        inner.syncs.fetch_add(1, Ordering::Relaxed);
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
