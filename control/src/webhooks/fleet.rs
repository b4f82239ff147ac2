//! Webhooks in fleet mode: registrations live in the cluster beside their mailbox
//! (`tmx:{M}:wh`, one field per hook, expiring with the mailbox), so every node lists and
//! removes them; deliveries are made by the node that accepted the message, once its
//! cluster write is acknowledged, so a hook fires once per message however many nodes
//! there are. A [`Tap`] around each ingress core's cluster sink hands every acknowledged
//! message's recipients to [`run`], which looks their hooks up and queues deliveries on
//! this node's queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tempmx_store::cluster::{Cluster, ClusterError, MailboxKeys};
use tempmx_store::{Accepted, Commit, Mailbox, MessageId, MessageSink, NewMessage, StoreError};
use tokio::sync::{mpsc, oneshot};

use super::target::Target;
use super::{AddError, Hook, random_hex};

/// Name of the hooks hash beside the mailbox's other keys.
const KEY_NAME: &str = "wh";
/// Field holding the registry token hash the hooks were made under.
const REG_FIELD: &str = "reg";
/// Acknowledged messages waiting for their hook lookup before further ones are dropped
/// (and counted as dropped deliveries).
pub const PENDING_MAX: usize = 4096;

/// One hook as the cluster keeps it.
#[derive(Serialize, Deserialize)]
struct Stored {
    url: String,
    secret: String,
}

fn key(mailbox: &Mailbox) -> String {
    MailboxKeys::of(mailbox).named(KEY_NAME)
}

/// The fleet's webhook registrations.
#[derive(Clone)]
pub struct FleetHooks(pub Arc<Cluster>);

impl FleetHooks {
    /// The hooks of `mailbox` made under its registration in force (`None`: no such
    /// registration; hooks of an earlier owner of the address are not shown).
    pub async fn list(
        &self,
        mailbox: &Mailbox,
        url_bytes_max: usize,
    ) -> Result<Vec<Hook>, ClusterError> {
        let fields = self.0.hash_all(key(mailbox)).await?;
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let Some(reg) = self.0.mailbox(mailbox).await? else {
            return Ok(Vec::new());
        };
        Ok(parse(&fields, &reg.token_hash, url_bytes_max))
    }

    /// Adds a hook for `target` to registered `mailbox`, at most `max` per mailbox across
    /// the fleet; `None` when the mailbox is not registered.
    pub async fn add(
        &self,
        mailbox: &Mailbox,
        target: Target,
        max: usize,
    ) -> Result<Option<Result<Hook, AddError>>, ClusterError> {
        let Some(registration) = self.0.mailbox(mailbox).await? else {
            return Ok(None);
        };
        let reg = registration.token_hash;
        let expires_at_ms = registration.expires_at_ms;
        let fields = self.0.hash_all(key(mailbox)).await?;
        // Hooks of an earlier owner of the address go before the new one's first hook.
        let stale = fields
            .get(REG_FIELD)
            .is_some_and(|r| !bool::from(r[..].ct_eq(&reg[..])));
        let mut drop: Vec<String> = Vec::new();
        let mut held = fields.len().saturating_sub(1);
        if stale {
            drop = fields.keys().filter(|k| *k != REG_FIELD).cloned().collect();
            held = 0;
        }
        if held >= max {
            return Ok(Some(Err(AddError::Full(max))));
        }
        let hook = Hook {
            id: random_hex(8),
            target,
            secret: random_hex(32),
        };
        let stored = Stored {
            url: hook.target.url.to_string(),
            secret: hook.secret.clone(),
        };
        let json = serde_json::to_vec(&stored).map_err(|e| ClusterError::Encode(e.to_string()))?;
        let set = vec![
            (REG_FIELD.to_owned(), reg.to_vec()),
            (hook.id.clone(), json),
        ];
        self.0
            .hash_put(key(mailbox), set, drop, expires_at_ms)
            .await?;
        // Two nodes adding at once may both pass the check above: the later one over the
        // bound takes its hook back.
        let after = self.0.hash_all(key(mailbox)).await?;
        if after.len().saturating_sub(1) > max {
            self.0
                .hash_put(key(mailbox), Vec::new(), vec![hook.id], expires_at_ms)
                .await?;
            return Ok(Some(Err(AddError::Full(max))));
        }
        Ok(Some(Ok(hook)))
    }

    /// Removes hook `id` of `mailbox`; whether it was there.
    pub async fn remove(&self, mailbox: &Mailbox, id: &str) -> Result<bool, ClusterError> {
        if id == REG_FIELD {
            return Ok(false);
        }
        let fields = self.0.hash_all(key(mailbox)).await?;
        if !fields.contains_key(id) {
            return Ok(false);
        }
        let Some(reg) = self.0.mailbox(mailbox).await? else {
            return Ok(false);
        };
        self.0
            .hash_put(
                key(mailbox),
                Vec::new(),
                vec![id.to_owned()],
                reg.expires_at_ms,
            )
            .await?;
        Ok(true)
    }

    /// Removes every hook of `mailbox`.
    pub async fn remove_mailbox(&self, mailbox: &Mailbox) -> Result<(), ClusterError> {
        self.0.hash_delete(key(mailbox)).await.map(|_| ())
    }
}

/// The hooks in a hash made under registry token hash `reg`; unreadable ones are skipped.
fn parse(fields: &HashMap<String, Vec<u8>>, reg: &[u8; 32], url_bytes_max: usize) -> Vec<Hook> {
    let same = fields
        .get(REG_FIELD)
        .is_some_and(|r| bool::from(r[..].ct_eq(&reg[..])));
    if !same {
        return Vec::new();
    }
    let mut hooks: Vec<Hook> = fields
        .iter()
        .filter(|(k, _)| *k != REG_FIELD)
        .filter_map(|(id, v)| {
            let s: Stored = serde_json::from_slice(v).ok()?;
            Some(Hook {
                id: id.clone(),
                target: Target::parse(&s.url, url_bytes_max).ok()?,
                secret: s.secret,
            })
        })
        .collect();
    hooks.sort_by(|a, b| a.id.cmp(&b.id));
    hooks
}

/// A message this node acknowledged: its id and recipients.
pub type Acked = (MessageId, Vec<Mailbox>);

/// Wraps an ingress core's cluster sink: each message the cluster acknowledges is handed
/// to [`run`] (never waiting: a full hand-over drops it and counts it).
pub struct Tap {
    inner: Box<dyn MessageSink + Send>,
    tx: mpsc::Sender<Acked>,
    rt: tokio::runtime::Handle,
    dropped: Arc<AtomicU64>,
}

/// Builds [`Tap`]s that feed one receiver.
pub struct Taps {
    tx: mpsc::Sender<Acked>,
    rt: tokio::runtime::Handle,
    /// Messages whose hooks were not looked up because the hand-over was full.
    pub dropped: Arc<AtomicU64>,
}

impl Taps {
    /// Taps handing over on `rt`, and the receiving end for [`run`].
    pub fn new(rt: tokio::runtime::Handle) -> (Self, mpsc::Receiver<Acked>) {
        let (tx, rx) = mpsc::channel(PENDING_MAX);
        let taps = Self {
            tx,
            rt,
            dropped: Arc::default(),
        };
        (taps, rx)
    }

    /// Wraps one core's sink.
    pub fn wrap(&self, inner: Box<dyn MessageSink + Send>) -> Box<dyn MessageSink + Send> {
        Box::new(Tap {
            inner,
            tx: self.tx.clone(),
            rt: self.rt.clone(),
            dropped: self.dropped.clone(),
        })
    }
}

impl Tap {
    fn hand_over(tx: &mpsc::Sender<Acked>, dropped: &AtomicU64, acked: Acked) {
        if tx.try_send(acked).is_err() {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl MessageSink for Tap {
    fn accept(&mut self, msg: &NewMessage<'_>) -> Result<Accepted, StoreError> {
        let accepted = self.inner.accept(msg)?;
        let acked = (accepted.id, msg.recipients.to_vec());
        let commit = match accepted.commit {
            Commit::Done => {
                Self::hand_over(&self.tx, &self.dropped, acked);
                Commit::Done
            }
            Commit::Pending(rx) => {
                // The hooks fire only once the write is acknowledged, as the 250 does.
                let (out, waiting) = oneshot::channel();
                let tx = self.tx.clone();
                let dropped = self.dropped.clone();
                self.rt.spawn(async move {
                    let result = rx.await.unwrap_or(Err(StoreError::CommitStopped));
                    if result.is_ok() {
                        Self::hand_over(&tx, &dropped, acked);
                    }
                    let _ = out.send(result);
                });
                Commit::Pending(waiting)
            }
        };
        Ok(Accepted {
            id: accepted.id,
            commit,
        })
    }
}

/// Hook lookups in flight at once: they share the cluster's multiplexed connections, so
/// a flood's lookups go out pipelined instead of one round trip after another.
pub const LOOKUPS_CONCURRENT_MAX: usize = 64;

/// Looks up the hooks of each acknowledged message's recipients (up to
/// `LOOKUPS_CONCURRENT_MAX` at once) and queues one delivery per hook on this node's
/// queue, until the taps are gone.
pub async fn run(rx: mpsc::Receiver<Acked>, state: crate::api::public::PublicState) {
    use futures_util::StreamExt;
    let Some(cluster) = state.fleet.as_ref().map(|f| f.0.clone()) else {
        return;
    };
    let hooks = FleetHooks(cluster);
    let url_bytes_max = state.webhooks.config().url_bytes_max;
    let lookups = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|acked| (acked, rx))
    })
    .flat_map(|(id, recipients)| {
        futures_util::stream::iter(recipients.into_iter().map(move |mailbox| (id, mailbox)))
    });
    lookups
        .for_each_concurrent(LOOKUPS_CONCURRENT_MAX, |(id, mailbox)| {
            deliver(&hooks, &state, url_bytes_max, id, mailbox)
        })
        .await;
}

/// Queues one delivery per hook `mailbox` has for message `id`.
async fn deliver(
    hooks: &FleetHooks,
    state: &crate::api::public::PublicState,
    url_bytes_max: usize,
    id: MessageId,
    mailbox: Mailbox,
) {
    let found = match hooks.list(&mailbox, url_bytes_max).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "webhook lookup failed; deliveries lost");
            state.webhooks.count_dropped(1);
            return;
        }
    };
    if found.is_empty() {
        return;
    }
    match hooks.0.get(&mailbox, id).await {
        Ok(Some(view)) => {
            crate::api::public::webhooks::enqueue(state, &mailbox, &view.summary, &found).await;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "webhook message read failed; deliveries lost");
            state.webhooks.count_dropped(found.len() as u64);
        }
    }
}
