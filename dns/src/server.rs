//! Starting, feeding and stopping the server: sockets, threads, snapshot swaps.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;
use tracing::{error, info};

use crate::answers::AnswerTable;
use crate::config::DnsConfig;
use crate::counters::{Counters, DnsCounters};
use crate::error::DnsError;
use crate::records::{ZoneSet, build_zones};
use crate::snapshot::ZoneSnapshot;
use crate::{tcp, udp};

/// How often UDP workers wake up to check for shutdown.
const UDP_READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Tries to find a port free for both UDP and TCP when the config says 0.
const BIND_ATTEMPTS_MAX: usize = 8;
/// TCP accept backlog.
const TCP_BACKLOG: i32 = 1024;
/// How long shutdown waits for TCP connections to finish.
const TCP_SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// State shared by the workers and the handle.
pub(crate) struct Shared {
    /// The configuration the server started with.
    pub config: DnsConfig,
    /// Current prepared answers; readers never lock.
    pub table: ArcSwap<AnswerTable>,
    /// Set once to stop the UDP workers.
    pub stop: AtomicBool,
    /// Serialises publishes (serials depend on the previous snapshot).
    publish_lock: Mutex<()>,
    /// Domains of the current snapshot that are not served.
    domains_rejected: AtomicU64,
}

/// A running DNS server; dropping it stops it as [`DnsHandle::shutdown`] does.
pub struct DnsHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
    counters: Vec<Arc<Counters>>,
    runtime: Option<tokio::runtime::Runtime>,
    tcp_stop: watch::Sender<bool>,
}

/// Starts the server on `config.listen` (UDP and TCP) serving `snapshot`.
pub fn start(config: &DnsConfig, snapshot: ZoneSnapshot) -> Result<DnsHandle, DnsError> {
    config.validate()?;
    let (table, rejected) = build_table(&snapshot, config, &ZoneSet::default())?;
    let (udp_sockets, tcp_listener, local_addr) = bind(config)?;
    let shared = Arc::new(Shared {
        config: config.clone(),
        table: ArcSwap::from_pointee(table),
        stop: AtomicBool::new(false),
        publish_lock: Mutex::new(()),
        domains_rejected: AtomicU64::new(rejected),
    });
    let (tcp_stop, stop_rx) = watch::channel(false);
    let mut handle = DnsHandle {
        shared: Arc::clone(&shared),
        local_addr,
        workers: Vec::new(),
        counters: Vec::new(),
        runtime: None,
        tcp_stop,
    };
    for (i, socket) in udp_sockets.into_iter().enumerate() {
        let c = Arc::new(Counters::default());
        handle.counters.push(Arc::clone(&c));
        let sh = Arc::clone(&shared);
        let t = std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || udp::run(socket, sh, c))
            .map_err(DnsError::Spawn)?;
        handle.workers.push(t);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.tcp_threads)
        .thread_name("dns-tcp")
        .enable_io()
        .enable_time()
        .build()
        .map_err(DnsError::Spawn)?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(tcp_listener).map_err(DnsError::Spawn)?
    };
    let c = Arc::new(Counters::default());
    handle.counters.push(Arc::clone(&c));
    runtime.spawn(tcp::serve(listener, shared, c, stop_rx));
    handle.runtime = Some(runtime);
    info!(addr = %local_addr, zones = handle.counters().zones, "dns server started");
    Ok(handle)
}

impl DnsHandle {
    /// The bound address (UDP and TCP share it).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Swaps in a new snapshot; the next query sees it. Zones whose records
    /// changed get a new serial. Builds all answers on the caller's thread
    /// (about a millisecond per hundred zones), so call it off hot paths.
    pub fn publish(&self, snapshot: ZoneSnapshot) {
        // A poisoned lock only means an earlier publish panicked; the table
        // itself is always consistent (swapped whole).
        let _guard = self
            .shared
            .publish_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let previous = self.shared.table.load();
        match build_table(&snapshot, &self.shared.config, &previous.zone_set) {
            Ok((table, rejected)) => {
                let zones = table.zone_set.zones.len();
                self.shared.table.store(Arc::new(table));
                self.shared
                    .domains_rejected
                    .store(rejected, Ordering::Relaxed);
                info!(zones, rejected, "dns snapshot published");
            }
            Err(e) => {
                error!(error = %e, "dns snapshot not published; still serving the previous one")
            }
        }
    }

    /// A cloneable reader of the counters that outlives the handle (for `/metrics`).
    pub fn counters_reader(&self) -> DnsCountersReader {
        DnsCountersReader {
            shared: Arc::clone(&self.shared),
            counters: self.counters.clone(),
        }
    }

    /// Totals of the query counters, for Prometheus.
    pub fn counters(&self) -> DnsCounters {
        self.counters_reader().read()
    }
}

/// Reads the DNS counters without owning the server.
#[derive(Clone)]
pub struct DnsCountersReader {
    shared: Arc<Shared>,
    counters: Vec<Arc<Counters>>,
}

impl DnsCountersReader {
    /// Totals of the query counters, for Prometheus.
    pub fn read(&self) -> DnsCounters {
        let mut out = DnsCounters::sum(self.counters.iter().map(|c| &**c));
        out.zones = self.shared.table.load().zone_set.zones.len() as u64;
        out.domains_rejected = self.shared.domains_rejected.load(Ordering::Relaxed);
        out
    }
}

impl DnsHandle {
    /// The current SOA serial of `zone` (case-insensitive), if served.
    pub fn serial(&self, zone: &str) -> Option<u32> {
        let mut name = hickory_proto::rr::Name::from_ascii(zone).ok()?;
        name.set_fqdn(true);
        self.shared
            .table
            .load()
            .zone_set
            .zones
            .get(&name.to_lowercase())
            .map(|z| z.serial)
    }

    /// Stops all threads and closes the sockets.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.tcp_stop.send(true);
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                error!("dns udp worker panicked");
            }
        }
        if let Some(rt) = self.runtime.take() {
            // Blocking on a runtime from inside async code panics in tokio;
            // there we let the TCP tasks end in the background.
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(TCP_SHUTDOWN_WAIT);
            }
        }
    }
}

impl Drop for DnsHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn build_table(
    snapshot: &ZoneSnapshot,
    config: &DnsConfig,
    previous: &ZoneSet,
) -> Result<(AnswerTable, u64), DnsError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let built = build_zones(
        snapshot,
        config,
        previous,
        u32::try_from(now).unwrap_or(u32::MAX),
    );
    Ok((
        AnswerTable::build(built.zones)?,
        built.rejected.len() as u64,
    ))
}

/// Binds one UDP socket per worker and the TCP listener on the same port.
/// The TCP listener has no SO_REUSEPORT, so a second instance fails here
/// instead of silently sharing the UDP port.
fn bind(config: &DnsConfig) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), DnsError> {
    let attempts = if config.listen.port() == 0 {
        BIND_ATTEMPTS_MAX
    } else {
        1
    };
    let mut last = None;
    for _ in 0..attempts {
        match try_bind(config) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| DnsError::Config("no bind attempt".into())))
}

fn try_bind(config: &DnsConfig) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), DnsError> {
    let first = udp_socket(config.listen)?;
    let addr = first.local_addr().map_err(|e| bind_err(config.listen, e))?;
    let mut sockets = vec![first];
    for _ in 1..config.udp_workers {
        sockets.push(udp_socket(addr)?);
    }
    Ok((sockets, tcp_listener(addr)?, addr))
}

fn bind_err(addr: SocketAddr, source: std::io::Error) -> DnsError {
    DnsError::Bind { addr, source }
}

fn udp_socket(addr: SocketAddr) -> Result<UdpSocket, DnsError> {
    let e = |err| bind_err(addr, err);
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(e)?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(e)?;
    }
    s.set_reuse_port(true).map_err(e)?;
    s.bind(&addr.into()).map_err(e)?;
    s.set_read_timeout(Some(UDP_READ_TIMEOUT)).map_err(e)?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> Result<TcpListener, DnsError> {
    let e = |err| bind_err(addr, err);
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(e)?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(e)?;
    }
    s.set_reuse_address(true).map_err(e)?;
    s.bind(&addr.into()).map_err(e)?;
    s.listen(TCP_BACKLOG).map_err(e)?;
    s.set_nonblocking(true).map_err(e)?;
    Ok(s.into())
}
