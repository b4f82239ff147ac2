//! Bad input over raw sockets: every case gets its defined reply and the server keeps serving.

use tempmx_ingress::Backend;

use crate::on_both_backends;
use crate::support::{Raw, Server};

on_both_backends!(
    early_talker_refused,
    long_command_line,
    bare_lf_smuggling,
    oversized_message_then_next_works,
    too_many_recipients,
    error_limit_closes,
    unknown_domain_refused,
    garbage_nul_and_non_utf8,
    garbage_tls_handshake,
    starttls_disabled,
);

// Goal: with a greet pause, a client that talks first gets 554 5.5.0 and is closed; a
// patient client gets the greeting after the pause.
fn early_talker_refused(backend: Backend) {
    let server = Server::start(backend, |c| c.greet_pause_ms = 300);
    let mut early = Raw::connect(server.addr);
    early.send(b"EHLO impatient.test\r\n");
    early.expect("554 5.5.0");
    early.expect_eof();
    let mut patient = Raw::connect(server.addr);
    patient.expect("220");
    patient.cmd("EHLO patient.test", "250");
}

// Goal: a command line over command_line_bytes_max is refused with 500 and the session
// continues with the next line.
fn long_command_line(backend: Backend) {
    let server = Server::start(backend, |_| {});
    let mut raw = server.connect();
    let long = format!("EHLO {}", "a".repeat(2_000));
    raw.cmd(&long, "500");
    raw.cmd("EHLO client.test", "250");
}

// Goal: SMTP smuggling attempts (a bare-LF end of data hiding a second transaction) never
// produce a second message; the session answers with an error code, not a 250 for each.
fn bare_lf_smuggling(backend: Backend) {
    let server = Server::start(backend, |_| {});
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("MAIL FROM:<s@example.test>", "250");
    raw.cmd("RCPT TO:<a@tempmx.test>", "250");
    raw.cmd("DATA", "354");
    raw.send(b"Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@example.test>\nRCPT TO:<b@tempmx.test>\nDATA\n\nsmuggled\r\n.\r\n");
    let verdict = raw.reply();
    assert!(
        verdict.starts_with('5'),
        "bare LF in data accepted: {verdict:?}"
    );
    raw.cmd("NOOP", "250");
    raw.cmd("QUIT", "221");
    assert!(server.shelf.all().is_empty(), "smuggled message stored");
    assert!(server.handle().counters().rejected_smuggling >= 1);
}

// Goal: a message over message_bytes_max gets 552 after its end, and the next transaction
// on the same session is accepted.
fn oversized_message_then_next_works(backend: Backend) {
    let server = Server::start(backend, |c| c.limits.message_bytes_max = 10_000);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("MAIL FROM:<s@example.test>", "250");
    raw.cmd("RCPT TO:<a@tempmx.test>", "250");
    raw.cmd("DATA", "354");
    let line = format!("{}\r\n", "x".repeat(98));
    for _ in 0..300 {
        raw.send(line.as_bytes());
    }
    raw.cmd(".", "552");
    raw.send_mail("a@tempmx.test", "Subject: small\r\n\r\nok\r\n");
    assert_eq!(server.shelf.wait_for(1).len(), 1);
}

// Goal: the recipient after recipients_max gets 452 4.5.3; the accepted ones still work.
fn too_many_recipients(backend: Backend) {
    let server = Server::start(backend, |c| c.limits.recipients_max = 3);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("MAIL FROM:<s@example.test>", "250");
    for i in 0..3 {
        raw.cmd(&format!("RCPT TO:<r{i}@tempmx.test>"), "250");
    }
    raw.cmd("RCPT TO:<r3@tempmx.test>", "452 4.5.3");
    raw.cmd("DATA", "354");
    raw.cmd("Subject: x\r\n\r\ny\r\n.", "250");
    assert_eq!(server.shelf.wait_for(1)[0].recipients.len(), 3);
}

// Goal: after errors_max protocol errors the session ends with 421 and the socket closes.
fn error_limit_closes(backend: Backend) {
    let server = Server::start(backend, |c| c.limits.errors_max = 3);
    let mut raw = server.connect();
    let mut last = String::new();
    for _ in 0..3 {
        raw.send(b"BOGUS\r\n");
        last = raw.reply();
        if last.starts_with("421") {
            break;
        }
        assert!(last.starts_with('5'), "bogus command: {last:?}");
    }
    if !last.starts_with("421") {
        raw.send(b"BOGUS\r\n");
        raw.expect("421");
    }
    raw.expect_eof();
}

// Goal: a recipient outside the pool is refused as relaying with 550 5.7.1.
fn unknown_domain_refused(backend: Backend) {
    let server = Server::start(backend, |_| {});
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("MAIL FROM:<s@example.test>", "250");
    raw.cmd("RCPT TO:<someone@not-ours.test>", "550 5.7.1");
    assert_eq!(server.handle().counters().rejected_relay, 1);
}

// Goal: NUL bytes, non-UTF-8 and random garbage get error replies (or a close), never a
// crash: a fresh connection afterwards is served and delivers.
fn garbage_nul_and_non_utf8(backend: Backend) {
    let server = Server::start(backend, |_| {});
    let mut raw = server.connect();
    raw.send(b"\0\0\0EHLO\0x\r\n");
    assert!(raw.reply().starts_with('5'));
    raw.send(b"\xff\xfe\xfd\xc3\x28 garbage\r\n");
    assert!(raw.reply().starts_with('5'));
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    raw.send(&noise);
    drop(raw);
    let mut fresh = server.connect();
    fresh.send_mail("after@tempmx.test", "Subject: still alive\r\n\r\nyes\r\n");
    assert_eq!(server.shelf.wait_for(1).len(), 1);
}

// Goal: a client that answers 220 Ready with garbage instead of a ClientHello fails the
// handshake: the connection closes, the failure is counted, and the server keeps serving.
fn garbage_tls_handshake(backend: Backend) {
    let server = Server::start(backend, |_| {});
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("STARTTLS", "220");
    raw.send(b"this is not a TLS ClientHello\r\n");
    raw.expect_eof();
    assert_eq!(server.handle().counters().tls_handshakes_failed, 1);
    server.connect().cmd("EHLO client.test", "250");
}

// Goal: with TLS disabled, STARTTLS is neither offered nor accepted.
fn starttls_disabled(backend: Backend) {
    let server = Server::start(backend, |c| c.tls.disabled = true);
    let mut raw = server.connect();
    let ehlo = raw.cmd("EHLO client.test", "250");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    let reply = raw.cmd("STARTTLS", "");
    assert!(reply.starts_with('4') || reply.starts_with('5'), "{reply}");
    raw.cmd("NOOP", "250");
}
