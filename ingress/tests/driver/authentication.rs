//! Authentication and greylisting through the real listener: clients bound to different
//! 127.0.0.x addresses, SPF/DKIM/DMARC records served by a loopback DNS server.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rustls::pki_types::pem::PemObject;
use tempmx_ingress::Backend;
use tempmx_ingress::auth::AuthMode;

use crate::on_both_backends;
use crate::support::{DOMAIN, Raw, Server};
use crate::support_dns::{Rr, TestDns, Zone};

const RSA_PEM: &str = include_str!("../data/dkim-rsa2048.pem");
const RSA_PUBLIC_B64: &str = include_str!("../data/dkim-rsa2048.pub.b64");

on_both_backends!(
    record_mode_adds_results_and_rejects_nothing,
    enforce_mode_rejects_spf_fail_and_dmarc_reject,
    forged_results_are_removed,
    greylisting_defers_then_accepts_the_retry,
);

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// sender.test lets 127.0.0.2 send and publishes p=reject; signed.test has a DKIM key.
fn zone() -> Zone {
    Zone::new()
        .with("sender.test", Rr::txt("v=spf1 ip4:127.0.0.2 -all"))
        .with("_dmarc.sender.test", Rr::txt("v=DMARC1; p=reject"))
        .with("signed.test", Rr::txt("v=spf1 -all"))
        .with("_dmarc.signed.test", Rr::txt("v=DMARC1; p=reject"))
        .with(
            "rsa._domainkey.signed.test",
            Rr::txt(&format!("v=DKIM1; k=rsa; p={}", RSA_PUBLIC_B64.trim())),
        )
        .with("plain.test", Rr::txt("v=spf1 ?all"))
}

fn start(backend: Backend, dns: &TestDns, mode: AuthMode, greylist_delay: Option<u64>) -> Server {
    Server::start(backend, |c| {
        c.auth.mode = mode;
        c.auth.nameservers = vec![dns.addr()];
        c.auth.dns_timeout_ms = 1_000;
        c.auth.check_duration_max_ms = 3_000;
        if let Some(delay) = greylist_delay {
            c.greylist.enabled = true;
            c.greylist.delay_secs = delay;
        }
    })
}

fn message(from: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <u@{DOMAIN}>\r\nSubject: code\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <1@x>\r\n\r\nYour code is 123456.\r\n"
    )
}

fn sign(message: &str) -> String {
    let der = rustls::pki_types::PrivateKeyDer::from_pem_slice(RSA_PEM.as_bytes()).expect("pem");
    let key = RsaKey::<Sha256>::from_key_der(der).expect("rsa key");
    let signature = DkimSigner::from_key(key)
        .domain("signed.test")
        .selector("rsa")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(message.as_bytes())
        .expect("sign");
    format!("{}{message}", signature.to_header())
}

/// One transaction from `source`; returns the MAIL reply and, if MAIL passed, the final one.
fn send(server: &Server, source: IpAddr, mail_from: &str, body: &str) -> (String, Option<String>) {
    let mut c = Raw::connect_from(server.addr, source);
    c.cmd("EHLO client.test", "250");
    let mail = c.cmd(&format!("MAIL FROM:<{mail_from}>"), "");
    if !mail.starts_with("250") {
        return (mail, None);
    }
    c.cmd(&format!("RCPT TO:<u@{DOMAIN}>"), "250");
    c.cmd("DATA", "354");
    c.send(body.as_bytes());
    let end = c.cmd(".", "");
    c.cmd("QUIT", "221");
    (mail, Some(end))
}

// Goal: in record mode every message is accepted and carries our Authentication-Results
// header and the structured results, with SPF pass/fail decided by the real source address.
fn record_mode_adds_results_and_rejects_nothing(backend: Backend) {
    let dns = TestDns::start(zone());
    let server = start(backend, &dns, AuthMode::Record, None);
    let (_, end) = send(&server, ip(2), "a@sender.test", &message("a@sender.test"));
    assert!(end.is_some_and(|r| r.starts_with("250")));
    let (_, end) = send(&server, ip(3), "a@sender.test", &message("a@sender.test"));
    assert!(end.is_some_and(|r| r.starts_with("250")));
    let signed = sign(&message("b@signed.test"));
    let (_, end) = send(&server, ip(4), "b@signed.test", &signed);
    assert!(end.is_some_and(|r| r.starts_with("250")));

    let stored = server.shelf.wait_for(3);
    let result = |i: usize, method: &str| {
        stored[i]
            .auth
            .iter()
            .find(|r| r.method == method)
            .map(|r| r.result.clone())
    };
    assert_eq!(result(0, "spf").as_deref(), Some("pass"));
    assert_eq!(result(0, "dmarc").as_deref(), Some("pass"));
    assert_eq!(result(1, "spf").as_deref(), Some("fail"));
    assert_eq!(result(1, "dmarc").as_deref(), Some("fail"));
    assert_eq!(result(2, "dkim").as_deref(), Some("pass"));
    assert_eq!(result(2, "dmarc").as_deref(), Some("pass"));
    let trace = String::from_utf8_lossy(&stored[0].trace_headers).into_owned();
    assert!(
        trace.starts_with("Authentication-Results: mx.tempmx.test;"),
        "{trace}"
    );
    assert!(
        trace.contains("spf=pass smtp.mailfrom=sender.test"),
        "{trace}"
    );
    assert!(trace.contains("\r\nReceived: from client.test"), "{trace}");
}

// Goal: enforce refuses SPF fail at MAIL (550 5.7.23) and a DMARC p=reject failure after
// the data (550 5.7.1), and accepts what passes.
fn enforce_mode_rejects_spf_fail_and_dmarc_reject(backend: Backend) {
    let dns = TestDns::start(zone());
    let server = start(backend, &dns, AuthMode::Enforce, None);
    let (mail, _) = send(&server, ip(3), "a@sender.test", &message("a@sender.test"));
    assert!(mail.starts_with("550 5.7.23"), "{mail}");
    // SPF is neutral for plain.test and nothing aligns with the From: domain (p=reject).
    let (mail, end) = send(&server, ip(5), "x@plain.test", &message("boss@sender.test"));
    assert!(mail.starts_with("250"), "{mail}");
    assert!(
        end.as_deref().is_some_and(|r| r.starts_with("550 5.7.1")),
        "{end:?}"
    );
    let (_, end) = send(&server, ip(2), "a@sender.test", &message("a@sender.test"));
    assert!(
        end.as_deref().is_some_and(|r| r.starts_with("250")),
        "{end:?}"
    );
    let stored = server.shelf.wait_for(1);
    assert_eq!(stored.len(), 1);
    let counters = server.handle().counters();
    assert_eq!(counters.rejected_spf, 1);
    assert_eq!(counters.rejected_dmarc, 1);
}

// Goal: a forged Authentication-Results field with our authserv-id is removed before storing.
fn forged_results_are_removed(backend: Backend) {
    let dns = TestDns::start(zone());
    let server = start(backend, &dns, AuthMode::Record, None);
    let forged = format!(
        "Authentication-Results: mx.tempmx.test; dkim=pass header.d=bank.test\r\n{}",
        message("a@sender.test")
    );
    let (_, end) = send(&server, ip(2), "a@sender.test", &forged);
    assert!(end.is_some_and(|r| r.starts_with("250")));
    let stored = server.shelf.wait_for(1);
    let body = String::from_utf8_lossy(&stored[0].body).into_owned();
    assert!(!body.contains("bank.test"), "{body}");
    assert!(body.starts_with("From: <a@sender.test>"), "{body}");
}

// Goal: greylisting defers an unknown sender with 451 4.7.1 and a retry hint, lets its retry
// through after the delay, and lets a trusted sender (SPF pass + DMARC) through at once.
fn greylisting_defers_then_accepts_the_retry(backend: Backend) {
    let dns = TestDns::start(zone());
    let server = start(backend, &dns, AuthMode::Record, Some(1));
    let rcpt = |source: IpAddr, from: &str| {
        let mut c = Raw::connect_from(server.addr, source);
        c.cmd("EHLO client.test", "250");
        c.cmd(&format!("MAIL FROM:<{from}>"), "250");
        let reply = c.cmd(&format!("RCPT TO:<u@{DOMAIN}>"), "");
        c.cmd("QUIT", "221");
        reply
    };
    let first = rcpt(ip(6), "bulk@plain.test");
    assert!(first.starts_with("451 4.7.1"), "{first}");
    assert!(first.contains("in 1 seconds"), "{first}");
    std::thread::sleep(Duration::from_millis(1_100));
    let retry = rcpt(ip(6), "bulk@plain.test");
    assert!(retry.starts_with("250"), "{retry}");
    let trusted = rcpt(ip(2), "codes@sender.test");
    assert!(trusted.starts_with("250"), "{trusted}");
    let stats = server.handle().counters();
    assert_eq!(stats.greylisted, 1);
}
