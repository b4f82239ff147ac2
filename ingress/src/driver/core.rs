//! One ingress core: its state, its accept loop and its part of the graceful shutdown.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;
use tempmx_store::MessageSink;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::admission::{Admission, Refusal};
use super::buffers::BufferPool;
use super::conn::{Connection, Listener};
use super::counters::{CoreCounters, bump};
use super::listener::BoundListener;
use super::session_loop;
use crate::auth::{AuthCounters, AuthMode, Authenticator};
use crate::config::IngressConfig;
use crate::proto::reply;
use crate::session::SessionContext;
use crate::tls::ServerTls;

/// Longest a refusal or a final reply may take to write before the socket is shut anyway.
const FINAL_WRITE_MAX: Duration = Duration::from_secs(2);
/// Pause after a failed accept (e.g. out of descriptors) so the loop does not spin.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The timers every session of a core runs with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// Pause before the greeting (0: none).
    pub(crate) greet_pause: Duration,
    /// No input for this long ends the session.
    pub(crate) idle: Duration,
    /// Total session time.
    pub(crate) session_max: Duration,
    /// Time sessions get to finish on shutdown.
    pub(crate) shutdown_grace: Duration,
    /// Bound of the last reply and of refusals.
    pub(crate) final_write: Duration,
}

impl Timing {
    /// The timers of `config`.
    pub(crate) fn from_config(config: &IngressConfig) -> Self {
        let idle = Duration::from_millis(config.limits.idle_timeout_ms);
        Self {
            greet_pause: Duration::from_millis(config.greet_pause_ms),
            idle,
            session_max: Duration::from_millis(config.limits.session_duration_max_ms),
            shutdown_grace: Duration::from_millis(config.shutdown_grace_ms),
            final_write: FINAL_WRITE_MAX.min(idle),
        }
    }
}

/// Everything the sessions of one core share; lives on that core's thread only.
pub(crate) struct Core {
    /// Index of this core.
    pub(crate) id: usize,
    /// Settings handed to every session.
    pub(crate) session_ctx: Arc<SessionContext>,
    /// STARTTLS configuration, if TLS is on (read at each STARTTLS: a reload swaps it).
    pub(crate) tls: Option<ServerTls>,
    /// This core's store shard writer.
    pub(crate) sink: RefCell<Box<dyn MessageSink + Send>>,
    /// Connection slots.
    pub(crate) admission: Rc<Admission>,
    /// Counters of all cores; this core writes only its own block.
    pub(crate) counters: Arc<[CoreCounters]>,
    /// Session timers.
    pub(crate) timing: Timing,
    /// This core's authenticator (authentication on, epoll backend; the io_uring backend
    /// keeps it on its hand-off thread).
    pub(crate) auth: Option<Authenticator>,
    auth_enabled: bool,
    next_session: Cell<u64>,
}

/// What a core is built from (moved into its thread).
pub(crate) struct CoreParts {
    /// Index of this core.
    pub(crate) id: usize,
    /// Settings handed to every session.
    pub(crate) session_ctx: Arc<SessionContext>,
    /// STARTTLS configuration.
    pub(crate) tls: Option<ServerTls>,
    /// This core's store shard writer.
    pub(crate) sink: Box<dyn MessageSink + Send>,
    /// The listener of this core.
    pub(crate) listener: BoundListener,
    /// Counters of all cores.
    pub(crate) counters: Arc<[CoreCounters]>,
    /// This core's authentication counters.
    pub(crate) auth_counters: Arc<AuthCounters>,
    /// Shutdown signal from the handle.
    pub(crate) stop: watch::Receiver<bool>,
}

impl Core {
    /// Builds the core state around `auth` (built by [`build_authenticator`] inside the
    /// runtime that will run its checks); gives back the listener and the stop signal for the
    /// accept loop.
    pub(crate) fn new(
        config: &IngressConfig,
        parts: CoreParts,
        auth: Option<Authenticator>,
    ) -> io::Result<(Self, BoundListener, watch::Receiver<bool>)> {
        let core = Self {
            id: parts.id,
            session_ctx: parts.session_ctx,
            tls: parts.tls,
            sink: RefCell::new(parts.sink),
            admission: Admission::new(
                config.connections_per_core_max,
                config.connections_per_ip_max,
            ),
            counters: parts.counters,
            timing: Timing::from_config(config),
            auth,
            auth_enabled: config.auth.mode != AuthMode::Off,
            next_session: Cell::new(0),
        };
        Ok((core, parts.listener, parts.stop))
    }

    /// Whether sessions of this core authenticate (some thread of the core runs the checks).
    pub(crate) fn auth_enabled(&self) -> bool {
        self.auth_enabled
    }

    /// This core's counter block.
    pub(crate) fn counters(&self) -> &CoreCounters {
        &self.counters[self.id]
    }

    /// A session id unique across cores: core index in the high 16 bits.
    pub(crate) fn next_session_id(&self) -> u64 {
        let seq = self.next_session.get().wrapping_add(1);
        self.next_session.set(seq);
        ((self.id as u64) << 48) | (seq & ((1 << 48) - 1))
    }
}

/// The authenticator of one core, when authentication is on; must run inside the tokio
/// runtime that will run the checks.
pub(crate) fn build_authenticator(
    config: &IngressConfig,
    counters: Arc<AuthCounters>,
) -> io::Result<Option<Authenticator>> {
    match config.auth.mode {
        AuthMode::Off => Ok(None),
        _ => Authenticator::new(&config.auth, &config.hostname, counters)
            .map(Some)
            .map_err(io::Error::other),
    }
}

/// Accepts until the stop signal, then drains: sessions get the grace period, the rest are
/// told 421 4.3.2, and whatever is still running after that is dropped. Sessions read into
/// `buffers`.
pub(crate) async fn run<L: Listener>(
    core: Rc<Core>,
    buffers: Rc<BufferPool>,
    listener: L,
    stopper: Socket,
    mut stop: watch::Receiver<bool>,
) {
    let (abort_tx, abort_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    // One accept stays in flight across loop turns (a dropped accept future may have
    // taken a connection with it).
    let mut accept = Box::pin(listener.accept());
    loop {
        tokio::select! {
            accepted = &mut accept => {
                accept.set(listener.accept());
                match accepted {
                    Ok((conn, peer)) => admit(&core, &buffers, &mut tasks, conn, peer, &abort_rx),
                    Err(e) => accept_failed(e).await,
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    drop(accept);
    // Connections the kernel already queued for this core are told 421 4.3.2, not reset.
    while let Some(accepted) = listener.try_accept() {
        if let Ok((conn, _)) = accepted {
            tasks.spawn_local(refuse(conn, shutting_down_line(), core.timing.final_write));
        }
    }
    BoundListener::stop(&stopper);
    drop(listener);
    tracing::debug!(
        core = core.id,
        open = core.admission.open(),
        "core draining"
    );
    let _ = tokio::time::timeout(core.timing.shutdown_grace, drain(&mut tasks)).await;
    abort_tx.send_replace(true);
    // Aborted sessions write one reply bounded by final_write; allow for that and a close.
    let _ = tokio::time::timeout(core.timing.final_write * 2, drain(&mut tasks)).await;
    tasks.shutdown().await;
    tracing::debug!(core = core.id, "core stopped");
}

fn admit<C: Connection + 'static>(
    core: &Rc<Core>,
    buffers: &Rc<BufferPool>,
    tasks: &mut JoinSet<()>,
    conn: C,
    peer: std::net::SocketAddr,
    abort: &watch::Receiver<bool>,
) {
    match core.admission.admit(peer.ip().to_canonical()) {
        Ok(permit) => {
            bump(&core.counters().connections_accepted, 1);
            let session = session_loop::serve(
                Rc::clone(core),
                Rc::clone(buffers),
                conn,
                peer,
                permit,
                abort.clone(),
            );
            tasks.spawn_local(session);
        }
        Err(refusal) => {
            let counter = match refusal {
                Refusal::CoreFull => &core.counters().connections_refused_core,
                Refusal::IpFull => &core.counters().connections_refused_ip,
            };
            bump(counter, 1);
            tracing::debug!(core = core.id, %peer, ?refusal, "connection refused");
            let line = reply::too_many_connections().to_vec();
            tasks.spawn_local(refuse(conn, line, core.timing.final_write));
        }
    }
}

/// Writes a one-line refusal (bounded) and closes.
async fn refuse<C: Connection>(conn: C, line: Vec<u8>, bound: Duration) {
    let _ = tokio::time::timeout(bound, conn.write_all(line)).await;
    conn.shutdown();
}

/// The 421 4.3.2 line for a connection that arrives while the core stops.
pub(crate) fn shutting_down_line() -> Vec<u8> {
    let mut line = Vec::new();
    reply::Reply::ShuttingDown.write(&mut line);
    line
}

async fn accept_failed(e: io::Error) {
    match e.kind() {
        // The client gave up before we took it, or a signal interrupted: try the next one.
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted => {
            tracing::debug!(error = %e, "accept");
        }
        // Out of descriptors or memory: pause so the loop does not spin while it lasts.
        _ => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
        }
    }
}

async fn drain(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}
