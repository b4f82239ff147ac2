//! The domain pool: which domains exist, in which lifecycle state, and the snapshots
//! published from it to the ingress and the DNS.
//!
//! Layout: `domain` (one domain, its lifecycle), `rotation` (the pure policy planner),
//! `plane` (the [`ControlPlane`]: operator changes, rules, persistence, publishing),
//! `listing` (blocklist answers into the state), `state` (the atomic state file), `drift`
//! (saved state against the file at start), `edit` (a reload's edit of the file), `audit`,
//! `counters` (per-domain message counts taken at the store writers the app wraps, drained
//! by the plane's tick), `publish`
//! (snapshots for ingress and DNS), `clock`, `config` (policy and limits), `shared` (fleet
//! mode: the lease gate and the queue of changes for the fleet). The blocklist
//! cycle lives in [`crate::blocklist`], the mailbox registry in [`crate::mailboxes`]; the
//! app wires both to the plane.

mod audit;
mod clock;
mod config;
mod counters;
mod domain;
mod drift;
mod edit;
mod listing;
mod plane;
mod publish;
pub mod rotation;
pub mod shared;
mod state;

use std::collections::BTreeMap;

use tempmx_ingress::policy::{PoolSnapshot, RecipientMode};

pub use audit::{AuditAction, AuditEvent, AuditLog};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{PolicyPatch, PoolLimits, RotationPolicy};
pub use counters::{Count, CountingSink, MessageCounters};
pub use domain::{Domain, DomainState, Listing};
pub use drift::Drift;
pub use edit::PoolEdit;
pub use plane::{
    AddOutcome, COUNTS_SAVE_SECS, ControlError, ControlPlane, DomainInfo, PlaneConfig,
};
pub use publish::{DnsPublish, Targets, dns_snapshot};
pub use rotation::RotationReason;
pub use state::{Persisted, PoolState, StateError, StateFile};

/// The pool of domains and their states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    domains: BTreeMap<tempmx_store::Domain, DomainState>,
    recipients: RecipientMode,
}

impl Pool {
    /// A pool of the given domains and states.
    pub fn from_domains(
        domains: impl IntoIterator<Item = (tempmx_store::Domain, DomainState)>,
        recipients: RecipientMode,
    ) -> Self {
        Self {
            domains: domains.into_iter().collect(),
            recipients,
        }
    }

    /// Domains and their states, sorted by name.
    pub fn domains(&self) -> impl Iterator<Item = (&tempmx_store::Domain, DomainState)> {
        self.domains.iter().map(|(n, s)| (n, *s))
    }

    /// The snapshot the ingress checks recipients against.
    pub fn ingress_snapshot(&self) -> PoolSnapshot {
        PoolSnapshot::new(
            self.domains
                .iter()
                .map(|(n, s)| (n.clone(), s.ingress_status())),
            self.recipients,
        )
    }
}
