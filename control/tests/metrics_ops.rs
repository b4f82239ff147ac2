//! Goal: `/metrics` on the live appliance is valid Prometheus text, exports every metric
//! the crates declare, and the dashboards and rules in `ops/` only use metric names the code
//! exports. Method: start the real app on loopback, deliver one message over SMTP, hold one
//! SSE and one WebSocket subscriber, rotate a domain out as the operator, scrape over HTTP,
//! check the new families' values, run `promtool` on the output and on the rules, and
//! compare every `tempmx_*` name in `ops/` with the scrape.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lettre::{Message, SmtpTransport, Transport};
use tempmx::metrics::{Kind, declared};
use tempmx::pool::DomainState;
use tempmx::{App, Config};

fn test_config() -> Config {
    let mut c = Config::default();
    let any = "127.0.0.1:0".parse().unwrap();
    c.ingress.listen = any;
    c.ingress.cores = 1;
    // No DNS may leave the machine.
    c.ingress.auth.mode = tempmx_ingress::auth::AuthMode::Off;
    c.http.listen = any;
    c.admin.listen = any;
    c.dns.listen = any;
    c.store.memory_bytes_max = 64 << 20;
    c.store.segment_bytes = 1 << 20;
    c.ingress.limits.message_bytes_max = 512 << 10;
    // Greylisting on, so its families are exported; loopback clients skip it (and are
    // counted as such).
    c.ingress.greylist.enabled = true;
    c.ingress.greylist.allow_networks = vec!["127.0.0.0/8".into()];
    // Live push without tokens.
    c.api.access = tempmx::api::public::config::AccessMode::Public;
    c
}

/// Sends a GET with optional extra header lines; returns the status line and the body.
fn http_request(addr: SocketAddr, path: &str, extra: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// Opens a live-push connection and reads its response head; the returned stream keeps
/// the subscriber connected until it is dropped.
fn subscribe(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // The head is small; byte reads stop exactly at its end, before any event.
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.lines().next().unwrap_or("").to_owned();
    (s, status)
}

/// The value of the sample `series` (name with its labels, as rendered) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The `# TYPE` of every family in a scrape.
fn types_in(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let (status, body) = http_request(addr, path, "");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}\n{body}");
    body
}

/// Every `tempmx_...` metric name in a text, with histogram suffixes folded.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("tempmx_") {
        let start = i + pos;
        let preceded_ok = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
        if preceded_ok {
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_owned());
        }
        i = end;
    }
    names
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by ops/ci/test.sh");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn live_metrics_are_valid_and_ops_files_match_them() {
    let app = App::start(test_config()).unwrap();
    let addrs = app.addrs();
    let email = Message::builder()
        .from("a@example.test".parse().unwrap())
        .to("metrics@tempmx.test".parse().unwrap())
        .subject("metrics")
        .body("hello\r\n".to_owned())
        .unwrap();
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(addrs.smtp.port())
        .build()
        .send(&email)
        .unwrap();
    // One request on the public listener so the HTTP families have samples.
    http_get(addrs.http, "/healthz");
    let mailbox = "/api/v1/mailboxes/metrics@tempmx.test";
    let (_sse, status) = subscribe(addrs.http, &format!("{mailbox}/events"), "");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let (_ws, status) = subscribe(addrs.http, &format!("{mailbox}/ws"), upgrade);
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    // The operator rotates the only active domain out; a pending one replaces it.
    let plane = &app.shared().plane;
    plane
        .add_domains(&["spare.test".to_owned()], DomainState::Pending, "spare")
        .unwrap();
    plane
        .set_state(
            &tempmx_store::Domain::parse("tempmx.test").expect("test domain"),
            DomainState::Draining,
            "metrics test",
        )
        .unwrap();

    // The SMTP session is counted when the server has closed it, just after the client's
    // QUIT; wait for that (bounded), then keep the scrape that shows it.
    let mut scrape = String::new();
    for _ in 0..400 {
        scrape = http_get(addrs.admin, "/metrics");
        if sample(&scrape, "tempmx_smtp_session_duration_seconds_count") == Some(1.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    app.shutdown();
    let expect = [
        ("tempmx_smtp_messages_accepted_total", 1.0),
        ("tempmx_smtp_session_duration_seconds_count", 1.0),
        ("tempmx_smtp_message_size_bytes_count", 1.0),
        ("tempmx_api_subscribers{transport=\"sse\"}", 1.0),
        ("tempmx_api_subscribers{transport=\"websocket\"}", 1.0),
        ("tempmx_pool_rotations_total{reason=\"operator\"}", 1.0),
        ("tempmx_pool_rotations_total{reason=\"listing\"}", 0.0),
        (
            "tempmx_greylist_checks_total{verdict=\"allow_network\"}",
            1.0,
        ),
        (
            "tempmx_auth_results_total{method=\"spf\",result=\"pass\"}",
            0.0,
        ),
    ];
    for (series, want) in expect {
        assert_eq!(sample(&scrape, series), Some(want), "{series}\n{scrape}");
    }
    // The message as received: at least its body, well under the 512 KiB limit.
    let size = sample(&scrape, "tempmx_smtp_message_size_bytes_sum").unwrap();
    assert!((7.0..4096.0).contains(&size), "{size}");
    assert_eq!(
        sample(
            &scrape,
            "tempmx_smtp_message_size_bytes_bucket{le=\"1024\"}"
        ),
        Some(1.0)
    );
    let secs = sample(&scrape, "tempmx_smtp_session_duration_seconds_sum").unwrap();
    assert!(secs > 0.0, "{secs}");

    // Every declared metric is exported with its declared type, except the per-list
    // blocklist gauge, which has no series while no blocklist is configured.
    let types = types_in(&scrape);
    for d in declared() {
        if d.name == tempmx::metrics::BLOCKLIST_LISTED.name {
            continue;
        }
        let want = match d.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        assert_eq!(
            types.get(d.name).map(String::as_str),
            Some(want),
            "{}",
            d.name
        );
    }

    let (ok, out) = promtool(&["check", "metrics"], Some(&scrape));
    assert!(ok, "promtool check metrics:\n{out}");

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("ops");
    let rules = root.join("prometheus/tempmx.rules.yml");
    let (ok, out) = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok, "promtool check rules:\n{out}");

    let exported = names_in(&scrape);
    let mut used = BTreeSet::new();
    for file in ["prometheus/tempmx.rules.yml", "grafana/tempmx.json"] {
        used.extend(names_in(&std::fs::read_to_string(root.join(file)).unwrap()));
    }
    assert!(used.len() > 10, "{used:?}");
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "ops/ uses metrics the code does not export: {unknown:?}"
    );
}

// Goal: with `admin.metrics_need_token`, a scrape needs the admin (or read-only) token.
// Method: start the app with both tokens set and scrape without, with a wrong, and with
// each right token.
#[test]
fn metrics_token_is_enforced_when_configured() {
    let mut c = test_config();
    c.admin.token = Some("admin-secret".into());
    c.admin.read_token = Some("read-secret".into());
    c.admin.metrics_need_token = true;
    c.validate().unwrap();
    let app = App::start(c).unwrap();
    let admin = app.addrs().admin;
    let status = |extra: &str| http_request(admin, "/metrics", extra).0;
    let none = status("");
    let wrong = status("Authorization: Bearer admin-secreT\r\n");
    let full = status("Authorization: Bearer admin-secret\r\n");
    let read = status("Authorization: Bearer read-secret\r\n");
    app.shutdown();
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    assert!(full.starts_with("HTTP/1.1 200"), "{full}");
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
}
