//! The resolver-health families of mail authentication on `/metrics` of the real binary:
//! present from the start, and following a resolver that stops answering (marked down,
//! probed, checks answered temperror without a query).

mod binary_support;

use std::net::UdpSocket;
use std::time::Duration;

use binary_support::{config_text_auth, start, wait_for};
use lettre::Message;
use lettre::message::Mailbox;

/// Longest wait for the resolver to be marked down and probed.
const WAIT_MAX: Duration = Duration::from_secs(20);
/// Messages sent at most while waiting for the resolver to be marked down.
const MESSAGES_MAX: usize = 20;

/// The value of the series `series` (name and labels, exactly as rendered) in `scrape`.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Sends one message from `from` to `rcpt` over its own SMTP connection.
fn send(app: &binary_support::Running, from: &str, rcpt: &str) {
    let msg = Message::builder()
        .from(from.parse::<Mailbox>().expect("from"))
        .to(rcpt.parse::<Mailbox>().expect("rcpt"))
        .subject("resolver metrics")
        .body("hello\r\n".to_owned())
        .expect("message");
    app.send_message(&msg)
        .expect("record mode takes the mail whatever DNS does");
}

#[test]
fn resolver_health_is_exported_and_follows_a_silent_resolver() {
    // Goal: the four resolver-health families are on /metrics from the first scrape, and a
    // resolver that never answers shows as a down transition, a core marked down,
    // unanswered probes and temperrors answered without a query, while mail still gets
    // 250 (record mode). Method: the real binary with authentication in record mode
    // against a loopback UDP socket that reads nothing (a silent resolver); messages from
    // distinct sender domains (the temperror cache would answer a repeat) until /metrics
    // shows the resolver down, then a wait for a probe.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("silent resolver socket");
    let resolver = silent.local_addr().expect("resolver address");
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = format!(
        "[ingress.auth]\nmode = \"record\"\nnameservers = [\"{resolver}\"]\n\
         dns_timeout_ms = 200\ndns_attempts = 1\ncheck_duration_max_ms = 500\n\
         resolver_unanswered_max = 2\nresolver_probe_interval_ms = 200\n"
    );
    let extra = "[pool]\ndomains = [\"pool.test\"]\n";
    let config = dir.path().join("tempmx.toml");
    std::fs::write(&config, config_text_auth(None, 3600, &auth, extra)).expect("config");
    let app = start(&config);

    let scrape = app.metrics();
    for series in [
        "tempmx_auth_resolver_transitions_total{state=\"down\"}",
        "tempmx_auth_resolver_transitions_total{state=\"up\"}",
        "tempmx_auth_resolver_probes_total{result=\"answered\"}",
        "tempmx_auth_resolver_probes_total{result=\"unanswered\"}",
        "tempmx_auth_resolver_down_temperrors_total",
        "tempmx_auth_resolvers_down",
    ] {
        assert_eq!(value(&scrape, series), Some(0.0), "{series} in:\n{scrape}");
    }

    let mut sent = 0;
    wait_for(WAIT_MAX, "the resolver marked down", || {
        if sent < MESSAGES_MAX {
            send(&app, &format!("a@s{sent}.example.test"), "x@pool.test");
            sent += 1;
        }
        let scrape = app.metrics();
        let down = value(&scrape, "tempmx_auth_resolvers_down")?;
        (down == 1.0).then_some(())
    });
    // Down: the next messages are answered temperror at once, and a probe goes unanswered.
    send(&app, "a@after-down.example.test", "x@pool.test");
    let scrape = wait_for(WAIT_MAX, "an unanswered probe", || {
        let scrape = app.metrics();
        let probes = value(
            &scrape,
            "tempmx_auth_resolver_probes_total{result=\"unanswered\"}",
        )?;
        (probes >= 1.0).then_some(scrape)
    });
    let get = |series: &str| value(&scrape, series).unwrap_or_else(|| panic!("{series}"));
    assert_eq!(
        get("tempmx_auth_resolver_transitions_total{state=\"down\"}"),
        1.0
    );
    assert_eq!(
        get("tempmx_auth_resolver_transitions_total{state=\"up\"}"),
        0.0
    );
    assert!(get("tempmx_auth_resolver_down_temperrors_total") >= 1.0);
    assert_eq!(
        get("tempmx_auth_resolver_probes_total{result=\"answered\"}"),
        0.0
    );
    drop(silent);
    app.stop();
}
