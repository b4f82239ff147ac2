//! Shared set-up: keys, signing, the test zone and an authenticator aimed at it.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults};
use rustls::pki_types::pem::PemObject;
use tempmx_ingress::auth::{AuthConfig, AuthCounters, AuthMode, Authenticator};

use crate::support_dns::{Rr, TestDns, Zone};

pub const HOSTNAME: &str = "mx.tempmx.test";
const RSA_PEM: &str = include_str!("../data/dkim-rsa2048.pem");
const RSA_PUBLIC_B64: &str = include_str!("../data/dkim-rsa2048.pub.b64");

/// 127.0.0.x, the client address a test claims to connect from.
pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Runs a future on a fresh current-thread runtime, like one ingress core.
pub fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A fresh ed25519 key: (PKCS#8 DER, DNS TXT record).
pub fn ed25519_key() -> (Vec<u8>, String) {
    let der = Ed25519Key::generate_pkcs8().unwrap();
    let public = Ed25519Key::from_pkcs8_der(&der).unwrap().public_key();
    (der, format!("v=DKIM1; k=ed25519; p={}", base64(&public)))
}

/// The DNS TXT record of the RSA test key.
pub fn rsa_record() -> String {
    format!("v=DKIM1; k=rsa; p={}", RSA_PUBLIC_B64.trim())
}

fn rsa_key() -> RsaKey<Sha256> {
    let der = rustls::pki_types::PrivateKeyDer::from_pem_slice(RSA_PEM.as_bytes()).unwrap();
    RsaKey::<Sha256>::from_key_der(der).unwrap()
}

const SIGNED_HEADERS: [&str; 5] = ["From", "To", "Subject", "Date", "Message-ID"];

/// `message` with an ed25519-sha256 DKIM-Signature prepended.
pub fn sign_ed25519(der: &[u8], domain: &str, selector: &str, message: &[u8]) -> Vec<u8> {
    let signer = DkimSigner::from_key(Ed25519Key::from_pkcs8_der(der).unwrap())
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS);
    prepend(signer.sign(message).unwrap().to_header(), message)
}

/// `message` with an rsa-sha256 DKIM-Signature prepended.
pub fn sign_rsa(domain: &str, selector: &str, message: &[u8]) -> Vec<u8> {
    let signer = DkimSigner::from_key(rsa_key())
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS);
    prepend(signer.sign(message).unwrap().to_header(), message)
}

/// `message` sealed as ARC instance 1 by `domain`/`selector` with the RSA key.
pub fn arc_seal(domain: &str, selector: &str, message: &[u8]) -> Vec<u8> {
    let parsed = AuthenticatedMessage::parse(message).unwrap();
    let results = AuthenticationResults::new("relay.test");
    let set = ArcSealer::from_key(rsa_key())
        .domain(domain)
        .selector(selector)
        .headers(["From", "To", "Subject", "DKIM-Signature"])
        .seal(&parsed, &results, &ArcOutput::default())
        .unwrap();
    prepend(set.to_header(), message)
}

fn prepend(header: String, message: &[u8]) -> Vec<u8> {
    let mut out = header.into_bytes();
    out.extend_from_slice(message);
    out
}

/// A plain message from `from`.
pub fn message(from: &str) -> Vec<u8> {
    format!(
        "From: Sender <{from}>\r\nTo: user@pool.test\r\nSubject: Your code\r\n\
         Date: Mon, 1 Jun 2026 10:00:00 +0000\r\nMessage-ID: <1@{host}>\r\n\r\n\
         Your verification code is 123456.\r\n",
        host = from.rsplit_once('@').map_or("x.test", |(_, d)| d)
    )
    .into_bytes()
}

/// The test world: SPF, DKIM keys and DMARC policies of the test domains.
pub struct World {
    pub dns: TestDns,
    pub ed: Vec<u8>,
}

impl World {
    pub fn start() -> World {
        let (ed, ed_record) = ed25519_key();
        let zone = zone().with("ed._domainkey.signed.test", Rr::txt(&ed_record));
        World {
            dns: TestDns::start(zone),
            ed,
        }
    }

    pub fn config(&self, mode: AuthMode) -> AuthConfig {
        config(&self.dns, mode)
    }
}

/// Records shared by most tests.
pub fn zone() -> Zone {
    Zone::new()
        .with("spf.test", Rr::txt("v=spf1 ip4:127.0.0.2 -all"))
        .with("_dmarc.spf.test", Rr::txt("v=DMARC1; p=reject"))
        .with("soft.test", Rr::txt("v=spf1 ip4:127.0.0.2 ~all"))
        .with("helo.test", Rr::txt("v=spf1 ip4:127.0.0.5 -all"))
        .with("_dmarc.helo.test", Rr::txt("v=DMARC1; p=none"))
        .with("nodmarc.test", Rr::txt("v=spf1 ip4:127.0.0.2 -all"))
        .with("mail.org.test", Rr::txt("v=spf1 ip4:127.0.0.2 -all"))
        .with("_dmarc.org.test", Rr::txt("v=DMARC1; p=quarantine"))
        .with("other.test", Rr::txt("v=spf1 ip4:127.0.0.2 -all"))
        .with("_dmarc.signed.test", Rr::txt("v=DMARC1; p=reject"))
        .with("signed.test", Rr::txt("v=spf1 ip4:127.0.0.2 -all"))
        .with("rsa._domainkey.signed.test", Rr::txt(&rsa_record()))
        .with("_dmarc.lax.test", Rr::txt("v=DMARC1; p=none"))
        .with("arc._domainkey.relay.test", Rr::txt(&rsa_record()))
}

/// A config aimed at `dns` only.
pub fn config(dns: &TestDns, mode: AuthMode) -> AuthConfig {
    AuthConfig {
        mode,
        nameservers: vec![dns.addr()],
        dns_timeout_ms: 2_000,
        dns_attempts: 1,
        check_duration_max_ms: 10_000,
        ..AuthConfig::default()
    }
}

/// An authenticator with its own counters; call inside the test's runtime.
pub fn authenticator(cfg: &AuthConfig) -> Authenticator {
    Authenticator::new(cfg, HOSTNAME, Arc::new(AuthCounters::new())).unwrap()
}

/// Standard base64 with padding (DKIM `p=`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Unfolds a header field and returns its resinfos after the authserv-id, e.g. `spf=pass …`.
pub fn resinfos(header: &[u8]) -> (String, Vec<String>) {
    let text = String::from_utf8(header.to_vec()).unwrap();
    let unfolded = text.trim_end_matches("\r\n").replace("\r\n\t", " ");
    let value = unfolded
        .strip_prefix("Authentication-Results:")
        .unwrap()
        .trim();
    let mut parts = value.split(';').map(|p| p.trim().to_owned());
    let id = parts.next().unwrap();
    (id, parts.collect())
}
