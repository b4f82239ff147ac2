//! The control plane's own metrics, declared once: HTTP (recorded in the registry), live
//! push, the pool, and the process, with the tables the exporter reads at scrape time.

use tempmx_store::metrics::MetricKind::{Counter, Gauge, Histogram};
use tempmx_store::metrics::{Metric, MetricDesc, Sample, Values, desc, descs};

use super::process::{self, ProcessSample};
use crate::api::public::subscribers::Transport;
use crate::pool::{ControlPlane, DomainInfo, DomainState, RotationReason};
use crate::webhooks::StatsSnapshot;

/// HTTP requests by listener, route and status.
pub const HTTP_REQUESTS: MetricDesc = desc(
    "tempmx_http_requests_total",
    "HTTP requests answered, by listener, route and status.",
    Counter,
);
/// HTTP latency by listener and route.
pub const HTTP_REQUEST_DURATION: MetricDesc = desc(
    "tempmx_http_request_duration_seconds",
    "HTTP request latency, by listener and route.",
    Histogram,
);
/// Live-push subscribers by transport.
pub const API_SUBSCRIBERS: MetricDesc = desc(
    "tempmx_api_subscribers",
    "Live-push subscribers connected now, by transport (sse, websocket, wait).",
    Gauge,
);
/// Domains by lifecycle state.
pub const POOL_DOMAINS: MetricDesc = desc(
    "tempmx_pool_domains",
    "Pool domains, by lifecycle state.",
    Gauge,
);
/// Blocklist status per domain and list.
pub const BLOCKLIST_LISTED: MetricDesc = desc(
    "tempmx_blocklist_listed",
    "1 when a confirmed listing stands for the domain on the list, else 0.",
    Gauge,
);
/// Active domains that carry a listing.
pub const POOL_ACTIVE_LISTED_DOMAINS: MetricDesc = desc(
    "tempmx_pool_active_listed_domains",
    "Active domains with a confirmed listing (the policy should have rotated them out).",
    Gauge,
);
/// The rotation target.
pub const POOL_ACTIVE_TARGET: MetricDesc = desc(
    "tempmx_pool_active_target",
    "The number of active domains the rotation policy keeps.",
    Gauge,
);
/// Domains rotated out by reason.
pub const POOL_ROTATIONS: MetricDesc = desc(
    "tempmx_pool_rotations_total",
    "Domains rotated out of the active set, by reason (age, listing, messages, operator).",
    Counter,
);
/// Build and run-time facts.
pub const BUILD_INFO: MetricDesc = desc(
    "tempmx_build_info",
    "Always 1; labels give the version and the SMTP I/O backend in use (uring, epoll).",
    Gauge,
);
/// CPU time.
pub const PROCESS_CPU: MetricDesc = desc(
    "tempmx_process_cpu_seconds_total",
    "User and system CPU time of the tempmx process, seconds.",
    Counter,
);
/// Resident memory.
pub const PROCESS_RESIDENT: MetricDesc = desc(
    "tempmx_process_resident_memory_bytes",
    "Resident memory of the tempmx process, bytes.",
    Gauge,
);
/// Open descriptors.
pub const PROCESS_OPEN_FDS: MetricDesc = desc(
    "tempmx_process_open_fds",
    "Open file descriptors (sockets, store segments, ...) of the tempmx process.",
    Gauge,
);
/// The descriptor limit.
pub const PROCESS_FDS_MAX: MetricDesc = desc(
    "tempmx_process_fds_max",
    "The soft limit on open file descriptors (RLIMIT_NOFILE).",
    Gauge,
);
/// Start time.
pub const PROCESS_START_TIME: MetricDesc = desc(
    "tempmx_process_start_time_seconds",
    "Unix time the tempmx process started, seconds.",
    Gauge,
);
/// Registered mailboxes.
pub const MAILBOXES_LIVE: MetricDesc = desc(
    "tempmx_api_mailboxes_live",
    "Mailboxes registered through the API and not yet expired (swept once a second).",
    Gauge,
);
/// Certificate expiry.
pub const TLS_CERTIFICATE_EXPIRY: MetricDesc = desc(
    "tempmx_smtp_tls_certificate_expiry_timestamp_seconds",
    "Unix time the configured STARTTLS certificate (ingress.tls.cert_path, read at start \
     and at each reload that loads it) expires; absent with the generated self-signed \
     certificate.",
    Gauge,
);
/// Configuration reloads.
pub const CONFIG_RELOADS: MetricDesc = desc(
    "tempmx_config_reloads_total",
    "Configuration reloads (SIGHUP) by result: ok (every reloadable change applied) or \
     failed (the file did not load, or a part such as the certificate was refused and the \
     old one stays).",
    Counter,
);

/// Reloads by result, read from `ReloadCounts::by_result`.
pub const RELOADS: &[Metric<[(&'static str, u64); 2]>] = &[Metric::new(CONFIG_RELOADS, |counts| {
    Values::by("result", *counts)
})];

/// The families the HTTP middleware records in the registry (not read from a table).
pub const HTTP: &[MetricDesc] = &[HTTP_REQUESTS, HTTP_REQUEST_DURATION];

/// Live-push subscribers, read from `Subscribers::connected`.
pub const API: &[Metric<[(Transport, usize); Transport::ALL.len()]>] =
    &[Metric::new(API_SUBSCRIBERS, |connected| {
        Values::by("transport", connected.map(|(t, n)| (t.label(), n as u64)))
    })];

/// Webhook deliveries by result.
pub const WEBHOOK_DELIVERIES: MetricDesc = desc(
    "tempmx_webhook_deliveries_total",
    "Webhook deliveries, by result (delivered, failed after every attempt, dropped on a \
     full queue, refused by the address check).",
    Counter,
);
/// Webhook POST attempts.
pub const WEBHOOK_ATTEMPTS: MetricDesc = desc(
    "tempmx_webhook_attempts_total",
    "Webhook POST attempts made (retries included).",
    Counter,
);

/// Webhook delivery counters, read from `Stats::snapshot`.
pub const WEBHOOKS: &[Metric<StatsSnapshot>] = &[
    Metric::new(WEBHOOK_DELIVERIES, |s| Values::by("result", s.results)),
    Metric::one(WEBHOOK_ATTEMPTS, |s| s.attempts),
];

/// Whether this node holds the fleet's rotation lease.
pub const FLEET_LEASE_HELD: MetricDesc = desc(
    "tempmx_fleet_lease_held",
    "Fleet mode: 1 while this node holds the rotation lease (it runs the rotation planner \
     and the blocklist checks), else 0.",
    Gauge,
);
/// Takes and losses of the lease.
pub const FLEET_LEASE_CHANGES: MetricDesc = desc(
    "tempmx_fleet_lease_changes_total",
    "Fleet mode: times this node took or lost the rotation lease.",
    Counter,
);

/// Fleet mode's lease families, read from (held now, changes so far).
pub const FLEET: &[Metric<(bool, u64)>] = &[
    Metric::one(FLEET_LEASE_HELD, |l| u64::from(l.0)),
    Metric::one(FLEET_LEASE_CHANGES, |l| l.1),
];

/// What the pool families read, taken from the plane once per scrape.
pub struct PoolView {
    states: [(DomainState, usize); 4],
    domains: Vec<DomainInfo>,
    active_target: u32,
    rotations: [(RotationReason, u64); RotationReason::ALL.len()],
}

impl PoolView {
    /// The plane's pool now.
    pub fn of(plane: &ControlPlane) -> Self {
        Self {
            states: plane.state_counts(),
            domains: plane.domains(),
            active_target: plane.policy().active_target,
            rotations: plane.rotations(),
        }
    }
}

/// The label of a lifecycle state.
fn state_label(s: DomainState) -> &'static str {
    match s {
        DomainState::Pending => "pending",
        DomainState::Active => "active",
        DomainState::Draining => "draining",
        DomainState::Retired => "retired",
    }
}

/// The pool: domains by state, blocklist status per domain and list, rotations by reason.
pub const POOL: &[Metric<PoolView>] = &[
    Metric::new(POOL_DOMAINS, |p| {
        Values::by("state", p.states.map(|(s, n)| (state_label(s), n as u64)))
    }),
    Metric::new(BLOCKLIST_LISTED, |p| {
        let samples = p.domains.iter().flat_map(|d| {
            d.blocklists.iter().map(|st| Sample {
                labels: vec![("domain", d.domain.name.clone()), ("list", st.list.clone())],
                value: f64::from(u8::from(st.confirmed)),
            })
        });
        Values::Samples(samples.collect())
    }),
    Metric::new(POOL_ACTIVE_LISTED_DOMAINS, |p| {
        let listed = p
            .domains
            .iter()
            .filter(|d| d.domain.state == DomainState::Active && d.domain.listing.is_some());
        Values::one(listed.count() as u64)
    }),
    Metric::one(POOL_ACTIVE_TARGET, |p| u64::from(p.active_target)),
    Metric::new(POOL_ROTATIONS, |p| {
        Values::by("reason", p.rotations.map(|(r, n)| (r.label(), n)))
    }),
];

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

/// What the process families read at one scrape.
pub struct ProcessState {
    /// Facts fixed at start.
    pub facts: ProcessFacts,
    /// CPU, memory and descriptors now.
    pub sample: ProcessSample,
    /// Mailboxes in the registry now.
    pub mailboxes_live: usize,
}

impl ProcessState {
    /// The process now.
    pub fn now(facts: &ProcessFacts, mailboxes_live: usize) -> Self {
        Self {
            facts: facts.clone(),
            sample: process::sample(),
            mailboxes_live,
        }
    }
}

/// The process: build info, CPU, memory, descriptors, start time, live mailboxes and the
/// certificate's expiry (the optional ones left out where the platform has no value).
pub const PROCESS: &[Metric<ProcessState>] = &[
    Metric::new(BUILD_INFO, |p| {
        Values::Samples(vec![Sample {
            labels: vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("backend", p.facts.backend.to_owned()),
            ],
            value: 1.0,
        }])
    }),
    Metric::new(PROCESS_CPU, |p| Values::maybe(p.sample.cpu_secs)),
    Metric::new(PROCESS_RESIDENT, |p| {
        Values::maybe(p.sample.resident_bytes.map(|b| b as f64))
    }),
    Metric::new(PROCESS_OPEN_FDS, |p| {
        Values::maybe(p.sample.open_fds.map(|n| n as f64))
    }),
    Metric::new(PROCESS_FDS_MAX, |p| {
        Values::maybe(p.sample.fds_max.map(|n| n as f64))
    }),
    Metric::new(PROCESS_START_TIME, |p| Values::maybe(p.sample.start_secs)),
    Metric::new(TLS_CERTIFICATE_EXPIRY, |p| {
        Values::maybe(p.facts.certificate_expiry_secs)
    }),
    Metric::one(MAILBOXES_LIVE, |p| p.mailboxes_live as u64),
];

/// Every metric of the control plane.
pub fn declared() -> impl Iterator<Item = MetricDesc> {
    HTTP.iter()
        .copied()
        .chain(descs(API))
        .chain(descs(WEBHOOKS))
        .chain(descs(POOL))
        .chain(descs(PROCESS))
        .chain(descs(RELOADS))
}
