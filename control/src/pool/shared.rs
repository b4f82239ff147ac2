//! The plane's side of fleet mode: the rotation lease that gates its rules and blocklist
//! answers, the changes waiting to be written to the fleet's pool, and the pool version
//! this node applied last (its SOA serial).
//!
//! Every change the plane makes is diffed against the state before it and queued as a
//! [`PoolChange`]: an operator's part without an epoch, the rules' and blocklist answers'
//! part with the lease epoch they were made under, so the cluster's fence refuses them if
//! the lease moved meanwhile. Changes the plane adopts from the fleet are not queued.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::audit::AuditEvent;
use super::config::RotationPolicy;
use super::domain::Domain;
use super::state::PoolState;
use crate::fleet::lease::Lease;

/// Changes a node keeps while the cluster does not take them; older ones are dropped
/// (the node then re-reads the fleet's pool).
pub const OUTBOX_MAX: usize = 1024;

/// One change of the pool, to be written to the fleet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolChange {
    /// The lease epoch it was made under; `None` for an operator's change.
    pub epoch: Option<u64>,
    /// Domains added or changed (their shared fields).
    pub domains: Vec<Domain>,
    /// Domains deleted.
    pub deleted: Vec<String>,
    /// The new policy, if it changed.
    pub policy: Option<RotationPolicy>,
    /// Its audit events.
    pub audit: Vec<AuditEvent>,
}

/// What the plane holds in fleet mode.
pub struct FleetLink {
    /// This node's view of the rotation lease.
    pub lease: Arc<Lease>,
    /// Changes not yet written, oldest first.
    outbox: Mutex<VecDeque<PoolChange>>,
    /// The fleet pool version applied last (0: none yet).
    version: AtomicU64,
    /// Set when a change was refused or dropped: the next sync re-reads the whole pool.
    stale: std::sync::atomic::AtomicBool,
}

impl FleetLink {
    /// A link gated by `lease`.
    pub fn new(lease: Arc<Lease>) -> Self {
        Self {
            lease,
            outbox: Mutex::new(VecDeque::new()),
            version: AtomicU64::new(0),
            stale: Default::default(),
        }
    }

    /// Queues the difference between `old` and `new`, if any.
    pub(super) fn queue(&self, old: &PoolState, new: &PoolState, epoch: Option<u64>) {
        let Some(change) = diff(old, new, epoch) else {
            return;
        };
        let mut outbox = self.outbox.lock();
        if outbox.len() >= OUTBOX_MAX {
            tracing::error!(
                "fleet pool changes dropped: the cluster took none of the last {OUTBOX_MAX}"
            );
            outbox.pop_front();
            self.mark_stale();
        }
        outbox.push_back(change);
    }

    /// The oldest change not yet written.
    pub fn front(&self) -> Option<PoolChange> {
        self.outbox.lock().front().cloned()
    }

    /// Drops the oldest change (written, or refused by the fence).
    pub fn pop(&self) {
        self.outbox.lock().pop_front();
    }

    /// Whether changes wait to be written.
    pub fn pending(&self) -> bool {
        !self.outbox.lock().is_empty()
    }

    /// The fleet pool version applied last.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    pub(super) fn set_version(&self, v: u64) {
        self.version.store(v, Ordering::Relaxed);
    }

    /// Makes the next sync re-read and adopt the whole pool (a change of this node's was
    /// refused, so its state may differ from the fleet's).
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Whether a full re-read is due; clears the mark.
    pub fn take_stale(&self) -> bool {
        self.stale.swap(false, Ordering::Relaxed)
    }
}

/// A domain's fields the fleet shares (message counts are each node's own).
pub fn shared_fields(d: &Domain) -> Domain {
    Domain {
        messages: 0,
        last_message_at: None,
        ..d.clone()
    }
}

/// What changed from `old` to `new` in the shared fields, with the audit events `new`
/// added; `None` when nothing did.
fn diff(old: &PoolState, new: &PoolState, epoch: Option<u64>) -> Option<PoolChange> {
    let domains: Vec<Domain> = new
        .domains
        .values()
        .filter(|d| {
            old.domains
                .get(&d.name)
                .is_none_or(|o| shared_fields(o) != shared_fields(d))
        })
        .map(shared_fields)
        .collect();
    let deleted: Vec<String> = old
        .domains
        .keys()
        .filter(|n| !new.domains.contains_key(*n))
        .cloned()
        .collect();
    let policy = (old.policy != new.policy).then(|| new.policy.clone());
    let audit = new.audit.page(old.audit.last_id(), usize::MAX);
    let change = PoolChange {
        epoch,
        domains,
        deleted,
        policy,
        audit,
    };
    let empty = change.domains.is_empty()
        && change.deleted.is_empty()
        && change.policy.is_none()
        && change.audit.is_empty();
    (!empty).then_some(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{AuditAction, DomainState};

    #[test]
    fn a_change_carries_what_differs_and_its_audit_events() {
        // Goal: the diff names changed, new and deleted domains, a policy change and the
        // new audit events, ignores message counts, and is empty for no change. Method:
        // two states built by hand.
        let mut old = PoolState::default();
        for n in ["a.test", "b.test", "c.test"] {
            old.domains
                .insert(n.into(), Domain::new(n.into(), DomainState::Active, 1));
        }
        old.audit
            .push(1, None, AuditAction::PolicyChanged, "admin", "x", 10);
        let mut new = old.clone();
        assert_eq!(diff(&old, &new, None), None);
        new.domains.get_mut("a.test").expect("a").messages = 9;
        assert_eq!(diff(&old, &new, None), None, "counts are not shared");
        new.domains
            .get_mut("b.test")
            .expect("b")
            .enter(DomainState::Draining, 5, 60);
        new.domains.remove("c.test");
        new.domains.insert(
            "d.test".into(),
            Domain::new("d.test".into(), DomainState::Pending, 5),
        );
        new.policy.active_target += 1;
        new.audit
            .push(5, Some("b.test"), AuditAction::Deleted, "admin", "y", 10);
        let c = diff(&old, &new, Some(7)).expect("a change");
        let names: Vec<&str> = c.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["b.test", "d.test"]);
        assert_eq!(c.deleted, ["c.test"]);
        assert_eq!(
            c.policy.map(|p| p.active_target),
            Some(new.policy.active_target)
        );
        assert_eq!(c.audit.len(), 1);
        assert_eq!(c.epoch, Some(7));
    }
}
