//! The SMTP flood: connections spread over worker threads, each connection sending
//! messages as the schedule hands out tickets.
//!
//! Latency is measured per message from the ticket's due time to the final reply, so it
//! includes connection setup (and STARTTLS) for the first message of each connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::client::{CLOSING, ClientError, Outcome, Session, TxOptions};
use crate::pacing::{Mode, Schedule, wait_until};
use crate::report::{Stats, Summary, process_cpu};
use crate::runner::{LocalTask, Progress, RunError, merge, run_threads};
use crate::workload::{Message, Workload, WorkloadSpec};

/// Most parallel connections (each holds a socket and two 16 KiB buffers).
pub const CONNECTIONS_MAX: usize = 100_000;
/// Pause after a failed connection before the next ticket, so a dead server is not
/// hammered in a tight loop while the error budget runs out.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// Everything `tempmx-bench smtp` needs.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Server address.
    pub target: SocketAddr,
    /// Parallel connections.
    pub connections: usize,
    /// Worker threads (each with its own runtime).
    pub threads: usize,
    /// Messages per connection before QUIT and reconnect; 0 keeps it open.
    pub per_connection: u64,
    /// What to send.
    pub workload: WorkloadSpec,
    /// Pipelining and BDAT.
    pub tx: TxOptions,
    /// Share of connections (0..=1) that use STARTTLS.
    pub starttls_share: f64,
    /// TLS server name (SNI); `None` uses the target IP (no SNI).
    pub tls_name: Option<String>,
    /// EHLO name.
    pub helo: String,
    /// Open or closed loop.
    pub mode: Mode,
    /// Stop after this many messages.
    pub messages: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Bound on every wait for the server (connect, reply, write).
    pub timeout: Duration,
    /// Stop the run after this many errors (failed connections and transactions).
    pub errors_max: u64,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

/// Read-only state shared by every connection of every thread.
struct Shared {
    cfg: SmtpConfig,
    workload: Workload,
    schedule: Arc<Schedule>,
    progress: Arc<Progress>,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// Runs the SMTP load and returns its summary.
pub fn run(cfg: SmtpConfig) -> Result<Summary, RunError> {
    validate(&cfg)?;
    let tls = if cfg.starttls_share > 0.0 {
        Some((crate::tls::insecure_client_config()?, server_name(&cfg)?))
    } else {
        None
    };
    let schedule = Arc::new(Schedule::new(cfg.mode, cfg.messages, cfg.duration));
    let progress = Arc::new(Progress::default());
    let shared = Arc::new(Shared {
        workload: Workload::new(cfg.workload.clone())?,
        cfg: cfg.clone(),
        schedule: Arc::clone(&schedule),
        progress: Arc::clone(&progress),
        tls,
    });
    let threads = cfg.threads.clamp(1, cfg.connections);
    let cpu0 = process_cpu();
    let (all, elapsed) = run_threads(threads, schedule, progress, cfg.progress, move |i| {
        thread_task(Arc::clone(&shared), i, threads)
    })?;
    let stats = merge(&all);
    Ok(Summary::new(
        "smtp",
        cfg.target.to_string(),
        cfg.mode.describe(),
        &stats,
        elapsed,
        process_cpu().saturating_sub(cpu0),
    ))
}

fn validate(cfg: &SmtpConfig) -> Result<(), RunError> {
    if cfg.messages.is_none() && cfg.duration.is_none() {
        return Err(RunError::Unbounded);
    }
    if cfg.connections == 0 || cfg.connections > CONNECTIONS_MAX {
        return Err(RunError::Option(format!(
            "connections must be within 1..={CONNECTIONS_MAX}"
        )));
    }
    if !(0.0..=1.0).contains(&cfg.starttls_share) {
        return Err(RunError::Option(
            "starttls share must be within 0..=1".into(),
        ));
    }
    if let Mode::Open(r) = cfg.mode
        && !(r.is_finite() && r > 0.0)
    {
        return Err(RunError::Option("rate must be a positive number".into()));
    }
    Ok(())
}

fn server_name(cfg: &SmtpConfig) -> Result<ServerName<'static>, RunError> {
    match &cfg.tls_name {
        Some(n) => ServerName::try_from(n.clone())
            .map_err(|_| RunError::Option(format!("bad TLS server name {n:?}"))),
        None => Ok(ServerName::IpAddress(cfg.target.ip().into())),
    }
}

/// One worker thread: its share of the connections, concurrently on this runtime.
fn thread_task(shared: Arc<Shared>, thread: usize, threads: usize) -> LocalTask {
    Box::pin(async move {
        let stats = Arc::new(Mutex::new(Stats::new()));
        let mut tasks = Vec::new();
        for conn in (thread..shared.cfg.connections).step_by(threads) {
            let c = Connection::new(Arc::clone(&shared), Arc::clone(&stats), conn as u64);
            // tokio::spawn, not spawn_local: on a current-thread runtime a task woken by
            // its socket is then queued without the LocalSet's extra wake-up syscall.
            tasks.push(tokio::spawn(c.run()));
        }
        for t in tasks {
            // A task only ends by returning (it has no panicking path on peer input).
            let _ = t.await;
        }
        std::mem::take(&mut *lock(&stats))
    })
}

/// One connection slot: sends messages, reconnecting as needed, until the run ends.
struct Connection {
    shared: Arc<Shared>,
    stats: Arc<Mutex<Stats>>,
    rng: SmallRng,
    msg: Message,
    session: Option<Session>,
    sent_on_session: u64,
}

impl Connection {
    fn new(shared: Arc<Shared>, stats: Arc<Mutex<Stats>>, id: u64) -> Self {
        Self {
            shared,
            stats,
            rng: SmallRng::seed_from_u64(id ^ (u64::from(std::process::id()) << 32)),
            msg: Message::default(),
            session: None,
            sent_on_session: 0,
        }
    }

    async fn run(mut self) {
        while let Some(ticket) = self.shared.schedule.next() {
            wait_until(ticket.due).await;
            lock(&self.stats).attempted += 1;
            match self.deliver(ticket.seq).await {
                Ok(Outcome::Accepted) => self.accepted(ticket.due),
                Ok(Outcome::Rejected(_)) => {
                    lock(&self.stats).rejected += 1;
                    self.shared.progress.finish(false);
                }
                Err(e) => self.failed(&e).await,
            }
            let per = self.shared.cfg.per_connection;
            if per > 0 && self.sent_on_session >= per {
                self.close().await;
            }
        }
        self.close().await;
    }

    /// Sends one message as an MTA does: a 421 means the server closes the connection, so
    /// the session is dropped; when that connection had already carried mail (the server's
    /// messages-per-connection limit, a shutdown) the message goes again, once, on a new
    /// connection, and the reconnect is counted apart from rejections.
    async fn deliver(&mut self, seq: u64) -> Result<Outcome, ClientError> {
        let reused = self.session.is_some();
        let mut outcome = self.one_message(seq).await;
        if reused && matches!(outcome, Ok(Outcome::Rejected(CLOSING))) {
            self.session = None;
            lock(&self.stats).reconnects_421 += 1;
            outcome = self.one_message(seq).await;
        }
        if matches!(outcome, Ok(Outcome::Rejected(CLOSING))) {
            self.session = None;
        }
        outcome
    }

    async fn one_message(&mut self, seq: u64) -> Result<Outcome, ClientError> {
        if self.session.is_none() {
            self.session = Some(self.open().await?);
            self.sent_on_session = 0;
        }
        self.shared.workload.fill(&mut self.rng, seq, &mut self.msg);
        let Some(session) = self.session.as_mut() else {
            return Err(ClientError::Closed);
        };
        self.sent_on_session += 1;
        let stats = &self.stats;
        let mut seen = |c: u16| count_reply(stats, c);
        session
            .send(
                self.shared.workload.from(),
                &self.msg.rcpts,
                &self.msg.data,
                self.shared.cfg.tx,
                &mut seen,
            )
            .await
    }

    async fn open(&mut self) -> Result<Session, ClientError> {
        let cfg = &self.shared.cfg;
        let tcp = tokio::time::timeout(cfg.timeout, TcpStream::connect(cfg.target))
            .await
            .map_err(|_| ClientError::Timeout)??;
        tcp.set_nodelay(true)?;
        lock(&self.stats).connections += 1;
        let mut s = Session::new(tcp, cfg.timeout);
        let stats = &self.stats;
        let mut seen = |c: u16| count_reply(stats, c);
        s.open(&cfg.helo, &mut seen).await?;
        let Some((tls, name)) = &self.shared.tls else {
            return Ok(s);
        };
        if !self.rng.random_bool(cfg.starttls_share) {
            return Ok(s);
        }
        if !s.extensions().starttls {
            lock(stats).count_error("starttls_not_offered");
            return Ok(s);
        }
        s.starttls(Arc::clone(tls), name.clone(), &cfg.helo, &mut seen)
            .await?;
        lock(stats).tls_sessions += 1;
        Ok(s)
    }

    fn accepted(&mut self, due: Instant) {
        let mut st = lock(&self.stats);
        st.ok += 1;
        st.ok_bytes += self.msg.data.len() as u64;
        st.record_latency(due.elapsed());
        self.shared.progress.finish(true);
    }

    async fn failed(&mut self, e: &ClientError) {
        {
            let mut st = lock(&self.stats);
            st.failed += 1;
            st.count_error(&e.kind());
        }
        self.shared.progress.finish(false);
        let sh = &self.shared;
        sh.progress.error(&sh.schedule, sh.cfg.errors_max);
        // The session state is unknown after an error: drop it and reconnect.
        self.session = None;
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }

    async fn close(&mut self) {
        if let Some(s) = self.session.take() {
            let stats = &self.stats;
            s.quit(&mut |c| count_reply(stats, c)).await;
        }
    }
}

/// Locks a thread's stats. Only that thread's tasks take the lock, one at a time and
/// never across an await, so it is uncontended; a poisoned lock still holds valid counts.
fn lock(stats: &Mutex<Stats>) -> MutexGuard<'_, Stats> {
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

fn count_reply(stats: &Mutex<Stats>, code: u16) {
    // Codes are 200..=599 (the parser refuses others), so three ASCII digits.
    let digits = [
        b'0' + (code / 100 % 10) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ];
    let s = std::str::from_utf8(&digits).unwrap_or("???");
    lock(stats).count_code(s);
}
