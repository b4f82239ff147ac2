//! `/metrics`: every crate records its own counters without contention; this module turns
//! them into Prometheus families at scrape time and renders the text format.
//!
//! The data planes keep per-core (or per-worker) counters and expose summed snapshots; a
//! scrape reads those snapshots through registered sources, so counting on the hot path
//! costs one uncontended store. Control-plane metrics (HTTP requests) live in the registry.

use parking_lot::RwLock;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// A function that appends metric families read from one component.
type Source = Box<dyn Fn(&mut Vec<MetricFamily>) + Send + Sync>;

/// The registry plus the scrape-time sources.
pub struct Metrics {
    registry: Registry,
    sources: RwLock<Vec<Source>>,
    /// HTTP requests by listener, route and status.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by listener and route.
    pub http_duration: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the control plane's own metrics registered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "tempmx_http_requests_total",
                "HTTP requests answered, by listener, route and status.",
            ),
            &["listener", "route", "status"],
        )
        .expect("static metric definition is valid");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "tempmx_http_request_duration_seconds",
                "HTTP request latency, by listener and route.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["listener", "route"],
        )
        .expect("static metric definition is valid");
        registry
            .register(Box::new(http_requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("registered once");
        Self {
            registry,
            sources: RwLock::new(Vec::new()),
            http_requests,
            http_duration,
        }
    }

    /// Adds a component whose snapshot is read at every scrape.
    pub fn add_source(&self, source: impl Fn(&mut Vec<MetricFamily>) + Send + Sync + 'static) {
        self.sources.write().push(Box::new(source));
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut families = self.registry.gather();
        for source in self.sources.read().iter() {
            source(&mut families);
        }
        // The text format has no way to say "a family with no series" (no listed domain yet).
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// Whether a family is a counter or a gauge.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Monotonic since start.
    Counter,
    /// Current value.
    Gauge,
}

/// Builds one family from `(labels, value)` samples.
pub fn family<'a>(
    name: &str,
    help: &str,
    kind: Kind,
    samples: impl IntoIterator<Item = (&'a [(&'a str, &'a str)], f64)>,
) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(match kind {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
    });
    let metrics = samples
        .into_iter()
        .map(|(labels, value)| {
            let mut m = Metric::default();
            m.set_label(
                labels
                    .iter()
                    .map(|(k, v)| {
                        let mut l = LabelPair::default();
                        l.set_name((*k).to_owned());
                        l.set_value((*v).to_owned());
                        l
                    })
                    .collect(),
            );
            match kind {
                Kind::Counter => {
                    let mut c = Counter::default();
                    c.set_value(value);
                    m.set_counter(c);
                }
                Kind::Gauge => {
                    let mut g = Gauge::default();
                    g.set_value(value);
                    m.set_gauge(g);
                }
            }
            m
        })
        .collect();
    f.set_metric(metrics);
    f
}

/// Shorthand for a family with one unlabelled sample.
pub fn single(name: &str, help: &str, kind: Kind, value: u64) -> MetricFamily {
    family(name, help, kind, [(&[][..], value as f64)])
}

/// Families of the SMTP ingress counters.
pub fn ingress_families(
    c: &tempmx_ingress::driver::IngressCountersSnapshot,
    out: &mut Vec<MetricFamily>,
) {
    use Kind::Counter;
    out.push(family(
        "tempmx_smtp_connections_total",
        "SMTP connections, by outcome (accepted, or refused with 421 4.7.0 at the core or per-IP cap).",
        Counter,
        [
            (&[("outcome", "accepted")][..], c.connections_accepted as f64),
            (&[("outcome", "refused_core")][..], c.connections_refused_core as f64),
            (&[("outcome", "refused_ip")][..], c.connections_refused_ip as f64),
        ],
    ));
    out.push(family(
        "tempmx_smtp_sessions_total",
        "Ended SMTP sessions, by how they ended.",
        Counter,
        [
            (&[("outcome", "closed")][..], c.sessions_closed as f64),
            (&[("outcome", "timed_out")][..], c.sessions_timed_out as f64),
            (&[("outcome", "aborted")][..], c.sessions_aborted as f64),
            (&[("outcome", "shutdown")][..], c.sessions_shutdown as f64),
        ],
    ));
    out.push(single(
        "tempmx_smtp_messages_accepted_total",
        "Messages stored and acknowledged with 250.",
        Counter,
        c.messages_accepted,
    ));
    out.push(family(
        "tempmx_smtp_rejections_total",
        "Refused commands and messages, by reason.",
        Counter,
        [
            (&[("reason", "relay")][..], c.rejected_relay as f64),
            (&[("reason", "size")][..], c.rejected_size as f64),
            (&[("reason", "syntax")][..], c.rejected_syntax as f64),
            (&[("reason", "smuggling")][..], c.rejected_smuggling as f64),
            (&[("reason", "rate")][..], c.rejected_rate as f64),
            (&[("reason", "store")][..], c.messages_store_failed as f64),
            (&[("reason", "spf")][..], c.rejected_spf as f64),
            (&[("reason", "dmarc")][..], c.rejected_dmarc as f64),
            (&[("reason", "greylisted")][..], c.greylisted as f64),
        ],
    ));
    out.push(single(
        "tempmx_auth_fail_open_total",
        "Enforce-mode authentication verdicts not applied because a check had a temperror.",
        Counter,
        c.auth_fail_open,
    ));
    out.push(single(
        "tempmx_smtp_received_bytes_total",
        "Bytes read from SMTP clients.",
        Counter,
        c.bytes_in,
    ));
    out.push(single(
        "tempmx_smtp_sent_bytes_total",
        "Reply bytes written to SMTP clients.",
        Counter,
        c.bytes_out,
    ));
    out.push(family(
        "tempmx_smtp_tls_handshakes_total",
        "STARTTLS handshakes, by result.",
        Counter,
        [
            (&[("result", "ok")][..], c.tls_handshakes_ok as f64),
            (&[("result", "failed")][..], c.tls_handshakes_failed as f64),
        ],
    ));
}

/// Families of the authentication checks (per method and result) and their timeouts.
pub fn auth_families(a: &tempmx_ingress::auth::AuthCountersSnapshot, out: &mut Vec<MetricFamily>) {
    use tempmx_ingress::auth::{AuthMethod, AuthValue};
    let mut samples = Vec::with_capacity(AuthMethod::ALL.len() * AuthValue::ALL.len());
    for (m, method) in AuthMethod::ALL.iter().enumerate() {
        for (v, value) in AuthValue::ALL.iter().enumerate() {
            let count = a.results[m][v] as f64;
            samples.push((
                [("method", method.label()), ("result", value.label())],
                count,
            ));
        }
    }
    out.push(family(
        "tempmx_auth_results_total",
        "Authentication results, by method (spf, dkim per signature, dmarc, arc) and result.",
        Kind::Counter,
        samples.iter().map(|(l, v)| (&l[..], *v)),
    ));
    out.push(single(
        "tempmx_auth_timeouts_total",
        "Authentication checks cut by check_timeout_ms (their open methods are temperror).",
        Kind::Counter,
        a.timeouts,
    ));
}

/// Families of the greylisting table: verdicts, size and the delay greylisted mail suffered.
pub fn greylist_families(g: &tempmx_ingress::greylist::GreylistStats, out: &mut Vec<MetricFamily>) {
    use tempmx_ingress::greylist::PassReason;
    let mut samples = vec![([("verdict", "deferred")], g.deferred as f64)];
    for (i, reason) in PassReason::ALL.iter().enumerate() {
        samples.push(([("verdict", reason.label())], g.passed[i] as f64));
    }
    out.push(family(
        "tempmx_greylist_checks_total",
        "Greylisting verdicts: deferred, or the reason a recipient passed.",
        Kind::Counter,
        samples.iter().map(|(l, v)| (&l[..], *v)),
    ));
    out.push(single(
        "tempmx_greylist_entries",
        "Triplets held in the greylisting table.",
        Kind::Gauge,
        g.entries,
    ));
    out.push(single(
        "tempmx_greylist_evicted_total",
        "Triplets dropped by the table's size bound.",
        Kind::Counter,
        g.evicted,
    ));
    let d = &g.delay;
    out.push(histogram(
        "tempmx_greylist_delay_seconds",
        "Delay each greylisted-then-accepted triplet suffered, first attempt to accepted retry.",
        d.bounds_secs,
        &d.counts,
        d.sum_secs,
    ));
}

/// One unlabelled histogram family from per-bucket (not cumulative) counts; the last count
/// is the +Inf bucket.
pub fn histogram(name: &str, help: &str, bounds: &[f64], counts: &[u64], sum: f64) -> MetricFamily {
    let mut h = Histogram::default();
    let mut cumulative = 0;
    let buckets = bounds
        .iter()
        .zip(counts)
        .map(|(bound, n)| {
            cumulative += n;
            let mut b = Bucket::default();
            b.set_upper_bound(*bound);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    h.set_bucket(buckets);
    h.set_sample_count(counts.iter().sum());
    h.set_sample_sum(sum);
    let mut m = Metric::default();
    m.set_histogram(h);
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(MetricType::HISTOGRAM);
    f.set_metric(vec![m]);
    f
}

/// Families of the store's statistics.
pub fn store_families(s: &tempmx_store::StoreStats, out: &mut Vec<MetricFamily>) {
    use Kind::{Counter, Gauge};
    let shard_names: Vec<String> = (0..s.shards.len()).map(|i| i.to_string()).collect();
    let per_shard = |f: fn(&tempmx_store::ShardStats) -> u64| {
        let samples: Vec<([(&str, &str); 1], f64)> = s
            .shards
            .iter()
            .zip(&shard_names)
            .map(|(sh, name)| ([("shard", name.as_str())], f(sh) as f64))
            .collect();
        samples
    };
    let gauge_per_shard = |name: &str, help: &str, f: fn(&tempmx_store::ShardStats) -> u64| {
        let samples = per_shard(f);
        family(name, help, Gauge, samples.iter().map(|(l, v)| (&l[..], *v)))
    };
    out.push(gauge_per_shard(
        "tempmx_store_used_bytes",
        "Bytes of records in used segments, per shard.",
        |s| s.bytes_used,
    ));
    out.push(gauge_per_shard(
        "tempmx_store_capacity_bytes",
        "Arena size, per shard.",
        |s| s.bytes_capacity,
    ));
    out.push(gauge_per_shard(
        "tempmx_store_records",
        "Index entries (message and mailbox pairs), per shard.",
        |s| s.index_entries,
    ));
    out.push(gauge_per_shard(
        "tempmx_store_mailboxes",
        "Mailboxes holding messages, per shard.",
        |s| s.mailboxes,
    ));
    out.push(gauge_per_shard(
        "tempmx_store_index_bytes",
        "Bytes allocated by the mailbox index, per shard.",
        |s| s.index_bytes,
    ));
    out.push(gauge_per_shard(
        "tempmx_store_dedup_parts",
        "Deduplicated MIME parts held, per shard.",
        |s| s.parts,
    ));
    let t = &s.totals;
    out.push(single(
        "tempmx_store_appended_total",
        "Records appended.",
        Counter,
        t.appended,
    ));
    out.push(single(
        "tempmx_store_expired_total",
        "Records recycled after their TTL.",
        Counter,
        t.expired,
    ));
    out.push(family(
        "tempmx_store_evictions_total",
        "Records or mailbox references dropped before their TTL, by reason.",
        Counter,
        [
            (&[("reason", "capacity")][..], t.evicted_capacity as f64),
            (&[("reason", "index_full")][..], t.evicted_index_full as f64),
            (
                &[("reason", "mailbox_cap")][..],
                t.evicted_mailbox_cap as f64,
            ),
        ],
    ));
    out.push(single(
        "tempmx_store_deleted_total",
        "Mailbox references deleted by users.",
        Counter,
        t.deleted,
    ));
    out.push(family(
        "tempmx_store_dedup_saved_bytes_total",
        "Bytes not stored thanks to deduplication, by kind.",
        Counter,
        [
            (&[("kind", "parts")][..], t.dedup_bytes_saved as f64),
            (
                &[("kind", "recipients")][..],
                t.multi_rcpt_bytes_saved as f64,
            ),
        ],
    ));
    out.push(single(
        "tempmx_store_subscribers",
        "Live mailbox subscriptions.",
        Gauge,
        s.subscribers,
    ));
    out.push(single(
        "tempmx_store_subscriber_events_lost_total",
        "Events dropped for slow subscribers.",
        Counter,
        s.subscriber_events_lost,
    ));
    out.push(single(
        "tempmx_store_syncs_total",
        "fsyncs issued by disk persistence.",
        Counter,
        s.syncs,
    ));
    out.push(single(
        "tempmx_store_recovery_skipped_records",
        "Torn or corrupt records skipped by recovery at start.",
        Gauge,
        s.recovery.records_skipped,
    ));
}

/// Families of the DNS server's counters.
pub fn dns_families(c: &tempmx_dns::DnsCounters, out: &mut Vec<MetricFamily>) {
    use Kind::{Counter, Gauge};
    let types: Vec<[(&str, &str); 1]> = c
        .queries_by_type
        .iter()
        .map(|(t, _)| [("type", *t)])
        .collect();
    out.push(family(
        "tempmx_dns_queries_total",
        "DNS queries answered, by query type.",
        Counter,
        types
            .iter()
            .zip(&c.queries_by_type)
            .map(|(l, (_, n))| (&l[..], *n as f64)),
    ));
    let rcodes: Vec<[(&str, &str); 1]> = c
        .responses_by_rcode
        .iter()
        .map(|(r, _)| [("rcode", *r)])
        .collect();
    out.push(family(
        "tempmx_dns_responses_total",
        "DNS responses, by response code.",
        Counter,
        rcodes
            .iter()
            .zip(&c.responses_by_rcode)
            .map(|(l, (_, n))| (&l[..], *n as f64)),
    ));
    out.push(single(
        "tempmx_dns_malformed_total",
        "DNS messages without a readable question.",
        Counter,
        c.malformed,
    ));
    out.push(single(
        "tempmx_dns_dropped_total",
        "DNS packets dropped unanswered.",
        Counter,
        c.dropped,
    ));
    out.push(single(
        "tempmx_dns_axfr_refused_total",
        "Zone transfers refused.",
        Counter,
        c.axfr_refused,
    ));
    out.push(single("tempmx_dns_zones", "Zones served.", Gauge, c.zones));
}

/// Families of the control plane: domains by state and blocklist status per domain and list.
pub fn pool_families(plane: &crate::pool::ControlPlane, out: &mut Vec<MetricFamily>) {
    use crate::pool::DomainState;
    let name = |s: DomainState| match s {
        DomainState::Pending => "pending",
        DomainState::Active => "active",
        DomainState::Draining => "draining",
        DomainState::Retired => "retired",
    };
    let counts = plane.state_counts();
    let labels: Vec<[(&str, &str); 1]> =
        counts.iter().map(|(s, _)| [("state", name(*s))]).collect();
    out.push(family(
        "tempmx_pool_domains",
        "Pool domains, by lifecycle state.",
        Kind::Gauge,
        labels
            .iter()
            .zip(&counts)
            .map(|(l, (_, n))| (&l[..], *n as f64)),
    ));
    let domains = plane.domains();
    let mut listed: Vec<([(&str, &str); 2], f64)> = Vec::new();
    let mut active_listed = 0u64;
    for d in &domains {
        for st in &d.blocklists {
            listed.push((
                [
                    ("domain", d.domain.name.as_str()),
                    ("list", st.list.as_str()),
                ],
                f64::from(u8::from(st.confirmed)),
            ));
        }
        if d.domain.state == DomainState::Active && d.domain.listing.is_some() {
            active_listed += 1;
        }
    }
    out.push(family(
        "tempmx_blocklist_listed",
        "1 when a confirmed listing stands for the domain on the list, else 0.",
        Kind::Gauge,
        listed.iter().map(|(l, v)| (&l[..], *v)),
    ));
    out.push(single(
        "tempmx_pool_active_listed_domains",
        "Active domains with a confirmed listing (the policy should have rotated them out).",
        Kind::Gauge,
        active_listed,
    ));
    out.push(single(
        "tempmx_pool_active_target",
        "The number of active domains the rotation policy keeps.",
        Kind::Gauge,
        plane.policy().active_target as u64,
    ));
}
