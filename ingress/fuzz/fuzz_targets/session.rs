//! Fuzz target: arbitrary bytes into an SMTP session, fed whole and split at fuzzer-chosen
//! points; both runs must give the same replies, effects and stored messages, and never panic.
//! The same oracle runs under proptest in `session::tests` (stable toolchain).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use tempmx_ingress::SessionLimits;
use tempmx_ingress::auth::AuthMode;
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

fn context() -> Arc<SessionContext> {
    let pool = PoolSnapshot::new(
        [("pool.test".to_owned(), DomainStatus::Active)],
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
        // As the proptest oracle: authentication and greylisting have their own tests,
        // with verdicts only the crate's tests can build.
        auth_mode: AuthMode::Off,
        greylist: None,
    })
}

/// Plays the driver: feeds `pieces` in order, runs effects; after STARTTLS the rest is
/// discarded (pipelined plaintext), after Close nothing more is read.
fn run(ctx: &Arc<SessionContext>, pieces: &[&[u8]]) -> Transcript {
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
        if !feed(&mut s, piece, now, &mut log) {
            break;
        }
    }
    log
}

/// Returns false once the session stopped reading (closed or STARTTLS).
fn feed(s: &mut Session, mut rest: &[u8], now: SystemTime, log: &mut Transcript) -> bool {
    // Each round consumes input or runs an effect, so this bound is never reached.
    for _ in 0..=2 * rest.len() + 2 {
        let mut out = Output::default();
        let n = s.ingest(rest, now, &mut out);
        rest = &rest[n..];
        log.replies.extend_from_slice(&out.replies);
        let Some(effect) = out.effect else {
            assert!(rest.is_empty(), "ingest stopped without an effect");
            return true;
        };
        log.effects.push(effect);
        match effect {
            Effect::Deliver => deliver(s, log),
            Effect::StartTls => {
                s.tls_started(TlsSummary {
                    version: "TLSv1.3".into(),
                    cipher: "X".into(),
                });
                return false;
            }
            Effect::Close => return false,
            Effect::CheckSender | Effect::CheckMessage => {
                panic!("authentication is off in these sessions")
            }
        }
    }
    panic!("driver loop did not finish");
}

fn deliver(s: &mut Session, log: &mut Transcript) {
    let m = s
        .pending_message()
        .expect("Deliver without a pending message");
    assert!(m.body.len() <= 512);
    log.stored.push((
        m.mail_from.to_owned(),
        m.recipients.to_vec(),
        m.body.to_vec(),
    ));
    let mut out = Output::default();
    s.delivered(Ok(MessageId(log.stored.len() as u64)), &mut out);
    log.replies.extend_from_slice(&out.replies);
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the split step, the rest is the session input.
    let (step, input) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])) % 64 + 1, rest),
        _ => return,
    };
    let ctx = context();
    let whole = run(&ctx, &[input]);
    let pieces: Vec<&[u8]> = input.chunks(step).collect();
    let split = run(&ctx, &pieces);
    assert_eq!(whole, split);
});
