//! The per-core write side in fleet mode: [`ClusterSink`] implements the ingress's
//! [`MessageSink`] with batched, pipelined cluster writes (the cluster's group commit):
//! one pipeline per primary per batch, grouped with the [`SlotMap`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use parking_lot::RwLock;
use redis::Value;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::codec::Encoder;
use super::functions::{Function, fcall};
use super::keys::MailboxKeys;
use super::parts::{self, JobParts, Part};
use super::push::ANNOUNCE_FRAME_BYTES_MAX;
use super::routing::SlotMap;
use super::{Ack, ClusterError, ClusterOptions, Health, Op, WriteStats};
use crate::address::Mailbox;
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

/// The largest frame of `job` its announcement may carry: none when it names shared
/// parts, which a subscriber has to read anyway.
fn carried_bytes_max(job: &Job) -> usize {
    if job.parts.is_empty() {
        ANNOUNCE_FRAME_BYTES_MAX
    } else {
        0
    }
}

/// A message the cluster acknowledged and those of its recipients that have webhooks.
pub type Hooked = (MessageId, Vec<Mailbox>);

/// Where the sinks hand over acknowledged messages whose recipients have webhooks (the
/// write reply says which do), so nothing is spent per message on mailboxes without.
#[derive(Clone, Debug)]
pub struct HookFeed {
    tx: mpsc::Sender<Hooked>,
    dropped: Arc<AtomicU64>,
}

impl HookFeed {
    /// A feed holding up to `pending_max` messages, and its receiving end.
    pub fn new(pending_max: usize) -> (Self, mpsc::Receiver<Hooked>) {
        let (tx, rx) = mpsc::channel(pending_max.max(1));
        let feed = Self {
            tx,
            dropped: Arc::default(),
        };
        (feed, rx)
    }

    /// Messages not handed over because the feed was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Hands `hooked` over without waiting; a full feed drops it and counts it.
    fn hand_over(&self, hooked: Hooked) {
        if self.tx.try_send(hooked).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
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
    pub(crate) fn start(rt: &Handle, writer: Writer, core: usize) -> Self {
        let (tx, rx) = mpsc::channel(writer.opts.queue_max.max(1));
        let opts = Arc::clone(&writer.opts);
        let health = Arc::clone(&writer.health);
        rt.spawn(writer.run(rx));
        let ids = IdGen::new(id_shard(&opts.node, core), 0);
        let enc = Encoder::new(opts.part_bytes_min, opts.compress);
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
        // The record as readers hold it, not as compressed: the limit bounds their memory.
        let record = self.enc.last_record_bytes();
        if record > self.opts.record_bytes_max {
            let size = msg.trace_headers.len() + msg.body.len();
            return Err(StoreError::TooLarge {
                size,
                limit: size.saturating_sub(record - self.opts.record_bytes_max),
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

/// What a core's writer task writes with; the cluster's shared parts.
pub(crate) struct Writer {
    pub(crate) conn: ClusterConnection,
    pub(crate) map: Arc<RwLock<SlotMap>>,
    pub(crate) opts: Arc<ClusterOptions>,
    pub(crate) stats: Arc<WriteStats>,
    pub(crate) health: Arc<Health>,
    pub(crate) feed: Option<HookFeed>,
}

/// One mailbox write of a batch: key `key` of job `job`, in `slot`.
#[derive(Clone, Copy)]
struct Unit {
    job: usize,
    key: usize,
    slot: Slot,
}

/// A stored mailbox write: whether the mailbox has webhooks, and the record's expiry.
#[derive(Clone, Copy)]
struct Stored {
    hooked: bool,
    expiry_ms: u64,
}

/// A mailbox write's outcome.
type Put = Result<Stored, ClusterError>;

/// The error Redis gives a pipeline command that never ran.
fn not_run() -> ClusterError {
    ClusterError::Command(redis::RedisError::from((
        redis::ErrorKind::Client,
        "no reply for this command",
    )))
}

impl Writer {
    /// The core's group commit: wait for a message, take every message queued meanwhile,
    /// write them as one batch, answer each, repeat. Messages arriving during a batch
    /// form the next.
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(BATCH_MAX);
        while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
            let results = self.write_batch(&batch).await;
            for (job, res) in batch.drain(..).zip(results) {
                let res = match res {
                    Ok(hooked) => {
                        self.hand_over(&job, &hooked);
                        Ok(())
                    }
                    Err(e) => {
                        tracing::warn!(id = %job.id, error = %e, "cluster write failed");
                        self.health.refused();
                        Err(StoreError::from(e))
                    }
                };
                // The session may have given up waiting; then nobody needs the answer.
                let _ = job.done.send(res);
            }
        }
    }

    /// Hands an acknowledged job's recipients that have webhooks to the feed (if any).
    fn hand_over(&self, job: &Job, hooked: &[bool]) {
        let Some(feed) = &self.feed else { return };
        if !hooked.contains(&true) {
            return;
        }
        let mailboxes = job
            .keys
            .iter()
            .zip(hooked)
            .filter(|(_, h)| **h)
            .filter_map(|(k, _)| Mailbox::parse(k.address()).ok())
            .collect();
        feed.hand_over((job.id, mailboxes));
    }

    /// Writes a batch: first the shared parts its messages name (`parts::write`, one
    /// round; none for most mail), then one pipeline per primary (by the slot map), all
    /// sent at once; the writes of a pipeline that failed as a whole (a moved slot, a lost
    /// connection) are sent again once, one pipeline per slot, after the map is read
    /// again; then the parts a record outlives are moved later (`parts::extend`, only
    /// with a longer TTL override) and (with `replicas:N`) one `WAIT` per primary that
    /// took writes. The writes share the write deadline; each `WAIT` has the write
    /// timeout of its own (`wait`). Returns one result per job, in order:
    /// per recipient, whether it has webhooks.
    async fn write_batch(&self, batch: &[Job]) -> Vec<Result<Vec<bool>, ClusterError>> {
        let deadline = Instant::now() + self.opts.timeout;
        let shared: Vec<JobParts> = batch
            .iter()
            .map(|j| JobParts {
                parts: &j.parts,
                now_ms: j.now_ms,
            })
            .collect();
        let written = parts::write(&self.conn, &self.map, &shared, &self.opts).await;
        self.stats.parts(written.rounds);
        for e in written.results.iter().filter_map(|r| r.as_ref().err()) {
            self.health.error(Op::Write, e);
        }
        let parts_ok = written.results;
        // A message whose parts failed writes nothing else.
        let units: Vec<Unit> = batch
            .iter()
            .enumerate()
            .filter(|(job, _)| parts_ok[*job].is_ok())
            .flat_map(|(job, j)| {
                j.keys.iter().enumerate().map(move |(key, k)| Unit {
                    job,
                    key,
                    slot: k.slot(),
                })
            })
            .collect();
        let mut puts: Vec<Put> = vec![Err(not_run()); units.len()];
        let groups = self.by_primary(&units);
        self.stats.record(batch.len(), groups.len());
        let again = self
            .send_groups(batch, &units, &groups, &mut puts, deadline, false)
            .await;
        if !again.is_empty() {
            self.retry(batch, &units, &again, &mut puts, deadline).await;
        }
        // What is on the primaries now: a WAIT that falls short below turns writes into
        // errors without removing them, so they must be unwound with the rest.
        let stored: Vec<bool> = puts.iter().map(Result::is_ok).collect();
        // Per job with parts and every record stored, its latest record expiry: the
        // parts it names must live that long.
        let mut records: Vec<Option<u64>> = batch
            .iter()
            .zip(&parts_ok)
            .map(|(j, ok)| (ok.is_ok() && !j.parts.is_empty()).then_some(0))
            .collect();
        for (u, put) in units.iter().zip(&puts) {
            let rec = &mut records[u.job];
            match put {
                Ok(s) => *rec = rec.map(|r| r.max(s.expiry_ms)),
                Err(_) => *rec = None,
            }
        }
        let kept = parts::extend(
            &self.conn,
            &self.map,
            &shared,
            &records,
            &written.expiry,
            &self.opts,
        );
        let kept = if let Ack::Replicas(n) = self.opts.ack {
            let (kept, ()) = tokio::join!(kept, self.wait(&units, &mut puts, n));
            kept
        } else {
            kept.await
        };
        let mut results: Vec<Result<Vec<bool>, ClusterError>> = parts_ok
            .into_iter()
            .zip(kept)
            .zip(batch)
            .map(|((parts_ok, kept), j)| {
                if let Err(e) = &kept {
                    self.health.error(Op::Write, e);
                }
                parts_ok
                    .and(kept)
                    .map(|()| Vec::with_capacity(j.keys.len()))
            })
            .collect();
        for (u, put) in units.iter().zip(puts) {
            let res = &mut results[u.job];
            match (res.as_mut(), put) {
                (Ok(hooked), Ok(s)) => hooked.push(s.hooked),
                (Ok(_), Err(e)) => *res = Err(e),
                (Err(_), _) => {}
            }
        }
        let stranded: Vec<Unit> = units
            .iter()
            .zip(stored)
            .filter(|(u, stored)| *stored && results[u.job].is_err())
            .map(|(u, _)| *u)
            .collect();
        if !stranded.is_empty() {
            self.unwind(batch, &stranded).await;
        }
        results
    }

    /// Removes the records of messages refused (451) after some of their writes were
    /// stored: a refusal leaves nothing behind, so the sender's retry does not show twice,
    /// and no record outlives shared parts that could not be kept as long. Best effort: a
    /// record left behind is logged.
    async fn unwind(&self, batch: &[Job], stranded: &[Unit]) {
        let removals = stranded.iter().map(|u| {
            let job = &batch[u.job];
            let k = &job.keys[u.key];
            let cmd = fcall(Function::Remove)
                .arg(2)
                .arg(k.index())
                .arg(k.record(job.id))
                .arg(job.id.to_string())
                .to_owned();
            let mut c = self.conn.clone();
            let timeout = self.opts.timeout;
            async move { tokio::time::timeout(timeout, cmd.query_async::<i64>(&mut c)).await }
        });
        for (u, res) in stranded.iter().zip(join_all(removals).await) {
            if let Err(e) = flatten(res, self.opts.timeout) {
                self.health.error(Op::Write, &e);
                tracing::warn!(
                    error = %e,
                    id = %batch[u.job].id,
                    "a record of a refused message could not be removed"
                );
            }
        }
    }

    /// `units` (indexes) grouped by the primary the slot map gives their slot; slots the
    /// map does not know go one group per slot.
    fn by_primary(&self, units: &[Unit]) -> Vec<Vec<usize>> {
        let map = self.map.read();
        let mut groups: HashMap<Result<&str, Slot>, Vec<usize>> = HashMap::new();
        for (i, u) in units.iter().enumerate() {
            let at = map.primary(u.slot).ok_or(u.slot);
            groups.entry(at).or_default().push(i);
        }
        groups.into_values().collect()
    }

    /// Sends the writes of `group` (indexes into `units`, all on one primary) as one
    /// pipeline of `FCALL tempmx_put`, which also announces each record. `again`: this
    /// is the retry, where a `TAKEN` reply may be the first attempt's own write. The
    /// pipeline as a whole fails when any command in it was redirected.
    async fn send(
        &self,
        batch: &[Job],
        units: &[Unit],
        group: &[usize],
        deadline: Instant,
        again: bool,
    ) -> Result<Vec<Put>, ClusterError> {
        let ttl_ms = self.opts.ttl_secs * 1000;
        let mut pipe = redis::pipe();
        for &i in group {
            let u = units[i];
            let job = &batch[u.job];
            let k = &job.keys[u.key];
            let id = job.id.to_string();
            pipe.add_command(fcall(Function::Put))
                .arg(4)
                .arg(k.registry())
                .arg(k.index())
                .arg(k.record(job.id))
                .arg(k.hooks())
                .arg(&job.frame)
                .arg(&id)
                .arg(job.now_ms)
                .arg(ttl_ms)
                .arg(self.opts.mailbox_records_max)
                .arg(k.record_prefix())
                .arg(&job.summary)
                .arg(k.channel())
                .arg(carried_bytes_max(job));
        }
        let Some(&first) = group.first() else {
            return Ok(Vec::new());
        };
        let route = master(units[first].slot);
        let mut conn = self.conn.clone();
        let count = group.len();
        let timeout = deadline.saturating_duration_since(Instant::now());
        let res = tokio::time::timeout(timeout, conn.route_pipeline(pipe, 0, count, route)).await;
        let replies = flatten(res, self.opts.timeout)?;
        let mut puts = Vec::with_capacity(group.len());
        let mut replies = replies.into_iter();
        for &i in group {
            let put = match replies.next() {
                Some(v) => put_reply(v),
                None => Err(not_run()),
            };
            let put = match put {
                Err(e) if again && is_taken(&e) => {
                    self.ours(&batch[units[i].job], units[i], e, deadline).await
                }
                Err(e) if !is_taken(&e) => {
                    self.health.error(Op::Write, &e);
                    Err(e)
                }
                p => p,
            };
            puts.push(put);
        }
        Ok(puts)
    }

    /// Reads the map again, then sends the writes `again` (indexes into `units`) once
    /// more, one pipeline per slot (redis-rs follows `MOVED` and `ASK` for those).
    async fn retry(
        &self,
        batch: &[Job],
        units: &[Unit],
        again: &[usize],
        puts: &mut [Put],
        deadline: Instant,
    ) {
        let mut conn = self.conn.clone();
        let timeout = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(timeout, SlotMap::fetch(&mut conn)).await {
            Ok(Ok(map)) => *self.map.write() = map,
            Ok(Err(e)) => tracing::warn!(error = %e, "reading the cluster's slot map failed"),
            Err(_) => return,
        }
        let mut slots: HashMap<Slot, Vec<usize>> = HashMap::new();
        for &i in again {
            slots.entry(units[i].slot).or_default().push(i);
        }
        self.stats.retried(slots.len());
        let groups: Vec<Vec<usize>> = slots.into_values().collect();
        self.send_groups(batch, units, &groups, puts, deadline, true)
            .await;
    }

    /// Sends `groups` (one pipeline each) at once and records each write's outcome in
    /// `puts`; returns the writes of the pipelines that failed as a whole.
    async fn send_groups(
        &self,
        batch: &[Job],
        units: &[Unit],
        groups: &[Vec<usize>],
        puts: &mut [Put],
        deadline: Instant,
        again: bool,
    ) -> Vec<usize> {
        let sent = groups
            .iter()
            .map(|g| self.send(batch, units, g, deadline, again));
        let mut failed = Vec::new();
        for (g, res) in groups.iter().zip(join_all(sent).await) {
            match res {
                Ok(got) => g.iter().zip(got).for_each(|(&u, p)| puts[u] = p),
                Err(e) => {
                    self.health.error(Op::Write, &e);
                    g.iter().for_each(|&u| puts[u] = Err(e.clone()));
                    failed.extend_from_slice(g);
                }
            }
        }
        failed
    }

    /// Whether a `TAKEN` record of the retry is the first attempt's write of `job` (its
    /// frame header, with the frame's length and CRC, is the stored one's); then the
    /// write stands, with the mailbox's webhooks as they are now. Otherwise `taken`.
    async fn ours(&self, job: &Job, u: Unit, taken: ClusterError, deadline: Instant) -> Put {
        let k = &job.keys[u.key];
        let mut pipe = redis::pipe();
        pipe.cmd("GETRANGE").arg(k.record(job.id)).arg(0).arg(15);
        pipe.cmd("EXISTS").arg(k.hooks());
        pipe.cmd("PEXPIRETIME").arg(k.record(job.id));
        let mut conn = self.conn.clone();
        let timeout = deadline.saturating_duration_since(Instant::now());
        let res =
            tokio::time::timeout(timeout, conn.route_pipeline(pipe, 0, 3, master(u.slot))).await;
        match flatten(res, self.opts.timeout).as_deref() {
            Ok([Value::BulkString(head), Value::Int(hooks), Value::Int(exp)])
                if job.frame.get(..16) == Some(&head[..]) && *exp > 0 =>
            {
                Ok(Stored {
                    hooked: *hooks > 0,
                    expiry_ms: *exp as u64,
                })
            }
            _ => Err(taken),
        }
    }

    /// `WAIT n` once per primary that took writes of the batch (by the slot map now);
    /// the writes of a primary whose WAIT fell short become errors.
    async fn wait(&self, units: &[Unit], puts: &mut [Put], n: u32) {
        let stored: Vec<usize> = (0..units.len()).filter(|&i| puts[i].is_ok()).collect();
        let groups = self.by_primary(&stored.iter().map(|&i| units[i]).collect::<Vec<_>>());
        let timeout = self.opts.timeout;
        let waits = groups.iter().map(|g| {
            let slot = units[stored[g[0]]].slot;
            wait(self.conn.clone(), slot, n, timeout)
        });
        for (g, res) in groups.iter().zip(join_all(waits).await) {
            if let Err(e) = res {
                self.health.error(Op::Wait, &e);
                g.iter().for_each(|&i| puts[stored[i]] = Err(e.clone()));
            }
        }
    }
}

/// Routes to the primary of `slot`.
pub(super) fn master(slot: Slot) -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::SpecificNode(Route::with_slot(slot, SlotAddr::Master))
}

/// A `tempmx_put` reply: `{expiry ms, 1 if the mailbox has webhooks}`.
fn put_reply(v: Value) -> Put {
    let (exp, hooked) = match v {
        Value::Array(f) => (
            f.first().cloned(),
            matches!(f.get(1), Some(Value::Int(h)) if *h > 0),
        ),
        Value::ServerError(e) => return Err(ClusterError::Command(e.into())),
        _ => (None, false),
    };
    match exp {
        Some(Value::Int(e)) if e > 0 => Ok(Stored {
            hooked,
            expiry_ms: e as u64,
        }),
        _ => Err(ClusterError::Command(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "tempmx_put answered no expiry",
        )))),
    }
}

/// Whether `e` is `tempmx_put`'s refusal of a record id already stored in the mailbox.
fn is_taken(e: &ClusterError) -> bool {
    matches!(e, ClusterError::Command(r) if r.code() == Some("TAKEN"))
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
    let route = RoutingInfo::SingleNode(master(slot));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_replies_carry_the_records_expiry() {
        // Goal: the record's expiry and webhooks flag are read from the `{expiry, hooks}`
        // reply; any other reply is an error (its parts could not be kept long enough).
        // Method: feed `put_reply` each shape of reply.
        let got = put_reply(Value::Array(vec![Value::Int(5_000), Value::Int(0)])).expect("ok");
        assert_eq!((got.expiry_ms, got.hooked), (5_000, false));
        let got = put_reply(Value::Array(vec![Value::Int(7), Value::Int(1)])).expect("ok");
        assert_eq!((got.expiry_ms, got.hooked), (7, true));
        assert!(put_reply(Value::Int(9_000)).is_err());
        assert!(put_reply(Value::Nil).is_err());
        assert!(put_reply(Value::Array(vec![])).is_err());
    }
}
