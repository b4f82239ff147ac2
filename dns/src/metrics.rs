//! The DNS server's metrics, declared once: name, help and type of every family it records.
//! The server counts per worker (see `counters`); the exporter in the `tempmx` crate
//! builds Prometheus families from these descriptors and [`DnsCounters`](crate::DnsCounters).

use self::MetricKind::{Counter, Gauge};

/// How a metric behaves, for the exporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic since start (`_total`).
    Counter,
    /// Current value.
    Gauge,
}

/// One metric family as this crate declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricDesc {
    /// Prometheus name, `tempmx_<area>_<what>_<unit>`.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
}

const fn desc(name: &'static str, help: &'static str, kind: MetricKind) -> MetricDesc {
    MetricDesc { name, help, kind }
}

/// Queries by type.
pub const QUERIES: MetricDesc = desc(
    "tempmx_dns_queries_total",
    "DNS queries answered, by query type.",
    Counter,
);
/// Responses by rcode.
pub const RESPONSES: MetricDesc = desc(
    "tempmx_dns_responses_total",
    "DNS responses, by response code.",
    Counter,
);
/// Unreadable messages.
pub const MALFORMED: MetricDesc = desc(
    "tempmx_dns_malformed_total",
    "DNS messages without a readable question.",
    Counter,
);
/// Packets dropped.
pub const DROPPED: MetricDesc = desc(
    "tempmx_dns_dropped_total",
    "DNS packets dropped unanswered.",
    Counter,
);
/// Refused transfers.
pub const AXFR_REFUSED: MetricDesc = desc(
    "tempmx_dns_axfr_refused_total",
    "Zone transfers refused.",
    Counter,
);
/// Zones served.
pub const ZONES: MetricDesc = desc("tempmx_dns_zones", "Zones served.", Gauge);

/// Every metric of the DNS server.
pub const ALL: &[MetricDesc] = &[QUERIES, RESPONSES, MALFORMED, DROPPED, AXFR_REFUSED, ZONES];
