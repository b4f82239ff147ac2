//! The pool snapshot the control plane publishes and the ingress reads without locks.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::accept::normalise_domain;

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

/// Which local parts of a pool domain are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientMode {
    /// Any local part.
    CatchAll,
    /// Only addresses the [`MailboxRegistry`] knows.
    RegisteredOnly,
}

/// An immutable view of the domain pool.
#[derive(Debug)]
pub struct PoolSnapshot {
    domains: HashMap<String, DomainStatus>,
    mode: RecipientMode,
}

impl PoolSnapshot {
    /// Builds a snapshot; names are normalised (IDNA to ASCII, lowercase); invalid names are skipped.
    pub fn new(
        domains: impl IntoIterator<Item = (String, DomainStatus)>,
        mode: RecipientMode,
    ) -> Self {
        let mut map = HashMap::new();
        for (name, status) in domains {
            // Configured names may be written as FQDNs with the root dot.
            let trimmed = name.strip_suffix('.').unwrap_or(&name);
            match normalise_domain(trimmed) {
                Some(n) => {
                    map.insert(n, status);
                }
                None => tracing::warn!(domain = %name, "pool domain is not a valid name; skipped"),
            }
        }
        Self { domains: map, mode }
    }

    /// Status of a domain given in normalised form (ASCII, lowercase, no trailing dot).
    pub fn status(&self, domain: &str) -> Option<DomainStatus> {
        self.domains.get(domain).copied()
    }

    /// Every domain of the snapshot with its status, in no particular order.
    pub fn domains(&self) -> impl Iterator<Item = (&str, DomainStatus)> {
        self.domains.iter().map(|(n, s)| (n.as_str(), *s))
    }

    /// The recipient mode of this snapshot.
    pub fn mode(&self) -> RecipientMode {
        self.mode
    }
}

/// Lookup of registered mailboxes, used in [`RecipientMode::RegisteredOnly`].
pub trait MailboxRegistry: Send + Sync {
    /// Whether `address` (normalised `local@domain`) is registered.
    fn contains(&self, address: &str) -> bool;
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
