//! Goal: `/metrics` on the live appliance is valid Prometheus text, and the dashboards and
//! rules in `ops/` only use metric names the code exports. Method: start the real app on
//! loopback, deliver one message over SMTP, scrape over HTTP, run `promtool` on the output
//! and on the rules, and compare every `tempmx_*` name in `ops/` with the scrape.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lettre::{Message, SmtpTransport, Transport};
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

    let scrape = http_get(addrs.admin, "/metrics");
    app.shutdown();
    assert!(
        scrape.contains("tempmx_smtp_messages_accepted_total 1"),
        "{scrape}"
    );

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
