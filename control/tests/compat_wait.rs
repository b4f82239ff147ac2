//! `GET /api/v1/mailboxes/{address}/messages/wait` through the real `tempmx serve`
//! binary, with real SMTP delivery (lettre) and real HTTP (ureq): held until a matching
//! message arrives, 204 at the timeout, filters, `after`, its limits and its admission
//! bounds shared with live push.

mod binary_support;

use std::time::{Duration, Instant};

use binary_support::{ADMIN_TOKEN, Running, http, start};
use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};

/// Config of these tests: loopback listeners, one ingress core, small store, live-push
/// bounds of 2 per mailbox and 3 per client.
fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        "[ingress]\nlisten = \"127.0.0.1:0\"\ncores = 1\n\
         [ingress.limits]\nmessage_bytes_max = 524288\n\
         [ingress.auth]\nmode = \"off\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [dns]\nlisten = \"127.0.0.1:0\"\n\
         [store]\nmemory_bytes_max = 33554432\nsegment_bytes = 1048576\ndedup_bytes_max = 4194304\n\
         [api]\nsubscribers_per_mailbox_max = 2\nsubscribers_per_ip_max = 3\n\
         [log]\nformat = \"json\"\nfilter = \"info\"\n"
    );
    let path = dir.join("tempmx.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

fn send(srv: &Running, rcpt: &str, from: &str, subject: &str, body: &str) {
    let msg = Message::builder()
        .from(from.parse::<Mailbox>().expect("from"))
        .to(rcpt.parse::<Mailbox>().expect("rcpt"))
        .subject(subject)
        .body(body.to_owned())
        .expect("message");
    SmtpTransport::builder_dangerous(srv.smtp.ip().to_string())
        .port(srv.smtp.port())
        .timeout(Some(Duration::from_secs(10)))
        .build()
        .send(&msg)
        .expect("smtp delivery");
}

fn create(srv: &Running) -> (String, String) {
    let (status, v) = srv.public("POST", "/api/v1/mailboxes", None, Some("{}"));
    assert_eq!(status, 201, "{v}");
    (
        v["address"].as_str().expect("address").to_owned(),
        v["token"].as_str().expect("token").to_owned(),
    )
}

fn wait_url(srv: &Running, address: &str, query: &str) -> String {
    format!(
        "http://{}/api/v1/mailboxes/{address}/messages/wait?{query}",
        srv.http
    )
}

#[test]
fn wait_is_held_until_a_matching_mail_arrives() {
    // Goal: a held request answers with the first matching message (with its
    // verification code), not with one that does not match, and only once it arrives.
    // Method: hold a wait filtered on sender and subject in a thread, deliver a
    // non-matching mail then a matching one over SMTP, and look at the answer and when it
    // came.
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(&config(dir.path()));
    let (address, token) = create(&srv);
    let url = wait_url(&srv, &address, "timeout=8&from=SHOP.test&subject=verify");
    let t = token.clone();
    let held = std::thread::spawn(move || {
        let t0 = Instant::now();
        let (status, v) = http("GET", &url, Some(&t), None);
        (status, v, t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    send(
        &srv,
        &address,
        "news@shop.test",
        "Weekly news",
        "Nothing to verify.\r\n",
    );
    send(
        &srv,
        &address,
        "noreply@other.test",
        "Verify your account",
        "Code 111111\r\n",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!held.is_finished(), "the wait must still be held");
    let sent_at = Instant::now();
    send(
        &srv,
        &address,
        "noreply@shop.test",
        "Verify your account",
        "Hello,\r\n\r\nYour verification code is 482913.\r\nIt expires in 10 minutes.\r\n",
    );
    let (status, v, waited) = held.join().expect("waiter");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["subject"], "Verify your account");
    assert!(
        v["from"]
            .as_str()
            .expect("from")
            .contains("noreply@shop.test"),
        "{v}"
    );
    assert_eq!(v["verifications"][0]["kind"], "code", "{v}");
    assert_eq!(v["verifications"][0]["value"], "482913", "{v}");
    let score = v["verifications"][0]["score"].as_f64().expect("score");
    assert!((0.5..=1.0).contains(&score), "{score}");
    assert!(
        waited >= Duration::from_millis(1000),
        "answered after {waited:?}"
    );
    assert!(sent_at.elapsed() < Duration::from_secs(5));
    let id = v["id"].as_str().expect("id").to_owned();

    // Without `after`, the newest stored match answers at once.
    let (status, v) = http(
        "GET",
        &wait_url(&srv, &address, "timeout=5&subject=verify"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(v["id"], id.as_str());
    // With `after` = that id, nothing newer matches: 204 at the timeout.
    let t0 = Instant::now();
    let (status, _) = http(
        "GET",
        &wait_url(
            &srv,
            &address,
            &format!("timeout=1&from=shop.test&after={id}"),
        ),
        Some(&token),
        None,
    );
    assert_eq!(status, 204);
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    // `after` an older id gives the oldest match above it.
    let (status, v) = http(
        "GET",
        &wait_url(&srv, &address, "timeout=1&after=0000000000000000"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(v["subject"], "Weekly news");
    srv.stop();
}

#[test]
fn wait_limits_and_admission() {
    // Goal: the wait's inputs have limits with clear 400s, a wrong token is the usual 404,
    // and held waits count against the push bounds (2 per mailbox here) and free their
    // slots when answered. Method: requests at and past each limit; two held waits, a
    // third refused with 429, then a delivery that answers both and frees the slots.
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(&config(dir.path()));
    let (address, token) = create(&srv);
    let get = |q: &str, tok: Option<&str>| http("GET", &wait_url(&srv, &address, q), tok, None);

    let t0 = Instant::now();
    assert_eq!(get("timeout=0", Some(&token)).0, 204);
    assert!(t0.elapsed() < Duration::from_secs(2));
    let (status, v) = get("timeout=121", Some(&token));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["detail"].as_str().expect("detail").contains("0 to 120"),
        "{v}"
    );
    let long = "x".repeat(257);
    assert_eq!(
        get(&format!("timeout=0&subject={long}"), Some(&token)).0,
        400
    );
    assert_eq!(
        get(&format!("timeout=0&subject={}", &long[..256]), Some(&token)).0,
        204
    );
    assert_eq!(get("timeout=0&after=nope", Some(&token)).0, 400);
    assert_eq!(get("timeout=0", Some("wrong")).0, 404);

    let held: Vec<_> = (0..2)
        .map(|_| {
            let url = wait_url(&srv, &address, "timeout=8");
            let t = token.clone();
            let h = std::thread::spawn(move || http("GET", &url, Some(&t), None));
            std::thread::sleep(Duration::from_millis(300));
            h
        })
        .collect();
    let (status, v) = get("timeout=1", Some(&token));
    assert_eq!(status, 429, "{v}");
    send(&srv, &address, "a@sender.test", "hello", "hi\r\n");
    for h in held {
        let (status, v) = h.join().expect("waiter");
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["subject"], "hello");
    }
    // Both slots are free again: a new wait is admitted (and answered at once).
    assert_eq!(get("timeout=1", Some(&token)).0, 200);
    srv.stop();
}
