//! Connections on one core share nothing: the io_uring core hands an ended connection's
//! emptied buffers to the next one, and no byte or state of the old session may show.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tempmx_ingress::Backend;

use crate::on_both_backends;
use crate::support::{READ_TIMEOUT, Raw, Server};

on_both_backends!(next_connection_starts_fresh);

/// Waits (bounded) until the server counted `n` ended sessions, then a little longer so the
/// core has freed them (their buffers are reused from then on).
fn wait_ended(server: &Server, n: u64) {
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let c = server.handle().counters();
        if c.sessions_closed + c.sessions_aborted >= n {
            break;
        }
        assert!(Instant::now() < deadline, "sessions did not end: {c:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
}

// Goal: a client that follows one that left mid-transaction, and one that left mid-command,
// on the same core gets a fresh session: no transaction, no partial line, no HELO, body or
// address of theirs. Method: one core; client 1 (127.0.0.2) sends EHLO, MAIL, RCPT, DATA
// and half a text line and drops the connection; client 2 (127.0.0.3) sends half a command
// line and drops it; client 3 (127.0.0.4) then gets 250 for a whole EHLO (no leftover line
// in front of it), 503 for RCPT and DATA before MAIL (no transaction carried over), and 250
// for a message of its own (`send_mail`: EHLO client.test, then the transaction), which is
// stored with only its own HELO, address, envelope and body, and a trace header naming only
// it.
fn next_connection_starts_fresh(backend: Backend) {
    let server = Server::start(backend, |c| c.cores = 1);
    let from = |last: u8| IpAddr::from([127, 0, 0, last]);

    let mut first = Raw::connect_from(server.addr, from(2));
    first.cmd("EHLO first.test", "250");
    first.cmd("MAIL FROM:<first@example.test>", "250");
    first.cmd("RCPT TO:<one@tempmx.test>", "250");
    first.cmd("DATA", "354");
    first.send(b"Subject: first\r\n\r\nsecret of the first client, cut off mid-li");
    drop(first);
    wait_ended(&server, 1);

    let mut second = Raw::connect_from(server.addr, from(3));
    second.send(b"RCPT TO:<leak@tempmx.te");
    drop(second);
    wait_ended(&server, 2);

    let mut third = Raw::connect_from(server.addr, from(4));
    third.cmd("EHLO third.test", "250");
    third.cmd("RCPT TO:<a@tempmx.test>", "503");
    third.cmd("DATA", "503");
    third.send_mail(
        "a@tempmx.test",
        "Subject: third\r\n\r\nbody of the third client\r\n",
    );
    third.cmd("QUIT", "221");

    let stored = server.shelf.wait_for(1);
    assert_eq!(stored.len(), 1, "only the third client's message is stored");
    let m = &stored[0];
    assert_eq!(m.client_ip, from(4));
    assert_eq!(m.helo, "client.test");
    assert_eq!(m.mail_from, "sender@example.test");
    assert_eq!(m.recipients, ["a@tempmx.test"]);
    let body = String::from_utf8_lossy(&m.body);
    assert!(body.contains("body of the third client"), "body: {body:?}");
    for leak in ["secret", "first", "leak"] {
        assert!(!body.contains(leak), "{leak:?} in the body: {body:?}");
    }
    let trace = String::from_utf8_lossy(&m.trace_headers);
    assert!(
        trace.contains("client.test") && trace.contains("127.0.0.4"),
        "trace: {trace:?}"
    );
    for leak in ["first.test", "127.0.0.2", "127.0.0.3", "one@tempmx.test"] {
        assert!(!trace.contains(leak), "{leak:?} in the trace: {trace:?}");
    }
}
