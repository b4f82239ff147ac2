//! The pool snapshot the control plane publishes and the ingress reads without locks.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tempmx_store::{Domain, Mailbox};

/// Lifecycle state of a pool domain as seen by the ingress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainStatus {
    /// DNS published, not offered yet; accepts mail.
    Pending,
    /// Offered for new addresses; accepts mail.
    Active,
    /// No new addresses; still accepts mail.
    Draining,
    /// Out of the pool; mail is refused with 550 5.1.2.
    Retired,
}

/// Which local parts of a pool domain are accepted (`pool.recipients` in the config:
/// `catch-all` or `registered`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RecipientMode {
    /// Any local part.
    CatchAll,
    /// Only mailboxes the [`MailboxRegistry`] knows (created through the API).
    #[serde(rename = "registered")]
    RegisteredOnly,
}

/// An immutable view of the domain pool.
#[derive(Debug)]
pub struct PoolSnapshot {
    domains: HashMap<Domain, DomainStatus>,
    mode: RecipientMode,
}

impl PoolSnapshot {
    /// Builds a snapshot of these domains in this mode.
    pub fn new(
        domains: impl IntoIterator<Item = (Domain, DomainStatus)>,
        mode: RecipientMode,
    ) -> Self {
        Self {
            domains: domains.into_iter().collect(),
            mode,
        }
    }

    /// Status of a pool domain; `None` when it is not in the pool.
    pub fn status(&self, domain: &Domain) -> Option<DomainStatus> {
        self.domains.get(domain).copied()
    }

    /// Every domain of the snapshot with its status, in no particular order.
    pub fn domains(&self) -> impl Iterator<Item = (&Domain, DomainStatus)> {
        self.domains.iter().map(|(n, s)| (n, *s))
    }

    /// The recipient mode of this snapshot.
    pub fn mode(&self) -> RecipientMode {
        self.mode
    }
}

/// Lookup of registered mailboxes, used in [`RecipientMode::RegisteredOnly`].
pub trait MailboxRegistry: Send + Sync {
    /// Whether `mailbox` is registered.
    fn contains(&self, mailbox: &Mailbox) -> bool;
}

/// The current snapshot plus the optional registry, shared by all sessions.
pub struct Policy {
    snapshot: ArcSwap<PoolSnapshot>,
    registry: Option<Arc<dyn MailboxRegistry>>,
}

impl Policy {
    /// Creates the policy with a first snapshot.
    pub fn new(snapshot: PoolSnapshot, registry: Option<Arc<dyn MailboxRegistry>>) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            registry,
        }
    }

    /// Replaces the snapshot; sessions see it at their next RCPT.
    pub fn publish(&self, snapshot: PoolSnapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<PoolSnapshot> {
        self.snapshot.load_full()
    }

    /// The mailbox registry, if any.
    pub fn registry(&self) -> Option<&dyn MailboxRegistry> {
        self.registry.as_deref()
    }
}
