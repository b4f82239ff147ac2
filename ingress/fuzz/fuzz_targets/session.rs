//! Fuzz target: arbitrary bytes into an SMTP session, fed whole and split at fuzzer-chosen
//! points; both runs must give the same replies, effects and stored messages, and never panic.
//! The input also picks the authentication mode (off, record, enforce) and the verdicts the
//! driver answers `CheckSender` and `CheckMessage` with, so the waits for them are fuzzed
//! too. The same oracle, with authentication off, runs under proptest in `session::tests`
//! (stable toolchain).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use tempmx_ingress::SessionLimits;
use tempmx_ingress::auth::{AuthMode, AuthValue, MessageCheck, SenderCheck};
use tempmx_ingress::policy::{DomainStatus, Policy, PoolSnapshot, RecipientMode};
use tempmx_ingress::session::{Effect, Output, PeerInfo, Session, SessionContext};
use tempmx_store::{MessageId, TlsSummary};

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

/// Plays the driver: feeds `pieces` in order, runs effects; after STARTTLS the rest is
/// discarded (pipelined plaintext), after Close nothing more is read.
fn run(ctx: &Arc<SessionContext>, auth: Auth, pieces: &[&[u8]]) -> Transcript {
    let peer = PeerInfo {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 1,
        session_id: 1,
    };
    let mut s = Session::new(ctx.clone(), peer);
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut log = Transcript::default();
    let mut out = Output::default();
    s.greeting(&mut out);
    log.replies.extend_from_slice(&out.replies);
    for piece in pieces {
        if !feed(&mut s, piece, now, auth, &mut log) {
            break;
        }
    }
    log
}

/// Returns false once the session stopped reading (closed or STARTTLS).
fn feed(
    s: &mut Session,
    mut rest: &[u8],
    now: SystemTime,
    auth: Auth,
    log: &mut Transcript,
) -> bool {
    // Each round consumes input or runs effects, so this bound is never reached.
    for _ in 0..=2 * rest.len() + 2 {
        let mut out = Output::default();
        let n = s.ingest(rest, now, &mut out);
        rest = &rest[n..];
        log.replies.extend_from_slice(&out.replies);
        let Some(first) = out.effect else {
            assert!(rest.is_empty(), "ingest stopped without an effect");
            return true;
        };
        // An effect's answer may raise the next one (a message check, then the delivery).
        let mut effect = Some(first);
        while let Some(e) = effect.take() {
            log.effects.push(e);
            let mut out = Output::default();
            match e {
                Effect::Deliver => deliver(s, log, &mut out),
                Effect::CheckSender => {
                    assert_ne!(auth.mode, AuthMode::Off, "no sender check with auth off");
                    let input = s.pending_sender().expect("CheckSender without a sender");
                    let mail_from = input.mail_from.to_owned();
                    let domain = mail_from.rsplit_once('@').map_or("", |(_, d)| d);
                    let check = SenderCheck::fixed(auth.mode, domain, auth.spf);
                    s.sender_checked(check, &mut out);
                }
                Effect::CheckMessage => {
                    assert!(s.pending_auth().is_some(), "CheckMessage without a message");
                    let check =
                        MessageCheck::fixed(auth.dmarc, auth.dmarc_rejects, "mx.test", Vec::new());
                    s.message_checked(check, &mut out);
                }
                Effect::StartTls => {
                    s.tls_started(TlsSummary {
                        version: "TLSv1.3".into(),
                        cipher: "X".into(),
                    });
                    return false;
                }
                Effect::Close => return false,
            }
            log.replies.extend_from_slice(&out.replies);
            effect = out.effect;
        }
    }
    panic!("driver loop did not finish");
}

fn deliver(s: &mut Session, log: &mut Transcript, out: &mut Output) {
    let m = s
        .pending_message()
        .expect("Deliver without a pending message");
    assert!(m.body.len() <= 512);
    log.stored.push((
        m.mail_from.to_owned(),
        m.recipients.iter().map(|r| r.to_string()).collect(),
        m.body.to_vec(),
    ));
    s.delivered(Ok(MessageId(log.stored.len() as u64)), out);
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the split step, the third the authentication, the rest is
    // the session input.
    let (step, auth, input) = match data {
        [a, b, c, rest @ ..] => (
            usize::from(u16::from_le_bytes([*a, *b])) % 64 + 1,
            Auth::from_byte(*c),
            rest,
        ),
        _ => return,
    };
    let ctx = context(auth.mode);
    let whole = run(&ctx, auth, &[input]);
    let pieces: Vec<&[u8]> = input.chunks(step).collect();
    let split = run(&ctx, auth, &pieces);
    assert_eq!(whole, split);
});
