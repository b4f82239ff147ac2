//! Deadlines of the HTTP listeners against slow clients: a real TCP client that drips a
//! request head or body one byte at a time is cut off at the configured deadline, on the
//! public and the admin listener, while a prompt client is served as usual.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;
mod safety_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use binary_support::start;
use safety_support::config_with;

/// The deadlines configured for the test (the defaults are 10 s and 30 s).
const HEADER_READ_MS: u64 = 1_000;
const BODY_READ_MS: u64 = 1_500;
/// Pause between two dripped bytes.
const DRIP: Duration = Duration::from_millis(100);
/// Bytes the client drips at most: 200 × 100 ms = 20 s, far past every deadline.
const DRIP_BYTES_MAX: usize = 200;
/// Slack for scheduling on a busy 2-core machine.
const SLACK: Duration = Duration::from_secs(3);

/// What the server did to a dripping client.
#[derive(Debug)]
struct Outcome {
    /// Time from the first byte sent to the server's answer or close.
    after: Duration,
    /// Bytes dripped before that.
    dripped: usize,
    /// What the server sent, if anything.
    reply: String,
}

/// Connects, sends `prefix` at once, then drips `drip` (repeated) a byte every `DRIP`
/// until the server answers or closes; bounded by `DRIP_BYTES_MAX`.
fn drip(addr: SocketAddr, prefix: &str, drip: &[u8]) -> Outcome {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let started = Instant::now();
    s.write_all(prefix.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    for dripped in 0..DRIP_BYTES_MAX {
        let closed = match s.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                // The whole answer is in once its body (if any) has arrived; a close follows.
                false
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => true,
        };
        let sent = !closed && s.write_all(&drip[dripped % drip.len()..][..1]).is_ok();
        if closed || !sent || !reply.is_empty() {
            // Collect the rest of an answer the server may still be writing.
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            while let Ok(n @ 1..) = s.read(&mut buf) {
                reply.extend_from_slice(&buf[..n]);
            }
            return Outcome {
                after: started.elapsed(),
                dripped,
                reply: String::from_utf8_lossy(&reply).into_owned(),
            };
        }
        std::thread::sleep(DRIP);
    }
    panic!(
        "the server let a client drip {DRIP_BYTES_MAX} bytes over {:?}",
        started.elapsed()
    );
}

/// A prompt request on a fresh connection; returns the status line.
fn prompt(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.lines().next().unwrap_or_default().to_owned()
}

// Goal: a client that sends its request head too slowly is disconnected once
// `http.header_read_ms_max` has passed, on both listeners; one that sends its body too
// slowly gets 408 problem+json once `http.body_read_ms_max` has passed; a prompt client
// is served. Method: the real binary with 1 s / 1.5 s deadlines; a TCP client drips a
// header line (or a body) a byte every 100 ms and times what the server does.
#[test]
fn slow_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tempmx.toml");
    let edits = [
        ("http.header_read_ms_max", (HEADER_READ_MS as i64).into()),
        ("http.body_read_ms_max", (BODY_READ_MS as i64).into()),
    ];
    std::fs::write(&path, config_with(None, &edits)).unwrap();
    let app = start(&path);
    let header_deadline = Duration::from_millis(HEADER_READ_MS);
    let body_deadline = Duration::from_millis(BODY_READ_MS);

    for addr in [app.http, app.admin] {
        let head = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ";
        let out = drip(addr, head, b"abcdefghij");
        assert!(out.after >= header_deadline, "{addr}: {out:?}");
        assert!(out.after < header_deadline + SLACK, "{addr}: {out:?}");
        assert!(out.dripped >= 5, "{addr}: {out:?}");
        assert!(!out.reply.starts_with("HTTP/1.1 200"), "{addr}: {out:?}");
    }

    let head = "POST /api/v1/mailboxes HTTP/1.1\r\nHost: t\r\n\
                Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    let out = drip(app.http, head, b" ");
    assert!(out.after >= body_deadline, "{out:?}");
    assert!(out.after < body_deadline + SLACK, "{out:?}");
    assert!(out.reply.starts_with("HTTP/1.1 408"), "{out:?}");
    assert!(out.reply.contains("application/problem+json"), "{out:?}");
    assert!(
        out.reply.contains("urn:tempmx:problem:body-timeout"),
        "{out:?}"
    );

    let admin_head = format!(
        "PUT /admin/v1/policy HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        binary_support::ADMIN_TOKEN
    );
    let out = drip(app.admin, &admin_head, b" ");
    assert!(out.reply.starts_with("HTTP/1.1 408"), "{out:?}");
    assert!(out.after < body_deadline + SLACK, "{out:?}");

    let ok = prompt(
        app.http,
        "POST /api/v1/mailboxes HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert_eq!(ok, "HTTP/1.1 201 Created");
    app.stop();
}
