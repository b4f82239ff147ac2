//! One pool domain: its lifecycle state, listing flag and counters.

use serde::{Deserialize, Serialize};
use tempmx_ingress::policy::DomainStatus;
use utoipa::ToSchema;

/// A domain's place in its lifecycle (ARCHITECTURE.md "Domain lifecycle").
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DomainState {
    /// DNS published, not offered for new addresses.
    Pending,
    /// Offered for new addresses; accepts mail.
    Active,
    /// No new addresses; accepts mail for its mailboxes until they expire.
    Draining,
    /// Null MX; SMTP answers 550 5.1.2.
    Retired,
}

impl DomainState {
    /// The state as the ingress sees it.
    pub fn ingress_status(self) -> DomainStatus {
        match self {
            Self::Pending => DomainStatus::Pending,
            Self::Active => DomainStatus::Active,
            Self::Draining => DomainStatus::Draining,
            Self::Retired => DomainStatus::Retired,
        }
    }

    /// Whether an operator may move a domain from `self` to `to`. Retired domains can
    /// come back only as pending (DNS first, offered later); nothing skips back to active
    /// from retired because its mailboxes are gone.
    pub fn can_move_to(self, to: DomainState) -> bool {
        use DomainState::*;
        matches!(
            (self, to),
            (Pending, Active)
                | (Pending, Retired)
                | (Active, Draining)
                | (Active, Retired)
                | (Draining, Active)
                | (Draining, Retired)
                | (Retired, Pending)
        )
    }
}

/// A confirmed blocklist listing.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct Listing {
    /// The list that listed the domain (a DNSBL zone or `file:<name>`).
    pub list: String,
    /// What the list says (mapped from its return code).
    pub reason: String,
    /// Unix seconds of the first listed answer of the confirming run.
    pub since: u64,
}

/// One domain of the pool.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
pub struct Domain {
    /// Normalised name (ASCII, lowercase).
    pub name: String,
    /// Lifecycle state.
    pub state: DomainState,
    /// Unix seconds when it joined the pool.
    pub added_at: u64,
    /// Unix seconds when it entered its current state.
    pub state_since: u64,
    /// Unix seconds when it last became active.
    pub activated_at: Option<u64>,
    /// Unix seconds when its drain ends (draining only).
    pub drain_until: Option<u64>,
    /// The confirmed listing, if any.
    pub listing: Option<Listing>,
    /// Messages received since it was added (counted at the store writers, once per
    /// message however many of its recipients are on this domain).
    pub messages: u64,
    /// Unix seconds of the last message received.
    pub last_message_at: Option<u64>,
}

impl Domain {
    /// A new domain in `state` at `now`.
    pub fn new(name: String, state: DomainState, now: u64) -> Self {
        let activated_at = (state == DomainState::Active).then_some(now);
        Self {
            name,
            state,
            added_at: now,
            state_since: now,
            activated_at,
            drain_until: None,
            listing: None,
            messages: 0,
            last_message_at: None,
        }
    }

    /// Moves to `to` at `now`, setting the state's timestamps (no transition check).
    pub fn enter(&mut self, to: DomainState, now: u64, drain_secs: u64) {
        self.state = to;
        self.state_since = now;
        self.drain_until = None;
        match to {
            DomainState::Active => self.activated_at = Some(now),
            DomainState::Draining => self.drain_until = Some(now.saturating_add(drain_secs)),
            DomainState::Pending | DomainState::Retired => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the operator transition table matches the lifecycle; no self-moves.
    #[test]
    fn transition_table() {
        use DomainState::*;
        let all = [Pending, Active, Draining, Retired];
        let allowed: Vec<_> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_move_to(*b))
            .collect();
        assert_eq!(allowed.len(), 7);
        assert!(all.iter().all(|s| !s.can_move_to(*s)));
        assert!(!Retired.can_move_to(Active));
    }

    // Goal: entering draining sets the drain deadline, entering active the activation time.
    #[test]
    fn enter_sets_timestamps() {
        let mut d = Domain::new("a.test".into(), DomainState::Pending, 10);
        d.enter(DomainState::Active, 20, 100);
        assert_eq!(
            (d.activated_at, d.drain_until, d.state_since),
            (Some(20), None, 20)
        );
        d.enter(DomainState::Draining, 30, 100);
        assert_eq!(d.drain_until, Some(130));
        d.enter(DomainState::Retired, 130, 100);
        assert_eq!(d.drain_until, None);
    }
}
