//! A connection waiting for a hand-off (a sender check on a resolver that never answers, a
//! store commit that never completes) is cut off by its own deadline, the idle timeout: the
//! client gets 421 4.4.2 and the connection closes, on both backends.

use std::time::{Duration, Instant};

use tempmx_ingress::Backend;
use tempmx_ingress::auth::AuthMode;

use crate::on_both_backends;
use crate::support::{Raw, Server, SinkMode, config};
use crate::support_dns::{Rr, TestDns, Zone};

/// The idle timeout of these tests, and so the hand-off deadline.
const IDLE_MS: u64 = 500;
/// Far beyond the test: the resolver's and the authenticator's own bounds (the largest
/// `check_duration_max_ms` allowed), so only the connection's deadline can end the wait.
const CHECK_MS: u64 = 60_000;

on_both_backends!(silent_resolver_check_cut_off, hung_store_commit_cut_off);

/// Sends `line`, expects 421 4.4.2 and EOF; returns how long the reply took.
fn expect_cut_off(raw: &mut Raw, line: &str) -> Duration {
    let started = Instant::now();
    raw.send(format!("{line}\r\n").as_bytes());
    raw.expect("421 4.4.2");
    let took = started.elapsed();
    raw.expect_eof();
    took
}

/// The window the cut-off must come in: not before the idle timeout (the wait really was
/// cut by it), within twice of it plus slack for a loaded VM.
fn assert_in_window(took: Duration) {
    assert!(
        took >= Duration::from_millis(IDLE_MS * 9 / 10),
        "cut off after {took:?}"
    );
    assert!(
        took <= Duration::from_millis(2 * IDLE_MS) + Duration::from_millis(700),
        "cut off after {took:?}"
    );
}

// Goal: a MAIL FROM whose SPF check hangs (the resolver reads queries and never answers; the
// DNS timeout and the check deadline are a minute) is answered 421 4.4.2 within about the
// idle timeout and the connection closes. Method: enforce mode against a muted loopback DNS
// server, a raw client from 127.0.0.2; the server's query count shows the check was asked.
fn silent_resolver_check_cut_off(backend: Backend) {
    let dns = TestDns::start(Zone::new().with("sender.test", Rr::txt("v=spf1 -all")));
    dns.set_muted(true);
    let mut cfg = config(backend);
    cfg.limits.idle_timeout_ms = IDLE_MS;
    cfg.auth.mode = AuthMode::Enforce;
    cfg.auth.nameservers = vec![dns.addr()];
    cfg.auth.dns_timeout_ms = CHECK_MS;
    cfg.auth.dns_attempts = 1;
    cfg.auth.check_duration_max_ms = CHECK_MS;
    let server = Server::start_with(cfg, SinkMode::Done);
    let mut raw = Raw::connect_from(server.addr, "127.0.0.2".parse().expect("ip"));
    raw.cmd("EHLO client.test", "250");
    let took = expect_cut_off(&mut raw, "MAIL FROM:<a@sender.test>");
    assert_in_window(took);
    assert!(dns.queries() >= 1, "the check asked the resolver");
    let counters = server.handle().counters();
    assert_eq!(counters.sessions_timed_out, 1);
    assert_eq!(counters.rejected_spf, 0);
    // The core is not stuck: the next client is served.
    server.connect().cmd("NOOP", "250");
}

// Goal: a message whose store commit never completes is answered 421 4.4.2 (not 250) within
// about the idle timeout and the connection closes; nothing is counted as accepted. Method:
// a sink that appends the message and keeps its commit signal pending forever.
fn hung_store_commit_cut_off(backend: Backend) {
    let mut cfg = config(backend);
    cfg.limits.idle_timeout_ms = IDLE_MS;
    let server = Server::start_with(cfg, SinkMode::Hang);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("MAIL FROM:<s@example.test>", "250");
    raw.cmd("RCPT TO:<u@tempmx.test>", "250");
    raw.cmd("DATA", "354");
    raw.send(b"Subject: code\r\n\r\n123456\r\n");
    let took = expect_cut_off(&mut raw, ".");
    assert_in_window(took);
    assert_eq!(
        server.shelf.wait_for(1).len(),
        1,
        "the sink got the message"
    );
    let counters = server.handle().counters();
    assert_eq!(counters.sessions_timed_out, 1);
    assert_eq!(counters.messages_accepted, 0);
    server.connect().cmd("NOOP", "250");
}
