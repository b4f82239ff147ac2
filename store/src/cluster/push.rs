//! Live push across nodes. `tempmx_put` announces each record it stores on its mailbox's
//! shard channel (`tmx:{M}:ch`, in the mailbox's slot, so the slot's primary fans it out):
//! `<id> <expiry ms>`, then ` <frame>` when the stored value is at most
//! [`ANNOUNCE_FRAME_BYTES_MAX`] and the primary has subscribers for the channel (the
//! copy is not made for the many mailboxes nobody watches). A node with live subscribers
//! for a mailbox SSUBSCRIBEs that channel once, on a RESP3 connection of its own, and
//! wakes every local subscriber of the mailbox.
//!
//! A subscriber checks a carried frame like one it read (header, CRC, archive) and shows
//! it without a round trip; an announcement without one (a bigger record, a record naming
//! shared parts, a node of an earlier build that announced ids only) names the record, so
//! the subscriber reads that one record instead of re-listing. Pub/sub is at most once,
//! so anything that may have lost announcements (a dropped pub/sub connection, a
//! subscriber too slow for its buffer, a payload it cannot read) tells the subscriber to
//! re-list the mailbox's index instead; a message whose announcement was lost is still
//! found then or at the client's `Last-Event-ID` resume.
//!
//! A mailbox's event channel (`tmx:{M}:ev`) carries payloads instead: changes a node made
//! that others must show (mail.tm's Mercure seen and delete events), handed to every
//! subscriber of the mailbox on every node, at most once like the hub they stand for.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::runtime::Handle;
use tokio::sync::{broadcast, watch};

use super::codec::Checked;
use super::keys::MailboxKeys;
use super::{Cluster, ClusterError};
use crate::address::Mailbox;
use crate::clock::{Clock, SystemClock};
use crate::sink::MessageId;
use crate::view::MessageRef;

/// Name of a mailbox's event channel (`tmx:{M}:ev`).
const EVENTS: &str = "ev";

/// Announcements a message channel buffers per subscriber before a slow one misses some
/// (and re-lists): with carried frames, what a stalled subscriber can hold is at most
/// this times [`ANNOUNCE_FRAME_BYTES_MAX`].
const ANNOUNCEMENTS_MAX: usize = 64;

/// Payloads an event channel buffers per subscriber before a slow one misses some (they
/// are small JSON-LD messages).
const EVENTS_MAX: usize = 256;

/// The largest stored value (record frame) an announcement carries; subscribers read a
/// bigger one. Most mail is under it once compressed.
pub(crate) const ANNOUNCE_FRAME_BYTES_MAX: usize = 16 * 1024;

/// One channel this node listens on: its re-list counter (bumped when the pub/sub
/// connection dropped), its payloads, and how many subscribers share it.
type Listening = (watch::Sender<u64>, broadcast::Sender<Arc<[u8]>>, usize);

/// Channels this node listens on, by channel name.
#[derive(Default)]
pub(crate) struct Channels(Mutex<HashMap<Vec<u8>, Listening>>);

impl Channels {
    /// Handles one push from the pub/sub connection (called on the connection's task, so
    /// it only bumps counters and never blocks).
    pub(crate) fn on_push(&self, info: &PushInfo) {
        match info.kind {
            PushKind::SMessage => {
                if let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (info.data.first(), info.data.get(1))
                    && let Some((_, payloads, _)) = self.0.lock().get(channel)
                {
                    // No receiver left is no error: the subscription is being dropped.
                    let _ = payloads.send(payload.as_slice().into());
                }
            }
            // Events may have been lost while the connection was down: everyone re-lists.
            PushKind::Disconnection => {
                for (tx, _, _) in self.0.lock().values() {
                    tx.send_modify(|n| *n += 1);
                }
            }
            _ => {}
        }
    }
}

/// The pub/sub side of a [`Cluster`]: its own connection and the channel table.
pub(crate) struct PubSub {
    pub(crate) conn: ClusterConnection,
    pub(crate) channels: Arc<Channels>,
    /// Serialises SSUBSCRIBE/SUNSUBSCRIBE, so a channel's first subscriber returns only
    /// once the cluster has it and a second one never returns before that.
    pub(crate) changes: tokio::sync::Mutex<()>,
}

/// A live subscription to one mailbox's new messages on every node; dropping it
/// unsubscribes (the last one of the mailbox sends SUNSUBSCRIBE).
pub struct FleetSubscription {
    rx: watch::Receiver<u64>,
    payloads: broadcast::Receiver<Arc<[u8]>>,
    channel: Vec<u8>,
    pubsub: Arc<PubSub>,
    rt: Handle,
}

/// What a mailbox's message channel told a [`FleetSubscription`].
#[derive(Debug)]
pub enum Heard {
    /// A node stored this record for the mailbox: read it.
    Stored(MessageId),
    /// A node stored this record for the mailbox and the announcement carried it, checked.
    Carried(Announced),
    /// Announcements may have been lost (pub/sub reconnect, a full buffer, an unreadable
    /// payload): re-list the mailbox.
    Missed,
}

impl FleetSubscription {
    /// The next announcement of a message stored for the mailbox by any node; `None` when
    /// the cluster client stopped.
    pub async fn next(&mut self) -> Option<Heard> {
        tokio::select! {
            // A reconnect first: what it may have lost matters more than what follows it.
            biased;
            changed = self.rx.changed() => changed.is_ok().then_some(Heard::Missed),
            payload = self.payloads.recv() => match payload {
                Ok(p) => Some(heard(&p, &self.channel)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some(Heard::Missed),
                Err(broadcast::error::RecvError::Closed) => None,
            },
        }
    }

    /// The next payload published on the channel by any node (an event channel's change);
    /// payloads a slow subscriber missed are skipped. `None` when the cluster client
    /// stopped.
    pub async fn payload(&mut self) -> Option<Arc<[u8]>> {
        loop {
            match self.payloads.recv().await {
                Ok(p) => return Some(p),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// A record an announcement carried, checked like one read from its key.
pub struct Announced {
    rec: Checked,
    expires_at_ms: u64,
}

impl Announced {
    /// The record's id.
    pub fn id(&self) -> MessageId {
        self.rec.id()
    }

    /// Runs `f` on the message as `mailbox` shows it (see [`Cluster::read_for`]); `None`
    /// once it has expired.
    pub fn read_for<R>(
        &self,
        mailbox: &Mailbox,
        f: impl FnOnce(&MessageRef<'_>) -> R,
    ) -> Result<Option<R>, ClusterError> {
        if self.expires_at_ms <= SystemClock.now_ms() {
            return Ok(None);
        }
        self.rec
            .with_ref(mailbox.as_str(), self.expires_at_ms, f)
            .map(Some)
    }
}

impl std::fmt::Debug for Announced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announced")
            .field("id", &self.id())
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// Reads an announcement from `channel`: `<id>` (an earlier build's), `<id> <expiry ms>`,
/// or `<id> <expiry ms> <frame>` (a frame over [`ANNOUNCE_FRAME_BYTES_MAX`] is not
/// opened: the record is read instead). Anything else, or a carried frame that fails its
/// checks, is [`Heard::Missed`]: the subscriber re-lists.
pub(crate) fn heard(payload: &[u8], channel: &[u8]) -> Heard {
    let mut fields = payload.splitn(3, |&b| b == b' ');
    let Some(id) = parsed::<MessageId>(fields.next()) else {
        return Heard::Missed;
    };
    let Some(expiry) = fields.next() else {
        return Heard::Stored(id);
    };
    let Some(expires_at_ms) = parsed::<u64>(Some(expiry)) else {
        return Heard::Missed;
    };
    let Some(frame) = fields.next() else {
        return Heard::Stored(id);
    };
    if frame.len() > ANNOUNCE_FRAME_BYTES_MAX {
        // More than any writer carries: not decompressed here, read like a bigger record.
        return Heard::Stored(id);
    }
    match Checked::new(frame, &String::from_utf8_lossy(channel)) {
        // Shared parts live under keys of their own: read them with the record.
        Ok(rec) if rec.id() == id && rec.shared().is_empty() => {
            Heard::Carried(Announced { rec, expires_at_ms })
        }
        Ok(rec) if rec.id() == id => Heard::Stored(id),
        _ => Heard::Missed,
    }
}

/// An announcement's text field, parsed.
fn parsed<T: std::str::FromStr>(field: Option<&[u8]>) -> Option<T> {
    std::str::from_utf8(field?).ok()?.parse().ok()
}

impl Drop for FleetSubscription {
    fn drop(&mut self) {
        let pubsub = Arc::clone(&self.pubsub);
        let channel = std::mem::take(&mut self.channel);
        self.rt.spawn(async move {
            let _guard = pubsub.changes.lock().await;
            let last = {
                let mut map = pubsub.channels.0.lock();
                match map.get_mut(&channel) {
                    Some((_, _, n)) if *n > 1 => {
                        *n -= 1;
                        false
                    }
                    Some(_) => {
                        map.remove(&channel);
                        true
                    }
                    None => false,
                }
            };
            if last {
                let mut conn = pubsub.conn.clone();
                if let Err(e) = conn.sunsubscribe(&channel).await {
                    tracing::warn!(error = %e, "fleet SUNSUBSCRIBE failed");
                }
            }
        });
    }
}

impl Cluster {
    /// Subscribes to new messages of `mailbox`, wherever in the fleet they arrive.
    pub async fn subscribe(&self, mailbox: &Mailbox) -> Result<FleetSubscription, ClusterError> {
        self.listen(
            MailboxKeys::of(mailbox).channel().into_bytes(),
            ANNOUNCEMENTS_MAX,
        )
        .await
    }

    /// Subscribes to the events any node publishes for `mailbox` (see
    /// [`Cluster::publish_event`]); read them with [`FleetSubscription::payload`].
    pub async fn subscribe_events(
        &self,
        mailbox: &Mailbox,
    ) -> Result<FleetSubscription, ClusterError> {
        self.listen(
            MailboxKeys::of(mailbox).named(EVENTS).into_bytes(),
            EVENTS_MAX,
        )
        .await
    }

    /// Hands `payload` to every subscriber of `mailbox`'s events on every node (this one
    /// included); how many nodes listened. At most once: a node whose pub/sub connection
    /// is down misses it.
    pub async fn publish_event(
        &self,
        mailbox: &Mailbox,
        payload: Vec<u8>,
    ) -> Result<usize, ClusterError> {
        let channel = MailboxKeys::of(mailbox).named(EVENTS);
        self.run(move |mut conn| async move {
            Ok(redis::cmd("SPUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async(&mut conn)
                .await?)
        })
        .await
    }

    /// Listens on shard channel `channel`: SSUBSCRIBEs it when it is this node's first
    /// subscriber.
    async fn listen(
        &self,
        channel: Vec<u8>,
        buffered: usize,
    ) -> Result<FleetSubscription, ClusterError> {
        let pubsub = Arc::clone(&self.pubsub);
        let rt = self
            .push_rt
            .as_ref()
            .ok_or(ClusterError::Stopped)?
            .handle()
            .clone();
        let timeout = self.opts.timeout;
        let task = {
            let pubsub = Arc::clone(&pubsub);
            let channel = channel.clone();
            async move {
                let _guard = pubsub.changes.lock().await;
                let existing = {
                    let mut map = pubsub.channels.0.lock();
                    map.get_mut(&channel).map(|(tx, payloads, n)| {
                        *n += 1;
                        (tx.subscribe(), payloads.subscribe())
                    })
                };
                if let Some(rx) = existing {
                    return Ok(rx);
                }
                let mut conn = pubsub.conn.clone();
                tokio::time::timeout(timeout, conn.ssubscribe(&channel))
                    .await
                    .map_err(|_| ClusterError::Timeout(timeout))??;
                let (tx, rx) = watch::channel(0);
                let (payloads, payload_rx) = broadcast::channel(buffered);
                pubsub.channels.0.lock().insert(channel, (tx, payloads, 1));
                Ok::<_, ClusterError>((rx, payload_rx))
            }
        };
        let (rx, payloads) = rt.spawn(task).await.map_err(|_| ClusterError::Stopped)??;
        Ok(FleetSubscription {
            rx,
            payloads,
            channel,
            pubsub,
            rt,
        })
    }

    /// Mailbox channels this node listens on now.
    pub fn subscribed_channels(&self) -> usize {
        self.pubsub.channels.0.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcement(frame: &[u8]) -> Vec<u8> {
        let mut p = format!("{} 99 ", MessageId(7)).into_bytes();
        p.extend_from_slice(frame);
        p
    }

    #[test]
    fn a_carried_frame_over_the_limit_is_read_not_opened() {
        // At the limit a frame is opened (these bytes fail its checks: re-list); one byte
        // over it is not opened at all, and the record is read instead.
        let at = announcement(&vec![b'x'; ANNOUNCE_FRAME_BYTES_MAX]);
        assert!(matches!(heard(&at, b"ch"), Heard::Missed));
        let over = announcement(&vec![b'x'; ANNOUNCE_FRAME_BYTES_MAX + 1]);
        assert!(matches!(heard(&over, b"ch"), Heard::Stored(MessageId(7))));
        assert!(matches!(
            heard(format!("{} 99", MessageId(7)).as_bytes(), b"ch"),
            Heard::Stored(MessageId(7))
        ));
        let bad_expiry = format!("{} not-a-time x", MessageId(7));
        assert!(matches!(heard(bad_expiry.as_bytes(), b"ch"), Heard::Missed));
    }
}
