//! A connection of the ring driven by hand, without a ring and without a client socket
//! (its descriptor is `/dev/null`; the core binds a loopback listener it never accepts on):
//! the calls the event loop makes (feed it bytes, take its sends, fire and arm its timer)
//! under a clock the test moves.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tempmx_store::{Accepted, MessageSink, NewMessage, StoreError};
use tokio::sync::watch;

use super::checks::Checks;
use super::conn::{Conn, Env};
use super::spares::Spare;
use super::timers::Timers;
use crate::auth::{AuthCounters, AuthMode};
use crate::config::IngressConfig;
use crate::driver::core::{Core, CoreParts};
use crate::driver::counters::CoreCounters;
use crate::driver::listener;
use crate::policy::{DomainStatus, Policy, PoolSnapshot, RecipientMode};
use crate::session::{PeerInfo, SessionContext};

const IDLE: Duration = Duration::from_secs(10);
const SLOT: u32 = 0;

/// A store that takes nothing (these connections send no mail).
struct NoStore;

impl MessageSink for NoStore {
    fn accept(&mut self, _: &NewMessage<'_>) -> Result<Accepted, StoreError> {
        Err(StoreError::Io(std::io::Error::other(
            "no store in this test",
        )))
    }
}

/// What a connection's calls need from its core: the core and its hand-off thread.
struct Rig {
    core: Core,
    checks: Checks,
    _stop: watch::Sender<bool>,
}

impl Rig {
    /// A core built as the driver builds it (its listener is bound on loopback and never
    /// accepted on), with the idle timeout [`IDLE`] and authentication off.
    fn new() -> Self {
        let mut config = IngressConfig::default();
        config.limits.idle_timeout_ms = IDLE.as_millis() as u64;
        config.auth.mode = AuthMode::Off;
        let pool = PoolSnapshot::new(
            [(
                tempmx_store::Domain::parse("pool.test").expect("test domain"),
                DomainStatus::Active,
            )],
            RecipientMode::CatchAll,
        );
        let session_ctx = Arc::new(SessionContext {
            hostname: config.hostname.clone(),
            limits: config.limits.clone(),
            tls_available: false,
            policy: Arc::new(Policy::new(pool, None)),
            auth_mode: AuthMode::Off,
            greylist: None,
        });
        let (listeners, _) = listener::bind_per_core(SocketAddr::from(([127, 0, 0, 1], 0)), 1)
            .expect("loopback listener");
        let (stop_tx, stop) = watch::channel(false);
        let parts = CoreParts {
            id: 0,
            session_ctx,
            tls: None,
            sink: Box::new(NoStore),
            listener: listeners.into_iter().next().expect("one listener"),
            counters: Arc::from([CoreCounters::default()]),
            auth_counters: Arc::new(AuthCounters::new()),
            stop: stop.clone(),
        };
        let (core, _, _) = Core::new(&config, parts, None).expect("core");
        let checks = Checks::start(0, stop, || Ok(None)).expect("hand-off thread");
        Self {
            core,
            checks,
            _stop: stop_tx,
        }
    }

    /// What the connection's calls at `now` get.
    fn env(&self, now: Instant) -> Env<'_> {
        Env {
            core: &self.core,
            checks: &self.checks,
            token: (SLOT, 0),
            now,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_433_678),
        }
    }

    /// A new connection at `now`, with a descriptor that is no socket (nothing here calls
    /// the kernel on it).
    fn connect(&self, now: Instant) -> Conn {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let permit = self.core.admission.admit(ip).expect("a free slot");
        let fd = OwnedFd::from(File::open("/dev/null").expect("/dev/null"));
        let peer = PeerInfo {
            ip,
            port: 40000,
            session_id: 1,
        };
        Conn::new(self.env(now), fd, 0, peer, permit, Spare::default())
    }

    /// Takes what the connection has to send at `now` and completes its send, as the event
    /// loop does; returns it.
    fn sent(&self, conn: &mut Conn, now: Instant) -> String {
        if !conn.next_send(now) {
            return String::new();
        }
        let out = String::from_utf8_lossy(&conn.send_buf).into_owned();
        let n = i32::try_from(conn.send_buf.len()).expect("a short reply");
        assert!(conn.sent(self.env(now), n), "the whole reply went out");
        out
    }

    /// Sessions of the core that timed out.
    fn timed_out(&self) -> u64 {
        self.core
            .counters()
            .sessions_timed_out
            .load(Ordering::Relaxed)
    }
}

// Goal: a deadline that moves later keeps its earlier timer entry; when that entry fires, the
// connection finds nothing due and is armed again for the later deadline, not closed early;
// at the later deadline it times out (421 4.4.2). Method: one connection and the core's
// timers, driven with the event loop's own calls: greeted at t0 (entry at t0 + IDLE), a NOOP
// one second before that deadline, the first entry fired at t0 + IDLE, the second at the
// NOOP's time + IDLE.
#[test]
fn a_later_idle_deadline_fires_its_early_entry_harmlessly_then_closes_on_time() {
    let rig = Rig::new();
    let mut timers = Timers::default();
    let t0 = Instant::now();
    let mut conn = rig.connect(t0);
    assert!(rig.sent(&mut conn, t0).starts_with("220 "));
    conn.arm_timer(&mut timers, &rig.core, SLOT);
    let first = conn.timer.expect("armed");
    assert_eq!(first.0, t0 + IDLE);

    let noop = t0 + IDLE - Duration::from_secs(1);
    conn.received(rig.env(noop), b"NOOP\r\n");
    assert!(rig.sent(&mut conn, noop).starts_with("250 "));
    assert_eq!(conn.deadline(&rig.core), Some(noop + IDLE));
    conn.arm_timer(&mut timers, &rig.core, SLOT);
    assert_eq!(
        conn.timer,
        Some(first),
        "the later deadline keeps the entry"
    );
    assert_eq!(timers.len(), 1);

    let early = t0 + IDLE;
    assert_eq!(timers.pop_due(early), Some((SLOT, first.1)));
    assert!(conn.timer_fired(rig.env(early), first.1));
    assert!(conn.wants_recv() && !conn.is_done(), "still open");
    assert_eq!(rig.sent(&mut conn, early), "", "nothing said");
    assert_eq!(rig.timed_out(), 0);
    conn.arm_timer(&mut timers, &rig.core, SLOT);
    let second = conn.timer.expect("armed again");
    assert_eq!(second.0, noop + IDLE);
    assert_eq!(timers.pop_due(noop + IDLE - Duration::from_millis(1)), None);

    let late = noop + IDLE;
    assert_eq!(timers.pop_due(late), Some((SLOT, second.1)));
    assert!(
        !conn.timer_fired(rig.env(late), first.1),
        "a stale entry is ignored"
    );
    assert!(conn.timer_fired(rig.env(late), second.1));
    assert!(!conn.wants_recv(), "closing");
    assert!(rig.sent(&mut conn, late).starts_with("421 4.4.2 "));
    assert_eq!(rig.timed_out(), 1);
}

// Goal: a client that pipelines commands and reads no replies cannot grow the connection's
// memory without bound: past the output pause the session takes no further input, what
// arrives is held, and once the held input reaches its own pause the receive stops; as the
// replies go out the held input is answered, every command once and in order. Method: 20,000
// NOOPs (120,000 bytes) fed in receive-sized pieces while the first send never completes,
// then the sends completed one by one.
#[test]
fn replies_that_pile_up_stop_the_input_until_they_are_sent() {
    const NOOPS: usize = 20_000;
    let rig = Rig::new();
    let t0 = Instant::now();
    let mut conn = rig.connect(t0);
    assert!(rig.sent(&mut conn, t0).starts_with("220 "));
    let input = b"NOOP\r\n".repeat(NOOPS);
    // The first reply goes into a send that stays in flight while the rest arrives.
    conn.received(rig.env(t0), b"NOOP\r\n");
    assert!(conn.next_send(t0));
    let mut fed = 6;
    for piece in input[6..].chunks(16 * 1024) {
        if !conn.wants_recv() {
            break;
        }
        conn.received(rig.env(t0), piece);
        fed += piece.len();
    }
    assert!(!conn.wants_recv(), "the receive stops");
    assert!(fed < input.len(), "not everything was taken in");
    let unsent = conn.unsent();
    assert!(
        unsent >= 64 * 1024,
        "replies piled up to the pause: {unsent}"
    );
    assert!(unsent < 512 * 1024, "and not far past it: {unsent}");

    let mut replies = String::new();
    let first = i32::try_from(conn.send_buf.len()).expect("a bounded send");
    replies.push_str(&String::from_utf8_lossy(&conn.send_buf));
    assert!(conn.sent(rig.env(t0), first));
    loop {
        let more = rig.sent(&mut conn, t0);
        if more.is_empty() {
            if fed == input.len() {
                break;
            }
            // The held input was answered and the receive is wanted again: the rest arrives.
            assert!(conn.wants_recv(), "the receive resumes");
            let end = input.len().min(fed + 16 * 1024);
            conn.received(rig.env(t0), &input[fed..end]);
            fed = end;
            continue;
        }
        replies.push_str(&more);
    }
    let lines: Vec<&str> = replies.lines().collect();
    assert_eq!(lines.len(), NOOPS, "one reply per NOOP");
    assert!(
        lines.iter().all(|l| l.starts_with("250 2.0.0")),
        "all NOOP replies"
    );
}
