//! Fleet mode's backend: mailboxes and messages in a Redis Cluster (Redis 7.0 commands
//! only), shared by every appliance of a fleet.
//!
//! # Key layout
//! Every key of mailbox `M` (the normalised `local@domain` of [`Mailbox`]) starts with
//! `tmx:{M}`, so the whole address is the hash tag and all of them are in one slot: one
//! primary answers for the mailbox and a mailbox's writes are one atomic call.
//!
//! | key | type | holds | expiry |
//! |---|---|---|---|
//! | `tmx:{M}:reg` | hash | `th` token hash (32 bytes), `exp` ms, `ttl` s (0 = default), `cap` (0 = default) | the mailbox's expiry |
//! | `tmx:{M}:idx` | list | `<id 16 hex>:<expiry ms>:<summary JSON>` (older nodes wrote no summary; readers fetch the record then), newest first, at most the cap | the newest record's expiry |
//! | `tmx:{M}:m:<id 16 hex>` | string | one frame: 16-byte header (magic, length, CRC32C of the record, format version, kind) + archived record, as on a shard's arena, or (kind 3, `compress`) the record's length and its LZ4 block, checked against the CRC after decompression; its raw chunks are inline bytes or references (content key, length) to shared parts | the record's expiry |
//! | `tmx:{p:<key 16 hex>}` | string | a shared part: 24-byte header (`TMXP`, length, CRC32C of the data, version, key) + the data (version 1) or its LZ4 block (version 2, `compress`); the key is the first 64 bits of the data's SHA-256; the hash tag `p:<key>` puts each part in a slot of its own | the latest expiry of the records naming it, or of their default TTL if later |
//! | `tmx:{M}:mt` | hash | mail.tm account: `id`, `ph` password hash, `at` created ms, `reg` registry token hash it belongs to, `t:<token sha256 hex>` issue ms, `s:<id>` seen marks | the mailbox's expiry |
//! | `tmx:{M}:wh` | hash | webhooks: id -> JSON registration | the mailbox's expiry |
//! | `tmx:{gs:<sid>}:s` | hash | Guerrilla Mail session: `a` address, `o` owns (0/1), `t` since s | `api.ttl_secs_max` after its last change |
//! | `tmx:{M}:ch` | shard channel | each new record, announced by `tempmx_put`: `<id> <expiry ms>`, plus ` <frame>` (the stored value) when it is at most 16 KiB and the channel has subscribers | none |
//! | `tmx:{M}:ev` | shard channel | mail.tm seen/delete events (JSON-LD message) | none |
//! | `tmx:{fleet}:nodes` | hash | node name -> `<version> <last heartbeat ms>` | none (a day's silence drops the entry) |
//! | `tmx:{fleet}:up:<node>` | string | the same value | the node's heartbeat TTL |
//! | `tmx:{fleet}:pool` | hash | domain -> lifecycle state (`deleted` once deleted) | none |
//! | `tmx:{fleet}:pool:d` | hash | domain -> its record (JSON: state, times, listing) | none |
//! | `tmx:{fleet}:policy` | string | the rotation policy (JSON) | none |
//! | `tmx:{fleet}:audit` | list | audit entries (JSON with `id` and `node`), oldest first, capped | none |
//! | `tmx:{fleet}:audit:id` | string | the last audit entry's id | none |
//! | `tmx:{fleet}:pool:v` | string | version: the unix time of the first write, then bumped by every write | none |
//! | `tmx:{fleet}:lease` | string | the rotation lease: `<node> <epoch>` | the lease length (PX), renewed by its holder |
//! | `tmx:{fleet}:lease:epoch` | string | bumped by every take-over of the lease | none |
//!
//! Greylisting (`tmx:gl:…`), rate-limit (`tmx:rl:…`) and per-domain count
//! (`tmx:{d:<domain>}:…`) keys are laid out in the `greylist`, `ratelimit` and `counts`
//! modules; their functions are a library of their own
//! (`tempmx_share`, in `share.lua`), loaded beside `tempmx`.
//!
//! The steps that must be atomic per mailbox are Redis functions (`tempmx.lua`, loaded with
//! `FUNCTION LOAD` at start, replicated with the data; every name carries this build's
//! version suffix, see the `functions` module): `tempmx_put` stores a record under the
//! mailbox's TTL (`SET NX PXAT`), pushes its index entry, trims the index to the cap and
//! deletes the records that fell off; `tempmx_create` registers a mailbox only if absent
//! (dropping mail the address got before, as the local registry does); `tempmx_extend`
//! moves a mailbox's expiry and message TTL later; `tempmx_drop` and `tempmx_remove` delete
//! a mailbox or one message. The `{fleet}` slot has its own: `tempmx_lease` (take or renew
//! the rotation lease), `tempmx_lease_release`, and `tempmx_pool_write` (the fenced pool
//! write, see [`PoolWrite`]). Expiry is Redis's own key expiry (no sweeper); readers also
//! skip index entries whose expiry has passed, so an expired message disappears at once. A
//! message to N mailboxes gets a record in each mailbox's slot (the record lists every
//! recipient, as a shard record does), but its body is stored once, as shared parts: MIME
//! parts of at least `part_bytes_min` (default 4 KiB; a single-part body that large counts)
//! are shared across all messages, and with several recipients so is every other run of the
//! body of 1 KiB or more. Parts are written by `tempmx_part` (`SET NX PXAT`, or a byte
//! comparison and `PEXPIREAT … GT` when present; a part stored in the other encoding, plain
//! or compressed, is read back and compared by the writer) before the records that name
//! them, in the same batch, so a 250 always covers them; a deleted message's parts are
//! reclaimed by their expiry.
//!
//! # Write path and failure semantics
//! Each ingress core owns a [`ClusterSink`]: `accept` encodes the record, queues it and
//! returns [`Commit::Pending`](crate::Commit). The core's writer task takes every queued
//! message at once (a batch); if any of them has shared parts, it first writes the parts at
//! the messages' default expiry (one round of single commands, sent at once, and with
//! `replicas:N` a second of `WAIT N` per part slot; a message whose parts failed writes
//! nothing else; no TTL override is read). It then groups the batch's mailbox writes by the
//! primary that holds their slot (its own copy of the slot map, from `CLUSTER SLOTS`) and
//! sends one pipeline per primary, all at once over the writers' own multiplexed connection
//! per node (reads use another). A pipeline that fails as a whole (a slot moved: redis-rs
//! fails a pipeline with any redirected command; a lost connection) has its map read again
//! and its writes sent once more, one pipeline per slot, within the same deadline; a
//! `TAKEN` reply to that retry is the first attempt's own write only if the stored frame
//! header matches. A part that a stored record outlives (its mailbox's TTL override is
//! longer than the default; `tempmx_put` answers the record's expiry) is then moved to the
//! record's expiry (`PEXPIREAT … GT`, one round, only then). With `ack = replicas:N` it
//! then sends `WAIT N` once per primary that took writes (and per primary of the parts so
//! moved). A message's commit resolves `Ok` only when every one of its mailbox writes (and
//! WAITs) succeeded; any error, a missing primary, a full queue or a deadline is a
//! [`ClusterError`], which the ingress answers 451 4.3.0. Nothing is written locally
//! instead. The records a refused message already has in its other mailboxes are removed
//! before the 451 (best effort; a failed removal is logged), so a retry does not show twice
//! there. A write whose reply was lost may still be in the cluster: the sender retries and
//! the mailbox shows it twice, never zero times. `tempmx_put` also reports whether the
//! mailbox's `wh` hash exists, so a sink made with a [`HookFeed`] hands over only messages
//! with hooked recipients.
//!
//! # Reads, live push and membership
//! The HTTP API reads through [`MailRead`](crate::MailRead), which both the embedded store
//! and [`Cluster`] implement. Live push: `tempmx_put` SPUBLISHes each record on its
//! mailbox's shard channel (its id and expiry, and the stored value itself when it is at
//! most 16 KiB and the channel has subscribers); a node with SSE, WebSocket or wait
//! subscribers for a mailbox SSUBSCRIBEs it once on its own RESP3 connection and hands
//! them what it heard; they show a carried record at once and read any other, and
//! re-list the index whenever announcements may have been lost (pub/sub is at most once;
//! the index is not). Membership: each node heartbeats its up key with a TTL and its
//! entry in the nodes hash (one slot, one atomic pipeline); a node whose up key lapsed
//! is listed as gone.
//!
//! Ids are the store's time-ordered ids; the 8 shard bits come from the node name and
//! the core, so two nodes rarely mint the same id in one millisecond, and when they do for
//! the same mailbox `SET NX` refuses the second (451, the sender retries).

mod codec;
mod counts;
mod error;
mod functions;
mod greylist;
mod keys;
mod members;
mod parts;
mod pool;
mod preflight;
mod push;
mod ratelimit;
mod read;
mod registry;
mod routing;
mod sink;
mod state;
mod stats;
pub mod testkit;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

pub use self::counts::{CHECKS_TTL_SECS, COUNT_TTL_SECS, DomainCount};
pub use self::error::ClusterError;
pub use self::keys::{MailboxKeys, PREFIX};
pub use self::members::Member;
pub use self::parts::{PART_BYTES_MIN, part_key};
pub use self::pool::{DELETED, LeaseHold, PoolView, PoolWrite};
pub use self::push::{Announced, FleetSubscription, Heard};
use self::push::{Channels, PubSub};
pub use self::ratelimit::{RATE_KEY_PART_CHARS_MAX, RateQuota};
pub use self::registry::{Deleted, Extended, Registration};
use self::routing::SlotMap;
use self::sink::Writer;
pub use self::sink::{ClusterSink, HookFeed, Hooked};
pub use self::state::tagged;
pub use self::stats::{FleetSnapshot, Health, Op, TABLE as METRICS};
#[cfg(doc)]
use crate::address::Mailbox;
pub use crate::greylist::{GreyStep, GreyTiming};

/// When a write counts as stored in the fleet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Ack {
    /// The slot's primary applied it.
    #[default]
    Primary,
    /// The primary applied it and `WAIT N` saw N replicas confirm it.
    Replicas(u32),
}

impl FromStr for Ack {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "primary" {
            return Ok(Self::Primary);
        }
        match s.strip_prefix("replicas:").map(str::parse::<u32>) {
            Some(Ok(n)) if n >= 1 => Ok(Self::Replicas(n)),
            _ => Err(format!(
                "ack must be \"primary\" or \"replicas:N\" with N >= 1, not {s:?}"
            )),
        }
    }
}

impl TryFrom<String> for Ack {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Ack> for String {
    fn from(a: Ack) -> String {
        a.to_string()
    }
}

impl fmt::Display for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Primary => f.write_str("primary"),
            Self::Replicas(n) => write!(f, "replicas:{n}"),
        }
    }
}

/// How to reach the cluster and how the write path behaves.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Seed node URLs, e.g. `redis://127.0.0.1:7000`.
    pub seeds: Vec<String>,
    /// This appliance's name (feeds the id's shard bits).
    pub node: String,
    /// When a write counts as stored.
    pub ack: Ack,
    /// Message TTL of mailboxes without an override.
    pub ttl_secs: u64,
    /// Index cap of mailboxes without an override.
    pub mailbox_records_max: usize,
    /// Recipients one message may have.
    pub record_mailboxes_max: usize,
    /// Smallest MIME part (or single-part body) stored once by content as a shared part;
    /// 0 shares nothing (a message to several mailboxes is then copied whole into each).
    pub part_bytes_min: usize,
    /// Largest frame (header + archived record, before compression) the write path sends.
    pub record_bytes_max: usize,
    /// Whether records and shared parts are stored LZ4-compressed where that saves memory
    /// (nodes of builds before it read such values as damaged).
    pub compress: bool,
    /// Messages one core may have queued or in flight.
    pub queue_max: usize,
    /// Deadline of one batch's writes (and of its WAIT), and of one read.
    pub timeout: Duration,
}

impl ClusterOptions {
    /// Defaults for `seeds`: the store's TTL and caps, `ack = primary`, 2 s deadlines,
    /// parts of [`PART_BYTES_MIN`] shared, records compressed.
    pub fn new(seeds: Vec<String>, node: String) -> Self {
        Self {
            seeds,
            node,
            ack: Ack::Primary,
            ttl_secs: 3600,
            mailbox_records_max: 1000,
            record_mailboxes_max: 100,
            part_bytes_min: PART_BYTES_MIN,
            record_bytes_max: 40 << 20,
            compress: true,
            queue_max: 4096,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Counters of the write path across all cores (what one batch costs in round trips).
#[derive(Debug, Default)]
pub struct WriteStats {
    batches: AtomicU64,
    messages: AtomicU64,
    pipelines: AtomicU64,
    retries: AtomicU64,
    part_rounds: AtomicU64,
}

impl WriteStats {
    fn record(&self, messages: usize, pipelines: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_add(messages as u64, Ordering::Relaxed);
        self.pipelines
            .fetch_add(pipelines as u64, Ordering::Relaxed);
    }

    /// Batches written so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Messages those batches held.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Pipelines (one per primary of a batch, plus retries) sent; each is one round trip
    /// to one primary.
    pub fn pipelines(&self) -> u64 {
        self.pipelines.load(Ordering::Relaxed)
    }

    fn parts(&self, rounds: usize) {
        self.part_rounds.fetch_add(rounds as u64, Ordering::Relaxed);
    }

    /// Sequential rounds the batches spent writing shared parts before their records (one
    /// per batch with parts, two with `replicas:N`).
    pub fn part_rounds(&self) -> u64 {
        self.part_rounds.load(Ordering::Relaxed)
    }

    fn retried(&self, pipelines: usize) {
        self.retries.fetch_add(pipelines as u64, Ordering::Relaxed);
        self.pipelines
            .fetch_add(pipelines as u64, Ordering::Relaxed);
    }

    /// Of those pipelines, the ones re-sending the writes of a failed one (one per slot).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// A connection to the fleet's cluster: its own small runtimes drive the connections and
/// the per-core writer tasks, so callers on any thread or runtime can use it.
pub struct Cluster {
    /// Reads and every other call.
    conn: ClusterConnection,
    /// The writer tasks' own connections (one per node), so a read, a live-push fetch
    /// above all, does not queue behind a batch's pipeline on the same socket.
    writes: ClusterConnection,
    /// Slot -> primary, for grouping a batch's writes per primary.
    map: Arc<RwLock<SlotMap>>,
    pubsub: Arc<PubSub>,
    opts: Arc<ClusterOptions>,
    stats: Arc<WriteStats>,
    health: Arc<Health>,
    /// `Some` until drop; shut down in the background so dropping never blocks a runtime.
    rt: Option<Runtime>,
    /// Live push's own runtime (one thread), which drives the pub/sub connection: an
    /// announcement is not read behind the writers' batches on `rt`, and a thread that is
    /// mostly idle is scheduled promptly when one arrives, even while a flood keeps `rt` busy.
    push_rt: Option<Runtime>,
}

impl Cluster {
    /// Connects to the seeds, checks the cluster answers, and loads the functions on every
    /// primary. An unreachable cluster is [`ClusterError::Connect`] naming the seeds.
    pub fn connect(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let seeds = opts.seeds.join(", ");
        let connect_err = |source| ClusterError::Connect {
            seeds: seeds.clone(),
            source,
        };
        let client = ClusterClientBuilder::new(opts.seeds.clone())
            .connection_timeout(opts.timeout)
            .response_timeout(opts.timeout)
            .retries(2)
            .build()
            .map_err(connect_err)?;
        // Live push has a RESP3 connection of its own, whose pushes feed the channel table.
        let channels = Arc::new(Channels::default());
        let sink = Arc::clone(&channels);
        let pubsub_client = ClusterClientBuilder::new(opts.seeds.clone())
            .connection_timeout(opts.timeout)
            .response_timeout(opts.timeout)
            .retries(2)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(move |info: redis::PushInfo| {
                sink.on_push(&info);
                Ok::<(), std::convert::Infallible>(())
            })
            .build()
            .map_err(connect_err)?;
        let timeout = opts.timeout;
        let runtime = |name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(name)
                .enable_all()
                .build()
                .map_err(|e| connect_err(e.into()))
        };
        let rt = runtime("fleet-redis")?;
        let push_rt = runtime("fleet-push")?;
        // A plain thread, so `connect` may be called from inside another runtime.
        let started = std::thread::scope(|s| {
            s.spawn(|| {
                rt.block_on(async {
                    let mut conn = client.get_async_connection().await.map_err(connect_err)?;
                    match preflight::check_eviction(&mut conn).await {
                        Err(ClusterError::Command(e)) => return Err(connect_err(e)),
                        checked => checked?,
                    }
                    functions::load(&mut conn).await.map_err(connect_err)?;
                    let older = functions::unversioned_loaded(&mut conn).await;
                    let writes = client.get_async_connection().await.map_err(connect_err)?;
                    let map = SlotMap::fetch(&mut conn).await;
                    Ok::<_, ClusterError>((conn, writes, map, older))
                })
                .and_then(|started| {
                    // Made inside `push_rt`, so its connection tasks run there.
                    let pubsub = push_rt
                        .block_on(pubsub_client.get_async_connection())
                        .map_err(connect_err)?;
                    Ok((started, pubsub))
                })
            })
            .join()
        })
        .map_err(|_| ClusterError::Stopped)
        .flatten();
        let ((conn, writes, map, older), pubsub_conn) = match started {
            Ok(started) => started,
            Err(e) => {
                // Dropping a runtime blocks, which panics inside another runtime.
                rt.shutdown_background();
                push_rt.shutdown_background();
                return Err(e);
            }
        };
        tracing::info!(
            seeds = %seeds,
            ?timeout,
            functions = functions::version(),
            "connected to the Redis Cluster"
        );
        if matches!(older, Ok(true)) && (opts.compress || opts.part_bytes_min > 0) {
            tracing::warn!(
                "the Redis library of a tempmx build before versioned functions (`tempmx`) is \
                 loaded: while a node of such a build runs, set [fleet] compress = false and \
                 [store] dedup_part_bytes_min = 0 (it reads compressed records and shared parts \
                 as damaged); once none does, remove it with FUNCTION DELETE tempmx on each primary"
            );
        }
        // Without a map every slot is its own group until the first failed write reads it.
        let map = map.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the cluster's slot map failed");
            SlotMap::default()
        });
        let health = Arc::<Health>::default();
        rt.spawn(functions::keep_loaded(conn.clone(), Arc::clone(&health)));
        Ok(Self {
            conn,
            writes,
            map: Arc::new(RwLock::new(map)),
            pubsub: Arc::new(PubSub {
                conn: pubsub_conn,
                channels,
                changes: tokio::sync::Mutex::new(()),
            }),
            opts: Arc::new(opts),
            stats: Arc::default(),
            health,
            rt: Some(rt),
            push_rt: Some(push_rt),
        })
    }

    /// The options it was connected with.
    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// The write path's counters.
    pub fn write_stats(&self) -> &WriteStats {
        &self.stats
    }

    /// The fleet families' values now (for `/metrics`).
    pub fn fleet_snapshot(&self) -> FleetSnapshot {
        self.health.snapshot(&self.stats)
    }

    /// A write sink for ingress core `core`, with its own writer task.
    pub fn sink(&self, core: usize) -> Result<ClusterSink, ClusterError> {
        self.start_sink(core, None)
    }

    /// A write sink for ingress core `core` that hands each acknowledged message with
    /// recipients that have webhooks to `feed`.
    pub fn sink_with_hooks(
        &self,
        core: usize,
        feed: HookFeed,
    ) -> Result<ClusterSink, ClusterError> {
        self.start_sink(core, Some(feed))
    }

    fn start_sink(&self, core: usize, feed: Option<HookFeed>) -> Result<ClusterSink, ClusterError> {
        let rt = self.rt.as_ref().ok_or(ClusterError::Stopped)?;
        let writer = Writer {
            conn: self.writes.clone(),
            map: Arc::clone(&self.map),
            opts: Arc::clone(&self.opts),
            stats: Arc::clone(&self.stats),
            health: Arc::clone(&self.health),
            feed,
        };
        Ok(ClusterSink::start(rt.handle(), writer, core))
    }

    /// Runs `f` with a connection on the cluster's runtime, bounded by the read deadline.
    async fn run<T, F>(&self, f: impl FnOnce(ClusterConnection) -> F) -> Result<T, ClusterError>
    where
        F: Future<Output = Result<T, ClusterError>> + Send + 'static,
        T: Send + 'static,
    {
        let rt = self.rt.as_ref().ok_or(ClusterError::Stopped)?;
        let timeout = self.opts.timeout;
        let task = f(self.conn.clone());
        let res = rt
            .spawn(async move {
                tokio::time::timeout(timeout, task)
                    .await
                    .map_err(|_| ClusterError::Timeout(timeout))?
            })
            .await
            .map_err(|_| ClusterError::Stopped)?;
        if let Err(e) = &res {
            self.health.error(Op::Call, e);
        }
        res
    }
}

/// The value checks and the record codec, exposed for the fuzz target only.
#[doc(hidden)]
pub mod fuzzing {
    use std::net::{IpAddr, Ipv4Addr};

    use super::codec::{Checked, Encoder};
    use crate::{Mailbox, MessageId, NewMessage};

    /// Reads `value` as a record value from Redis, as a reader does: checked, then its
    /// id, listing fields, shared parts and (when it names none) its raw bytes.
    pub fn record_value(value: &[u8]) {
        if let Ok(rec) = Checked::new(value, "fuzz") {
            let _ = rec.id();
            let _ = rec.summary("u@x.test", 1);
            if rec.shared().is_empty() {
                let _ = rec.view("u@x.test", 1);
            }
        }
    }

    /// Reads `payload` as a live-push announcement, as a subscriber does, and a carried
    /// record as the feed does.
    pub fn announcement(payload: &[u8]) {
        if let super::Heard::Carried(a) = super::push::heard(payload, b"tmx:{u@x.test}:ch") {
            let _ = a.read_for(&Mailbox::parse("u@x.test").expect("valid"), |m| {
                m.raw().len()
            });
        }
    }

    /// Reads `value` as shared part `key` of `len` bytes.
    pub fn part_value(value: Vec<u8>, key: u64, len: u32) {
        let _ = super::parts::open(value, key, len, "fuzz");
    }

    /// Encodes a message with body `body` as the write path does (compressed where worth
    /// it, nothing shared) and reads it back; panics unless it is the same message.
    pub fn round_trip(body: &[u8]) {
        let to = [Mailbox::parse("u@x.test").expect("valid")];
        let trace = b"Received: from fuzz.test\r\n";
        let msg = NewMessage {
            received_at_ms: 1,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            helo: "fuzz.test",
            mail_from: "s@y.test",
            recipients: &to,
            tls: None,
            trace_headers: trace,
            auth: &[],
            body,
        };
        let mut parts = Vec::new();
        let frame = Encoder::new(0, true)
            .frame(&msg, MessageId(7), 9, &mut parts)
            .expect("encodes");
        let view = Checked::new(&frame, "fuzz")
            .expect("own frame reads back")
            .view("u@x.test", 9)
            .expect("no parts to miss");
        assert_eq!(view.raw, [&trace[..], body].concat());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for rt in [self.rt.take(), self.push_rt.take()].into_iter().flatten() {
            rt.shutdown_background();
        }
    }
}
