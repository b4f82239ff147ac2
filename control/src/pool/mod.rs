//! The domain pool: which domains exist, in which lifecycle state, and the snapshots
//! published from it to the ingress and the DNS.
//!
//! Layout: `domain` (one domain, its lifecycle), `rotation` (the pure policy planner),
//! `plane` (the [`ControlPlane`]: operator changes, rules, persistence, publishing),
//! `state` (the atomic state file), `drift` (saved state against the file at start), `audit`, `counters` (per-domain message counts fed
//! from the store writers),
//! `publish` (snapshots for ingress and DNS), `clock`, `config` (policy and limits).

mod audit;
mod clock;
mod config;
mod counters;
mod domain;
mod drift;
mod plane;
mod publish;
pub mod rotation;
mod state;

use std::collections::BTreeMap;

use tempmx_ingress::policy::{PoolSnapshot, RecipientMode};

pub use audit::{AuditAction, AuditEvent, AuditLog};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{PolicyPatch, PoolLimits, RotationPolicy};
pub use counters::{Count, CountingSink, MessageCounters};
pub use domain::{Domain, DomainState, Listing};
pub use drift::Drift;
pub use plane::{
    AddOutcome, COUNTS_SAVE_SECS, ControlError, ControlPlane, CycleReport, DomainInfo, PlaneConfig,
};
pub use publish::{DnsPublish, Targets, dns_snapshot};
pub use rotation::RotationReason;
pub use state::{Persisted, PoolState, StateError, StateFile};

use crate::config::RecipientPolicy;

/// Longest domain name in presentation form without the root dot (RFC 1035 §2.3.4).
const DOMAIN_BYTES_MAX: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
const LABEL_BYTES_MAX: usize = 63;

/// Normalises a domain name to lowercase ASCII (IDNA), or `None` when it is not a valid
/// host name of at least two labels.
pub fn normalise_domain(name: &str) -> Option<String> {
    let ascii = idna::domain_to_ascii(name).ok()?;
    if ascii.is_empty() || ascii.len() > DOMAIN_BYTES_MAX || ascii.ends_with('.') {
        return None;
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return None;
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= LABEL_BYTES_MAX
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    labels.iter().all(label_ok).then_some(ascii)
}

/// The pool of domains and their states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    domains: BTreeMap<String, DomainState>,
    recipients: RecipientPolicy,
}

impl Pool {
    /// A pool of the given domains (already normalised) and states.
    pub fn from_domains(
        domains: impl IntoIterator<Item = (String, DomainState)>,
        recipients: RecipientPolicy,
    ) -> Self {
        Self {
            domains: domains.into_iter().collect(),
            recipients,
        }
    }

    /// Domains and their states, sorted by name.
    pub fn domains(&self) -> impl Iterator<Item = (&str, DomainState)> {
        self.domains.iter().map(|(n, s)| (n.as_str(), *s))
    }

    /// The snapshot the ingress checks recipients against.
    pub fn ingress_snapshot(&self) -> PoolSnapshot {
        let mode = match self.recipients {
            RecipientPolicy::CatchAll => RecipientMode::CatchAll,
            RecipientPolicy::Registered => RecipientMode::RegisteredOnly,
        };
        PoolSnapshot::new(
            self.domains
                .iter()
                .map(|(n, s)| (n.clone(), s.ingress_status())),
            mode,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Goal: names are normalised exactly once, and anything that is not a host name is refused.
    #[test]
    fn domain_normalisation() {
        let cases = [
            ("Tempmx.TEST", Some("tempmx.test")),
            ("bücher.example", Some("xn--bcher-kva.example")),
            ("tempmx.test.", None),
            ("localhost", None),
            ("a..b", None),
            ("-a.test", None),
            ("a_b.test", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalise_domain(input).as_deref(), want, "{input}");
        }
        assert!(normalise_domain(&format!("{}.test", "a".repeat(64))).is_none());
    }
}
