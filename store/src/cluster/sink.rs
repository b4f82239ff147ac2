//! The per-core write side in fleet mode: [`ClusterSink`] implements the ingress's
//! [`MessageSink`] with batched, pipelined cluster writes (the cluster's group commit).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Pipeline, Value};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::codec::Encoder;
use super::keys::MailboxKeys;
use super::parts::{self, JobParts, Part};
use super::{Ack, ClusterError, ClusterOptions, Health, Op, WriteStats};
use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::id::{IdGen, SHARDS_MAX};
use crate::sink::{Accepted, Commit, MessageId, MessageSink, NewMessage};

/// Messages one batch takes from the queue at most.
const BATCH_MAX: usize = 1024;

/// One accepted message waiting for its batch.
struct Job {
    frame: Vec<u8>,
    /// The shared parts its frame names, written before its records.
    parts: Vec<Part>,
    /// The listing fields its index entries carry (`codec::encode_summary`).
    summary: String,
    id: MessageId,
    now_ms: u64,
    keys: Vec<MailboxKeys>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Writes one ingress core's messages to the cluster; `Send`, never shared.
pub struct ClusterSink {
    tx: mpsc::Sender<Job>,
    opts: Arc<ClusterOptions>,
    health: Arc<Health>,
    ids: IdGen,
    enc: Encoder,
}

impl ClusterSink {
    /// Starts the core's writer task on `rt`.
    pub(crate) fn start(
        rt: &Handle,
        conn: ClusterConnection,
        opts: Arc<ClusterOptions>,
        stats: Arc<WriteStats>,
        health: Arc<Health>,
        core: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(opts.queue_max.max(1));
        let counters = (stats, Arc::clone(&health));
        rt.spawn(write_loop(rx, conn, Arc::clone(&opts), counters));
        let ids = IdGen::new(id_shard(&opts.node, core), 0);
        let enc = Encoder::new(opts.part_bytes_min);
        Self {
            tx,
            opts,
            health,
            ids,
            enc,
        }
    }
}

/// The id's shard bits: a hash of the node name and the core, so ids of different nodes
/// differ in most milliseconds without any coordination (FNV-1a, stable across builds).
fn id_shard(node: &str, core: usize) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in node.bytes().chain(core.to_le_bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize % SHARDS_MAX
}

impl MessageSink for ClusterSink {
    fn accept(&mut self, msg: &NewMessage<'_>) -> Result<Accepted, StoreError> {
        let n = msg.recipients.len();
        if n == 0 || n > self.opts.record_mailboxes_max {
            return Err(StoreError::Recipients {
                count: n,
                limit: self.opts.record_mailboxes_max,
            });
        }
        let keys: Vec<MailboxKeys> = msg.recipients.iter().map(MailboxKeys::of).collect();
        let now_ms = SystemClock.now_ms();
        let id = self.ids.next(now_ms);
        let expires = now_ms + self.opts.ttl_secs * 1000;
        let mut parts = Vec::new();
        let frame = self.enc.frame(msg, id, expires, &mut parts)?;
        if frame.len() > self.opts.record_bytes_max {
            let size = msg.trace_headers.len() + msg.body.len();
            return Err(StoreError::TooLarge {
                size,
                limit: size.saturating_sub(frame.len() - self.opts.record_bytes_max),
            });
        }
        let summary = super::codec::encode_summary(&self.enc.last_summary());
        let (done, rx) = oneshot::channel();
        let job = Job {
            frame,
            parts,
            summary,
            id,
            now_ms,
            keys,
            done,
        };
        self.tx.try_send(job).map_err(|e| {
            self.health.refused();
            match e {
                mpsc::error::TrySendError::Full(_) => ClusterError::Busy(self.opts.queue_max),
                mpsc::error::TrySendError::Closed(_) => ClusterError::Stopped,
            }
        })?;
        Ok(Accepted {
            id,
            commit: Commit::Pending(rx),
        })
    }
}

/// The core's group commit: wait for a message, take every message queued meanwhile, write
/// them as one batch, answer each, repeat. Messages arriving during a batch form the next.
async fn write_loop(
    mut rx: mpsc::Receiver<Job>,
    conn: ClusterConnection,
    opts: Arc<ClusterOptions>,
    (stats, health): (Arc<WriteStats>, Arc<Health>),
) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        let results = write_batch(&conn, &batch, &opts, &stats, &health).await;
        for (job, res) in batch.drain(..).zip(results) {
            if let Err(e) = &res {
                tracing::warn!(id = %job.id, error = %e, "cluster write failed");
                health.refused();
            }
            // The session may have given up waiting; then nobody needs the answer.
            let _ = job.done.send(res.map_err(StoreError::from));
        }
    }
}

/// Writes a batch: first the shared parts its messages name (`parts::write`; none for
/// most mail), then one pipeline per slot, all sent at once, then (with `replicas:N`) one
/// `WAIT` per slot that took its writes. Returns one result per job, in order.
async fn write_batch(
    conn: &ClusterConnection,
    batch: &[Job],
    opts: &ClusterOptions,
    stats: &WriteStats,
    health: &Health,
) -> Vec<Result<(), ClusterError>> {
    let shared: Vec<JobParts> = batch
        .iter()
        .map(|j| JobParts {
            parts: &j.parts,
            keys: &j.keys,
            now_ms: j.now_ms,
        })
        .collect();
    let parts_ok = parts::write(conn, &shared, opts).await;
    for e in parts_ok.iter().filter_map(|r| r.as_ref().err()) {
        health.error(Op::Write, e);
    }
    let mut groups: HashMap<Slot, Pipeline> = HashMap::new();
    let ttl_ms = opts.ttl_secs * 1000;
    for (job, _) in batch.iter().zip(&parts_ok).filter(|(_, ok)| ok.is_ok()) {
        let id = job.id.to_string();
        for k in &job.keys {
            let p = groups.entry(k.slot()).or_insert_with(redis::pipe);
            p.cmd("FCALL")
                .arg("tempmx_put")
                .arg(3)
                .arg(k.registry())
                .arg(k.index())
                .arg(k.record(job.id))
                .arg(&job.frame)
                .arg(&id)
                .arg(job.now_ms)
                .arg(ttl_ms)
                .arg(opts.mailbox_records_max)
                .arg(k.record_prefix())
                .arg(&job.summary);
            p.cmd("SPUBLISH").arg(k.channel()).arg(&id).ignore();
        }
    }
    let timeout = opts.timeout;
    stats.record(batch.len(), groups.len());
    let writes = groups.into_iter().map(|(slot, pipe)| {
        let mut c = conn.clone();
        async move {
            let res = tokio::time::timeout(timeout, pipe.query_async::<Vec<Value>>(&mut c)).await;
            (slot, flatten(res, timeout).map(drop))
        }
    });
    let mut slots: HashMap<Slot, Result<(), ClusterError>> =
        join_all(writes).await.into_iter().collect();
    for e in slots.values().filter_map(|r| r.as_ref().err()) {
        health.error(Op::Write, e);
    }
    if let Ack::Replicas(n) = opts.ack {
        let ok: Vec<Slot> = slots
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(s, _)| *s)
            .collect();
        let waits = ok.into_iter().map(|slot| {
            let c = conn.clone();
            async move { (slot, wait(c, slot, n, timeout).await) }
        });
        let waited = join_all(waits).await;
        for e in waited.iter().filter_map(|(_, r)| r.as_ref().err()) {
            health.error(Op::Wait, e);
        }
        slots.extend(waited);
    }
    batch
        .iter()
        .zip(parts_ok)
        .map(|(job, parts_ok)| {
            parts_ok?;
            job.keys
                .iter()
                .map(|k| {
                    slots
                        .get(&k.slot())
                        .cloned()
                        .unwrap_or(Err(ClusterError::Stopped))
                })
                .find(Result::is_err)
                .unwrap_or(Ok(()))
        })
        .collect()
}

/// `WAIT n` on the primary of `slot`; fewer than `n` replicas is an error.
pub(super) async fn wait(
    mut conn: ClusterConnection,
    slot: Slot,
    n: u32,
    timeout: Duration,
) -> Result<(), ClusterError> {
    let mut cmd = redis::cmd("WAIT");
    cmd.arg(n).arg(timeout.as_millis() as u64);
    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_slot(
        slot,
        SlotAddr::Master,
    )));
    // The server waits up to `timeout`; allow it one more deadline to answer.
    let res = tokio::time::timeout(timeout * 2, conn.route_command(cmd, route)).await;
    match flatten(res, timeout)? {
        Value::Int(got) if got >= i64::from(n) => Ok(()),
        Value::Int(got) => Err(ClusterError::NotReplicated { wanted: n, got }),
        _ => Err(ClusterError::NotReplicated { wanted: n, got: -1 }),
    }
}

/// A timed-out or failed command as one error.
pub(super) fn flatten<T>(
    res: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Result<T, ClusterError> {
    res.map_err(|_| ClusterError::Timeout(timeout))?
        .map_err(ClusterError::from)
}
