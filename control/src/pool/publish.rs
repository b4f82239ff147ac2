//! Builds the immutable snapshots the data planes read, and hands them over.

use std::sync::Arc;

use tempmx_dns::{ZoneSnapshot, ZoneState};
use tempmx_ingress::policy::Policy;

use super::Pool;
use super::domain::DomainState;

/// Receives every new DNS snapshot (the app wires it to `DnsHandle::publish`).
pub type DnsPublish = Arc<dyn Fn(ZoneSnapshot) + Send + Sync>;

/// Where snapshots go.
pub struct Targets {
    /// The ingress recipient policy.
    pub policy: Arc<Policy>,
    /// The DNS server, if one runs.
    pub dns: Option<DnsPublish>,
}

impl Targets {
    /// Publishes `pool` to the ingress and the DNS (with SOA serial `serial` when given);
    /// both read the new snapshot lock-free.
    pub fn publish(&self, pool: &Pool, serial: Option<u32>) {
        self.policy.publish(pool.ingress_snapshot());
        if let Some(dns) = &self.dns {
            dns(dns_snapshot(pool, serial));
        }
    }
}

/// The DNS view of the pool: pending, active and draining serve normal records; retired
/// domains serve a null MX. `serial` (fleet mode: the pool version) is every zone's SOA
/// serial when given.
pub fn dns_snapshot(pool: &Pool, serial: Option<u32>) -> ZoneSnapshot {
    let domains = pool
        .domains()
        .map(|(name, state)| {
            let zone = if state == DomainState::Retired {
                ZoneState::Retired
            } else {
                ZoneState::Serving
            };
            (name.clone(), zone)
        })
        .collect();
    ZoneSnapshot { domains, serial }
}
