//! Fuzz target: arbitrary bytes into an SMTP session through the connection layer the drivers
//! run (`connection::Pump`), fed whole and split at fuzzer-chosen points; both runs must give
//! the same replies, effects and stored messages, and never panic. The input also picks the
//! authentication mode (off, record, enforce), the verdicts the driver answers `CheckSender`
//! and `CheckMessage` with, and whether the split run gets its answers after a wait (as on
//! io_uring), so the waits are fuzzed too. The same oracle runs under proptest in
//! `session::tests` and `session::auth_tests` (stable toolchain).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use tempmx_ingress::SessionLimits;
use tempmx_ingress::auth::{AuthMode, AuthValue, MessageCheck, SenderCheck};
use tempmx_ingress::connection::{Answer, Io, Pump};
use tempmx_ingress::policy::{DomainStatus, Policy, PoolSnapshot, RecipientMode};
use tempmx_ingress::session::{
    DeliveryFailure, Effect, PeerInfo, PendingMessage, SenderInput, Session, SessionContext,
};
use tempmx_store::MessageId;

/// Replies, delivered (envelope, body) pairs and effects of one run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Transcript {
    replies: Vec<u8>,
    stored: Vec<(String, Vec<String>, Vec<u8>)>,
    effects: Vec<Effect>,
}

/// The authentication mode and the verdicts the driver gives.
#[derive(Clone, Copy)]
struct Auth {
    mode: AuthMode,
    spf: AuthValue,
    dmarc: AuthValue,
    dmarc_rejects: bool,
}

impl Auth {
    fn from_byte(b: u8) -> Self {
        const MODES: [AuthMode; 3] = [AuthMode::Off, AuthMode::Record, AuthMode::Enforce];
        const VALUES: [AuthValue; 4] = [
            AuthValue::Pass,
            AuthValue::Fail,
            AuthValue::TempError,
            AuthValue::None,
        ];
        let b = usize::from(b);
        Self {
            mode: MODES[b % 3],
            spf: VALUES[b / 3 % 4],
            dmarc: VALUES[b / 12 % 4],
            // The authenticator only asks to refuse a message in enforce mode.
            dmarc_rejects: b % 3 == 2 && b / 48 % 2 == 1,
        }
    }
}

fn context(mode: AuthMode) -> Arc<SessionContext> {
    let pool = PoolSnapshot::new(
        [(
            tempmx_store::Domain::parse("pool.test").expect("test domain"),
            DomainStatus::Active,
        )],
        RecipientMode::CatchAll,
    );
    let limits = SessionLimits {
        command_line_bytes_max: 64,
        text_line_bytes_max: 80,
        message_bytes_max: 512,
        recipients_max: 3,
        errors_max: 20,
        messages_per_connection_max: 5,
        ..SessionLimits::default()
    };
    Arc::new(SessionContext {
        hostname: "mx.test".into(),
        limits,
        tls_available: true,
        policy: Arc::new(Policy::new(pool, None)),
        auth_mode: mode,
        // Greylisting keeps its own clocked tests; here it would only defer every RCPT.
        greylist: None,
    })
}

/// A check or delivery answered after the feed returned (as the io_uring driver does).
enum Deferred {
    Sender(Option<SenderCheck>),
    Message(Option<MessageCheck>),
    Store(Result<MessageId, DeliveryFailure>),
}

/// Plays the driver's side of the connection layer: replies to the transcript, messages to
/// memory, checks answered with the fuzzer's verdicts, at once or (`later`) after the feed.
struct Driver {
    auth: Auth,
    later: bool,
    deferred: Option<Deferred>,
    log: Transcript,
}

impl Io for Driver {
    fn send(&mut self, replies: &mut Vec<u8>) {
        self.log.replies.append(replies);
    }

    fn check_sender(&mut self, input: SenderInput<'_>) -> Answer<Option<SenderCheck>> {
        assert_ne!(
            self.auth.mode,
            AuthMode::Off,
            "no sender check with auth off"
        );
        self.log.effects.push(Effect::CheckSender);
        let domain = input.mail_from.rsplit_once('@').map_or("", |(_, d)| d);
        let check = SenderCheck::fixed(self.auth.mode, domain, self.auth.spf);
        self.answer(Some(check), Deferred::Sender)
    }

    fn check_message(&mut self, _: &SenderCheck, _: &[u8]) -> Answer<Option<MessageCheck>> {
        self.log.effects.push(Effect::CheckMessage);
        let a = self.auth;
        let check = MessageCheck::fixed(a.dmarc, a.dmarc_rejects, "mx.test", Vec::new());
        self.answer(Some(check), Deferred::Message)
    }

    fn deliver(&mut self, m: &PendingMessage<'_>) -> Answer<Result<MessageId, DeliveryFailure>> {
        self.log.effects.push(Effect::Deliver);
        assert!(m.body.len() <= 512);
        self.log.stored.push((
            m.mail_from.to_owned(),
            m.recipients.iter().map(|r| r.to_string()).collect(),
            m.body.to_vec(),
        ));
        let id = MessageId(self.log.stored.len() as u64);
        self.answer(Ok(id), Deferred::Store)
    }

    fn start_tls(&mut self) {
        self.log.effects.push(Effect::StartTls);
    }

    fn close(&mut self) {
        self.log.effects.push(Effect::Close);
    }
}

impl Driver {
    fn answer<T>(&mut self, answer: T, later: impl FnOnce(T) -> Deferred) -> Answer<T> {
        if !self.later {
            return Answer::Now(answer);
        }
        self.deferred = Some(later(answer));
        Answer::Later
    }
}

/// Feeds `pieces` in order through the connection layer the drivers run; after STARTTLS the
/// rest is plaintext the layer drops, after the close nothing more is read.
fn run(ctx: &Arc<SessionContext>, auth: Auth, later: bool, pieces: &[&[u8]]) -> Transcript {
    let peer = PeerInfo {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 1,
        session_id: 1,
    };
    let idle = Duration::from_secs(300);
    // The fuzz run takes no time: every call is given the instant the connection began.
    let start = Instant::now();
    let mut pump = Pump::new(Session::new(ctx.clone(), peer), start, idle, idle);
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut d = Driver {
        auth,
        later,
        deferred: None,
        log: Transcript::default(),
    };
    pump.greet(&mut d, start);
    for piece in pieces {
        feed(&mut pump, &mut d, piece, now, start);
    }
    d.log
}

fn feed(pump: &mut Pump, d: &mut Driver, mut rest: &[u8], now: SystemTime, at: Instant) {
    // Each round consumes input or answers a hand-off that consumed input to start.
    for _ in 0..=2 * rest.len() + 2 {
        match d.deferred.take() {
            Some(Deferred::Sender(check)) => pump.sender_checked(d, check, at),
            Some(Deferred::Message(check)) => pump.message_checked(d, check, at),
            Some(Deferred::Store(result)) => pump.delivered(d, result, at),
            None if rest.is_empty() => return,
            None => {
                let n = pump.feed(d, rest, now, at);
                assert!(n > 0 || pump.is_waiting(), "feed stopped without a wait");
                rest = &rest[n..];
            }
        }
    }
    panic!("driver loop did not finish");
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the split step, the third the authentication and whether
    // the split run's answers come later, the rest is the session input.
    let (step, auth, later, input) = match data {
        [a, b, c, rest @ ..] => (
            usize::from(u16::from_le_bytes([*a, *b])) % 64 + 1,
            Auth::from_byte(*c),
            *c / 96 == 1,
            rest,
        ),
        _ => return,
    };
    let ctx = context(auth.mode);
    let whole = run(&ctx, auth, false, &[input]);
    let pieces: Vec<&[u8]> = input.chunks(step).collect();
    // The split run gets its answers after a wait when the input asks for it.
    let split = run(&ctx, auth, later, &pieces);
    assert_eq!(whole, split);
});
