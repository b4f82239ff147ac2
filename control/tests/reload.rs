//! `systemctl reload` (SIGHUP) through the real binary: a renewed STARTTLS certificate is
//! served to new sessions and a broken one keeps the old; a domain added to `pool.domains`
//! takes mail and has its zone served; changed blocklist settings drive the next cycle;
//! settings that cannot change at runtime are named in the report as needing a restart.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use binary_support::{Running, config_text, start, wait_for};
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde_json::Value;

/// Longest wait for a reload's effect (it is applied as soon as the signal arrives).
const RELOAD_MAX: Duration = Duration::from_secs(10);

fn hup(app: &Running) {
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(i32::try_from(app.pid()).unwrap(), libc::SIGHUP) };
    assert_eq!(rc, 0);
}

/// Waits for the `n`th (1-based) log line containing `what` and returns it parsed.
fn logged(app: &Running, what: &str, n: usize) -> Value {
    let line = wait_for(RELOAD_MAX, what, || {
        let log = app.log.lock().unwrap();
        log.iter().filter(|l| l.contains(what)).nth(n - 1).cloned()
    });
    serde_json::from_str(&line).unwrap()
}

/// The field `key` of a JSON log line (fields are flattened into the line's object).
fn field(line: &Value, key: &str) -> String {
    line[key].as_str().unwrap_or_default().to_owned()
}

/// The value of one series in the admin listener's `/metrics`.
fn metric(app: &Running, series: &str) -> Option<f64> {
    let text = ureq::get(&format!("http://{}/metrics", app.admin))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Writes a self-signed certificate for `mx.reload.test` with common name `cn`.
fn write_cert(cert: &Path, key: &Path, cn: &str) {
    let pair = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mx.reload.test".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let signed = params.self_signed(&pair).unwrap();
    std::fs::write(cert, signed.pem()).unwrap();
    std::fs::write(key, pair.serialize_pem()).unwrap();
}

/// The subject line of the certificate a real STARTTLS handshake gets
/// (`openssl s_client -starttls smtp`).
fn served_subject(app: &Running) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-starttls", "smtp", "-connect"])
        .arg(app.smtp.to_string())
        .args(["-servername", "mx.reload.test"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs (ops/ci/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no certificate in:\n{text}"))
        .to_owned()
}

// Goal: a renewed certificate (files rewritten in place) reaches new STARTTLS sessions
// after SIGHUP without a restart; a broken one is refused with an error naming the file,
// the old one is still served and the process keeps taking mail over TLS; both reloads
// are counted.
// Method: the real binary with cert files from rcgen; `openssl s_client -starttls smtp`
// reads the served certificate's subject; lettre delivers over STARTTLS; /metrics.
#[test]
fn sighup_replaces_the_starttls_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    write_cert(&cert, &key, "reload-first");
    let extra = format!("[ingress.tls]\ncert_path = {cert:?}\nkey_path = {key:?}\n");
    let path = dir.path().join("tempmx.toml");
    std::fs::write(&path, config_text(None, 3600, &extra)).unwrap();
    let app = start(&path);
    assert!(served_subject(&app).contains("reload-first"));

    write_cert(&cert, &key, "reload-second");
    hup(&app);
    let report = logged(&app, "reload: done", 1);
    assert_eq!(field(&report, "applied"), "ingress.tls", "{report}");
    assert!(served_subject(&app).contains("reload-second"));
    assert_eq!(
        metric(&app, "tempmx_config_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );

    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    hup(&app);
    // The file's validation loads the pair as start-up does, so the whole file is refused.
    let error = logged(&app, "configuration not loaded", 1);
    let detail = field(&error, "error");
    assert!(
        detail.contains("ingress.tls") && detail.contains("cert.pem"),
        "{error}"
    );
    assert!(served_subject(&app).contains("reload-second"));
    assert_eq!(
        metric(&app, "tempmx_config_reloads_total{result=\"failed\"}"),
        Some(1.0)
    );

    let params = TlsParameters::builder("mx.reload.test".to_owned())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    let msg = Message::builder()
        .from("sender@example.test".parse::<Mailbox>().unwrap())
        .to("user@tempmx.test".parse::<Mailbox>().unwrap())
        .subject("after reload")
        .body("hello\r\n".to_owned())
        .unwrap();
    SmtpTransport::builder_dangerous(app.smtp.ip().to_string())
        .port(app.smtp.port())
        .tls(Tls::Required(params))
        .timeout(Some(Duration::from_secs(10)))
        .build()
        .send(&msg)
        .expect("250 over STARTTLS after the failed reload");
    app.stop();
}

// Goal: with a data directory (the saved pool wins at start), a domain added to
// pool.domains joins the pool on SIGHUP: RCPT to it gets 250 and the DNS listener serves
// its MX; a changed policy field is applied and audited as `config`; a removed domain stays
// and is reported; a changed listener address is named as needing a restart; an edit the
// plane refuses (the pool would exceed domains_max) changes nothing and fails the reload.
// Method: the real binary; rewrite its config, SIGHUP, then lettre, dig, the admin API.
#[test]
fn sighup_applies_the_pool_edit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = dir.path().join("tempmx.toml");
    let pool = |domains: &str, messages_max: u64| {
        format!(
            "[pool]\ndomains = [{domains}]\n[pool.policy]\nactive_target = 2\n\
             messages_max = {messages_max}\n[pool.limits]\ndomains_max = 2\n"
        )
    };
    let text = config_text(Some(&data), 3600, &pool("\"a.reload.test\"", 1000));
    std::fs::write(&path, &text).unwrap();
    let app = start(&path);
    let err = app
        .send("user@b.reload.test")
        .expect_err("not a pool domain yet");
    assert!(err.to_string().contains("550"), "{err}");

    let edited = config_text(Some(&data), 3600, &pool("\"b.reload.test\"", 500)).replace(
        "listen = \"127.0.0.1:0\"\ncores",
        "listen = \"127.0.0.1:1\"\ncores",
    );
    std::fs::write(&path, edited).unwrap();
    hup(&app);
    let report = logged(&app, "reload: done", 1);
    assert_eq!(
        field(&report, "applied"),
        "pool.domains, pool.policy",
        "{report}"
    );
    assert_eq!(field(&report, "restart"), "ingress.listen", "{report}");
    let removed = logged(&app, "stay in the pool", 1);
    assert!(removed.to_string().contains("a.reload.test"), "{removed}");

    app.send("user@b.reload.test")
        .expect("250 for the domain added by the reload");
    app.send("user@a.reload.test")
        .expect("250 for the domain removed from the file: it stays");
    assert_eq!(app.dig("b.reload.test", "MX"), "10 mx.tempmx.test.");
    let (_, policy) = app.admin("GET", "/admin/v1/policy", None);
    assert_eq!(policy["messages_max"], 500, "{policy}");
    let (_, audit) = app.admin("GET", "/admin/v1/audit?limit=1000", None);
    let by_config: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "config" && e["reason"].as_str().unwrap().contains("reload"))
        .collect();
    assert_eq!(by_config.len(), 2, "{audit}");

    // A third domain overflows pool.limits.domains_max: neither it nor the policy change
    // of the same edit applies.
    let full = pool("\"b.reload.test\", \"c.reload.test\"", 400);
    std::fs::write(&path, config_text(Some(&data), 3600, &full)).unwrap();
    hup(&app);
    let report = logged(&app, "reload: done", 2);
    assert_eq!(
        field(&report, "failed"),
        "pool.domains, pool.policy",
        "{report}"
    );
    assert_eq!(
        field(&report, "restart"),
        "",
        "failed is not restart: {report}"
    );
    let error = logged(&app, "pool edit not applied", 1);
    assert!(field(&error, "error").contains("pool is full"), "{error}");
    let (_, policy) = app.admin("GET", "/admin/v1/policy", None);
    assert_eq!(policy["messages_max"], 500, "{policy}");
    let (status, _) = app.admin("GET", "/admin/v1/domains/c.reload.test", None);
    assert_eq!(status, 404, "all or nothing: c.reload.test not added");
    assert_eq!(
        metric(&app, "tempmx_config_reloads_total{result=\"failed\"}"),
        Some(1.0)
    );
    app.stop();
}

// Goal: blocklist settings changed in the file take effect with the next cycle, which
// starts within jitter_secs of the reload: a list file added by the reload lists a pool
// domain, and the new interval is in force. Method: the real binary started without lists;
// add a list file naming its domain, SIGHUP, read GET /admin/v1/blocklists.
#[test]
fn sighup_changes_the_blocklists() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("listed.txt");
    std::fs::write(&list, "# local list\na.reload.test\n").unwrap();
    let path = dir.path().join("tempmx.toml");
    let pool = "[pool]\ndomains = [\"a.reload.test\"]\n\
                [pool.policy]\nretire_on_listing = false\nlisting_confirmations = 1\n";
    std::fs::write(&path, config_text(None, 3600, pool)).unwrap();
    let app = start(&path);
    let (_, before) = app.admin("GET", "/admin/v1/blocklists", None);
    assert_eq!(before["lists"], serde_json::json!([]), "{before}");

    let lists = format!("[blocklists]\nfiles = [{list:?}]\ninterval_secs = 30\njitter_secs = 0\n");
    std::fs::write(&path, config_text(None, 3600, &format!("{pool}{lists}"))).unwrap();
    hup(&app);
    let report = logged(&app, "reload: done", 1);
    assert_eq!(field(&report, "applied"), "blocklists", "{report}");
    let status = wait_for(RELOAD_MAX, "a cycle with the new list", || {
        let (_, b) = app.admin("GET", "/admin/v1/blocklists", None);
        (!b["listed"].as_array()?.is_empty()).then_some(b)
    });
    assert_eq!(status["interval_secs"], 30, "{status}");
    assert_eq!(status["lists"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status["listed"][0]["domain"], "a.reload.test", "{status}");
    app.stop();
}
