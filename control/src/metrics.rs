//! `/metrics`: every crate records its own counters without contention; this module turns
//! them into Prometheus families at scrape time and renders the text format.
//!
//! The data planes keep per-core (or per-worker) counters and expose summed snapshots; a
//! scrape reads those snapshots through registered sources, so counting on the hot path
//! costs one uncontended store. Control-plane metrics (HTTP requests) live in the registry.
//!
//! Every name, help text and type is declared once, by the crate that records the metric
//! (`tempmx_ingress::metrics`, `tempmx_store::metrics`, `tempmx_dns::metrics`, and the
//! control plane's own [`CONTROL`] here); this module only assembles families from those
//! descriptors and [`declared`] lists them all.

use parking_lot::RwLock;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use tempmx_dns::metrics as dns;
use tempmx_ingress::metrics as ingress;
use tempmx_store::metrics as store;

pub mod process;

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
            Opts::new(HTTP_REQUESTS.name, HTTP_REQUESTS.help),
            &["listener", "route", "status"],
        )
        .expect("static metric definition is valid");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(HTTP_REQUEST_DURATION.name, HTTP_REQUEST_DURATION.help).buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
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

use tempmx_store::metrics::desc;
/// A metric family as some crate declares it: the exporter names families only through
/// these, so every name and help text lives once, in the crate that records the metric.
pub use tempmx_store::metrics::{MetricDesc as Desc, MetricKind as Kind};

/// The common descriptor of a DNS metric (`dns` declares its own type: it depends on no
/// crate of ours).
fn from_dns(d: dns::MetricDesc) -> Desc {
    let kind = match d.kind {
        dns::MetricKind::Counter => Kind::Counter,
        dns::MetricKind::Gauge => Kind::Gauge,
    };
    desc(d.name, d.help, kind)
}

/// HTTP requests by listener, route and status.
pub const HTTP_REQUESTS: Desc = desc(
    "tempmx_http_requests_total",
    "HTTP requests answered, by listener, route and status.",
    Kind::Counter,
);
/// HTTP latency by listener and route.
pub const HTTP_REQUEST_DURATION: Desc = desc(
    "tempmx_http_request_duration_seconds",
    "HTTP request latency, by listener and route.",
    Kind::Histogram,
);
/// Live-push subscribers by transport.
pub const API_SUBSCRIBERS: Desc = desc(
    "tempmx_api_subscribers",
    "Live-push subscribers connected now, by transport (sse, websocket, wait).",
    Kind::Gauge,
);
/// Domains by lifecycle state.
pub const POOL_DOMAINS: Desc = desc(
    "tempmx_pool_domains",
    "Pool domains, by lifecycle state.",
    Kind::Gauge,
);
/// Blocklist status per domain and list.
pub const BLOCKLIST_LISTED: Desc = desc(
    "tempmx_blocklist_listed",
    "1 when a confirmed listing stands for the domain on the list, else 0.",
    Kind::Gauge,
);
/// Active domains that carry a listing.
pub const POOL_ACTIVE_LISTED_DOMAINS: Desc = desc(
    "tempmx_pool_active_listed_domains",
    "Active domains with a confirmed listing (the policy should have rotated them out).",
    Kind::Gauge,
);
/// The rotation target.
pub const POOL_ACTIVE_TARGET: Desc = desc(
    "tempmx_pool_active_target",
    "The number of active domains the rotation policy keeps.",
    Kind::Gauge,
);
/// Domains rotated out by reason.
pub const POOL_ROTATIONS: Desc = desc(
    "tempmx_pool_rotations_total",
    "Domains rotated out of the active set, by reason (age, listing, messages, operator).",
    Kind::Counter,
);

/// Build and run-time facts.
pub const BUILD_INFO: Desc = desc(
    "tempmx_build_info",
    "Always 1; labels give the version and the SMTP I/O backend in use (uring, epoll).",
    Kind::Gauge,
);
/// CPU time.
pub const PROCESS_CPU: Desc = desc(
    "tempmx_process_cpu_seconds_total",
    "User and system CPU time of the tempmx process, seconds.",
    Kind::Counter,
);
/// Resident memory.
pub const PROCESS_RESIDENT: Desc = desc(
    "tempmx_process_resident_memory_bytes",
    "Resident memory of the tempmx process, bytes.",
    Kind::Gauge,
);
/// Open descriptors.
pub const PROCESS_OPEN_FDS: Desc = desc(
    "tempmx_process_open_fds",
    "Open file descriptors (sockets, store segments, ...) of the tempmx process.",
    Kind::Gauge,
);
/// The descriptor limit.
pub const PROCESS_FDS_MAX: Desc = desc(
    "tempmx_process_fds_max",
    "The soft limit on open file descriptors (RLIMIT_NOFILE).",
    Kind::Gauge,
);
/// Start time.
pub const PROCESS_START_TIME: Desc = desc(
    "tempmx_process_start_time_seconds",
    "Unix time the tempmx process started, seconds.",
    Kind::Gauge,
);
/// Registered mailboxes.
pub const MAILBOXES_LIVE: Desc = desc(
    "tempmx_api_mailboxes_live",
    "Mailboxes registered through the API and not yet expired (swept once a second).",
    Kind::Gauge,
);
/// Certificate expiry.
pub const TLS_CERTIFICATE_EXPIRY: Desc = desc(
    "tempmx_smtp_tls_certificate_expiry_timestamp_seconds",
    "Unix time the configured STARTTLS certificate (ingress.tls.cert_path, read at start \
     and at each reload that loads it) expires; absent with the generated self-signed \
     certificate.",
    Kind::Gauge,
);
/// Configuration reloads.
pub const CONFIG_RELOADS: Desc = desc(
    "tempmx_config_reloads_total",
    "Configuration reloads (SIGHUP) by result: ok (every reloadable change applied) or \
     failed (the file did not load, or a part such as the certificate was refused and the \
     old one stays).",
    Kind::Counter,
);

/// The control plane's own metrics.
pub const CONTROL: &[Desc] = &[
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    API_SUBSCRIBERS,
    POOL_DOMAINS,
    BLOCKLIST_LISTED,
    POOL_ACTIVE_LISTED_DOMAINS,
    POOL_ACTIVE_TARGET,
    POOL_ROTATIONS,
    BUILD_INFO,
    PROCESS_CPU,
    PROCESS_RESIDENT,
    PROCESS_OPEN_FDS,
    PROCESS_FDS_MAX,
    PROCESS_START_TIME,
    MAILBOXES_LIVE,
    TLS_CERTIFICATE_EXPIRY,
    CONFIG_RELOADS,
];

/// Every metric the appliance declares, from every crate.
pub fn declared() -> Vec<Desc> {
    let dns = dns::ALL.iter().map(|&d| from_dns(d));
    tempmx_ingress::metrics::ALL
        .iter()
        .chain(tempmx_store::metrics::ALL)
        .copied()
        .chain(dns)
        .chain(CONTROL.iter().copied())
        .collect()
}

/// Builds one counter or gauge family from `(labels, value)` samples. Histograms have
/// their own builder; a histogram descriptor here is a bug, logged, and its family left
/// empty (so it is not rendered).
pub fn family<'a>(
    desc: Desc,
    samples: impl IntoIterator<Item = (&'a [(&'a str, &'a str)], f64)>,
) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(desc.name.to_owned());
    f.set_help(desc.help.to_owned());
    let kind = desc.kind;
    f.set_field_type(match kind {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
        Kind::Histogram => {
            tracing::error!(metric = desc.name, "histogram exported as plain samples");
            return f;
        }
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
            if kind == Kind::Counter {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            } else {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
            m
        })
        .collect();
    f.set_metric(metrics);
    f
}

/// Shorthand for a family with one unlabelled sample.
pub fn single(desc: Desc, value: u64) -> MetricFamily {
    family(desc, [(&[][..], value as f64)])
}

/// The reload counter family; both results always have a sample.
pub fn reload_families(counts: &crate::reload::ReloadCounts, out: &mut Vec<MetricFamily>) {
    use std::sync::atomic::Ordering::Relaxed;
    let (ok, failed) = (counts.ok.load(Relaxed), counts.failed.load(Relaxed));
    out.push(family(
        CONFIG_RELOADS,
        [
            (&[("result", "ok")][..], ok as f64),
            (&[("result", "failed")][..], failed as f64),
        ],
    ));
}

/// Families of the SMTP ingress counters.
pub fn ingress_families(
    c: &tempmx_ingress::driver::IngressCountersSnapshot,
    out: &mut Vec<MetricFamily>,
) {
    out.push(family(
        ingress::SMTP_CONNECTIONS,
        [
            (
                &[("outcome", "accepted")][..],
                c.connections_accepted as f64,
            ),
            (
                &[("outcome", "refused_core")][..],
                c.connections_refused_core as f64,
            ),
            (
                &[("outcome", "refused_ip")][..],
                c.connections_refused_ip as f64,
            ),
        ],
    ));
    out.push(family(
        ingress::SMTP_SESSIONS,
        [
            (&[("outcome", "closed")][..], c.sessions_closed as f64),
            (&[("outcome", "timed_out")][..], c.sessions_timed_out as f64),
            (&[("outcome", "aborted")][..], c.sessions_aborted as f64),
            (&[("outcome", "shutdown")][..], c.sessions_shutdown as f64),
        ],
    ));
    out.push(single(ingress::SMTP_MESSAGES_ACCEPTED, c.messages_accepted));
    out.push(family(
        ingress::SMTP_REJECTIONS,
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
    out.push(single(ingress::AUTH_FAIL_OPEN, c.auth_fail_open));
    out.push(single(ingress::SMTP_RECEIVED_BYTES, c.bytes_in));
    out.push(single(ingress::SMTP_SENT_BYTES, c.bytes_out));
    out.push(family(
        ingress::SMTP_TLS_HANDSHAKES,
        [
            (&[("result", "ok")][..], c.tls_handshakes_ok as f64),
            (&[("result", "failed")][..], c.tls_handshakes_failed as f64),
        ],
    ));
    let d = &c.session_duration;
    out.push(histogram(
        ingress::SMTP_SESSION_DURATION,
        &bounds_f64(&ingress::SESSION_DURATION_BOUNDS_US, 1e-6),
        &d.counts,
        d.sum as f64 * 1e-6,
    ));
    let m = &c.message_size;
    out.push(histogram(
        ingress::SMTP_MESSAGE_SIZE,
        &bounds_f64(&ingress::MESSAGE_SIZE_BOUNDS_BYTES, 1.0),
        &m.counts,
        m.sum as f64,
    ));
}

/// Finite bucket bounds in the exported unit: the last bound (`u64::MAX`, +Inf) is left
/// out, the histogram builder adds +Inf itself.
fn bounds_f64(bounds: &[u64], scale: f64) -> Vec<f64> {
    let finite = bounds.len().saturating_sub(1);
    bounds[..finite].iter().map(|&b| b as f64 * scale).collect()
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
        ingress::AUTH_RESULTS,
        samples.iter().map(|(l, v)| (&l[..], *v)),
    ));
    out.push(single(ingress::AUTH_TIMEOUTS, a.timeouts));
}

/// Families of the greylisting table: verdicts, size and the delay greylisted mail suffered.
pub fn greylist_families(g: &tempmx_ingress::greylist::GreylistStats, out: &mut Vec<MetricFamily>) {
    use tempmx_ingress::greylist::PassReason;
    let mut samples = vec![([("verdict", "deferred")], g.deferred as f64)];
    for (i, reason) in PassReason::ALL.iter().enumerate() {
        samples.push(([("verdict", reason.label())], g.passed[i] as f64));
    }
    out.push(family(
        ingress::GREYLIST_CHECKS,
        samples.iter().map(|(l, v)| (&l[..], *v)),
    ));
    out.push(single(ingress::GREYLIST_ENTRIES, g.entries));
    out.push(single(ingress::GREYLIST_EVICTED, g.evicted));
    out.push(single(ingress::GREYLIST_CLIENTS, g.clients));
    out.push(single(ingress::GREYLIST_CLIENTS_EVICTED, g.clients_evicted));
    let d = &g.delay;
    out.push(histogram(
        ingress::GREYLIST_DELAY,
        d.bounds_secs,
        &d.counts,
        d.sum_secs,
    ));
}

/// One unlabelled histogram family from per-bucket (not cumulative) counts; the last count
/// is the +Inf bucket.
pub fn histogram(desc: Desc, bounds: &[f64], counts: &[u64], sum: f64) -> MetricFamily {
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
    f.set_name(desc.name.to_owned());
    f.set_help(desc.help.to_owned());
    f.set_field_type(MetricType::HISTOGRAM);
    f.set_metric(vec![m]);
    f
}

/// Families of the store's statistics.
pub fn store_families(s: &tempmx_store::StoreStats, out: &mut Vec<MetricFamily>) {
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
    let gauge_per_shard = |desc: store::MetricDesc, f: fn(&tempmx_store::ShardStats) -> u64| {
        let samples = per_shard(f);
        family(desc, samples.iter().map(|(l, v)| (&l[..], *v)))
    };
    out.push(gauge_per_shard(store::USED_BYTES, |s| s.bytes_used));
    out.push(gauge_per_shard(store::CAPACITY_BYTES, |s| s.bytes_capacity));
    out.push(gauge_per_shard(store::RECORDS, |s| s.index_entries));
    out.push(gauge_per_shard(store::MAILBOXES, |s| s.mailboxes));
    out.push(gauge_per_shard(store::INDEX_BYTES, |s| s.index_bytes));
    out.push(gauge_per_shard(store::DEDUP_PARTS, |s| s.parts));
    let t = &s.totals;
    out.push(single(store::APPENDED, t.appended));
    out.push(single(store::EXPIRED, t.expired));
    out.push(family(
        store::EVICTIONS,
        [
            (&[("reason", "capacity")][..], t.evicted_capacity as f64),
            (&[("reason", "index_full")][..], t.evicted_index_full as f64),
            (
                &[("reason", "mailbox_cap")][..],
                t.evicted_mailbox_cap as f64,
            ),
        ],
    ));
    out.push(single(store::DELETED, t.deleted));
    out.push(family(
        store::DEDUP_SAVED_BYTES,
        [
            (&[("kind", "parts")][..], t.dedup_bytes_saved as f64),
            (
                &[("kind", "recipients")][..],
                t.multi_rcpt_bytes_saved as f64,
            ),
        ],
    ));
    out.push(single(store::SUBSCRIBERS, s.subscribers));
    out.push(single(
        store::SUBSCRIBER_EVENTS_LOST,
        s.subscriber_events_lost,
    ));
    out.push(single(store::SYNCS, s.syncs));
    out.push(single(store::JOURNAL_ERRORS, s.journal_errors));
    out.push(single(
        store::RECOVERY_SKIPPED_RECORDS,
        s.recovery.records_skipped,
    ));
    out.push(single(
        store::RECOVERY_JOURNAL_SKIPPED,
        s.recovery.journal_skipped,
    ));
}

/// Families of the DNS server's counters.
pub fn dns_families(c: &tempmx_dns::DnsCounters, out: &mut Vec<MetricFamily>) {
    let types: Vec<[(&str, &str); 1]> = c
        .queries_by_type
        .iter()
        .map(|(t, _)| [("type", *t)])
        .collect();
    out.push(family(
        from_dns(dns::QUERIES),
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
        from_dns(dns::RESPONSES),
        rcodes
            .iter()
            .zip(&c.responses_by_rcode)
            .map(|(l, (_, n))| (&l[..], *n as f64)),
    ));
    out.push(single(from_dns(dns::MALFORMED), c.malformed));
    out.push(single(from_dns(dns::DROPPED), c.dropped));
    out.push(single(from_dns(dns::AXFR_REFUSED), c.axfr_refused));
    out.push(single(from_dns(dns::ZONES), c.zones));
}

/// Families of the control plane: domains by state, rotations by reason and blocklist
/// status per domain and list.
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
        POOL_DOMAINS,
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
        BLOCKLIST_LISTED,
        listed.iter().map(|(l, v)| (&l[..], *v)),
    ));
    out.push(single(POOL_ACTIVE_LISTED_DOMAINS, active_listed));
    out.push(single(
        POOL_ACTIVE_TARGET,
        plane.policy().active_target as u64,
    ));
    let rotations = plane.rotations();
    let labels: Vec<[(&str, &str); 1]> = rotations
        .iter()
        .map(|(r, _)| [("reason", r.label())])
        .collect();
    out.push(family(
        POOL_ROTATIONS,
        labels
            .iter()
            .zip(&rotations)
            .map(|(l, (_, n))| (&l[..], *n as f64)),
    ));
}

/// The live-push subscribers connected now, by transport.
pub fn api_families(
    subscribers: &crate::api::public::subscribers::Subscribers,
    out: &mut Vec<MetricFamily>,
) {
    let connected = subscribers.connected();
    let labels: Vec<[(&str, &str); 1]> = connected
        .iter()
        .map(|(t, _)| [("transport", t.label())])
        .collect();
    out.push(family(
        API_SUBSCRIBERS,
        labels
            .iter()
            .zip(&connected)
            .map(|(l, (_, n))| (&l[..], *n as f64)),
    ));
}

/// Facts the process families report with every scrape (fixed at start; a reload that
/// loads a certificate updates its expiry).
#[derive(Clone, Debug)]
pub struct ProcessFacts {
    /// The SMTP I/O backend in use (`uring` or `epoll`).
    pub backend: &'static str,
    /// Expiry (Unix seconds) of the configured STARTTLS certificate.
    pub certificate_expiry_secs: Option<f64>,
}

impl ProcessFacts {
    /// The facts of an appliance whose ingress runs `backend` with the TLS settings `tls`.
    pub fn new(
        backend: tempmx_ingress::config::Backend,
        tls: &tempmx_ingress::config::TlsConfig,
    ) -> Self {
        use tempmx_ingress::config::Backend;
        let backend = match backend {
            Backend::Auto => "auto",
            Backend::Epoll => "epoll",
            Backend::Uring => "uring",
        };
        let certificate_expiry_secs = match (&tls.cert_path, tls.disabled) {
            (Some(path), false) => certificate_expiry_secs(path),
            _ => None,
        };
        Self {
            backend,
            certificate_expiry_secs,
        }
    }
}

/// The `notAfter` of the first certificate in a PEM file, as Unix seconds.
pub fn certificate_expiry_secs(path: &std::path::Path) -> Option<f64> {
    let pem = std::fs::read(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.validity().not_after.timestamp() as f64)
}

/// Families of the process itself: build info, CPU, memory, descriptors, start time, live
/// mailboxes and the certificate's expiry.
pub fn process_families(facts: &ProcessFacts, mailboxes_live: usize, out: &mut Vec<MetricFamily>) {
    out.push(family(
        BUILD_INFO,
        [(
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("backend", facts.backend),
            ][..],
            1.0,
        )],
    ));
    let p = process::sample();
    let mut optional = |desc: Desc, value: Option<f64>| {
        if let Some(v) = value {
            out.push(family(desc, [(&[][..], v)]));
        }
    };
    optional(PROCESS_CPU, p.cpu_secs);
    optional(PROCESS_RESIDENT, p.resident_bytes.map(|b| b as f64));
    optional(PROCESS_OPEN_FDS, p.open_fds.map(|n| n as f64));
    optional(PROCESS_FDS_MAX, p.fds_max.map(|n| n as f64));
    optional(PROCESS_START_TIME, p.start_secs);
    optional(TLS_CERTIFICATE_EXPIRY, facts.certificate_expiry_secs);
    out.push(single(MAILBOXES_LIVE, mailboxes_live as u64));
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: every declared name, from every crate, follows the conventions (prefix, help,
    // `_total` exactly on counters) and is unique across crates. Method: walk `declared()`.
    #[test]
    fn declared_metrics_are_well_formed() {
        let all = declared();
        for (i, d) in all.iter().enumerate() {
            assert!(d.name.starts_with("tempmx_"), "{}", d.name);
            assert!(!d.help.is_empty(), "{}", d.name);
            assert_eq!(
                d.kind == Kind::Counter,
                d.name.ends_with("_total"),
                "{}",
                d.name
            );
            assert!(all[..i].iter().all(|o| o.name != d.name), "{}", d.name);
        }
        assert!(all.len() > 40, "{}", all.len());
    }
}
