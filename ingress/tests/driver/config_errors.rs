//! Start-up refuses bad configurations with a typed error, before any thread runs.

use std::io::Write;

use tempmx_ingress::Backend;
use tempmx_ingress::driver::{self, IngressError};
use tempmx_ingress::tls::TlsError;

use crate::support::{NullSink, config, policy};

// Goal: no sinks (no cores) is a config error.
#[test]
fn no_cores_is_an_error() {
    let err = driver::start(&config(Backend::Epoll), policy(), Vec::new())
        .err()
        .expect("error");
    assert!(matches!(err, IngressError::Config(_)), "{err}");
}

// Goal: only a cert without a key, or an unreadable PEM, is a TLS error naming the problem.
#[test]
fn bad_tls_files_are_errors() {
    let mut half = config(Backend::Epoll);
    half.tls.cert_path = Some("/nonexistent/cert.pem".into());
    let err = tempmx_ingress::tls::server_config(&half.tls, "mx.test").expect_err("half");
    assert!(matches!(err, TlsError::HalfConfigured), "{err}");

    let mut missing = half.clone();
    missing.tls.key_path = Some("/nonexistent/key.pem".into());
    let err = tempmx_ingress::tls::server_config(&missing.tls, "mx.test").expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");

    let mut empty = tempfile::NamedTempFile::new().expect("tempfile");
    empty.write_all(b"not a pem\n").expect("write");
    let mut no_cert = half.clone();
    no_cert.tls.cert_path = Some(empty.path().to_owned());
    no_cert.tls.key_path = Some(empty.path().to_owned());
    let err = tempmx_ingress::tls::server_config(&no_cert.tls, "mx.test").expect_err("empty");
    assert!(matches!(err, TlsError::NoCertificate(_)), "{err}");
}

// Goal: a port already taken by a non-reuseport socket is refused as in use.
#[test]
fn bind_conflict_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut cfg = config(Backend::Epoll);
    cfg.cores = 1;
    cfg.listen = taken.local_addr().expect("addr");
    let sinks = vec![Box::new(NullSink) as Box<dyn tempmx_store::MessageSink + Send>];
    let err = driver::start(&cfg, policy(), sinks)
        .err()
        .expect("bind error");
    assert!(matches!(err, IngressError::AddrInUse { .. }), "{err}");
}
