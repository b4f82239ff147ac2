//! The ingress's metrics, declared once as tables: name, help, type and how to read each
//! family from the snapshots the ingress's counters give (per-core blocks, see
//! `driver::counters`, the authenticators' counters and the greylisting table). The
//! exporter in the `tempmx` crate walks the tables.

use tempmx_store::metrics::MetricKind::{Counter, Gauge, Histogram};
pub use tempmx_store::metrics::{Metric, MetricDesc, MetricKind, Sample, Values, desc};

use crate::auth::{AuthCountersSnapshot, AuthMethod, AuthValue};
use crate::driver::IngressCountersSnapshot;
use crate::greylist::{GreylistStats, PassReason};

/// SMTP connections by outcome.
pub const SMTP_CONNECTIONS: MetricDesc = desc(
    "tempmx_smtp_connections_total",
    "SMTP connections, by outcome (accepted, or refused with 421 4.7.0 at the core or per-IP cap).",
    Counter,
);
/// Ended sessions by how they ended.
pub const SMTP_SESSIONS: MetricDesc = desc(
    "tempmx_smtp_sessions_total",
    "Ended SMTP sessions, by how they ended.",
    Counter,
);
/// Messages stored and acknowledged.
pub const SMTP_MESSAGES_ACCEPTED: MetricDesc = desc(
    "tempmx_smtp_messages_accepted_total",
    "Messages stored and acknowledged with 250.",
    Counter,
);
/// Refusals by reason.
pub const SMTP_REJECTIONS: MetricDesc = desc(
    "tempmx_smtp_rejections_total",
    "Refused commands and messages, by reason.",
    Counter,
);
/// Bytes read from clients.
pub const SMTP_RECEIVED_BYTES: MetricDesc = desc(
    "tempmx_smtp_received_bytes_total",
    "Bytes read from SMTP clients.",
    Counter,
);
/// Reply bytes written to clients.
pub const SMTP_SENT_BYTES: MetricDesc = desc(
    "tempmx_smtp_sent_bytes_total",
    "Reply bytes written to SMTP clients.",
    Counter,
);
/// STARTTLS handshakes by result.
pub const SMTP_TLS_HANDSHAKES: MetricDesc = desc(
    "tempmx_smtp_tls_handshakes_total",
    "STARTTLS handshakes, by result.",
    Counter,
);
/// Session duration histogram.
pub const SMTP_SESSION_DURATION: MetricDesc = desc(
    "tempmx_smtp_session_duration_seconds",
    "Duration of ended SMTP sessions, connection admitted to socket shut down.",
    Histogram,
);
/// Accepted message size histogram.
pub const SMTP_MESSAGE_SIZE: MetricDesc = desc(
    "tempmx_smtp_message_size_bytes",
    "Size of accepted messages as received (after dot-unstuffing, without our trace headers).",
    Histogram,
);
/// Enforce-mode verdicts not applied.
pub const AUTH_FAIL_OPEN: MetricDesc = desc(
    "tempmx_auth_fail_open_total",
    "Enforce-mode authentication verdicts not applied because a check had a temperror.",
    Counter,
);
/// Authentication results by method and result.
pub const AUTH_RESULTS: MetricDesc = desc(
    "tempmx_auth_results_total",
    "Authentication results, by method (spf, dkim per signature, dmarc, arc) and result.",
    Counter,
);
/// Checks cut by their deadline.
pub const AUTH_TIMEOUTS: MetricDesc = desc(
    "tempmx_auth_timeouts_total",
    "Authentication checks cut by the message's check_duration_max_ms deadline (their open methods are temperror).",
    Counter,
);
/// Resolver health transitions.
pub const AUTH_RESOLVER_TRANSITIONS: MetricDesc = desc(
    "tempmx_auth_resolver_transitions_total",
    "Times a core marked its DNS resolver down (unanswered checks in a row) or up (a probe answered), by state.",
    Counter,
);
/// Probe queries by result.
pub const AUTH_RESOLVER_PROBES: MetricDesc = desc(
    "tempmx_auth_resolver_probes_total",
    "Probe queries sent to a resolver marked down, by result (answered, unanswered).",
    Counter,
);
/// Temperrors answered without a query.
pub const AUTH_RESOLVER_DOWN_TEMPERRORS: MetricDesc = desc(
    "tempmx_auth_resolver_down_temperrors_total",
    "Authentication checks answered temperror at once, without a query, because the resolver was down.",
    Counter,
);
/// Cores whose resolver is down.
pub const AUTH_RESOLVERS_DOWN: MetricDesc = desc(
    "tempmx_auth_resolvers_down",
    "Ingress cores whose DNS resolver is marked down now.",
    Gauge,
);
/// Greylisting verdicts.
pub const GREYLIST_CHECKS: MetricDesc = desc(
    "tempmx_greylist_checks_total",
    "Greylisting verdicts: deferred, unavailable (shared state unreachable: 451 4.3.0), or the reason a recipient passed.",
    Counter,
);
/// Triplets held.
pub const GREYLIST_ENTRIES: MetricDesc = desc(
    "tempmx_greylist_entries",
    "Triplets held in the greylisting table.",
    Gauge,
);
/// Triplets dropped by the bound.
pub const GREYLIST_EVICTED: MetricDesc = desc(
    "tempmx_greylist_evicted_total",
    "Triplets dropped by the table's size bound.",
    Counter,
);
/// Client networks tracked for the auto-allowlist.
pub const GREYLIST_CLIENTS: MetricDesc = desc(
    "tempmx_greylist_clients",
    "Client networks tracked for the greylisting auto-allowlist.",
    Gauge,
);
/// Client networks dropped by the bound.
pub const GREYLIST_CLIENTS_EVICTED: MetricDesc = desc(
    "tempmx_greylist_clients_evicted_total",
    "Client networks dropped by the auto-allowlist table's size bound.",
    Counter,
);
/// Delay greylisted mail suffered.
pub const GREYLIST_DELAY: MetricDesc = desc(
    "tempmx_greylist_delay_seconds",
    "Delay each greylisted-then-accepted triplet suffered, first attempt to accepted retry.",
    Histogram,
);

/// The SMTP families, read from the summed per-core counters.
pub const SMTP: &[Metric<IngressCountersSnapshot>] = &[
    Metric::new(SMTP_CONNECTIONS, |c| {
        Values::by(
            "outcome",
            [
                ("accepted", c.connections_accepted),
                ("refused_core", c.connections_refused_core),
                ("refused_ip", c.connections_refused_ip),
            ],
        )
    }),
    Metric::new(SMTP_SESSIONS, |c| {
        Values::by(
            "outcome",
            [
                ("closed", c.sessions_closed),
                ("timed_out", c.sessions_timed_out),
                ("aborted", c.sessions_aborted),
                ("shutdown", c.sessions_shutdown),
            ],
        )
    }),
    Metric::one(SMTP_MESSAGES_ACCEPTED, |c| c.messages_accepted),
    Metric::new(SMTP_REJECTIONS, |c| {
        Values::by(
            "reason",
            [
                ("relay", c.rejected_relay),
                ("size", c.rejected_size),
                ("syntax", c.rejected_syntax),
                ("smuggling", c.rejected_smuggling),
                ("rate", c.rejected_rate),
                ("store", c.messages_store_failed),
                ("spf", c.rejected_spf),
                ("dmarc", c.rejected_dmarc),
                ("greylisted", c.greylisted),
            ],
        )
    }),
    Metric::one(AUTH_FAIL_OPEN, |c| c.auth_fail_open),
    Metric::one(SMTP_RECEIVED_BYTES, |c| c.bytes_in),
    Metric::one(SMTP_SENT_BYTES, |c| c.bytes_out),
    Metric::new(SMTP_TLS_HANDSHAKES, |c| {
        Values::by(
            "result",
            [
                ("ok", c.tls_handshakes_ok),
                ("failed", c.tls_handshakes_failed),
            ],
        )
    }),
    Metric::new(SMTP_SESSION_DURATION, |c| {
        let d = &c.session_duration;
        Values::histogram(&SESSION_DURATION_BOUNDS_US, 1e-6, &d.counts, d.sum)
    }),
    Metric::new(SMTP_MESSAGE_SIZE, |c| {
        let m = &c.message_size;
        Values::histogram(&MESSAGE_SIZE_BOUNDS_BYTES, 1.0, &m.counts, m.sum)
    }),
];

/// The authentication families: results per method, deadlines, and the resolver's health.
pub const AUTH: &[Metric<AuthCountersSnapshot>] = &[
    Metric::new(AUTH_RESULTS, |a| {
        let mut samples = Vec::with_capacity(AuthMethod::ALL.len() * AuthValue::ALL.len());
        for (m, method) in AuthMethod::ALL.iter().enumerate() {
            for (v, value) in AuthValue::ALL.iter().enumerate() {
                samples.push(Sample {
                    labels: vec![
                        ("method", method.label().to_owned()),
                        ("result", value.label().to_owned()),
                    ],
                    value: a.results[m][v] as f64,
                });
            }
        }
        Values::Samples(samples)
    }),
    Metric::one(AUTH_TIMEOUTS, |a| a.timeouts),
    Metric::new(AUTH_RESOLVER_TRANSITIONS, |a| {
        Values::by("state", [("down", a.resolver_down), ("up", a.resolver_up)])
    }),
    Metric::new(AUTH_RESOLVER_PROBES, |a| {
        Values::by(
            "result",
            [
                ("answered", a.probes_answered),
                ("unanswered", a.probes_unanswered),
            ],
        )
    }),
    Metric::one(AUTH_RESOLVER_DOWN_TEMPERRORS, |a| a.down_temperrors),
    Metric::one(AUTH_RESOLVERS_DOWN, |a| a.resolvers_down),
];

/// The greylisting families (exported only while greylisting is on).
pub const GREYLIST: &[Metric<GreylistStats>] = &[
    Metric::new(GREYLIST_CHECKS, |g| {
        let passed = PassReason::ALL
            .iter()
            .zip(g.passed)
            .map(|(reason, n)| (reason.label(), n));
        Values::by(
            "verdict",
            [("deferred", g.deferred), ("unavailable", g.unavailable)]
                .into_iter()
                .chain(passed),
        )
    }),
    Metric::one(GREYLIST_ENTRIES, |g| g.entries),
    Metric::one(GREYLIST_EVICTED, |g| g.evicted),
    Metric::one(GREYLIST_CLIENTS, |g| g.clients),
    Metric::one(GREYLIST_CLIENTS_EVICTED, |g| g.clients_evicted),
    Metric::new(GREYLIST_DELAY, |g| {
        let d = &g.delay;
        Values::Histogram {
            bounds: d.bounds_secs.to_vec(),
            counts: d.counts.clone(),
            sum: d.sum_secs,
        }
    }),
];

/// Buckets of [`SMTP_SESSION_DURATION`], upper bounds in microseconds; the last bucket
/// (`u64::MAX`) is +Inf. From a pipelined burst (ms) to the 30 min session limit.
pub const SESSION_DURATION_BOUNDS_US: [u64; 16] = [
    1_000,
    5_000,
    10_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
    1_800_000_000,
    u64::MAX,
];

/// Buckets of [`SMTP_MESSAGE_SIZE`], upper bounds in bytes (powers of 4 from 1 KiB to
/// 64 MiB); the last bucket (`u64::MAX`) is +Inf.
pub const MESSAGE_SIZE_BOUNDS_BYTES: [u64; 10] = [
    1 << 10,
    1 << 12,
    1 << 14,
    1 << 16,
    1 << 18,
    1 << 20,
    1 << 22,
    1 << 24,
    1 << 26,
    u64::MAX,
];

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: bucket bounds ascend and end in +Inf (names are checked, across crates, by the
    // exporter's `declared_metrics_are_well_formed`).
    #[test]
    fn bucket_bounds_ascend_to_inf() {
        for bounds in [
            &SESSION_DURATION_BOUNDS_US[..],
            &MESSAGE_SIZE_BOUNDS_BYTES[..],
        ] {
            assert!(bounds.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(bounds.last(), Some(&u64::MAX));
        }
    }
}
