//! Session tests through an in-memory harness that plays the driver's part.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use tempmx_store::{MessageId, TlsSummary};

use super::*;
use crate::auth::MessageCheck;
use crate::connection::{Answer, Io, Pump};
use crate::policy::{DomainStatus, PoolSnapshot, RecipientMode};

/// A message the harness "stored".
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    from: String,
    rcpts: Vec<String>,
    trace: String,
    body: Vec<u8>,
}

/// Everything observable from outside: replies, stored messages, effects seen.
#[derive(Debug, Default, PartialEq, Eq)]
struct Transcript {
    replies: Vec<u8>,
    stored: Vec<Stored>,
    tls_starts: usize,
    closed: bool,
}

struct T {
    p: Pump,
    now: SystemTime,
    log: Transcript,
    next_id: u64,
    /// The store's answer for the next deliveries (None = accept).
    fail_next: Option<DeliveryFailure>,
}

/// The harness's side of the connection layer: it writes replies to the transcript, stores
/// in memory and answers every hand-off at once.
struct Recorder<'a> {
    log: &'a mut Transcript,
    next_id: &'a mut u64,
    fail: Option<DeliveryFailure>,
}

impl Io for Recorder<'_> {
    fn send(&mut self, replies: &mut Vec<u8>) {
        self.log.replies.append(replies);
    }

    fn check_sender(&mut self, _: SenderInput<'_>) -> Answer<Option<SenderCheck>> {
        panic!("authentication is off in these sessions")
    }

    fn check_message(&mut self, _: &SenderCheck, _: &[u8]) -> Answer<Option<MessageCheck>> {
        panic!("authentication is off in these sessions")
    }

    fn deliver(&mut self, m: &PendingMessage<'_>) -> Answer<Result<MessageId, DeliveryFailure>> {
        if let Some(f) = self.fail {
            return Answer::Now(Err(f));
        }
        self.log.stored.push(Stored {
            from: m.mail_from.to_owned(),
            rcpts: m.recipients.iter().map(|r| r.to_string()).collect(),
            trace: String::from_utf8_lossy(m.trace_headers).into_owned(),
            body: m.body.to_vec(),
        });
        let id = MessageId(*self.next_id);
        *self.next_id += 1;
        Answer::Now(Ok(id))
    }

    fn start_tls(&mut self) {
        self.log.tls_starts += 1;
    }

    fn close(&mut self) {
        self.log.closed = true;
    }
}

fn limits() -> SessionLimits {
    SessionLimits {
        command_line_bytes_max: 512,
        text_line_bytes_max: 1000,
        message_bytes_max: 4096,
        recipients_max: 3,
        errors_max: 5,
        messages_per_connection_max: 3,
        ..SessionLimits::default()
    }
}

fn context(limits: SessionLimits, tls_available: bool) -> Arc<SessionContext> {
    let pool = PoolSnapshot::new(
        [
            (
                tempmx_store::Domain::parse("pool.test").expect("test domain"),
                DomainStatus::Active,
            ),
            (
                tempmx_store::Domain::parse("old.test").expect("test domain"),
                DomainStatus::Retired,
            ),
        ],
        RecipientMode::CatchAll,
    );
    Arc::new(SessionContext {
        hostname: "mx.tempmx.test".into(),
        limits,
        tls_available,
        policy: Arc::new(Policy::new(pool, None)),
        auth_mode: AuthMode::Off,
        greylist: None,
    })
}

impl T {
    fn with(limits: SessionLimits, tls_available: bool) -> Self {
        let peer = PeerInfo {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 40000,
            session_id: 0xabc,
        };
        let session = Session::new(context(limits, tls_available), peer);
        let idle = Duration::from_secs(300);
        let mut t = Self {
            p: Pump::new(session, Instant::now(), idle, idle),
            now: UNIX_EPOCH + Duration::from_secs(1_795_433_678),
            log: Transcript::default(),
            next_id: 1,
            fail_next: None,
        };
        let mut io = Recorder {
            log: &mut t.log,
            next_id: &mut t.next_id,
            fail: None,
        };
        t.p.greet(&mut io, Instant::now());
        assert_eq!(t.log.replies, b"220 mx.tempmx.test ESMTP tempmx\r\n");
        t.log.replies.clear();
        t
    }

    fn new() -> Self {
        Self::with(limits(), true)
    }

    /// The session, for tests of its own API.
    fn s(&mut self) -> &mut Session {
        self.p.session_mut()
    }

    /// Feeds bytes through the connection layer, as the drivers do, and returns the replies
    /// they produced; a STARTTLS "handshake" succeeds at once.
    fn send(&mut self, input: &[u8]) -> String {
        let start = self.log.replies.len();
        let tls_starts = self.log.tls_starts;
        let mut io = Recorder {
            log: &mut self.log,
            next_id: &mut self.next_id,
            fail: self.fail_next,
        };
        let n = self.p.feed(&mut io, input, self.now, Instant::now());
        // Every hand-off is answered at once, so nothing is left over.
        assert_eq!(n, input.len());
        if self.log.tls_starts > tls_starts {
            self.p.tls_started(
                TlsSummary {
                    version: "TLSv1.3".into(),
                    cipher: "TLS13_AES_256_GCM_SHA384".into(),
                },
                Instant::now(),
            );
        }
        String::from_utf8_lossy(&self.log.replies[start..]).into_owned()
    }

    /// Sends one line and checks the reply starts with `expect`.
    fn cmd(&mut self, line: &str, expect: &str) -> String {
        let r = self.send(format!("{line}\r\n").as_bytes());
        assert!(
            r.starts_with(expect),
            "{line:?}: expected {expect:?}, got {r:?}"
        );
        r
    }

    fn ehlo(&mut self, name: &str) -> String {
        self.cmd(&format!("EHLO {name}"), "250-mx.tempmx.test\r\n")
    }

    fn mail_from(&mut self, addr: &str, expect: &str) {
        self.cmd(&format!("MAIL FROM:<{addr}>"), expect);
    }

    fn rcpt_to(&mut self, addr: &str, expect: &str) {
        self.cmd(&format!("RCPT TO:<{addr}>"), expect);
    }

    /// A full transaction up to the 354.
    fn start_data(&mut self) {
        self.mail_from("s@sender.example", "250 2.1.0");
        self.rcpt_to("u@pool.test", "250 2.1.5");
        self.cmd("DATA", "354 ");
    }
}

// Goal: EHLO advertises the extensions, STARTTLS only while TLS is available and off.
#[test]
fn ehlo_advertises_extensions() {
    let mut t = T::new();
    let r = t.ehlo("client.example");
    assert_eq!(
        r,
        "250-mx.tempmx.test\r\n250-PIPELINING\r\n250-SIZE 4096\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 STARTTLS\r\n"
    );
    let mut t = T::with(limits(), false);
    assert!(t.ehlo("c").ends_with("250 CHUNKING\r\n"));
    t.cmd("HELO c", "250 mx.tempmx.test\r\n");
}

// Goal: simple commands and their codes, including refusals of unknown/unimplemented ones.
#[test]
fn simple_commands() {
    let mut t = T::new();
    for (line, expect) in [
        ("NOOP", "250 2.0.0"),
        ("HELP", "214 2.0.0"),
        ("VRFY root", "252 2.5.0"),
        ("RSET", "250 2.0.0"),
        ("FOO bar", "500 5.5.2"),
        ("AUTH PLAIN", "502 5.5.1"),
        ("EXPN staff", "502 5.5.1"),
        ("EHLO", "501 5.5.4"),
    ] {
        t.cmd(line, expect);
    }
    t.cmd("QUIT", "221 2.0.0");
    assert!(t.log.closed && t.s().is_closed());
}

// Goal: every out-of-order command gets 503 5.5.1.
#[test]
fn sequence_errors() {
    let mut t = T::with(
        SessionLimits {
            errors_max: 100,
            ..limits()
        },
        true,
    );
    t.mail_from("a@b.example", "503 5.5.1");
    t.rcpt_to("u@pool.test", "503 5.5.1");
    t.cmd("DATA", "503 5.5.1");
    t.cmd("STARTTLS", "503 5.5.1");
    t.ehlo("c");
    t.rcpt_to("u@pool.test", "503 5.5.1");
    t.cmd("DATA", "503 5.5.1");
    t.mail_from("a@b.example", "250 2.1.0");
    t.mail_from("a@b.example", "503 5.5.1");
    t.cmd("DATA", "503 5.5.1");
    t.cmd("STARTTLS", "503 5.5.1");
    t.rcpt_to("u@pool.test", "250 2.1.5");
    assert_eq!(
        t.send(b"BDAT 6\r\nQUIT\r\n"),
        "250 2.0.0 Chunk received, octets: 6\r\n"
    );
    t.cmd("DATA", "503 5.5.1");
    t.rcpt_to("v@pool.test", "503 5.5.1");
}

// Goal: MAIL parameters: SIZE at and over the limit, BODY, SMTPUTF8, unknown ones.
#[test]
fn mail_parameters() {
    let mut t = T::new();
    t.ehlo("c");
    t.cmd("MAIL FROM:<a@b.example> SIZE=4097", "552 5.3.4");
    t.cmd(
        "MAIL FROM:<a@b.example> SIZE=99999999999999999999",
        "552 5.3.4",
    );
    t.cmd("MAIL FROM:<a@b.example> RET=HDRS", "555 5.5.4");
    t.cmd("MAIL FROM:<jö@b.example>", "553 5.6.7");
    t.cmd(
        "MAIL FROM:<a@b.example> SIZE=4096 BODY=8BITMIME",
        "250 2.1.0",
    );
    t.cmd("RCPT TO:<jö@pool.test>", "553 5.6.7");
    t.cmd("RSET", "250");
    t.cmd("MAIL FROM:<jö@b.example> SMTPUTF8", "250 2.1.0");
    t.cmd("RCPT TO:<jö@pool.test>", "250 2.1.5");
    t.cmd("DATA", "354");
    t.send(b"Subject: x\r\n\r\nhi\r\n.\r\n");
    let m = &t.log.stored[0];
    assert_eq!(m.from, "jö@b.example");
    assert_eq!(m.rcpts, ["jö@pool.test"]);
    assert!(m.trace.contains("with UTF8SMTP\r\n"), "{}", m.trace);
}

// Goal: recipient policy as seen through the session, and normalisation + dedup.
#[test]
fn recipients() {
    let mut t = T::with(
        SessionLimits {
            errors_max: 100,
            ..limits()
        },
        true,
    );
    t.ehlo("c");
    t.mail_from("", "250 2.1.0");
    t.rcpt_to("u@evil.example", "550 5.7.1");
    t.rcpt_to("u@pool.test.evil.example", "550 5.7.1");
    t.rcpt_to("u%evil.example@pool.test", "550 5.7.1");
    t.rcpt_to("@pool.test:u@evil.example", "550 5.7.1");
    t.rcpt_to("u@[127.0.0.1]", "550 5.7.1");
    t.rcpt_to("u@pool.test.", "501 5.5.4");
    t.rcpt_to("u@old.test", "550 5.1.2");
    t.rcpt_to("postmaster", "550 5.1.1");
    t.rcpt_to("U@POOL.test", "250 2.1.5");
    t.rcpt_to("U@pool.TEST", "250 2.1.5");
    t.cmd("RCPT TO:<u@pool.test> NOTIFY=NEVER", "555 5.5.4");
    t.cmd("DATA", "354");
    t.send(b"x\r\n.\r\n");
    // Both spellings are one mailbox, stored folded.
    assert_eq!(t.log.stored[0].rcpts, ["u@pool.test"]);
    assert_eq!(t.log.stored[0].from, "");
    assert_eq!(t.s().counters().rejected_relay, 5);
}

// Goal: a message end to end: 354, dot-unstuffing, Received header, 250 with the id.
#[test]
fn data_delivery() {
    let mut t = T::new();
    t.ehlo("client.example");
    t.start_data();
    let r = t.send(b"Subject: hi\r\n\r\n..leading dot\r\n.\r\n");
    assert_eq!(r, "250 2.0.0 OK, stored as 0000000000000001\r\n");
    let m = &t.log.stored[0];
    assert_eq!(m.body, b"Subject: hi\r\n\r\n.leading dot\r\n");
    assert_eq!(
        m.trace,
        "Received: from client.example (unknown [127.0.0.1])\r\n\tby mx.tempmx.test (tempmx) with ESMTP\r\n\
         \tid abc.1\r\n\tfor <u@pool.test>;\r\n\tMon, 23 Nov 2026 11:34:38 +0000\r\n"
    );
    assert!(m.trace.lines().all(|l| l.len() <= 78));
    // Second message, two recipients: no "for" clause; HELO gives "with SMTP".
    t.cmd("HELO client.example", "250 ");
    t.mail_from("s@x.example", "250");
    t.rcpt_to("a@pool.test", "250");
    t.rcpt_to("b@pool.test", "250");
    t.cmd("DATA", "354");
    t.send(b".\r\n");
    let m = &t.log.stored[1];
    assert!(
        m.trace.contains("with SMTP\r\n\tid abc.2;\r\n"),
        "{}",
        m.trace
    );
    assert!(m.body.is_empty());
    assert_eq!(t.s().counters().messages_accepted, 2);
}

// Goal: the store's failures map to 451/552 and the session stays usable.
#[test]
fn delivery_failures() {
    for (failure, expect) in [
        (DeliveryFailure::Temporary, "451 4.3.0"),
        (DeliveryFailure::TooLarge, "552 5.3.4"),
    ] {
        let mut t = T::new();
        t.ehlo("c");
        t.start_data();
        t.fail_next = Some(failure);
        assert!(t.send(b"x\r\n.\r\n").starts_with(expect));
        t.fail_next = None;
        t.start_data();
        assert!(t.send(b"x\r\n.\r\n").starts_with("250 2.0.0"));
    }
}

/// Every fake terminator from the SMTP smuggling research, each followed by a smuggled
/// transaction; none may be delivered or answered.
const FAKE_TERMINATORS: [&[u8]; 8] = [
    b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\n.\r", b"\r.\n",
];

// Goal: SMTP smuggling defence: for each fake terminator, the message is refused with
// 550 5.6.0 after the real terminator, nothing after the fake one runs as a command, and the
// session then accepts a clean message.
#[test]
fn smuggling_variants() {
    for fake in FAKE_TERMINATORS {
        let mut t = T::new();
        t.ehlo("c");
        t.start_data();
        let mut msg = b"Subject: one\r\n\r\nbody".to_vec();
        msg.extend_from_slice(fake);
        msg.extend_from_slice(
            b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@pool.test>\r\nDATA\r\nsmuggled\r\n",
        );
        msg.extend_from_slice(b".\r\n");
        let r = t.send(&msg);
        assert_eq!(
            r, "550 5.6.0 Bare CR or LF not allowed in message\r\n",
            "{fake:?}"
        );
        assert!(t.log.stored.is_empty(), "{fake:?}");
        t.start_data();
        assert!(
            t.send(b"clean\r\n.\r\n").starts_with("250 2.0.0"),
            "{fake:?}"
        );
        assert_eq!(t.log.stored.len(), 1);
        assert_eq!(t.s().counters().rejected_smuggling, 1);
    }
}

// Goal: a command line ended by a bare LF is answered 500 at once (a person typing into nc
// sees why) and never runs; a bare CR refuses the whole line up to its end; what follows the
// bare line ending is the next line.
#[test]
fn bare_line_endings_in_commands() {
    let mut t = T::new();
    t.ehlo("c");
    assert_eq!(
        t.send(b"MAIL FROM:<a@b.example>\n"),
        "500 5.5.2 Bare CR or LF not allowed in commands\r\n"
    );
    t.rcpt_to("u@pool.test", "503");
    let r = t.send(b"MAIL FROM:<a@b.example>\nNOOP\r\n");
    assert!(
        r.starts_with("500 5.5.2 Bare CR or LF not allowed in commands\r\n250 2.0.0"),
        "{r:?}"
    );
    assert_eq!(
        t.send(b"NOOP\rQUIT\r\n"),
        "500 5.5.2 Bare CR or LF not allowed in commands\r\n"
    );
    assert_eq!(
        t.send(b"MAIL FROM:<a@b.example>\r\r\n"),
        "500 5.5.2 Bare CR or LF not allowed in commands\r\n"
    );
    assert!(!t.log.closed);
    t.cmd("NOOP", "250 2.0.0");
}

// Goal: command line limit: exactly the maximum works, one more byte is 500 5.5.6 and the line
// is dropped, not buffered; the next command works.
#[test]
fn command_line_limit() {
    let mut t = T::new();
    let at_max = format!("NOOP {}", "x".repeat(512 - 7));
    assert_eq!(at_max.len() + 2, 512);
    t.cmd(&at_max, "250 2.0.0");
    t.cmd(&format!("{at_max}x"), "500 5.5.6");
    // A huge line fed in pieces: the buffer stays at the limit.
    for _ in 0..100 {
        assert_eq!(t.send(&[b'y'; 1000]), "");
    }
    assert_eq!(t.send(b"\r\n"), "500 5.5.6 Line too long\r\n");
    assert!(t.s().lines.capacity() <= 512);
    t.cmd("NOOP", "250 2.0.0");
}

// Goal: text line limit in DATA: at the limit accepted, one more refused after the terminator.
#[test]
fn text_line_limit() {
    let mut t = T::new();
    t.ehlo("c");
    t.start_data();
    let line = "a".repeat(998);
    assert!(
        t.send(format!("{line}\r\n.\r\n").as_bytes())
            .starts_with("250 2.0.0")
    );
    t.start_data();
    // A stuffed dot does not count towards the limit.
    assert!(
        t.send(format!(".{line}\r\n.\r\n").as_bytes())
            .starts_with("250 2.0.0")
    );
    t.start_data();
    assert_eq!(
        t.send(format!("{line}a\r\n.\r\n").as_bytes()),
        "550 5.6.0 Message line too long\r\n"
    );
    assert_eq!(t.log.stored.len(), 2);
}

// Goal: message size limit: exactly message_bytes_max accepted; one more byte is drained and
// answered 552 5.3.4 after the terminator; the buffer never exceeds the limit; session usable.
#[test]
fn message_size_limit() {
    let mut t = T::with(
        SessionLimits {
            messages_per_connection_max: 10,
            ..limits()
        },
        true,
    );
    t.ehlo("c");
    let body_at_max: Vec<u8> = b"0123456789abcd\r\n".repeat(4096 / 16);
    assert_eq!(body_at_max.len(), 4096);
    t.start_data();
    let mut msg = body_at_max.clone();
    msg.extend_from_slice(b".\r\n");
    assert!(t.send(&msg).starts_with("250 2.0.0"));
    assert_eq!(t.log.stored[0].body, body_at_max);
    t.start_data();
    let mut over = b"x".to_vec();
    over.extend_from_slice(&msg);
    assert_eq!(
        t.send(&over),
        "552 5.3.4 Message size exceeds fixed maximum\r\n"
    );
    t.start_data();
    for _ in 0..64 {
        assert_eq!(t.send(&body_at_max), "");
    }
    assert!(t.send(b".\r\n").starts_with("552 5.3.4"));
    assert!(t.s().txn.body.capacity() <= 4096);
    t.start_data();
    assert!(t.send(b"small\r\n.\r\n").starts_with("250 2.0.0"));
    assert_eq!(t.s().counters().rejected_size, 2);
}

// Goal: recipients_max: the next new recipient gets 452 4.5.3 (not counted as an error); a
// duplicate still gets 250; the message goes to the accepted ones.
#[test]
fn recipient_limit() {
    let mut t = T::with(
        SessionLimits {
            errors_max: 0,
            ..limits()
        },
        true,
    );
    t.ehlo("c");
    t.mail_from("s@x.example", "250");
    for r in ["a@pool.test", "b@pool.test", "c@pool.test"] {
        t.rcpt_to(r, "250 2.1.5");
    }
    t.rcpt_to("d@pool.test", "452 4.5.3");
    t.rcpt_to("e@pool.test", "452 4.5.3");
    // Another spelling of a recipient already taken is the same mailbox: no new slot.
    t.rcpt_to("A@pool.test", "250 2.1.5");
    t.rcpt_to("a@pool.test", "250 2.1.5");
    t.cmd("DATA", "354");
    t.send(b"x\r\n.\r\n");
    assert_eq!(
        t.log.stored[0].rcpts,
        ["a@pool.test", "b@pool.test", "c@pool.test"]
    );
    assert!(!t.log.closed);
}

// Goal: errors_max: the error that exceeds it is answered 421 4.7.0 and the session closes;
// input after that is ignored.
#[test]
fn error_limit() {
    let mut t = T::new();
    for _ in 0..5 {
        t.cmd("BOGUS", "500 5.5.2");
    }
    assert_eq!(
        t.send(b"BOGUS\r\nNOOP\r\n"),
        "421 4.7.0 Too many errors, closing connection\r\n"
    );
    assert!(t.log.closed && t.s().is_closed());
    let mut out = Output::default();
    let now = t.now;
    assert_eq!(t.s().ingest(b"NOOP\r\n", now, &mut out), 6);
    assert!(out.replies.is_empty() && out.effect.is_none());
}

// Goal: messages_per_connection_max: the MAIL after the last allowed message gets 421 4.7.0
// and the session closes. Refused messages count too.
#[test]
fn message_count_limit() {
    let mut t = T::new();
    t.ehlo("c");
    t.start_data();
    assert!(t.send(b"a\nb\r\n.\r\n").starts_with("550 5.6.0"));
    for _ in 0..2 {
        t.start_data();
        t.send(b"x\r\n.\r\n");
    }
    t.mail_from("s@x.example", "421 4.7.0");
    assert!(t.log.closed);
    assert_eq!(t.log.stored.len(), 2);
}

// Goal: the Received header names an IPv6 client by its RFC 5321 IPv6 literal and an
// IPv4 client that a dual-stack listener reports as mapped by its IPv4 literal.
#[test]
fn received_address_literals() {
    let v6 = IpAddr::V6("2001:db8::7".parse().expect("an IPv6 address"));
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    for (ip, literal) in [(v6, "[IPv6:2001:db8::7]"), (mapped, "[192.0.2.1]")] {
        let mut t = T::new();
        t.s().peer.ip = ip;
        t.ehlo("c.example");
        t.start_data();
        t.send(b".\r\n");
        let trace = &t.log.stored[0].trace;
        let first = format!("Received: from c.example (unknown {literal})\r\n\tby ");
        assert!(trace.starts_with(&first), "{trace}");
    }
}

// Goal: early talkers are refused 554 5.5.0 and closed.
#[test]
fn early_talker() {
    let peer = PeerInfo {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 1,
        session_id: 1,
    };
    let mut s = Session::new(context(limits(), true), peer);
    let mut out = Output::default();
    assert_eq!(s.ingest(b"EHLO x\r\n", UNIX_EPOCH, &mut out), 8);
    assert_eq!(
        out.replies,
        b"554 5.5.0 Protocol error: talking before the greeting\r\n"
    );
    assert_eq!(out.effect, Some(Effect::Close));
    assert!(s.is_closed());
}

// Goal: STARTTLS: 220 + StartTls effect, consumed exactly through the line, pipelined
// plaintext dropped, state forgotten (EHLO needed), no second STARTTLS, ESMTPS in Received.
#[test]
fn starttls() {
    let mut t = T::new();
    t.ehlo("c");
    let mut out = Output::default();
    let input = b"STARTTLS\r\nMAIL FROM:<injected@x.example>\r\n";
    let now = t.now;
    assert_eq!(t.s().ingest(input, now, &mut out), 10);
    assert_eq!(out.replies, b"220 2.0.0 Ready to start TLS\r\n");
    assert_eq!(out.effect, Some(Effect::StartTls));
    // Even if a driver re-fed the plaintext, the session drops it until TLS is up.
    let mut out = Output::default();
    assert_eq!(t.s().ingest(&input[10..], now, &mut out), input.len() - 10);
    assert!(out.replies.is_empty());
    t.s().tls_started(TlsSummary {
        version: "TLSv1.3".into(),
        cipher: "TLS13_AES_128_GCM_SHA256".into(),
    });
    t.mail_from("s@x.example", "503 5.5.1");
    assert!(t.ehlo("c").ends_with("250 CHUNKING\r\n"));
    t.cmd("STARTTLS", "503 5.5.1");
    t.start_data();
    t.send(b"x\r\n.\r\n");
    let trace = &t.log.stored[0].trace;
    assert!(
        trace.contains("with ESMTPS\r\n\t(using TLSv1.3 with cipher TLS13_AES_128_GCM_SHA256)\r\n"),
        "{trace}"
    );

    let mut t = T::with(limits(), false);
    t.ehlo("c");
    t.cmd("STARTTLS", "502 5.5.1");
}

// Goal: the harness's own STARTTLS path drops pipelined plaintext (as the driver must).
#[test]
fn starttls_pipelined_injection() {
    let mut t = T::new();
    t.ehlo("c");
    let r = t.send(b"STARTTLS\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@pool.test>\r\n");
    assert_eq!(r, "220 2.0.0 Ready to start TLS\r\n");
    assert_eq!(t.log.tls_starts, 1);
    t.mail_from("a@b.example", "503 5.5.1");
}

// Goal: timeouts and shutdown answer 421 with their enhanced codes and close.
#[test]
fn timeouts_and_shutdown() {
    for which in [Timeout::Idle, Timeout::SessionDuration, Timeout::Record] {
        let mut t = T::new();
        let mut out = Output::default();
        t.s().timed_out(which, &mut out);
        assert_eq!(out.replies, b"421 4.4.2 Timeout, closing connection\r\n");
        assert_eq!(out.effect, Some(Effect::Close));
        assert!(t.s().is_closed());
    }
    let mut t = T::new();
    let mut out = Output::default();
    t.s().shutting_down(&mut out);
    assert!(out.replies.starts_with(b"421 4.3.2 "));
    assert_eq!(out.effect, Some(Effect::Close));
}

// Goal: BDAT counts bytes exactly (no dot-stuffing, CRLF.CRLF inside is data), LAST ends
// the message, BDAT 0 LAST works, DATA afterwards is 503.
#[test]
fn bdat_chunks() {
    let mut t = T::new();
    t.ehlo("c");
    t.mail_from("s@x.example", "250");
    t.rcpt_to("u@pool.test", "250");
    let r = t.send(b"BDAT 9\r\nab\r\n.\r\ncdBDAT 2 LAST\r\nef");
    assert_eq!(
        r,
        "250 2.0.0 Chunk received, octets: 9\r\n250 2.0.0 OK, stored as 0000000000000001\r\n"
    );
    assert_eq!(t.log.stored[0].body, b"ab\r\n.\r\ncdef");
    t.mail_from("s@x.example", "250");
    t.rcpt_to("u@pool.test", "250");
    t.cmd("BDAT 0 LAST", "250 2.0.0 OK");
    assert!(t.log.stored[1].body.is_empty());
    t.mail_from("s@x.example", "250");
    t.rcpt_to("u@pool.test", "250");
    t.send(b"BDAT 1\r\nx");
    t.cmd("DATA", "503 5.5.1");
}

// Goal: a BDAT in the wrong state still has its chunk consumed (never run as commands) and is
// answered 503 after the chunk.
#[test]
fn bdat_out_of_sequence_drains_chunk() {
    let mut t = T::new();
    t.ehlo("c");
    let r = t.send(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(r, "503 5.5.1 Send MAIL first\r\n250 2.0.0 OK\r\n");
    assert!(!t.log.closed);
}

// Goal: BDAT size limit: chunks over the limit are drained; 552 5.3.4 after LAST.
#[test]
fn bdat_size_limit() {
    let mut t = T::new();
    t.ehlo("c");
    t.mail_from("s@x.example", "250");
    t.rcpt_to("u@pool.test", "250");
    let mut input = b"BDAT 4096\r\n".to_vec();
    input.extend_from_slice(&[b'a'; 4096]);
    input.extend_from_slice(b"BDAT 1 LAST\r\nb");
    let r = t.send(&input);
    assert_eq!(
        r,
        "250 2.0.0 Chunk received, octets: 4096\r\n552 5.3.4 Message size exceeds fixed maximum\r\n"
    );
    assert!(t.s().txn.body.capacity() <= 4096);
    t.mail_from("s@x.example", "250");
    t.rcpt_to("u@pool.test", "250");
    input.truncate(input.len() - 14);
    input.extend_from_slice(b"BDAT 0 LAST\r\n");
    assert!(
        t.send(&input)
            .ends_with("250 2.0.0 OK, stored as 0000000000000001\r\n")
    );
}

// Goal: an ended session hands its buffers on emptied, none over SPARE_BYTES_MAX: one that
// grew past it is freed, not kept. Method: a session stores a message twice SPARE_BYTES_MAX
// long (its body buffer grows past the bound), leaves half a command line, and ends with
// into_spare; the line and trace buffers come back allocated and empty, the body buffer
// unallocated.
#[test]
fn into_spare_empties_the_buffers_and_frees_oversized_ones() {
    let limits = SessionLimits {
        message_bytes_max: 4 * SPARE_BYTES_MAX,
        ..limits()
    };
    let mut t = T::with(limits, true);
    t.ehlo("c");
    t.start_data();
    let mut msg = b"0123456789abcd\r\n".repeat(2 * SPARE_BYTES_MAX / 16);
    msg.extend_from_slice(b".\r\n");
    assert!(t.send(&msg).starts_with("250 2.0.0"));
    assert!(t.s().txn.body.capacity() > SPARE_BYTES_MAX);
    assert_eq!(t.send(b"RCPT TO:<left@pool.te"), "");
    let spare = t.p.into_session().into_spare();
    assert!(spare.line.is_empty() && spare.line.capacity() > 0);
    assert!(spare.trace.is_empty() && spare.trace.capacity() > 0);
    assert_eq!(
        spare.body.capacity(),
        0,
        "the oversized body buffer was freed"
    );
}

/// A script exercising every stage, smuggling bytes and limits.
fn script() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"EHLO client.example\r\nNOOP\nX\r\nMAIL FROM:<a@b.example> SIZE=10\r\n");
    s.extend_from_slice(b"RCPT TO:<u@pool.test>\r\nRCPT TO:<v@evil.example>\r\nDATA\r\n");
    s.extend_from_slice(b"Subject: s\r\n\r\n..dot\r\nline\n.\nMAIL FROM:<x@y.example>\r\n.\r\n");
    s.extend_from_slice(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<U@POOL.TEST>\r\nDATA\r\nok\r\n.\r\n");
    s.extend_from_slice(
        b"MAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<w@pool.test>\r\nBDAT 5\r\n1\r\n.\rBDAT 0 LAST\r\n",
    );
    s.extend_from_slice(
        format!(
            "{}\r\nRSET\r\nVRFY x\r\nSTARTTLS\r\nEHLO again\r\nQUIT\r\n",
            "z".repeat(600)
        )
        .as_bytes(),
    );
    s
}

/// The reads `len` bytes arrive in when cut at `cuts` (offsets taken modulo `len + 1`, in
/// any order): consecutive ranges covering `0..len`, the last one ending at `len`.
pub(super) fn reads(len: usize, cuts: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    points.sort_unstable();
    let mut prev = 0;
    points
        .into_iter()
        .chain([len])
        .map(|p| std::mem::replace(&mut prev, p)..p)
        .collect()
}

fn run_split(input: &[u8], cuts: &[usize]) -> Transcript {
    let mut t = T::new();
    for r in reads(input.len(), cuts) {
        // Everything sent after STARTTLS was pipelined plaintext, which the driver discards
        // whichever read it arrives in.
        if t.log.tls_starts > 0 {
            break;
        }
        t.send(&input[r]);
    }
    t.log
}

// Goal: pipelined input gives the same replies as line-by-line and byte-by-byte input.
#[test]
fn pipelining_equals_line_by_line() {
    let input = script();
    let whole = run_split(&input, &[]);
    let by_byte = run_split(&input, &(0..input.len()).collect::<Vec<_>>());
    let lines: Vec<usize> = input
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    let by_line = run_split(&input, &lines);
    assert_eq!(whole, by_byte);
    assert_eq!(whole, by_line);
    assert_eq!(whole.stored.len(), 2);
    assert_eq!(whole.tls_starts, 1);
    let text = String::from_utf8_lossy(&whole.replies);
    let codes: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("250-"))
        .map(|l| &l[..9])
        .collect();
    assert_eq!(
        codes,
        [
            "250 STARTTLS",
            "500 5.5.2",
            "500 5.5.2",
            "250 2.1.0",
            "250 2.1.5",
            "550 5.7.1",
            "354 End d",
            "550 5.6.0",
            "250 2.1.0",
            "250 2.1.5",
            "354 End d",
            "250 2.0.0",
            "250 2.1.0",
            "250 2.1.5",
            "250 2.0.0",
            "250 2.0.0",
            "500 5.5.6",
            "250 2.0.0",
            "252 2.5.0",
            "220 2.0.0"
        ]
        .map(|c| &c[..9])
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    // Goal: any split of the script gives the same transcript (the fuzz target's oracle).
    #[test]
    fn random_splits_same_outcome(cuts in proptest::collection::vec(0usize..10_000, 0..40)) {
        let input = script();
        prop_assert_eq!(run_split(&input, &cuts), run_split(&input, &[]));
    }

    // Goal: arbitrary bytes (biased to the SMTP alphabet) never panic and splits agree.
    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(
        prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b' '), Just(b':'), Just(b'<'), Just(b'>'),
                    Just(b'@'), b'A'..=b'Z', any::<u8>()], 0..600),
        verbs in proptest::collection::vec(0usize..12, 0..8),
        cuts in proptest::collection::vec(0usize..2000, 0..10)) {
        const VERBS: [&[u8]; 12] = [b"EHLO x\r\n", b"MAIL FROM:<a@b.c>\r\n", b"RCPT TO:<u@pool.test>\r\n",
            b"DATA\r\n", b"BDAT 3\r\n", b"BDAT 2 LAST\r\n", b"\r\n.\r\n", b"RSET\r\n", b"STARTTLS\r\n",
            b"QUIT\r\n", b"HELO y\r\n", b"NOOP\r\n"];
        let mut input = Vec::new();
        for (i, v) in verbs.iter().enumerate() {
            input.extend_from_slice(VERBS[*v]);
            let chunk = data.len() / verbs.len().max(1);
            input.extend_from_slice(&data[i * chunk..(i + 1) * chunk]);
        }
        input.extend_from_slice(&data);
        prop_assert_eq!(run_split(&input, &cuts), run_split(&input, &[]));
    }
}
