//! The connection layer's own decisions: the deadline of each phase, a hand-off answered
//! later, and a result that comes after the wait was cut.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tempmx_store::MessageId;

use super::*;
use crate::auth::AuthMode;
use crate::config::SessionLimits;
use crate::greylist::{Greylist, GreylistConfig, SharedState};
use crate::policy::{DomainStatus, Policy, PoolSnapshot, RecipientMode};
use crate::session::{PeerInfo, SessionContext};

const IDLE: Duration = Duration::from_secs(60);

/// A driver that stores nothing at once: every delivery is answered later.
#[derive(Default)]
struct Later {
    replies: Vec<u8>,
    delivered: usize,
    greylist_steps: Vec<SharedStep>,
    closed: bool,
}

impl Io for Later {
    fn send(&mut self, replies: &mut Vec<u8>) {
        self.replies.append(replies);
    }

    fn check_sender(&mut self, _: SenderInput<'_>) -> Answer<Option<SenderCheck>> {
        panic!("authentication is off here")
    }

    fn check_message(&mut self, _: &SenderCheck, _: &[u8]) -> Answer<Option<MessageCheck>> {
        panic!("authentication is off here")
    }

    fn check_greylist(&mut self, step: SharedStep) -> Answer<GreyVerdict> {
        self.greylist_steps.push(step);
        Answer::Later
    }

    fn deliver(&mut self, _: &PendingMessage<'_>) -> Answer<Result<MessageId, DeliveryFailure>> {
        self.delivered += 1;
        Answer::Later
    }

    fn start_tls(&mut self) {
        panic!("TLS is off here")
    }

    fn close(&mut self) {
        self.closed = true;
    }
}

/// Shared greylisting state whose steps the test itself answers (it plays the driver).
#[derive(Debug)]
struct AnsweredByTheTest;

impl SharedState for AnsweredByTheTest {
    fn fingerprint_key(&self) -> [u8; 16] {
        [3; 16]
    }

    fn step(&self, _: SharedStep) -> crate::greylist::SharedFuture {
        panic!("the test answers the steps through the pump")
    }
}

fn pump(session_max: Duration) -> (Pump, Instant) {
    pump_with(session_max, None)
}

fn pump_with(session_max: Duration, greylist: Option<Arc<Greylist>>) -> (Pump, Instant) {
    let pool = PoolSnapshot::new(
        [(
            tempmx_store::Domain::parse("pool.test").expect("test domain"),
            DomainStatus::Active,
        )],
        RecipientMode::CatchAll,
    );
    let ctx = Arc::new(SessionContext {
        hostname: "mx.test".into(),
        limits: SessionLimits::default(),
        tls_available: false,
        policy: Arc::new(Policy::new(pool, None)),
        auth_mode: AuthMode::Off,
        greylist,
    });
    let peer = PeerInfo {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 1,
        session_id: 1,
    };
    let start = Instant::now();
    (
        Pump::new(Session::new(ctx, peer), start, IDLE, session_max),
        start,
    )
}

const MESSAGE: &[u8] = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@pool.test>\r\nDATA\r\n\
    x\r\n.\r\nNOOP\r\n";

// Goal: a delivery answered later makes the connection wait with a deadline of its own (the
// idle timeout from the start of the wait, as `Timeout::Check`); input behind it waits; the
// result resumes the session and the reading deadline is back. Method: a driver that answers
// every delivery later, the input pipelined in one feed.
#[test]
fn a_wait_has_its_own_deadline_and_resumes() {
    let (mut p, start) = pump(Duration::from_secs(3600));
    let mut io = Later::default();
    p.greet(&mut io, start);
    assert_eq!(p.deadline().map(|(_, w)| w), Some(Timeout::Idle));
    let fed = start + Duration::from_secs(1);
    let n = p.feed(&mut io, MESSAGE, UNIX_EPOCH, fed);
    assert_eq!(n, MESSAGE.len() - b"NOOP\r\n".len(), "NOOP waits");
    assert!(p.is_waiting() && io.delivered == 1);
    assert_eq!(
        p.deadline(),
        Some((fed + IDLE, Timeout::Check)),
        "the wait's deadline counts from the feed that began it"
    );
    let resumed = fed + Duration::from_secs(2);
    assert_eq!(p.feed(&mut io, b"NOOP\r\n", UNIX_EPOCH, resumed), 0);
    p.delivered(&mut io, Ok(MessageId(7)), resumed);
    assert!(!p.is_waiting());
    assert_eq!(p.deadline(), Some((resumed + IDLE, Timeout::Idle)));
    assert_eq!(p.feed(&mut io, b"NOOP\r\n", UNIX_EPOCH, resumed), 6);
    let replies = String::from_utf8_lossy(&io.replies);
    assert!(
        replies.ends_with("250 2.0.0 OK, stored as 0000000000000007\r\n250 2.0.0 OK\r\n"),
        "{replies}"
    );
}

// Goal: when the wait is cut (421 4.4.2), a result that arrives afterwards is ignored: no
// second reply, no reopened session. Method: time out the waiting pump, then deliver.
#[test]
fn a_result_after_the_cut_is_ignored() {
    let (mut p, start) = pump(Duration::from_secs(3600));
    let mut io = Later::default();
    p.greet(&mut io, start);
    p.feed(&mut io, MESSAGE, UNIX_EPOCH, start);
    assert!(p.is_waiting());
    io.replies.clear();
    p.timed_out(&mut io, Timeout::Check);
    assert_eq!(io.replies, b"421 4.4.2 Timeout, closing connection\r\n");
    assert!(
        p.is_closed() && !io.closed,
        "the caller closes, not the session"
    );
    assert_eq!(p.deadline(), None);
    io.replies.clear();
    p.delivered(&mut io, Ok(MessageId(1)), start);
    assert!(io.replies.is_empty());
    assert_eq!(
        p.feed(&mut io, b"NOOP\r\n", UNIX_EPOCH, start),
        6,
        "dropped"
    );
    assert!(io.replies.is_empty());
}

// Goal: the total session time caps every other deadline, the wait's too.
#[test]
fn the_session_deadline_caps_the_others() {
    let (mut p, start) = pump(Duration::from_secs(5));
    let mut io = Later::default();
    p.greet(&mut io, start);
    assert_eq!(
        p.deadline(),
        Some((start + Duration::from_secs(5), Timeout::SessionDuration))
    );
    p.feed(&mut io, MESSAGE, UNIX_EPOCH, start);
    assert!(p.is_waiting());
    assert_eq!(
        p.deadline(),
        Some((start + Duration::from_secs(5), Timeout::SessionDuration))
    );
}

// Goal: with shared (fleet) greylisting each RCPT waits for the shared state's verdict, the
// input pipelined behind it waits too, and the verdicts are answered in order: a defer is
// 451 4.7.1, an unavailable state 451 4.3.0 (never 250), a pass 250 with the recipient kept
// for the message. Method: a greylist on shared state, a driver that answers every step
// later, the whole transaction pipelined in one feed, the verdicts given one by one.
#[test]
fn shared_greylisting_answers_each_rcpt_when_its_verdict_comes() {
    let cfg = GreylistConfig {
        enabled: true,
        ..GreylistConfig::default()
    };
    let greylist = Greylist::shared(&cfg, Arc::new(AnsweredByTheTest)).expect("valid config");
    let (mut p, start) = pump_with(Duration::from_secs(3600), Some(Arc::new(greylist)));
    let mut io = Later::default();
    p.greet(&mut io, start);
    let input: &[u8] = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@pool.test>\r\n\
        RCPT TO:<v@pool.test>\r\nRCPT TO:<w@pool.test>\r\nDATA\r\nx\r\n.\r\n";
    let mut pos = p.feed(&mut io, input, UNIX_EPOCH, start);
    assert!(p.is_waiting() && io.greylist_steps.len() == 1);
    assert_eq!(
        p.feed(&mut io, &input[pos..], UNIX_EPOCH, start),
        0,
        "input waits"
    );
    let verdicts = [
        GreyVerdict::Defer { retry_in_secs: 60 },
        GreyVerdict::Unavailable,
        GreyVerdict::Pass(crate::greylist::PassReason::Retried),
    ];
    for (i, verdict) in verdicts.into_iter().enumerate() {
        assert_eq!(io.greylist_steps.len(), i + 1);
        p.greylist_checked(&mut io, verdict, start);
        pos += p.feed(&mut io, &input[pos..], UNIX_EPOCH, start);
    }
    assert_eq!(pos, input.len());
    assert_eq!(
        io.delivered, 1,
        "the message goes to the store with one recipient"
    );
    let steps = &io.greylist_steps;
    assert_eq!(steps[0].network, steps[1].network, "one client network");
    assert_ne!(
        steps[0].triplet, steps[1].triplet,
        "two recipients, two triplets"
    );
    let replies = String::from_utf8_lossy(&io.replies);
    let codes: Vec<&str> = replies.lines().filter_map(|l| l.get(..9)).collect();
    assert_eq!(
        codes[codes.len() - 5..],
        [
            "250 2.1.0",
            "451 4.7.1",
            "451 4.3.0",
            "250 2.1.5",
            "354 End d"
        ],
        "{replies}"
    );
}
