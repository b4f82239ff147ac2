//! The pool snapshot the control plane publishes to the DNS server.

use tempmx_store::Domain;

/// What a pool domain publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    /// Pending, active or draining: normal MX, NS, SPF, DMARC and MTA-STS records.
    Serving,
    /// Retired: a null MX (`0 .`, RFC 7505) so senders give up at once.
    Retired,
}

/// An immutable list of pool domains and their states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneSnapshot {
    /// Pool domains (valid by their type, so never an IP address) and states.
    pub domains: Vec<(Domain, ZoneState)>,
    /// Fleet mode: every zone's SOA serial (the fleet's pool version, the same on every
    /// node); `None` lets the server pick serials itself.
    pub serial: Option<u32>,
}

impl ZoneSnapshot {
    /// A snapshot in which every given domain is serving.
    pub fn serving(domains: impl IntoIterator<Item = Domain>) -> Self {
        Self {
            domains: domains
                .into_iter()
                .map(|d| (d, ZoneState::Serving))
                .collect(),
            serial: None,
        }
    }
}
