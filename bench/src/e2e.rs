//! End-to-end latency: time from sending a message over SMTP until the API's SSE stream
//! announces it.
//!
//! API contract (tempmx's public API):
//! - `POST /api/v1/mailboxes` with `{}` answers `{"address": "...", "token": "..."}`;
//! - `GET /api/v1/mailboxes/{address}/events` with `Authorization: Bearer <token>` and
//!   `Accept: text/event-stream` streams `event: new_message` whose `data:` is JSON
//!   with an `id` field.
//!
//! Each mailbox has one SMTP session and one SSE stream and sends one message at a time,
//! so the next `new_message` on its stream belongs to the message just sent.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::client::{ClientError, Outcome, Session, TxOptions};
use crate::http::{HttpError, SseStream, post_json};
use crate::pacing::{Mode, Schedule, wait_until};
use crate::report::{Stats, Summary, process_cpu};
use crate::runner::{LocalTask, Progress, RunError, run_threads};
use crate::workload::{Message, RcptCount, SizeDist, Spread, Workload, WorkloadSpec};

/// Most mailboxes (each holds an SMTP session and an SSE stream).
pub const MAILBOXES_MAX: usize = 10_000;

/// Everything `tempmx-bench e2e` needs.
#[derive(Debug, Clone)]
pub struct E2eConfig {
    /// SMTP address of the server.
    pub smtp: SocketAddr,
    /// HTTP API address of the server.
    pub http: SocketAddr,
    /// Mailboxes created and watched in parallel.
    pub mailboxes: usize,
    /// Stop after this many messages.
    pub messages: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Open or closed loop.
    pub mode: Mode,
    /// Message size distribution.
    pub size: SizeDist,
    /// Bound on every wait (SMTP reply, HTTP answer, the event itself).
    pub timeout: Duration,
    /// Longest a mailbox's creation waits out the API's rate limit (429 + Retry-After).
    pub create_wait_max: Duration,
    /// Stop after this many errors.
    pub errors_max: u64,
    /// EHLO name.
    pub helo: String,
    /// Envelope sender.
    pub from: String,
    /// Progress bar on stderr.
    pub progress: bool,
}

#[derive(Debug, Deserialize)]
struct Created {
    address: String,
    token: String,
}

/// Why one message was not seen end to end.
#[derive(Debug, thiserror::Error)]
enum E2eError {
    #[error(transparent)]
    Smtp(#[from] ClientError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("bad JSON from the API")]
    Json,
}

impl E2eError {
    /// The cause as the summary names it: `http 429`, `http connect_refused`, ...
    fn kind(&self) -> String {
        let http = |cause: &str| format!("http {cause}");
        match self {
            Self::Smtp(e) => e.kind(),
            Self::Http(HttpError::Timeout) => "not_visible_in_time".into(),
            Self::Http(HttpError::Status(code)) => http(&code.to_string()),
            Self::Http(HttpError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                http("connect_refused")
            }
            Self::Http(HttpError::Io(_)) => http("io"),
            Self::Http(HttpError::Closed) => http("closed"),
            Self::Http(HttpError::Head) => http("bad_head"),
            Self::Http(HttpError::TooLarge(what)) => http(&format!("{what} too large")),
            Self::Http(HttpError::Chunked) => http("bad_chunked"),
            Self::Json => "bad_json".into(),
        }
    }
}

/// The three measurements: send→visible (main), send→250, 250→visible.
#[derive(Default)]
struct Measures {
    visible: Stats,
    ack: Stats,
    ack_to_visible: Stats,
}

struct Shared {
    cfg: E2eConfig,
    workload: Workload,
    schedule: Arc<Schedule>,
    progress: Arc<Progress>,
}

/// Runs the end-to-end load and returns its summary.
pub fn run(cfg: E2eConfig) -> Result<Summary, RunError> {
    if cfg.messages.is_none() && cfg.duration.is_none() {
        return Err(RunError::Unbounded);
    }
    if cfg.mailboxes == 0 || cfg.mailboxes > MAILBOXES_MAX {
        return Err(RunError::Option(format!(
            "mailboxes must be within 1..={MAILBOXES_MAX}"
        )));
    }
    let workload = Workload::new(WorkloadSpec {
        size: cfg.size.clone(),
        rcpts: RcptCount { min: 1, max: 1 },
        mailboxes: 0,
        spread: Spread::Uniform,
        domains: vec!["unused.test".into()],
        from: cfg.from.clone(),
    })?;
    let schedule = Arc::new(Schedule::new(cfg.mode, cfg.messages, cfg.duration));
    let progress = Arc::new(Progress::default());
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        workload,
        schedule: Arc::clone(&schedule),
        progress: Arc::clone(&progress),
    });
    let measures = Arc::new(std::sync::Mutex::new(Measures::default()));
    let out = Arc::clone(&measures);
    let cpu0 = process_cpu();
    // One thread is plenty: this load is about latency, not volume.
    let (_, elapsed) = run_threads(1, schedule, progress, cfg.progress, move |_| {
        let sh = Arc::clone(&shared);
        let out = Arc::clone(&out);
        let task: LocalTask = Box::pin(async move {
            let m = Rc::new(RefCell::new(Measures::default()));
            let tasks: Vec<_> = (0..sh.cfg.mailboxes)
                .map(|i| tokio::task::spawn_local(mailbox(Arc::clone(&sh), Rc::clone(&m), i)))
                .collect();
            for t in tasks {
                let _ = t.await;
            }
            if let Ok(mut o) = out.lock() {
                *o = m.take();
            }
            Stats::new()
        });
        task
    })?;
    let m = measures
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default();
    let target = format!("smtp {} / http {}", cfg.smtp, cfg.http);
    let cpu = process_cpu().saturating_sub(cpu0);
    let mut s = Summary::new("e2e", target, cfg.mode.describe(), &m.visible, elapsed, cpu);
    s.extra.insert("smtp_ack".into(), m.ack.latency());
    s.extra
        .insert("ack_to_visible".into(), m.ack_to_visible.latency());
    Ok(s)
}

/// One mailbox: create it, watch it, and send to it until the schedule ends.
async fn mailbox(sh: Arc<Shared>, m: Rc<RefCell<Measures>>, i: usize) {
    let setup = async {
        let (address, token) = create_mailbox(&sh.cfg).await?;
        let path = format!("/api/v1/mailboxes/{address}/events");
        let sse = SseStream::open(sh.cfg.http, &path, &token, sh.cfg.timeout).await?;
        let session = open_smtp(&sh.cfg).await?;
        Ok::<_, E2eError>((address, sse, session))
    };
    let (address, mut sse, mut session) = match setup.await {
        Ok(x) => x,
        Err(e) => return fail(&sh, &m, &e),
    };
    let mut rng = SmallRng::seed_from_u64(i as u64);
    let mut msg = Message::default();
    while let Some(t) = sh.schedule.next() {
        wait_until(t.due).await;
        m.borrow_mut().visible.attempted += 1;
        sh.workload.fill_to(&mut rng, t.seq, &address, &mut msg);
        match one_message(&sh.cfg, &mut session, &mut sse, &msg, t.due).await {
            Ok(Some((acked, seen))) => {
                let mut mm = m.borrow_mut();
                mm.visible.ok += 1;
                mm.visible.ok_bytes += msg.data.len() as u64;
                mm.visible.record_latency(seen - t.due);
                mm.ack.record_latency(acked - t.due);
                mm.ack_to_visible.record_latency(seen - acked);
                sh.progress.finish(true);
            }
            Ok(None) => {
                m.borrow_mut().visible.rejected += 1;
                sh.progress.finish(false);
            }
            // After an error the session or stream state is unknown: this mailbox stops.
            Err(e) => return fail(&sh, &m, &e),
        }
    }
    session.quit(&mut |_| {}).await;
}

/// Sends one message and waits for its event: `(acked_at, visible_at)`, `None` if refused.
async fn one_message(
    cfg: &E2eConfig,
    session: &mut Session,
    sse: &mut SseStream,
    msg: &Message,
    due: Instant,
) -> Result<Option<(Instant, Instant)>, E2eError> {
    let tx = TxOptions {
        pipelining: true,
        bdat: false,
    };
    let outcome = session
        .send(&cfg.from, &msg.rcpts, &msg.data, tx, &mut |_| {})
        .await?;
    if outcome != Outcome::Accepted {
        return Ok(None);
    }
    let acked = Instant::now();
    let deadline = due.max(acked) + cfg.timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = sse.next_event(left).await?;
        if ev.event == "new_message" {
            // The contract promises an `id`; an event without one is a broken API.
            let data: serde_json::Value =
                serde_json::from_str(&ev.data).map_err(|_| E2eError::Json)?;
            if data.get("id").is_none() {
                return Err(E2eError::Json);
            }
            return Ok(Some((acked, Instant::now())));
        }
    }
}

/// Creates a mailbox within the API's rate limit: a 429 is retried after its
/// `Retry-After` for as long as `create_wait_max` allows, as a well-behaved client does.
async fn create_mailbox(cfg: &E2eConfig) -> Result<(String, String), E2eError> {
    let give_up = Instant::now() + cfg.create_wait_max;
    loop {
        let (head, body) = post_json(cfg.http, "/api/v1/mailboxes", "{}", cfg.timeout).await?;
        if head.status == TOO_MANY_REQUESTS {
            let wait = Duration::from_secs(head.retry_after_secs.unwrap_or(1).max(1));
            if Instant::now() + wait <= give_up {
                tokio::time::sleep(wait).await;
                continue;
            }
        }
        if !(200..300).contains(&head.status) {
            return Err(HttpError::Status(head.status).into());
        }
        let c: Created = serde_json::from_slice(&body).map_err(|_| E2eError::Json)?;
        return Ok((c.address, c.token));
    }
}

/// The rate-limit status of the public API.
const TOO_MANY_REQUESTS: u16 = 429;

/// What tempmx's public API allows one client IP on its defaults (`api.*` in the server's
/// config): mailbox creations at once and per minute, and live-push streams.
const DEFAULT_CREATE_BURST: usize = 5;
const DEFAULT_CREATE_PER_MINUTE: usize = 20;
const DEFAULT_SUBSCRIBERS_PER_IP_MAX: usize = 16;

/// A note for stderr when `mailboxes` exceeds what a tempmx with the default public rate
/// limits grants one client IP, saying how long creation takes and how to lift the limits.
pub fn rate_limit_note(mailboxes: usize) -> Option<String> {
    if mailboxes <= DEFAULT_CREATE_BURST {
        return None;
    }
    let paced = mailboxes - DEFAULT_CREATE_BURST;
    let secs = paced * 60 / DEFAULT_CREATE_PER_MINUTE;
    let mut note = format!(
        "note: tempmx's public API lets one client create {DEFAULT_CREATE_BURST} mailboxes at once \
         and {DEFAULT_CREATE_PER_MINUTE} per minute (api.create_burst, api.create_per_minute); \
         creating {mailboxes} takes about {secs} s on those defaults (429s are retried after \
         Retry-After, up to --create-wait)."
    );
    if mailboxes > DEFAULT_SUBSCRIBERS_PER_IP_MAX {
        note.push_str(&format!(
            " It also holds at most {DEFAULT_SUBSCRIBERS_PER_IP_MAX} event streams per client \
             (api.subscribers_per_ip_max): the mailboxes beyond fail with `http 429`."
        ));
    }
    note.push_str(
        " To lift the limits, raise those keys in the [api] section of the target's config.",
    );
    Some(note)
}

async fn open_smtp(cfg: &E2eConfig) -> Result<Session, E2eError> {
    let tcp = tokio::time::timeout(cfg.timeout, TcpStream::connect(cfg.smtp))
        .await
        .map_err(|_| ClientError::Timeout)?
        .map_err(ClientError::from)?;
    let mut s = Session::new(tcp, cfg.timeout);
    s.open(&cfg.helo, &mut |_| {}).await?;
    Ok(s)
}

fn fail(sh: &Shared, m: &RefCell<Measures>, e: &E2eError) {
    let mut mm = m.borrow_mut();
    mm.visible.failed += 1;
    mm.visible.count_error(&e.kind());
    sh.progress.finish(false);
    sh.progress.error(&sh.schedule, sh.cfg.errors_max);
}
