//! SPF for MAIL FROM and HELO, `trusted()`, enforce verdicts, timeouts and the warm cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tempmx_ingress::auth::{
    AuthConfig, AuthCounters, AuthError, AuthMethod, AuthMode, AuthValue, Authenticator,
    SpfIdentity,
};

use crate::common::{HOSTNAME, World, authenticator, config, ip, run};
use crate::support_dns::{TestDns, Zone};

#[test]
fn spf_pass_fail_softfail_by_client_address() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Enforce));
        let pass = auth.check_sender(ip(2), "client.test", "a@spf.test").await;
        assert_eq!(pass.spf(), AuthValue::Pass);
        assert!(!pass.rejects() && !pass.temperror());
        let fail = auth.check_sender(ip(3), "client.test", "a@spf.test").await;
        assert_eq!(fail.spf(), AuthValue::Fail);
        assert!(fail.rejects(), "enforce rejects an SPF fail");
        let soft = auth.check_sender(ip(9), "client.test", "a@soft.test").await;
        assert_eq!(soft.spf(), AuthValue::SoftFail);
        assert!(!soft.rejects());
        let none = auth
            .check_sender(ip(2), "client.test", "a@unknown.test")
            .await;
        assert_eq!(none.spf(), AuthValue::None);
        let snap = auth.counters().snapshot();
        for value in [
            AuthValue::Pass,
            AuthValue::Fail,
            AuthValue::SoftFail,
            AuthValue::None,
        ] {
            assert_eq!(snap.get(AuthMethod::Spf, value), 1, "{value:?}");
        }
    });
}

#[test]
fn record_mode_never_rejects_spf_fail() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Record));
        let fail = auth.check_sender(ip(3), "client.test", "a@spf.test").await;
        assert_eq!(fail.spf(), AuthValue::Fail);
        assert!(!fail.rejects());
    });
}

#[test]
fn null_sender_checks_the_helo_identity() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Record));
        let pass = auth.check_sender(ip(5), "helo.test", "").await;
        assert_eq!(pass.identity(), SpfIdentity::Helo);
        assert_eq!(pass.spf(), AuthValue::Pass);
        assert_eq!(pass.domain(), "helo.test");
        assert!(
            !pass.trusted(),
            "only the MAIL FROM identity makes a sender trusted"
        );
        let fail = auth.check_sender(ip(6), "helo.test", "").await;
        assert_eq!(fail.spf(), AuthValue::Fail);
        let check = auth
            .check_message(&pass, &crate::common::message("a@helo.test"))
            .await;
        assert_eq!(check.results()[0].props, "smtp.helo=helo.test");
    });
}

#[test]
fn trusted_needs_spf_pass_and_a_dmarc_record() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Record));
        assert!(
            auth.check_sender(ip(2), "c.test", "a@spf.test")
                .await
                .trusted()
        );
        assert!(
            auth.check_sender(ip(2), "c.test", "a@mail.org.test")
                .await
                .trusted(),
            "the organizational domain's record counts"
        );
        assert!(
            !auth
                .check_sender(ip(2), "c.test", "a@nodmarc.test")
                .await
                .trusted()
        );
        assert!(
            !auth
                .check_sender(ip(3), "c.test", "a@spf.test")
                .await
                .trusted()
        );
    });
}

#[test]
fn silent_nameserver_gives_temperror_within_the_check_bound() {
    let dns = TestDns::start(Zone::new().silent_all());
    let cfg = AuthConfig {
        check_duration_max_ms: 300,
        dns_timeout_ms: 10_000,
        ..config(&dns, AuthMode::Enforce)
    };
    run(async {
        let auth = authenticator(&cfg);
        let started = Instant::now();
        let sender = auth.check_sender(ip(3), "client.test", "a@spf.test").await;
        // The check bound (300 ms), not the 10 s DNS timeout, ended the check.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(sender.spf(), AuthValue::TempError);
        assert!(sender.temperror() && !sender.rejects() && !sender.trusted());
        assert!(dns.queries() >= 1, "the server read the query");
        let snap = auth.counters().snapshot();
        assert_eq!(snap.timeouts, 1);
        assert_eq!(snap.get(AuthMethod::Spf, AuthValue::TempError), 1);
    });
}

#[test]
fn warm_cache_answers_a_repeated_sender_without_queries() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Record));
        let first = auth.check_sender(ip(2), "client.test", "a@spf.test").await;
        assert!(first.trusted());
        let cold = world.dns.queries();
        assert!(cold >= 2, "SPF and DMARC records were looked up: {cold}");
        let second = auth.check_sender(ip(2), "client.test", "b@spf.test").await;
        assert!(second.trusted());
        assert_eq!(world.dns.queries(), cold, "{:?}", world.dns.queried());
        let third = auth.check_sender(ip(3), "client.test", "b@spf.test").await;
        assert_eq!(third.spf(), AuthValue::Fail);
        assert_eq!(world.dns.queries(), cold);
    });
}

#[test]
fn invalid_config_names_the_key() {
    let counters = Arc::new(AuthCounters::new());
    let bad = [
        (
            AuthConfig {
                cache_entries: 0,
                ..AuthConfig::default()
            },
            "cache_entries",
        ),
        (
            AuthConfig {
                check_duration_max_ms: 0,
                ..AuthConfig::default()
            },
            "check_duration_max_ms",
        ),
        (
            AuthConfig {
                dns_attempts: 0,
                ..AuthConfig::default()
            },
            "dns_attempts",
        ),
        (
            AuthConfig {
                authserv_id: "a b;c".into(),
                ..AuthConfig::default()
            },
            "authserv_id",
        ),
        (
            AuthConfig {
                negative_ttl_seconds: 86_401,
                ..AuthConfig::default()
            },
            "negative_ttl_seconds",
        ),
    ];
    run(async {
        for (cfg, key) in bad {
            match Authenticator::new(&cfg, HOSTNAME, counters.clone()) {
                Err(err @ AuthError::Config { .. }) => {
                    assert!(
                        err.to_string().contains(&format!("ingress.auth.{key}")),
                        "{err}"
                    )
                }
                Err(other) => panic!("{key}: {other}"),
                Ok(_) => panic!("{key} accepted"),
            }
        }
        let at_limit = AuthConfig {
            negative_ttl_seconds: 86_400,
            nameservers: vec!["127.0.0.1:9".parse().unwrap()],
            ..AuthConfig::default()
        };
        assert!(Authenticator::new(&at_limit, HOSTNAME, counters.clone()).is_ok());
    });
}

#[test]
fn off_mode_checks_nothing() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Off));
        let sender = auth.check_sender(ip(3), "client.test", "a@spf.test").await;
        assert_eq!(sender.spf(), AuthValue::None);
        assert!(!sender.rejects());
        let mut msg = b"Authentication-Results: mx.tempmx.test; spf=pass\r\n".to_vec();
        msg.extend_from_slice(&crate::common::message("a@spf.test"));
        let check = auth.check_message(&sender, &msg).await;
        assert!(check.results().is_empty() && check.header().is_empty());
        assert_eq!(
            check.forged_headers().len(),
            1,
            "forged headers are found even when off"
        );
        assert_eq!(world.dns.queries(), 0);
        assert_eq!(auth.counters().snapshot(), Default::default());
    });
}
