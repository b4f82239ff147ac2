//! The one vocabulary through the real `tempmx serve` binary (issue 13): every spelling
//! of an address reaches its one mailbox (SMTP, API paths, SSE push), the per-mailbox cap
//! holds for the mailbox as a whole across ingress cores, and an IP address is never a
//! pool domain.

mod binary_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use binary_support::{Running, config_text, start, wait_for};
use serde_json::Value;

/// Longest wait for a message to show up.
const ARRIVAL_MAX: Duration = Duration::from_secs(20);

/// Starts the binary with `cores` ingress cores on a fresh config file.
fn serve(dir: &std::path::Path, cores: usize) -> Running {
    let text = config_text(None, 600, "").replace("cores = 1", &format!("cores = {cores}"));
    let path = dir.join("tempmx.toml");
    std::fs::write(&path, text).expect("config written");
    start(&path)
}

/// Creates a mailbox with the given local part on tempmx.test; returns (address, token).
fn create(t: &Running, local: &str) -> (String, String) {
    let body = format!(r#"{{"local_part":"{local}","domain":"tempmx.test"}}"#);
    let (status, v) = t.public("POST", "/api/v1/mailboxes", None, Some(&body));
    assert_eq!(status, 201, "{v}");
    let s = |k: &str| v[k].as_str().expect(k).to_owned();
    (s("address"), s("token"))
}

/// Sends one message over its own SMTP connection; it must get its 250.
fn send(t: &Running, rcpt: &str, subject: &str) {
    t.send_with_subject(rcpt, subject)
        .expect("accepted with 250");
}

/// One page of `path_address`'s messages (`query` picks the page).
fn page(t: &Running, path_address: &str, token: &str, query: &str) -> (u16, Value) {
    let path = format!("/api/v1/mailboxes/{path_address}/messages{query}");
    t.public("GET", &path, Some(token), None)
}

#[test]
fn every_spelling_reaches_the_one_mailbox() {
    // Goal (symptom 1): mail to an upper-case spelling of a mailbox created in lower case
    // reaches it; a mixed-case local part asked for over the API is created folded and
    // mail to the mixed-case spelling arrives; API paths in any case open the same
    // mailbox; the SSE push of the mailbox sees mail sent to an upper-case spelling.
    // Method: the real binary, lettre over SMTP, HTTP to the public API, a raw SSE stream.
    let dir = tempfile::tempdir().expect("tempdir");
    let t = serve(dir.path(), 1);

    let (address, token) = create(&t, "vrwmpat7xeer9w");
    assert_eq!(address, "vrwmpat7xeer9w@tempmx.test");
    send(&t, "VRWMPAT7XEER9W@tempmx.test", "upper");
    for path in [
        "vrwmpat7xeer9w@tempmx.test",
        "VRWMPAT7XEER9W@tempmx.test",
        "VrwMpat7XEER9w@TempMX.Test",
    ] {
        let v = wait_for(ARRIVAL_MAX, "mail in the lower-case mailbox", || {
            let (status, v) = page(&t, path, &token, "");
            (status == 200 && v["messages"].as_array().is_some_and(|m| m.len() == 1)).then_some(v)
        });
        assert_eq!(v["messages"][0]["subject"], "upper", "{path}");
    }

    let (mixed, mixed_token) = create(&t, "Mixed.Case");
    assert_eq!(mixed, "mixed.case@tempmx.test");
    let (status, _) = t.public(
        "POST",
        "/api/v1/mailboxes",
        None,
        Some(r#"{"local_part":"MIXED.case","domain":"tempmx.test"}"#),
    );
    assert_eq!(status, 409, "another spelling of a taken address is taken");

    // The push stream is open before the mail is sent, so it must be pushed, not listed.
    let mut sse = TcpStream::connect(t.http).expect("http connects");
    sse.set_read_timeout(Some(ARRIVAL_MAX)).expect("timeout");
    write!(
        sse,
        "GET /api/v1/mailboxes/MIXED.CASE@tempmx.test/events HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {mixed_token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("request sent");
    let mut lines = BufReader::new(sse);
    let mut status_line = String::new();
    lines.read_line(&mut status_line).expect("status line");
    assert!(status_line.contains(" 200 "), "{status_line}");
    send(&t, "Mixed.Case@tempmx.test", "mixed");
    send(&t, "MIXED.CASE@TEMPMX.TEST", "shouted");
    let deadline = Instant::now() + ARRIVAL_MAX;
    let mut pushed = Vec::new();
    while pushed.len() < 2 && Instant::now() < deadline {
        let mut line = String::new();
        if lines.read_line(&mut line).expect("sse line") == 0 {
            break;
        }
        if let Some(data) = line.trim_end().strip_prefix("data:") {
            let v: Value = serde_json::from_str(data.trim()).expect("event json");
            pushed.push(v["subject"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(pushed, ["mixed", "shouted"]);
    let (status, v) = page(&t, "Mixed.Case@TEMPMX.test", &mixed_token, "");
    assert_eq!(status, 200);
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(2));
    t.stop();
}

#[test]
fn the_cap_holds_for_the_mailbox_across_ingress_cores() {
    // Goal (symptom 2): with 2 ingress cores (2 store shards) and mail over many
    // connections, a mailbox whose cap is 100 shows 100 messages, the newest, and no page
    // past them. Method: the real binary with `cores = 2`, 150 messages by lettre, one
    // connection each (SO_REUSEPORT spreads them over both cores; /metrics shows both
    // shards holding records), then the API listing page by page.
    let dir = tempfile::tempdir().expect("tempdir");
    let t = serve(dir.path(), 2);
    let (address, token) = create(&t, "capped");
    for i in 0..150 {
        send(&t, &address, &format!("n{i:03}"));
    }
    let scrape = ureq::get(format!("http://{}/metrics", t.admin))
        .header(
            "Authorization",
            format!("Bearer {}", binary_support::ADMIN_TOKEN),
        )
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("metrics text");
    for shard in ["0", "1"] {
        let prefix = format!("tempmx_store_records{{shard=\"{shard}\"}} ");
        let records: f64 = scrape
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in /metrics"));
        assert!(records > 0.0, "shard {shard} took some of the mail");
    }
    let mut shown = Vec::new();
    let mut query = "?limit=50".to_owned();
    for _ in 0..10 {
        let (status, v) = page(&t, &address, &token, &query);
        assert_eq!(status, 200, "{v}");
        let page = v["messages"].as_array().expect("messages");
        shown.extend(
            page.iter()
                .map(|m| m["subject"].as_str().expect("subject").to_owned()),
        );
        match v["next_before"].as_str() {
            Some(b) => query = format!("?limit=50&before={b}"),
            None => break,
        }
    }
    let newest: Vec<String> = (50..150).rev().map(|i| format!("n{i:03}")).collect();
    assert_eq!(shown, newest);
    t.stop();
}

#[test]
fn an_ip_address_is_never_a_pool_domain() {
    // Goal: the admin API refuses an IP address (bare or as an address literal) and a
    // single-label name as pool domains with a clear 422 problem that names the reason,
    // and the DNS serves no zone for them. Method: the real binary, POST
    // /admin/v1/domains, then dig against its DNS listener.
    let dir = tempfile::tempdir().expect("tempdir");
    let t = serve(dir.path(), 1);
    for (name, reason) in [
        ("127.0.0.1", "IP address"),
        ("[127.0.0.1]", "IP address"),
        ("localhost", "two labels"),
    ] {
        let body = format!(r#"{{"domains":["{name}"],"state":"active"}}"#);
        let (status, v) = t.admin("POST", "/admin/v1/domains", Some(&body));
        assert_eq!(status, 422, "{name}: {v}");
        assert_eq!(
            v["type"].as_str().map(|s| s.ends_with("invalid-domain")),
            Some(true)
        );
        let errors = v["errors"].to_string();
        assert!(
            errors.contains(name) && errors.contains(reason),
            "{name}: {errors}"
        );
    }
    let (status, v) = t.admin("GET", "/admin/v1/domains/127.0.0.1", None);
    assert_eq!(status, 404, "{v}");
    assert_eq!(t.dig("127.0.0.1", "SOA"), "");
    assert_eq!(t.dig("localhost", "MX"), "");
    assert!(!t.dig("tempmx.test", "MX").is_empty(), "the pool is served");
    t.stop();
}
