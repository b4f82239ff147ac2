//! The audit log: every change to the pool, who or which rule made it, when and why.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::domain::DomainState;

/// What happened.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditAction {
    /// A domain joined the pool.
    Added {
        /// Its first state.
        state: DomainState,
    },
    /// A domain left the pool.
    Deleted,
    /// A blocklist listing was confirmed.
    Listed {
        /// The list.
        list: String,
    },
    /// The rotation policy changed.
    PolicyChanged,
    /// A domain changed state.
    StateChanged {
        /// Old state.
        from: DomainState,
        /// New state.
        to: DomainState,
    },
    /// A confirmed listing ended.
    Unlisted {
        /// The list.
        list: String,
    },
}

/// One audit event.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct AuditEvent {
    /// Increasing id; pages continue after it.
    pub id: u64,
    /// Unix seconds.
    pub at: u64,
    /// The domain concerned, if any.
    pub domain: Option<String>,
    /// What happened.
    pub action: AuditAction,
    /// `admin`, `config` or `rule:<name>`.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// Fleet mode: the node that made the change (absent in a single node's log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Bounded log of events, oldest dropped first.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct AuditLog {
    events: VecDeque<AuditEvent>,
    next_id: u64,
}

impl AuditLog {
    /// Appends an event, dropping the oldest beyond `max`.
    pub fn push(
        &mut self,
        at: u64,
        domain: Option<&str>,
        action: AuditAction,
        actor: &str,
        reason: &str,
        max: usize,
    ) {
        self.next_id += 1;
        self.events.push_back(AuditEvent {
            id: self.next_id,
            at,
            domain: domain.map(str::to_owned),
            action,
            actor: actor.to_owned(),
            reason: reason.to_owned(),
            node: None,
        });
        while self.events.len() > max {
            self.events.pop_front();
        }
    }

    /// Up to `limit` events with an id greater than `after`, oldest first.
    pub fn page(&self, after: u64, limit: usize) -> Vec<AuditEvent> {
        let start = self.events.partition_point(|e| e.id <= after);
        self.events
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The id of the last event pushed (0 before the first).
    pub fn last_id(&self) -> u64 {
        self.next_id
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the log is bounded (oldest dropped) and pages resume after the last id seen.
    #[test]
    fn bounded_and_paged() {
        let mut log = AuditLog::default();
        for i in 0..5 {
            log.push(i, Some("a.test"), AuditAction::Deleted, "admin", "x", 3);
        }
        assert_eq!(log.len(), 3);
        let first = log.page(0, 2);
        assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), vec![3, 4]);
        let next = log.page(first[1].id, 2);
        assert_eq!(next.iter().map(|e| e.id).collect::<Vec<_>>(), vec![5]);
        assert!(log.page(5, 2).is_empty());
    }
}
