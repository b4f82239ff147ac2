//! Well-behaved clients: lettre plain and STARTTLS, a pipelining client, a rustls client.

use std::io::{Read, Write};
use std::sync::Arc;

use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use rustls::pki_types::{CertificateDer, ServerName};
use tempmx_ingress::Backend;

use crate::on_both_backends;
use crate::support::{DOMAIN, HOSTNAME, READ_TIMEOUT, Raw, Server, SinkMode, config, reply_end};

on_both_backends!(
    lettre_plain,
    lettre_starttls,
    pipelined_session,
    pipelining_client_that_reads_late,
    half_close_after_pipelined_quit,
    starttls_drops_pipelined_plaintext,
    tls_replies_past_the_tls_buffer,
    tls_close_notify_after_pipelined_mail,
    reload_swaps_the_certificate,
    group_commit_and_store_failure
);

fn message(to: &str) -> Message {
    let from: Mailbox = "Sender <sender@example.test>".parse().expect("from");
    let to: Mailbox = to.parse().expect("to");
    Message::builder()
        .from(from)
        .to(to)
        .subject("hello")
        .body(String::from("Hello from lettre.\r\n"))
        .expect("message")
}

fn transport(server: &Server, tls: Tls) -> SmtpTransport {
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.addr.port())
        .hello_name(ClientId::Domain("client.test".to_owned()))
        .timeout(Some(READ_TIMEOUT))
        .tls(tls)
        .build()
}

// Goal: a plain lettre delivery reaches the sink with our Received header and the peer data.
fn lettre_plain(backend: Backend) {
    let server = Server::start(backend, |_| {});
    let response = transport(&server, Tls::None)
        .send(&message("alice@tempmx.test"))
        .expect("send");
    assert_eq!(u16::from(response.code()), 250);
    let stored = server.shelf.wait_for(1);
    assert_eq!(stored.len(), 1);
    let msg = &stored[0];
    assert_eq!(msg.recipients, vec![format!("alice@{DOMAIN}")]);
    assert_eq!(msg.mail_from, "sender@example.test");
    assert_eq!(msg.helo, "client.test");
    assert!(msg.client_ip.is_loopback());
    assert!(msg.tls.is_none());
    let trace = String::from_utf8_lossy(&msg.trace_headers);
    assert!(trace.starts_with("Received:"), "trace headers: {trace}");
    assert!(trace.contains(HOSTNAME), "trace headers: {trace}");
    assert!(String::from_utf8_lossy(&msg.body).contains("Hello from lettre."));
    let counters = server.handle().counters();
    assert_eq!(counters.messages_accepted, 1);
    assert!(counters.connections_accepted >= 1);
    assert!(counters.bytes_in > 0 && counters.bytes_out > 0);
}

// Goal: lettre with STARTTLS required delivers over TLS 1.3 and the sink records the TLS data.
fn lettre_starttls(backend: Backend) {
    let server = Server::start(backend, |_| {});
    let params = TlsParameters::builder(HOSTNAME.to_owned())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .expect("tls params");
    let response = transport(&server, Tls::Required(params))
        .send(&message("bob@tempmx.test"))
        .expect("send");
    assert_eq!(u16::from(response.code()), 250);
    let stored = server.shelf.wait_for(1);
    let tls = stored[0].tls.clone().expect("tls summary on the message");
    assert_eq!(tls.version, "TLSv1.3");
    assert!(tls.cipher.starts_with("TLS13_"), "cipher {}", tls.cipher);
    assert!(String::from_utf8_lossy(&stored[0].trace_headers).starts_with("Received:"));
    assert_eq!(server.handle().counters().tls_handshakes_ok, 1);
}

// Goal: a client that pipelines the whole envelope and QUIT in two writes gets every reply,
// in order, and the message is stored once.
fn pipelined_session(backend: Backend) {
    let server = Server::start(backend, |_| {});
    let mut raw = server.connect();
    let ehlo = raw.cmd("EHLO client.test", "250");
    assert!(ehlo.contains("PIPELINING"), "EHLO reply: {ehlo}");
    raw.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<x@tempmx.test>\r\nRCPT TO:<y@tempmx.test>\r\nDATA\r\n");
    raw.expect("250");
    raw.expect("250");
    raw.expect("250");
    raw.expect("354");
    raw.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    raw.expect("250");
    raw.expect("221");
    raw.expect_eof();
    let stored = server.shelf.wait_for(1);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].recipients.len(), 2);
}

// Goal: a client that pipelines 20,000 commands before it reads any reply, through a small
// receive buffer, gets every reply once and in order, then 221 and the close: the server's
// sends that find the client's buffer full go out when it reads, and the input held back
// meanwhile is answered then. Method: a writer thread sends the NOOPs and QUIT; the reader
// waits 300 ms, so the replies pile up, then reads to EOF.
fn pipelining_client_that_reads_late(backend: Backend) {
    const NOOPS: usize = 20_000;
    let server = Server::start(backend, |_| {});
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    socket.connect(&server.addr.into()).expect("connect");
    let mut stream = std::net::TcpStream::from(socket);
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone");
    let commands = [b"NOOP\r\n".repeat(NOOPS), b"QUIT\r\n".to_vec()].concat();
    let write = std::thread::spawn(move || writer.write_all(&commands));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + 4 * READ_TIMEOUT;
    let mut chunk = [0u8; 4096];
    loop {
        assert!(std::time::Instant::now() < deadline, "no EOF");
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading replies: {e}"),
        }
    }
    write.join().expect("writer").expect("commands written");
    let text = String::from_utf8_lossy(&got);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), NOOPS + 2, "greeting, one reply per NOOP, 221");
    assert!(lines[0].starts_with("220 "), "greeting: {}", lines[0]);
    assert!(
        lines[1..=NOOPS].iter().all(|l| l.starts_with("250 2.0.0")),
        "NOOP replies"
    );
    assert!(
        lines[NOOPS + 1].starts_with("221 "),
        "last: {}",
        lines[NOOPS + 1]
    );
}

// Goal: a client that pipelines the end of its message and QUIT and then shuts its sending
// side down (as `printf ... | nc -N` does) still gets every reply: the 250 for the stored
// message and the 221, then the close; also when the 250 waits for a group commit that
// completes after the FIN arrived. Method: one write with the rest of the transaction and
// QUIT, shutdown(SHUT_WR), every reply read until EOF; with a sink that stores at once and
// with one that acknowledges later from another thread.
fn half_close_after_pipelined_quit(backend: Backend) {
    for mode in [SinkMode::Done, SinkMode::Pending] {
        let server = Server::start_with(config(backend), mode);
        let mut raw = server.connect();
        raw.cmd("EHLO client.test", "250");
        raw.send(
            b"MAIL FROM:<a@example.test>\r\nRCPT TO:<x@tempmx.test>\r\nDATA\r\n\
              Subject: half close\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        );
        raw.stream
            .shutdown(std::net::Shutdown::Write)
            .expect("half close");
        let rest = raw.expect_eof();
        let text = String::from_utf8_lossy(&rest);
        let codes: Vec<&str> = text.lines().map(|l| &l[..3.min(l.len())]).collect();
        assert_eq!(
            codes,
            ["250", "250", "354", "250", "221"],
            "{mode:?}: replies: {text}"
        );
        assert_eq!(server.shelf.wait_for(1).len(), 1);
    }
}

// Goal: plaintext pipelined after STARTTLS is discarded (RFC 3207 §4.2): the injected MAIL
// does not exist after the handshake, so RCPT gets 503, and EHLO works over TLS.
fn starttls_drops_pipelined_plaintext(backend: Backend) {
    let (server, cert) = Server::start_with_pem(backend);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.send(b"STARTTLS\r\nMAIL FROM:<injected@example.test>\r\n");
    raw.expect("220");
    let mut tls = TlsClient::new(raw, cert);
    let ehlo = tls.cmd("EHLO client.test", "250");
    assert!(!ehlo.contains("STARTTLS"), "STARTTLS offered again: {ehlo}");
    tls.cmd("RCPT TO:<x@tempmx.test>", "503");
    tls.cmd("MAIL FROM:<real@example.test>", "250");
    tls.cmd("RCPT TO:<x@tempmx.test>", "250");
    tls.cmd("DATA", "354");
    tls.cmd("Subject: over tls\r\n\r\nhi\r\n.", "250");
    tls.cmd("QUIT", "221");
    let stored = server.shelf.wait_for(1);
    assert_eq!(stored[0].mail_from, "real@example.test");
    assert_eq!(
        stored[0].tls.as_ref().map(|t| t.version.as_str()),
        Some("TLSv1.3")
    );
}

// Goal: a reload swaps the STARTTLS certificate for new sessions at once, a session
// already in TLS keeps its own and finishes its mail, and a pair that does not load is
// refused with the new one still served. Method: a rustls client trusting only the
// first certificate holds a session; the files are rewritten and reloaded through the
// handle; a client trusting only the second certificate then completes a handshake.
fn reload_swaps_the_certificate(backend: Backend) {
    let (server, first) = Server::start_with_pem(backend);
    let starttls = |cert: Vec<u8>| {
        let mut raw = server.connect();
        raw.cmd("EHLO client.test", "250");
        raw.cmd("STARTTLS", "220");
        let mut tls = TlsClient::new(raw, cert);
        tls.cmd("EHLO client.test", "250");
        tls
    };
    let mut held = starttls(first);
    let (tls_config, second) = server.renew_pem();
    let tls = server.handle().tls().expect("STARTTLS on");
    tls.reload(&tls_config, HOSTNAME)
        .expect("the renewed pair loads");
    let mut renewed = starttls(second.clone());
    renewed.cmd("QUIT", "221");

    std::fs::write(
        tls_config.cert_path.as_ref().expect("cert path"),
        "not a certificate",
    )
    .expect("break the cert file");
    let err = tls
        .reload(&tls_config, HOSTNAME)
        .expect_err("a broken file is refused");
    assert!(err.to_string().contains("cert.pem"), "{err}");
    starttls(second).cmd("QUIT", "221");

    held.cmd("MAIL FROM:<held@example.test>", "250");
    held.cmd("RCPT TO:<x@tempmx.test>", "250");
    held.cmd("DATA", "354");
    held.cmd("Subject: held\r\n\r\nhi\r\n.", "250");
    held.cmd("QUIT", "221");
    assert_eq!(server.shelf.wait_for(1)[0].mail_from, "held@example.test");
}

// Goal: a store that acknowledges through a group commit still gives 250; a store that
// fails gives a 4xx and the session stays usable.
fn group_commit_and_store_failure(backend: Backend) {
    let server = Server::start_with(config(backend), SinkMode::Pending);
    let mut raw = server.connect();
    raw.send_mail("a@tempmx.test", "Subject: x\r\n\r\ny\r\n");
    raw.cmd("QUIT", "221");
    assert_eq!(server.shelf.wait_for(1).len(), 1);

    let failing = Server::start_with(config(backend), SinkMode::Fail);
    let mut raw = failing.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("MAIL FROM:<s@example.test>", "250");
    raw.cmd("RCPT TO:<a@tempmx.test>", "250");
    raw.cmd("DATA", "354");
    raw.cmd("Subject: x\r\n\r\ny\r\n.", "451");
    raw.cmd("NOOP", "250");
    assert_eq!(failing.handle().counters().messages_store_failed, 1);
}

// Goal: over TLS, one read's worth of pipelined commands whose replies exceed rustls's
// 64 KiB buffer of unsent records still gets every reply, in order. Method: after STARTTLS,
// 1,000 EHLOs and QUIT in one TLS write (18 KiB of commands, over 100 KiB of
// replies), then everything read until the server closes.
fn tls_replies_past_the_tls_buffer(backend: Backend) {
    const EHLOS: usize = 1000;
    let (server, cert) = Server::start_with_pem(backend);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("STARTTLS", "220");
    let mut tls = TlsClient::new(raw, cert);
    let commands = [b"EHLO client.test\r\n".repeat(EHLOS), b"QUIT\r\n".to_vec()].concat();
    let mut stream = rustls::Stream::new(&mut tls.conn, &mut tls.sock);
    stream.write_all(&commands).expect("tls write");
    stream.flush().expect("tls flush");
    let text = tls.read_to_close();
    let finals: Vec<&str> = text
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .collect();
    assert!(
        text.len() > 64 * 1024,
        "replies past 64 KiB: {}",
        text.len()
    );
    assert_eq!(finals.len(), EHLOS + 1, "one reply per EHLO, then 221");
    assert!(
        finals[..EHLOS].iter().all(|l| l.starts_with("250 ")),
        "EHLO replies"
    );
    assert!(finals[EHLOS].starts_with("221 "), "last: {}", finals[EHLOS]);
}

// Goal: a TLS client that pipelines a whole transaction and QUIT and sends close_notify in
// the same flight has its mail stored and answered: the commands before the close_notify
// are served before the close. Method: after STARTTLS, MAIL, RCPT, DATA, the message, QUIT
// and close_notify in one TLS flush; then every reply read until the server closes.
fn tls_close_notify_after_pipelined_mail(backend: Backend) {
    let (server, cert) = Server::start_with_pem(backend);
    let mut raw = server.connect();
    raw.cmd("EHLO client.test", "250");
    raw.cmd("STARTTLS", "220");
    let mut tls = TlsClient::new(raw, cert);
    tls.cmd("EHLO client.test", "250");
    // Records built first and written in one call, so they arrive together.
    tls.conn
        .writer()
        .write_all(
            b"MAIL FROM:<a@example.test>\r\nRCPT TO:<x@tempmx.test>\r\nDATA\r\n\
              Subject: last words\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        )
        .expect("tls write");
    tls.conn.send_close_notify();
    let mut flight = Vec::new();
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut flight).expect("tls records");
    }
    tls.sock.write_all(&flight).expect("one write");
    let text = tls.read_to_close();
    let codes: Vec<&str> = text.lines().map(|l| &l[..3.min(l.len())]).collect();
    assert_eq!(
        codes,
        ["250", "250", "354", "250", "221"],
        "replies: {text}"
    );
    let stored = server.shelf.wait_for(1);
    assert_eq!(stored.len(), 1);
    assert!(String::from_utf8_lossy(&stored[0].body).contains("body"));
}

/// A blocking rustls client over a socket that already did STARTTLS.
struct TlsClient {
    conn: rustls::ClientConnection,
    sock: std::net::TcpStream,
    pending: Vec<u8>,
}

impl TlsClient {
    fn new(raw: Raw, cert: Vec<u8>) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(cert))
            .expect("trust test cert");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(HOSTNAME).expect("name");
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client conn");
        Self {
            conn,
            sock: raw.stream,
            pending: Vec::new(),
        }
    }

    /// Everything the server sends until it closes, with or without its close_notify.
    fn read_to_close(&mut self) -> String {
        let mut stream = rustls::Stream::new(&mut self.conn, &mut self.sock);
        let mut got = std::mem::take(&mut self.pending);
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // The server may close the socket without waiting for our close_notify.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => panic!("reading replies over TLS: {e}"),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    fn cmd(&mut self, line: &str, start: &str) -> String {
        let mut stream = rustls::Stream::new(&mut self.conn, &mut self.sock);
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("tls write");
        stream.flush().expect("tls flush");
        loop {
            if let Some(end) = reply_end(&self.pending) {
                let reply = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                self.pending.drain(..end);
                assert!(
                    reply.starts_with(start),
                    "expected {start:?}, got {reply:?}"
                );
                return reply;
            }
            assert!(self.pending.len() < 64 * 1024, "reply too long");
            let mut chunk = [0u8; 4096];
            let n = match stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => other.expect("tls read"),
            };
            assert!(n > 0, "EOF over TLS");
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}
