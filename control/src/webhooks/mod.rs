//! Webhooks (issue 16): mailbox owners register URLs; each new message is POSTed to them,
//! signed, through one bounded queue per node.
//!
//! Layout: `config` (`[api.webhooks]`), `network` (which addresses may be reached),
//! `target` (URL check, resolve and pin), `deliver` (queue, worker, signature), `fleet`
//! (registrations in the cluster, delivery by the accepting node). Single node: hooks are
//! held in memory; they live as long as the mailbox and are lost on restart.

pub mod config;
pub mod deliver;
pub mod fleet;
pub mod network;
pub mod target;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rand::RngCore;
use tempmx_store::Mailbox;

pub use self::config::WebhookConfig;
use self::deliver::Queue;
use self::network::Cidr;
use self::target::Target;

/// One registered webhook.
#[derive(Clone, Debug)]
pub struct Hook {
    /// Random id, unique per mailbox.
    pub id: String,
    /// Where deliveries go.
    pub target: Target,
    /// HMAC key of the signature header (shown once, at registration).
    pub secret: String,
}

/// A mailbox's hooks and the generation of the listener that serves them.
struct Entry {
    generation: u64,
    hooks: Vec<Hook>,
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The mailbox has `webhooks_per_mailbox_max` hooks already.
    #[error("at most {0} webhooks per mailbox")]
    Full(usize),
}

/// Delivery counters, read by `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Deliveries a receiver answered with 2xx.
    pub delivered: AtomicU64,
    /// Deliveries that failed every attempt.
    pub failed: AtomicU64,
    /// Deliveries dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Deliveries refused because the URL's address is not permitted.
    pub refused: AtomicU64,
    /// POST attempts made.
    pub attempts: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StatsSnapshot {
    /// Deliveries by result.
    pub results: [(&'static str, u64); 4],
    /// POST attempts made.
    pub attempts: u64,
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            results: [
                ("delivered", r(&self.delivered)),
                ("failed", r(&self.failed)),
                ("dropped", r(&self.dropped)),
                ("refused", r(&self.refused)),
            ],
            attempts: r(&self.attempts),
        }
    }
}

/// Registered webhooks of this node, the delivery queue and its counters.
pub struct Webhooks {
    config: WebhookConfig,
    allow: Vec<Cidr>,
    hooks: Mutex<HashMap<String, Entry>>,
    next_generation: AtomicU64,
    /// The delivery queue (the worker takes its receiving end once).
    pub queue: Queue,
    /// Delivery counters.
    pub stats: Arc<Stats>,
}

impl Webhooks {
    /// Empty, with a queue of `config.queue_max`.
    pub fn new(config: WebhookConfig) -> Self {
        Self {
            allow: config.allowed(),
            queue: Queue::new(config.queue_max),
            config,
            hooks: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(1),
            stats: Arc::new(Stats::default()),
        }
    }

    /// The `[api.webhooks]` settings.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Networks allowed although special-purpose.
    pub fn allow(&self) -> &[Cidr] {
        &self.allow
    }

    /// Adds a hook for `target`; returns it and, when the mailbox had none, the generation
    /// its new listener must carry.
    pub fn add(&self, mailbox: &Mailbox, target: Target) -> Result<(Hook, Option<u64>), AddError> {
        let max = self.config.webhooks_per_mailbox_max;
        let mut hooks = self.hooks.lock();
        let mut fresh = None;
        let entry = hooks.entry(mailbox.as_str().to_owned()).or_insert_with(|| {
            let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
            fresh = Some(generation);
            Entry {
                generation,
                hooks: Vec::new(),
            }
        });
        if entry.hooks.len() >= max {
            return Err(AddError::Full(max));
        }
        let hook = Hook {
            id: random_hex(8),
            target,
            secret: random_hex(32),
        };
        entry.hooks.push(hook.clone());
        Ok((hook, fresh))
    }

    /// The mailbox's hooks.
    pub fn list(&self, mailbox: &Mailbox) -> Vec<Hook> {
        self.hooks
            .lock()
            .get(mailbox.as_str())
            .map(|e| e.hooks.clone())
            .unwrap_or_default()
    }

    /// The hooks a listener of `generation` serves; `None` when it should stop.
    pub fn served(&self, mailbox: &Mailbox, generation: u64) -> Option<Vec<Hook>> {
        self.hooks
            .lock()
            .get(mailbox.as_str())
            .filter(|e| e.generation == generation)
            .map(|e| e.hooks.clone())
    }

    /// Removes one hook; false if the mailbox has no hook of that id.
    pub fn remove(&self, mailbox: &Mailbox, id: &str) -> bool {
        let mut hooks = self.hooks.lock();
        let Some(entry) = hooks.get_mut(mailbox.as_str()) else {
            return false;
        };
        let before = entry.hooks.len();
        entry.hooks.retain(|h| h.id != id);
        let removed = entry.hooks.len() < before;
        if entry.hooks.is_empty() {
            hooks.remove(mailbox.as_str());
        }
        removed
    }

    /// Removes every hook of a mailbox (deleted or expired).
    pub fn remove_mailbox(&self, mailbox: &Mailbox) {
        self.hooks.lock().remove(mailbox.as_str());
    }

    /// Counts deliveries lost before they were queued.
    pub fn count_dropped(&self, n: u64) {
        self.stats.dropped.fetch_add(n, Ordering::Relaxed);
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempmx_store::Domain;

    // Goal: the per-mailbox limit holds, removal of the last hook ends the listener's
    // generation, and removing the mailbox removes every hook. Method: the registry alone.
    #[test]
    fn limit_generation_and_removal() {
        let hooks = Webhooks::new(WebhookConfig {
            webhooks_per_mailbox_max: 2,
            ..Default::default()
        });
        let domain = Domain::parse("tempmx.test").expect("domain");
        let mb = Mailbox::new("a", &domain).expect("mailbox");
        let t = || Target::parse("http://example.com/h", 100).expect("url");
        let (first, fresh) = hooks.add(&mb, t()).expect("first");
        let generation = fresh.expect("first hook starts a listener");
        let (_, again) = hooks.add(&mb, t()).expect("second");
        assert!(again.is_none(), "one listener per mailbox");
        assert!(matches!(hooks.add(&mb, t()), Err(AddError::Full(2))));
        assert_eq!(hooks.list(&mb).len(), 2);
        assert!(hooks.remove(&mb, &first.id));
        assert!(!hooks.remove(&mb, &first.id));
        assert!(hooks.served(&mb, generation).is_some());
        hooks.remove_mailbox(&mb);
        assert!(hooks.served(&mb, generation).is_none());
        let (_, fresh) = hooks.add(&mb, t()).expect("after removal");
        assert_ne!(fresh, Some(generation), "a new listener, not the old one");
    }
}
