//! The thread-per-core SMTP driver: one OS thread per core, each with its own loop (an
//! io_uring completion loop, or a tokio runtime on epoll), its own SO_REUSEPORT listener,
//! read buffers (a pool on epoll, a provided-buffer ring on io_uring), admission slots,
//! counters and store sink. A connection lives and dies on the core that accepted it; the
//! sans-io [`Session`](crate::session::Session) does all the protocol work, the
//! [`connection`](crate::connection) layer turns its effects into I/O calls and keeps its
//! deadlines, and this module only moves bytes and runs hand-offs.
//!
//! Layout: `runtime` (threads, backend choice), `listener` (binding), `core` (core state;
//! the epoll accept loop and shutdown), `session_loop` (one epoll connection), `conn` (the
//! epoll connection interface and the TLS transport), `epoll`, `uring` (the io_uring
//! backend, its own loop), `delivery` (the store hand-off), `end` (how a session ends),
//! `admission`, `buffers` (the epoll read-buffer pool), `counters`.

mod admission;
mod buffers;
pub(crate) mod conn;
mod core;
mod counters;
mod delivery;
mod end;
mod epoll;
mod listener;
mod runtime;
mod session_loop;
mod uring;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use tempmx_store::MessageSink;
use tokio::sync::watch;

use self::core::CoreParts;
use self::counters::CoreCounters;
pub use self::counters::{HistogramCounts, IngressCountersSnapshot};
#[cfg(test)]
pub(crate) use self::epoll::EpollConn;
use crate::auth::{AuthCounters, AuthCountersSnapshot};
use crate::config::{Backend, IngressConfig};
use crate::greylist::{Greylist, GreylistError, GreylistStats, SharedState};
use crate::policy::Policy;
use crate::session::SessionContext;
use crate::tls::{self, ServerTls, TlsError};

/// Most cores the driver runs (the session id keeps the core index in 16 bits).
const CORES_MAX: usize = 1 << 16;
/// Smallest read buffer: one full command line must fit in a few reads.
const READ_BUFFER_BYTES_MIN: usize = 512;

/// Why the ingress could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngressError {
    /// A configuration value is out of range.
    #[error("ingress config: {0}")]
    Config(String),
    /// Another process (a second tempmx, a stale one, another MTA) already listens there.
    #[error("cannot listen on {addr}: another process already listens there (a second tempmx?)")]
    AddrInUse {
        /// The configured address.
        addr: SocketAddr,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// `backend = "uring"` was asked for but the ring cannot be set up here.
    #[error("io_uring unavailable (seccomp, io_uring_disabled or an old kernel): {0}")]
    UringUnavailable(io::Error),
    /// The TLS configuration is invalid.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The greylisting configuration is invalid.
    #[error(transparent)]
    Greylist(#[from] GreylistError),
    /// A core thread could not be started or could not set up its runtime.
    #[error("ingress core {core} failed to start: {source}")]
    CoreStart {
        /// Index of the core.
        core: usize,
        /// The OS error.
        source: io::Error,
    },
}

/// Reads the per-core counters without owning the ingress.
#[derive(Clone)]
pub struct CountersReader {
    cores: Arc<[CoreCounters]>,
    auth: Arc<[Arc<AuthCounters>]>,
    greylist: Option<Arc<Greylist>>,
}

impl CountersReader {
    /// Totals of all cores' counters.
    pub fn read(&self) -> IngressCountersSnapshot {
        counters::sum(&self.cores)
    }

    /// Totals of all cores' authentication counters.
    pub fn auth(&self) -> AuthCountersSnapshot {
        let mut total = AuthCountersSnapshot::default();
        for core in self.auth.iter() {
            total.add(&core.snapshot());
        }
        total
    }

    /// The greylisting table's statistics, when greylisting is on.
    pub fn greylist(&self) -> Option<GreylistStats> {
        self.greylist.as_ref().map(|g| g.stats())
    }
}

/// The running ingress: its address, backend, counters, and the way to stop it.
pub struct IngressHandle {
    local_addr: SocketAddr,
    backend: Backend,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    counters: CountersReader,
    tls: Option<ServerTls>,
}

impl IngressHandle {
    /// The bound address (the actual port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The backend in use: `Uring` or `Epoll`, never `Auto`.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Totals of all cores' counters.
    pub fn counters(&self) -> IngressCountersSnapshot {
        self.counters.read()
    }

    /// The STARTTLS configuration in force, to swap on a reload; `None` when TLS is off.
    pub fn tls(&self) -> Option<ServerTls> {
        self.tls.clone()
    }

    /// A cloneable reader of the counters that outlives the handle (for `/metrics`).
    pub fn counters_reader(&self) -> CountersReader {
        self.counters.clone()
    }

    /// Graceful stop: listeners close, sessions get `shutdown_grace_ms`, the rest are told
    /// 421 4.3.2; returns once every core thread has exited.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.send_replace(true);
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("ingress core thread panicked");
            }
        }
    }
}

impl Drop for IngressHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts one core per sink (core `i` writes to `sinks[i]`) and returns once all listen.
pub fn start(
    config: &IngressConfig,
    policy: Arc<Policy>,
    sinks: Vec<Box<dyn MessageSink + Send>>,
) -> Result<IngressHandle, IngressError> {
    start_with(config, policy, sinks, None)
}

/// [`start`], with the greylisting state in `shared_greylist` when given (fleet mode)
/// instead of the local table.
pub fn start_with(
    config: &IngressConfig,
    policy: Arc<Policy>,
    sinks: Vec<Box<dyn MessageSink + Send>>,
    shared_greylist: Option<Arc<dyn SharedState>>,
) -> Result<IngressHandle, IngressError> {
    validate(config, sinks.len())?;
    let backend =
        runtime::select_backend(config.backend).map_err(IngressError::UringUnavailable)?;
    let tls = tls::server_config(&config.tls, &config.hostname)?.map(ServerTls::new);
    let greylist = match shared_greylist {
        Some(state) => Greylist::shared(&config.greylist, state)?,
        None => Greylist::new(&config.greylist)?,
    };
    let greylist = greylist.is_active().then(|| Arc::new(greylist));
    let session_ctx = Arc::new(SessionContext {
        hostname: config.hostname.clone(),
        limits: config.limits.clone(),
        tls_available: tls.is_some(),
        policy,
        auth_mode: config.auth.mode,
        greylist: greylist.clone(),
    });
    let (listeners, local_addr) =
        listener::bind_per_core(config.listen, sinks.len()).map_err(|source| {
            let addr = config.listen;
            if source.kind() == io::ErrorKind::AddrInUse {
                IngressError::AddrInUse { addr }
            } else {
                IngressError::Bind { addr, source }
            }
        })?;
    let counters = CountersReader {
        cores: (0..sinks.len()).map(|_| CoreCounters::default()).collect(),
        auth: (0..sinks.len())
            .map(|_| Arc::new(AuthCounters::new()))
            .collect(),
        greylist,
    };
    let (stop, stop_rx) = watch::channel(false);
    let mut handle = IngressHandle {
        local_addr,
        backend,
        stop,
        threads: Vec::new(),
        counters,
        tls: tls.clone(),
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    for (id, (listener, sink)) in listeners.into_iter().zip(sinks).enumerate() {
        let parts = CoreParts {
            id,
            session_ctx: Arc::clone(&session_ctx),
            tls: tls.clone(),
            sink,
            listener,
            counters: Arc::clone(&handle.counters.cores),
            auth_counters: Arc::clone(&handle.counters.auth[id]),
            stop: stop_rx.clone(),
        };
        let thread = runtime::spawn_core(backend, config.clone(), parts, ready_tx.clone())
            .map_err(|source| IngressError::CoreStart { core: id, source })?;
        handle.threads.push(thread);
    }
    drop(ready_tx);
    wait_ready(&ready_rx, handle.threads.len())?;
    tracing::info!(addr = %local_addr, ?backend, cores = handle.threads.len(), "smtp ingress listening");
    Ok(handle)
}

/// Waits for every core to report; the first failure is returned (the handle's drop then
/// stops the cores that did start).
fn wait_ready(ready: &mpsc::Receiver<runtime::Ready>, cores: usize) -> Result<(), IngressError> {
    for _ in 0..cores {
        match ready.recv() {
            Ok((_, Ok(()))) => {}
            Ok((core, Err(source))) => return Err(IngressError::CoreStart { core, source }),
            Err(_) => {
                let source = io::Error::other("core thread exited before it was ready");
                return Err(IngressError::CoreStart { core: 0, source });
            }
        }
    }
    Ok(())
}

fn validate(config: &IngressConfig, cores: usize) -> Result<(), IngressError> {
    let problem = if cores == 0 {
        "at least one core (one sink) is needed".to_owned()
    } else if cores > CORES_MAX {
        format!("at most {CORES_MAX} cores")
    } else if config.read_buffer_bytes < READ_BUFFER_BYTES_MIN {
        format!("read_buffer_bytes must be at least {READ_BUFFER_BYTES_MIN}")
    } else if config.connections_per_core_max == 0 || config.connections_per_ip_max == 0 {
        "connections_per_core_max and connections_per_ip_max must be at least 1".to_owned()
    } else if config.limits.idle_timeout_ms == 0 || config.limits.session_duration_max_ms == 0 {
        "idle_timeout_ms and session_duration_max_ms must be at least 1".to_owned()
    } else {
        return Ok(());
    };
    Err(IngressError::Config(problem))
}

/// A runtime like an epoll core's, for unit tests of the I/O glue.
#[cfg(test)]
pub(crate) fn test_runtime() -> tokio::runtime::Runtime {
    epoll::runtime().expect("tokio runtime")
}
