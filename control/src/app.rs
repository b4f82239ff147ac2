//! Builds every part of the appliance, starts its threads and runtimes, and shuts it down
//! in order: stop taking mail first, then the readers, then DNS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tempmx_dns::DnsHandle;
use tempmx_ingress::driver::IngressHandle;
use tempmx_ingress::policy::{DomainStatus, MailboxRegistry, Policy};
use tempmx_store::{Domain, MessageSink, Reader, Store};
use tokio::sync::watch;
use tracing::info;

use crate::api;
use crate::api::compat::mailtm::MailTm;
use crate::api::public::{DomainSource, PublicState};
use crate::blocklist::{BlocklistCycle, BlocklistError};
use crate::config::{Config, ConfigError, RecipientMode};
use crate::mailboxes::Registry;
use crate::mailboxes::log::LogError;
use crate::metrics::control::ProcessFacts;
use crate::metrics::{Metrics, control};
use crate::pool::{ControlError, ControlPlane, MessageCounters, PlaneConfig, SystemClock};
use crate::reload::{ReloadCounts, Reloadable};

/// How often the control runtime expires messages and sweeps expired mailboxes.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// Threads of the runtime that serves HTTP and runs the control plane; the ingress cores
/// are separate threads, so this stays small.
const CONTROL_THREADS: usize = 2;

/// Why the appliance could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened or recovered.
    #[error("store")]
    Store(#[from] tempmx_store::StoreError),
    /// The SMTP ingress could not start.
    #[error("smtp ingress")]
    Ingress(#[from] tempmx_ingress::driver::IngressError),
    /// The DNS server could not start.
    #[error("dns")]
    Dns(#[from] tempmx_dns::DnsError),
    /// The control plane's state could not be loaded.
    #[error("control plane")]
    Control(#[from] ControlError),
    /// The blocklist checker could not be built.
    #[error("blocklists")]
    Blocklist(#[from] BlocklistError),
    /// The saved mailbox registry could not be read.
    #[error("mailbox registry")]
    Mailboxes(#[from] LogError),
    /// The configuration fails the checks `check-config` makes.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Fleet mode is on and the Redis Cluster cannot be reached.
    #[error("fleet")]
    Fleet(#[from] tempmx_store::cluster::ClusterError),
    /// The mail.tm compatible API's saved accounts could not be read.
    #[error("mail.tm accounts")]
    MailTm(#[source] LogError),
    /// A listener or the runtime could not be set up.
    #[error("{what}")]
    Io {
        /// What was being set up.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// State shared by the HTTP handlers and the control plane.
pub struct Shared {
    /// The embedded message store (readers); `None` in fleet mode, which opens no local
    /// store: the cluster holds every message, and nothing here would read a copy.
    pub store: Option<Arc<Store>>,
    /// The control plane: domain pool and rotation.
    pub plane: Arc<ControlPlane>,
    /// The periodic blocklist checks feeding the plane.
    pub blocklists: Arc<BlocklistCycle>,
    /// The mailbox registry: the public API's mailboxes and tokens, the ingress's
    /// registered-only lookup, the per-domain mailbox counts the plane shows.
    pub mailboxes: Arc<Registry>,
    /// The recipient policy the ingress reads.
    pub policy: Arc<Policy>,
    /// Metrics registry and collectors.
    pub metrics: Metrics,
    /// The configuration in force.
    pub config: Config,
    /// The fleet's cluster connection, when fleet mode is on.
    pub fleet: Option<Arc<tempmx_store::cluster::Cluster>>,
}

/// Actual listener addresses (a configured port 0 resolves here).
#[derive(Clone, Copy, Debug)]
pub struct Addrs {
    /// SMTP.
    pub smtp: SocketAddr,
    /// Public HTTP API.
    pub http: SocketAddr,
    /// Admin API and metrics.
    pub admin: SocketAddr,
    /// DNS (UDP and TCP).
    pub dns: SocketAddr,
}

/// A running appliance.
pub struct App {
    runtime: tokio::runtime::Runtime,
    ingress: IngressHandle,
    dns: Arc<DnsHandle>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    addrs: Addrs,
    shared: Arc<Shared>,
    public: PublicState,
    /// The fleet's cluster connection, when fleet mode is on.
    fleet: Option<Arc<tempmx_store::cluster::Cluster>>,
    signals: Signals,
    reloadable: Reloadable,
}

/// The signals `run_until_signal` waits for, installed before the appliance says it serves,
/// so a reload or stop sent as soon as it does is never lost.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl App {
    /// Starts every part on the given configuration.
    pub fn start(config: Config) -> Result<Self, AppError> {
        config.validate()?;
        let (cores, capped) = config.cores();
        if capped {
            tracing::warn!(
                cores,
                "store.memory_bytes_max is small for this many CPUs; \
                running fewer ingress cores (raise the budget or set ingress.cores)"
            );
        }
        // Fleet mode fails fast: an unreachable cluster stops start-up before any listener.
        let fleet = match &config.fleet {
            Some(f) => Some(Arc::new(crate::fleet::connect(f, &config.store)?)),
            None => None,
        };
        // Fleet mode opens no local store: no arena is reserved and no sweep runs.
        let (mail, writers) = match &fleet {
            Some(cluster) => (Reader::Fleet(cluster.clone()), Vec::new()),
            None => {
                let (store, writers, recovery) = Store::open(&config.store, cores)?;
                info!(%recovery, shards = cores, "store ready");
                (Reader::Local(store), writers)
            }
        };
        let store = match &mail {
            Reader::Local(store) => Some(store.clone()),
            Reader::Fleet(_) => None,
        };

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(CONTROL_THREADS)
            .thread_name("tempmx-control")
            .enable_all()
            .build()
            .map_err(|source| AppError::Io {
                what: "control runtime",
                source,
            })?;
        // The blocklist resolver is created with the cycle and needs a runtime context.
        let _entered = runtime.enter();
        let registry = Arc::new(Registry::open_in(
            config.api.mailboxes_max,
            config.data_dir.as_deref(),
        )?);
        let plane = Arc::new(ControlPlane::open(
            plane_config(&config),
            Arc::new(SystemClock),
            registry.clone(),
        )?);
        // Fleet mode: the plane acts (rules, blocklist answers) only under the rotation
        // lease, and starts from the fleet's pool (adding its configured domains to it).
        let lease = Arc::new(crate::fleet::lease::Lease::new());
        if let Some(cluster) = &fleet {
            plane.join_fleet(lease.clone());
            runtime.block_on(crate::fleet::pool::join(cluster, &plane))?;
        }
        let blocklists = Arc::new(BlocklistCycle::new(
            config.blocklists.clone(),
            plane.clone(),
        )?);
        if let Some(store) = &store {
            registry.restore_ttls(store);
        }
        let lookup = match config.pool.recipients {
            RecipientMode::CatchAll => None,
            RecipientMode::RegisteredOnly => Some(registry.clone() as Arc<dyn MailboxRegistry>),
        };
        let policy = Arc::new(Policy::new(plane.ingress_snapshot(), lookup));
        // Each core's writer counts what the store accepts per domain; the plane's tick
        // drains the counts into the rotation rules. Fleet mode: every core hands its mail
        // to the cluster, and the 250 waits for the cluster's acknowledgement; the local
        // store's writers are not used.
        let counters = Arc::new(MessageCounters::new(config.pool.limits.domains_max));
        // Fleet mode: this node delivers the webhooks of the mail it accepted.
        let (hooks, acked) = crate::webhooks::fleet::feed();
        let sinks: Vec<Box<dyn MessageSink + Send>> = match &fleet {
            Some(cluster) => (0..cores)
                .map(|core| {
                    let sink = cluster.sink_with_hooks(core, hooks.clone())?;
                    Ok(counters.wrap(Box::new(sink)))
                })
                .collect::<Result<_, tempmx_store::cluster::ClusterError>>()?,
            None => writers
                .into_iter()
                .map(|w| counters.wrap(Box::new(w)))
                .collect(),
        };
        // Fleet mode with greylisting on: its state is the fleet's (a retry on another MX
        // passes), read through the cluster off the ring threads.
        let shared_greylist: Option<Arc<dyn tempmx_ingress::greylist::SharedState>> = match &fleet {
            Some(cluster) if greylisting(&config) => Some(Arc::new(
                runtime.block_on(crate::fleet::greylist::FleetGreylist::open(cluster.clone()))?,
            )),
            _ => None,
        };
        let ingress = tempmx_ingress::driver::start_with(
            &config.ingress,
            policy.clone(),
            sinks,
            shared_greylist,
        )?;
        let dns = Arc::new(tempmx_dns::start(&config.dns, plane.dns_snapshot())?);
        // The plane holds only a weak reference, so shutdown can take the handle back.
        let weak = Arc::downgrade(&dns);
        plane.attach(
            policy.clone(),
            Some(Arc::new(move |zones| {
                if let Some(d) = weak.upgrade() {
                    d.publish(zones);
                }
            })),
        );

        let shared = Arc::new(Shared {
            store,
            plane,
            blocklists,
            mailboxes: registry.clone(),
            policy,
            // In fleet mode every series carries the node's name (see `Metrics::for_node`).
            metrics: Metrics::for_node(config.fleet.as_ref().map(|f| f.node_name())),
            config,
            fleet: fleet.clone(),
        });
        let facts = register_metrics(&shared, &ingress, &dns);
        if let Some(cluster) = fleet.clone() {
            shared
                .metrics
                .add_table(tempmx_store::cluster::METRICS, move || {
                    cluster.fleet_snapshot()
                });
        }
        let counts = Arc::new(ReloadCounts::default());
        let reloads = counts.clone();
        shared
            .metrics
            .add_table(control::RELOADS, move || reloads.by_result());
        let reloadable = Reloadable {
            tls: ingress.tls(),
            plane: shared.plane.clone(),
            blocklists: shared.blocklists.clone(),
            facts,
            counts,
        };
        let (http_listener, admin_listener) = runtime.block_on(bind_http(&shared.config))?;
        let local = |l: &tokio::net::TcpListener, what| {
            l.local_addr()
                .map_err(|source| AppError::Io { what, source })
        };
        let addrs = Addrs {
            smtp: ingress.local_addr(),
            http: local(&http_listener, "http listener")?,
            admin: local(&admin_listener, "admin listener")?,
            dns: dns.local_addr(),
        };
        let public = PublicState::new(
            mail,
            Arc::new(PolicyDomains(shared.policy.clone())),
            registry.clone(),
            shared.config.api.clone(),
            shared.config.store.mailbox_records_max,
        );
        // mail.tm accounts live beside the registry they belong to (in fleet mode, in
        // the cluster beside their mailbox: see `with_fleet`).
        let mut public = match (&shared.config.data_dir, &fleet) {
            (Some(d), None) => public.with_mailtm(
                MailTm::open(
                    shared.config.api.mailboxes_max,
                    &crate::pool::StateFile::dir_in(d),
                )
                .map_err(AppError::MailTm)?,
            ),
            _ => public,
        };
        if let Some(cluster) = &fleet {
            public = public.with_fleet(cluster.clone());
        }
        // Always exported (zeros on a single node), so dashboards need no special case.
        let rate_stats = public
            .limits
            .fleet
            .as_ref()
            .map_or_else(Arc::default, |f| f.stats());
        shared
            .metrics
            .add_table(control::RATE_LIMITS, move || rate_stats.by_result());
        let subscribers = public.subscribers.clone();
        shared
            .metrics
            .add_table(control::API, move || subscribers.connected());
        let webhook_stats = public.webhooks.stats.clone();
        shared
            .metrics
            .add_table(control::WEBHOOKS, move || webhook_stats.snapshot());
        let (stop, stop_rx) = watch::channel(false);
        // Fleet mode: the sinks' counts go to the fleet's first (`fleet::counts`), which
        // hands the plane the fleet's totals; the plane's own tick then drains nothing.
        let plane_counters = match &fleet {
            Some(_) => Arc::new(MessageCounters::new(0)),
            None => counters.clone(),
        };
        let public_router = api::public_router(public.clone(), shared.clone());
        let deadlines = shared.config.http.deadlines();
        // Detached: pending deliveries end with the runtime (hooks are in memory only).
        runtime.spawn(crate::webhooks::deliver::run(public.webhooks.clone()));
        runtime.spawn(crate::webhooks::fleet::run(acked, public.clone()));
        let mut tasks = vec![
            runtime.spawn(api::serve(
                http_listener,
                public_router,
                deadlines,
                stop_rx.clone(),
            )),
            runtime.spawn(api::serve(
                admin_listener,
                api::admin_router(shared.clone()),
                deadlines,
                stop_rx.clone(),
            )),
            runtime.spawn(housekeeping(
                shared.store.clone(),
                registry,
                stop_rx.clone(),
            )),
            runtime.spawn(shared.blocklists.clone().run(stop_rx.clone())),
            runtime.spawn(shared.plane.clone().run(plane_counters, stop_rx.clone())),
        ];
        if let (Some(cluster), Some(f)) = (&fleet, &shared.config.fleet) {
            let held = lease.clone();
            shared
                .metrics
                .add_table(control::FLEET, move || (held.held(), held.changes()));
            tasks.push(runtime.spawn(crate::fleet::lease::run(
                cluster.clone(),
                lease,
                Duration::from_millis(f.lease_ms),
                Duration::from_millis(f.lease_renew_ms),
                stop_rx.clone(),
            )));
            let ttl = Duration::from_secs(f.node_ttl_secs);
            tasks.push(runtime.spawn(crate::fleet::heartbeat(
                cluster.clone(),
                ttl,
                stop_rx.clone(),
            )));
            tasks.push(runtime.spawn(crate::fleet::counts::run(
                cluster.clone(),
                shared.plane.clone(),
                counters,
                stop_rx.clone(),
            )));
            tasks.push(runtime.spawn(crate::fleet::pool::sync(
                cluster.clone(),
                shared.plane.clone(),
                stop_rx,
            )));
        }
        let signal = |kind| {
            tokio::signal::unix::signal(kind).map_err(|source| AppError::Io {
                what: "signal handler",
                source,
            })
        };
        let signals = Signals {
            terminate: signal(tokio::signal::unix::SignalKind::terminate())?,
            hangup: signal(tokio::signal::unix::SignalKind::hangup())?,
        };
        info!(smtp = %addrs.smtp, http = %addrs.http, admin = %addrs.admin, dns = %addrs.dns,
              backend = ?ingress.backend(), cores, "tempmx serving");
        drop(_entered);
        Ok(Self {
            runtime,
            ingress,
            dns,
            stop,
            tasks,
            addrs,
            shared,
            public,
            signals,
            fleet,
            reloadable,
        })
    }

    /// The actual listener addresses.
    pub fn addrs(&self) -> Addrs {
        self.addrs
    }

    /// The fleet's cluster connection, when fleet mode is on.
    pub fn fleet(&self) -> Option<&Arc<tempmx_store::cluster::Cluster>> {
        self.fleet.as_ref()
    }

    /// The parts a reload changes (hand it to the SIGHUP handler).
    pub fn reloadable(&self) -> Reloadable {
        self.reloadable.clone()
    }

    /// State shared with the HTTP handlers.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Blocks until SIGINT or SIGTERM, then shuts down gracefully; every SIGHUP in between
    /// calls `on_hangup` (the binary re-reads its configuration there).
    pub fn run_until_signal(mut self, on_hangup: impl FnMut()) -> Result<(), AppError> {
        self.runtime
            .block_on(wait_for_signal(&mut self.signals, on_hangup))
            .map_err(|source| AppError::Io {
                what: "signal handler",
                source,
            })?;
        info!("shutting down");
        self.shutdown();
        Ok(())
    }

    /// Stops taking mail (sessions get the configured grace), then the HTTP servers and the
    /// control plane, then DNS.
    pub fn shutdown(self) {
        self.ingress.shutdown();
        // Open SSE and WebSocket streams would hold the graceful HTTP shutdown open.
        self.public.stop_push();
        let _ = self.stop.send(true);
        self.runtime.block_on(async {
            for task in self.tasks {
                let _ = task.await;
            }
        });
        match Arc::try_unwrap(self.dns) {
            Ok(dns) => dns.shutdown(),
            // Someone still holds the handle; dropping our reference stops it when they let go.
            Err(_) => tracing::warn!("dns handle still shared at shutdown"),
        }
        info!("tempmx stopped");
    }
}

/// The public API's view of the pool: the snapshot the ingress reads.
struct PolicyDomains(Arc<Policy>);

impl DomainSource for PolicyDomains {
    fn active(&self) -> Vec<Domain> {
        let snapshot = self.0.snapshot();
        let mut active: Vec<Domain> = snapshot
            .domains()
            .filter(|(_, s)| *s == DomainStatus::Active)
            .map(|(d, _)| d.clone())
            .collect();
        active.sort();
        active
    }

    fn receives(&self, domain: &Domain) -> bool {
        self.0
            .snapshot()
            .status(domain)
            .is_some_and(|s| s != DomainStatus::Retired)
    }
}

/// Once a second: expires messages, syncs the mailbox registry's log and forgets expired
/// mailboxes (their mail and TTL override); syncs the registry once more at shutdown.
/// Fleet mode has no local store (Redis expires the fleet's mail); the registry part
/// still runs.
async fn housekeeping(
    store: Option<Arc<Store>>,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => {
                if let Err(e) = registry.persist() {
                    tracing::warn!(error = %e, "mailbox registry not synced at shutdown");
                }
                return;
            }
        }
        if let Some(store) = &store {
            store.expire();
        }
        if let Err(e) = registry.persist() {
            tracing::warn!(error = %e, "mailbox registry not synced; retrying in a second");
        }
        let swept = registry.sweep(crate::mailboxes::now_ms());
        let Some(store) = &store else { continue };
        for address in swept {
            store.delete_mailbox(&address);
            // Its TTL override goes too, or expired boxes would fill `ttl_overrides_max`.
            if let Err(e) = store.set_mailbox_ttl(&address, None) {
                tracing::warn!(error = %e, "expired mailbox's ttl override not cleared");
            }
        }
    }
}

/// Whether greylisting applies to any domain.
fn greylisting(config: &Config) -> bool {
    let g = &config.ingress.greylist;
    g.enabled || !g.domains.is_empty()
}

fn plane_config(config: &Config) -> PlaneConfig {
    PlaneConfig {
        domains: config.pool.domains.clone(),
        recipients: config.pool.recipients,
        policy: config.pool.policy.clone(),
        limits: config.pool.limits.clone(),
        data_dir: config.data_dir.clone(),
        drain_secs_min: config.drain_secs_min(),
    }
}

async fn bind_http(
    config: &Config,
) -> Result<(tokio::net::TcpListener, tokio::net::TcpListener), AppError> {
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| AppError::Io {
            what: "http listener",
            source,
        })?;
    let admin = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .map_err(|source| AppError::Io {
            what: "admin listener",
            source,
        })?;
    Ok((http, admin))
}

/// Lets `/metrics` read every part's table at scrape time; returns the process facts a
/// reload updates.
fn register_metrics(
    shared: &Arc<Shared>,
    ingress: &IngressHandle,
    dns: &DnsHandle,
) -> Arc<RwLock<ProcessFacts>> {
    use tempmx_ingress::metrics as ingress_metrics;
    let m = &shared.metrics;
    let reader = ingress.counters_reader();
    m.add_table(ingress_metrics::SMTP, move || reader.read());
    let reader = ingress.counters_reader();
    m.add_table(ingress_metrics::AUTH, move || reader.auth());
    let reader = ingress.counters_reader();
    // Greylisting families exist only while greylisting is on.
    m.add_source(move |out| {
        if let Some(greylist) = reader.greylist() {
            crate::metrics::export(ingress_metrics::GREYLIST, &greylist, out);
        }
    });
    let reader = dns.counters_reader();
    m.add_table(tempmx_dns::metrics::TABLE, move || reader.read());
    // The store families exist only where a local store does (not in fleet mode).
    if let Some(store) = shared.store.clone() {
        m.add_table(tempmx_store::metrics::TABLE, move || store.stats());
    }
    let plane = shared.plane.clone();
    m.add_table(control::POOL, move || control::PoolView::of(&plane));
    let facts = Arc::new(RwLock::new(ProcessFacts::new(
        ingress.backend(),
        &shared.config.ingress.tls,
    )));
    let (read, registry) = (facts.clone(), shared.mailboxes.clone());
    let plane = shared.plane.clone();
    m.add_table(control::PROCESS, move || {
        // Fleet mode: the fleet's live mailboxes (the local registry holds none).
        let live = plane
            .fleet_mailboxes_total()
            .unwrap_or_else(|| registry.len());
        control::ProcessState::now(&read.read(), live)
    });
    facts
}

async fn wait_for_signal(
    signals: &mut Signals,
    mut on_hangup: impl FnMut(),
) -> std::io::Result<()> {
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => return r,
            _ = signals.terminate.recv() => return Ok(()),
            _ = signals.hangup.recv() => {
                info!("SIGHUP: reloading");
                on_hangup();
            }
        }
    }
}
