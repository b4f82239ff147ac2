//! Webhooks in fleet mode: registrations live in the cluster beside their mailbox
//! (`tmx:{M}:wh`, one field per hook, expiring with the mailbox), so every node lists and
//! removes them; deliveries are made by the node that accepted the message, once its
//! cluster write is acknowledged, so a hook fires once per message however many nodes
//! there are. Each ingress core's cluster sink hands every acknowledged message whose
//! recipients have a hooks hash (`tempmx_put` reports it) to [`run`] through the [`feed`],
//! which looks those hooks up and queues deliveries on this node's queue.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tempmx_store::cluster::{Cluster, ClusterError, HookFeed, Hooked, MailboxKeys};
use tempmx_store::{Mailbox, MessageId};
use tokio::sync::mpsc;

use super::target::Target;
use super::{AddError, Hook, random_hex};

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
    MailboxKeys::of(mailbox).hooks()
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

/// The feed every ingress core's cluster sink hands acknowledged messages to, for the
/// recipients whose webhooks hash exists (the write reply says so: no lookup, task or copy
/// for mail to mailboxes without hooks), and the receiving end for [`run`].
pub fn feed() -> (HookFeed, mpsc::Receiver<Hooked>) {
    HookFeed::new(PENDING_MAX)
}

/// Hook lookups in flight at once: they share the cluster's multiplexed connections, so
/// a flood's lookups go out pipelined instead of one round trip after another.
pub const LOOKUPS_CONCURRENT_MAX: usize = 64;

/// Looks up the hooks of each handed-over message's hooked recipients (up to
/// `LOOKUPS_CONCURRENT_MAX` at once) and queues one delivery per hook on this node's
/// queue, until the sinks are gone.
pub async fn run(rx: mpsc::Receiver<Hooked>, state: crate::api::public::PublicState) {
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
