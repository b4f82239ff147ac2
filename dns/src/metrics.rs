//! The DNS server's metrics, declared once as a table: name, help, type and how to read
//! each family from [`DnsCounters`] (summed per worker, see `counters`). The exporter in
//! the `tempmx` crate walks the table.

use tempmx_store::metrics::MetricKind::{Counter, Gauge};
pub use tempmx_store::metrics::{Metric, MetricDesc, MetricKind, Values, desc};

use crate::DnsCounters;

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

/// Every metric of the DNS server, read from [`DnsCounters`].
pub const TABLE: &[Metric<DnsCounters>] = &[
    Metric::new(QUERIES, |c| {
        Values::by("type", c.queries_by_type.iter().copied())
    }),
    Metric::new(RESPONSES, |c| {
        Values::by("rcode", c.responses_by_rcode.iter().copied())
    }),
    Metric::one(MALFORMED, |c| c.malformed),
    Metric::one(DROPPED, |c| c.dropped),
    Metric::one(AXFR_REFUSED, |c| c.axfr_refused),
    Metric::one(ZONES, |c| c.zones),
];
