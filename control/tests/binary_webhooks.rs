//! Webhooks through the real `tempmx serve` binary (issue 16): registration and its
//! limits, signed delivery after real SMTP, retries, SSRF refusals and the dropped count.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use binary_support::{Running, config_text, start, wait_for};
use serde_json::Value;

/// Longest wait for a delivery or a counter.
const ARRIVAL_MAX: Duration = Duration::from_secs(30);
/// Requests one test receiver answers at most.
const RECEIVER_REQUESTS_MAX: usize = 32;

/// One request as the receiver saw it.
struct Received {
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// A real HTTP/1.1 receiver on loopback: answers the `statuses` in turn (the last one
/// repeats) and reports each request; `None` as a status holds the connection unanswered.
fn receiver(statuses: Vec<Option<u16>>) -> (SocketAddr, Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (n, conn) in listener.incoming().take(RECEIVER_REQUESTS_MAX).enumerate() {
            let Ok(mut conn) = conn else { continue };
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let Some(req) = read_request(&conn) else {
                continue;
            };
            let _ = tx.send(req);
            match statuses[n.min(statuses.len() - 1)] {
                Some(status) => {
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                }
                None => held.push(conn),
            }
        }
    });
    (addr, rx)
}

/// Reads one request head and its `content-length` body.
fn read_request(conn: &TcpStream) -> Option<Received> {
    let mut r = BufReader::new(conn);
    let (mut len, mut timestamp, mut signature) = (0, String::new(), String::new());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim().to_owned();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.parse().ok()?,
                "x-tempmx-timestamp" => timestamp = v,
                "x-tempmx-signature" => signature = v,
                _ => {}
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Received {
        timestamp,
        signature,
        body,
    })
}

/// HMAC-SHA256 of `<timestamp>.<body>` as the receiver computes it, in lower-case hex.
fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    let tag = ring::hmac::sign(&key, &msg);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Starts the binary with `[api.webhooks]` set to `webhooks`.
fn serve(dir: &std::path::Path, webhooks: &str) -> Running {
    let text = config_text(None, 600, &format!("[api.webhooks]\n{webhooks}"));
    let path = dir.join("tempmx.toml");
    std::fs::write(&path, text).unwrap();
    start(&path)
}

/// Creates a mailbox; returns (address, token).
fn create(t: &Running, local: &str) -> (String, String) {
    let body = format!(r#"{{"local_part":"{local}","domain":"tempmx.test"}}"#);
    let (status, v) = t.public("POST", "/api/v1/mailboxes", None, Some(&body));
    assert_eq!(status, 201, "{v}");
    (
        v["address"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

/// Registers `url` on the mailbox; returns status and reply.
fn register(t: &Running, address: &str, token: &str, url: &str) -> (u16, Value) {
    let body = serde_json::json!({ "url": url }).to_string();
    let path = format!("/api/v1/mailboxes/{address}/webhooks");
    t.public("POST", &path, Some(token), Some(&body))
}

/// The value of `tempmx_webhook_deliveries_total{result="…"}` (0 when absent).
fn deliveries(t: &Running, result: &str) -> u64 {
    let key = format!("tempmx_webhook_deliveries_total{{result=\"{result}\"}} ");
    t.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn signed_delivery_retries_and_limits() {
    // Goal: a registered webhook receives the message summary with its verification code
    // after real SMTP delivery, signed with the secret from registration; a receiver that
    // answers 500 twice then 200 gets it on the third attempt, once; the list omits
    // secrets; one more webhook than webhooks_per_mailbox_max is a 409 problem; delete
    // works. Method: the real binary with loopback allowed, lettre over SMTP, receivers
    // that are real HTTP servers on loopback verifying the HMAC themselves.
    let dir = tempfile::tempdir().unwrap();
    let t = serve(
        dir.path(),
        "webhooks_per_mailbox_max = 2\nallow_networks = [\"127.0.0.0/8\"]\n\
         backoff_ms_min = 50\nattempts_max = 4\nattempt_timeout_ms = 2000\n",
    );
    let (address, token) = create(&t, "hooked");
    let (ok_addr, ok_rx) = receiver(vec![Some(200)]);
    let (status, hook) = register(&t, &address, &token, &format!("http://{ok_addr}/in"));
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    let (flaky_addr, flaky_rx) = receiver(vec![Some(500), Some(500), Some(200)]);
    let (status, flaky) = register(&t, &address, &token, &format!("http://{flaky_addr}/in"));
    assert_eq!(status, 201, "{flaky}");

    let (status, v) = register(&t, &address, &token, "http://127.0.0.1:9/third");
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["type"], "urn:tempmx:problem:webhook-limit");
    let (status, list) = t.public(
        "GET",
        &format!("/api/v1/mailboxes/{address}/webhooks"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    let items = list["webhooks"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|h| h.get("secret").is_none()), "{list}");

    t.send_with_subject(&address, "Your verification code is 482913")
        .expect("accepted with 250");
    let got = ok_rx.recv_timeout(ARRIVAL_MAX).expect("delivery received");
    assert_eq!(
        got.signature,
        expected_signature(&secret, &got.timestamp, &got.body)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(got.timestamp.parse::<u64>().unwrap()) < 60);
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["mailbox"], address.as_str());
    assert_eq!(
        body["message"]["subject"],
        "Your verification code is 482913"
    );
    let codes: Vec<&str> = body["message"]["verifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["value"].as_str())
        .collect();
    assert!(codes.contains(&"482913"), "{body}");

    for attempt in 1..=3 {
        flaky_rx
            .recv_timeout(ARRIVAL_MAX)
            .unwrap_or_else(|_| panic!("attempt {attempt} received"));
    }
    wait_for(ARRIVAL_MAX, "two deliveries counted", || {
        (deliveries(&t, "delivered") == 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(flaky_rx.try_recv().is_err(), "delivered once, not again");
    assert!(ok_rx.try_recv().is_err(), "delivered once, not again");
    assert_eq!(deliveries(&t, "failed"), 0);

    let id = hook["id"].as_str().unwrap();
    let path = format!("/api/v1/mailboxes/{address}/webhooks/{id}");
    assert_eq!(t.public("DELETE", &path, Some(&token), None).0, 204);
    assert_eq!(t.public("DELETE", &path, Some(&token), None).0, 404);
    t.stop();
}

#[test]
fn private_addresses_and_bad_urls_are_refused() {
    // Goal: without allow_networks, private, metadata and loopback targets are 422
    // problems, as are other schemes and URLs over url_bytes_max; an unknown token is 404.
    // Method: the real binary with default networks, registrations over HTTP.
    let dir = tempfile::tempdir().unwrap();
    let t = serve(dir.path(), "url_bytes_max = 64\n");
    let (address, token) = create(&t, "guarded");
    let long = format!("http://example.com/{}", "a".repeat(64));
    for url in [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://[::ffff:192.168.1.1]/",
        "http://localhost/",
        "ftp://example.com/",
        "not a url",
        long.as_str(),
    ] {
        let (status, v) = register(&t, &address, &token, url);
        assert_eq!(status, 422, "{url}: {v}");
        assert_eq!(v["type"], "urn:tempmx:problem:invalid-webhook", "{url}");
    }
    let (status, _) = register(&t, &address, "wrong-token", "http://10.0.0.1/");
    assert_eq!(status, 404);
    t.stop();
}

#[test]
fn full_queue_drops_and_counts() {
    // Goal: with one delivery in flight at a hanging receiver and queue_max = 1, further
    // messages are dropped and counted on /metrics while SMTP keeps answering 250.
    // Method: the real binary, a receiver that never answers, five messages over SMTP.
    let dir = tempfile::tempdir().unwrap();
    let t = serve(
        dir.path(),
        "queue_max = 1\ndeliveries_concurrent_max = 1\nattempt_timeout_ms = 20000\n\
         attempts_max = 1\nallow_networks = [\"127.0.0.0/8\"]\n",
    );
    let (address, token) = create(&t, "flooded");
    let (addr, rx) = receiver(vec![None]);
    let (status, v) = register(&t, &address, &token, &format!("http://{addr}/slow"));
    assert_eq!(status, 201, "{v}");
    t.send_with_subject(&address, "first").expect("250");
    rx.recv_timeout(ARRIVAL_MAX)
        .expect("first delivery in flight");
    for n in 0..4 {
        t.send_with_subject(&address, &format!("more {n}"))
            .expect("250");
    }
    wait_for(ARRIVAL_MAX, "dropped deliveries counted", || {
        (deliveries(&t, "dropped") >= 3).then_some(())
    });
    t.stop();
}
