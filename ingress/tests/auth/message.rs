//! DKIM, DMARC and ARC on messages signed in the test, the header, forged headers, the
//! signature bound and timeouts.

use tempmx_ingress::auth::{AuthConfig, AuthMethod, AuthMode, AuthValue};

use crate::common::{
    World, arc_seal, authenticator, config, ed25519_key, ip, message, resinfos, run, sign_ed25519,
    sign_rsa,
};
use crate::support_dns::{Rr, TestDns, Zone};

fn rows(check: &tempmx_ingress::auth::MessageCheck) -> Vec<(String, String, String)> {
    check
        .results()
        .iter()
        .map(|r| (r.method.clone(), r.result.clone(), r.props.clone()))
        .collect()
}

fn row(method: &str, result: &str, props: &str) -> (String, String, String) {
    (method.to_owned(), result.to_owned(), props.to_owned())
}

#[test]
fn dkim_ed25519_and_rsa_pass_and_dmarc_passes_aligned() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Enforce));
        let sender = auth
            .check_sender(ip(2), "client.test", "bounce@other.test")
            .await;
        let signed = sign_rsa(
            "signed.test",
            "rsa",
            &sign_ed25519(&world.ed, "signed.test", "ed", &message("a@signed.test")),
        );
        let check = auth.check_message(&sender, &signed).await;
        assert_eq!(
            rows(&check),
            vec![
                row("spf", "pass", "smtp.mailfrom=other.test"),
                row("dkim", "pass", "header.d=signed.test header.s=rsa"),
                row("dkim", "pass", "header.d=signed.test header.s=ed"),
                row("dmarc", "pass", "header.from=signed.test"),
                row("arc", "none", "smtp.remote-ip=127.0.0.2"),
            ]
        );
        assert_eq!(check.dmarc(), AuthValue::Pass);
        assert!(!check.rejects() && !check.temperror());
        assert_eq!(
            String::from_utf8(check.header().to_vec()).unwrap(),
            "Authentication-Results: mx.tempmx.test;\r\n\
             \tspf=pass smtp.mailfrom=other.test;\r\n\
             \tdkim=pass header.d=signed.test header.s=rsa;\r\n\
             \tdkim=pass header.d=signed.test header.s=ed;\r\n\
             \tdmarc=pass header.from=signed.test;\r\n\
             \tarc=none smtp.remote-ip=127.0.0.2\r\n"
        );
        let (id, infos) = resinfos(check.header());
        assert_eq!(id, "mx.tempmx.test");
        let expected: Vec<String> = check
            .results()
            .iter()
            .map(|r| format!("{}={} {}", r.method, r.result, r.props))
            .collect();
        assert_eq!(infos, expected);
        let snap = auth.counters().snapshot();
        assert_eq!(snap.get(AuthMethod::Dkim, AuthValue::Pass), 2);
        assert_eq!(snap.get(AuthMethod::Dmarc, AuthValue::Pass), 1);
        assert_eq!(snap.get(AuthMethod::Arc, AuthValue::None), 1);
    });
}

#[test]
fn tampered_body_fails_dkim() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Record));
        let sender = auth
            .check_sender(ip(2), "client.test", "a@signed.test")
            .await;
        let mut signed = sign_ed25519(&world.ed, "signed.test", "ed", &message("a@signed.test"));
        let at = signed.len() - 4;
        signed[at] = b'9';
        let check = auth.check_message(&sender, &signed).await;
        let dkim: Vec<_> = rows(&check).into_iter().filter(|r| r.0 == "dkim").collect();
        assert_eq!(dkim.len(), 1);
        assert_ne!(dkim[0].1, "pass", "a changed body never passes");
        assert!(dkim[0].1 == "fail" || dkim[0].1 == "neutral", "{dkim:?}");
        // SPF still aligns, so DMARC passes on SPF.
        assert_eq!(check.dmarc(), AuthValue::Pass);
    });
}

#[test]
fn unsigned_message_gets_one_dkim_none_row() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Record));
        let sender = auth
            .check_sender(ip(2), "client.test", "a@nodmarc.test")
            .await;
        let check = auth
            .check_message(&sender, &message("a@nodmarc.test"))
            .await;
        let dkim: Vec<_> = rows(&check).into_iter().filter(|r| r.0 == "dkim").collect();
        assert_eq!(dkim, vec![row("dkim", "none", "")]);
        assert_eq!(check.dmarc(), AuthValue::None);
        assert_eq!(
            auth.counters()
                .snapshot()
                .get(AuthMethod::Dkim, AuthValue::None),
            1
        );
    });
}

#[test]
fn dmarc_reject_failure_rejects_only_in_enforce_mode() {
    let world = World::start();
    run(async {
        for (mode, rejects) in [(AuthMode::Enforce, true), (AuthMode::Record, false)] {
            let auth = authenticator(&world.config(mode));
            // SPF passes for other.test, which does not align with From: signed.test.
            let sender = auth
                .check_sender(ip(2), "client.test", "a@other.test")
                .await;
            let check = auth.check_message(&sender, &message("a@signed.test")).await;
            assert_eq!(check.dmarc(), AuthValue::Fail);
            assert_eq!(check.rejects(), rejects, "{mode:?}");
            assert!(!check.temperror());
        }
    });
}

#[test]
fn dmarc_p_none_failure_never_rejects() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Enforce));
        let sender = auth
            .check_sender(ip(2), "client.test", "a@other.test")
            .await;
        let check = auth.check_message(&sender, &message("a@lax.test")).await;
        assert_eq!(check.dmarc(), AuthValue::Fail);
        assert!(!check.rejects());
    });
}

#[test]
fn arc_sealed_passes_broken_seal_fails_absent_is_none() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Record));
        let sender = auth
            .check_sender(ip(2), "client.test", "a@other.test")
            .await;
        let signed = sign_ed25519(&world.ed, "signed.test", "ed", &message("a@signed.test"));
        let sealed = arc_seal("relay.test", "arc", &signed);
        let arc = |check: &tempmx_ingress::auth::MessageCheck| {
            check
                .results()
                .iter()
                .find(|r| r.method == "arc")
                .unwrap()
                .result
                .clone()
        };
        assert_eq!(arc(&auth.check_message(&sender, &sealed).await), "pass");
        let mut broken = sealed.clone();
        let at = broken.len() - 4;
        broken[at] = b'0';
        assert_eq!(arc(&auth.check_message(&sender, &broken).await), "fail");
        assert_eq!(arc(&auth.check_message(&sender, &signed).await), "none");
        let snap = auth.counters().snapshot();
        assert_eq!(snap.get(AuthMethod::Arc, AuthValue::Pass), 1);
        assert_eq!(snap.get(AuthMethod::Arc, AuthValue::Fail), 1);
        assert_eq!(snap.get(AuthMethod::Arc, AuthValue::None), 1);
    });
}

#[test]
fn forged_results_with_our_id_are_found_and_others_left() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Record));
        let sender = auth
            .check_sender(ip(2), "client.test", "a@signed.test")
            .await;
        let ours = "Authentication-Results: MX.TEMPMX.TEST;\r\n\tdkim=pass header.d=bank.test\r\n";
        let theirs = "Authentication-Results: relay.test; spf=pass smtp.mailfrom=a.test\r\n";
        let body = message("a@signed.test");
        let msg = [ours.as_bytes(), theirs.as_bytes(), &body].concat();
        let check = auth.check_message(&sender, &msg).await;
        let forged: Vec<_> = check
            .forged_headers()
            .iter()
            .map(|r| (r.start, r.end))
            .collect();
        assert_eq!(forged, vec![(0, ours.len())]);
    });
}

#[test]
fn signatures_over_the_bound_are_permerror_and_not_looked_up() {
    let selectors = ["s1", "s2", "s3", "s4"];
    let keys: Vec<_> = selectors.iter().map(|_| ed25519_key()).collect();
    let mut zone = crate::common::zone();
    for (sel, (_, record)) in selectors.iter().zip(&keys) {
        zone.add(&format!("{sel}._domainkey.signed.test"), Rr::txt(record));
    }
    let dns = TestDns::start(zone);
    let cfg = AuthConfig {
        dkim_signatures_max: 2,
        ..config(&dns, AuthMode::Record)
    };
    run(async {
        let auth = authenticator(&cfg);
        let sender = auth
            .check_sender(ip(2), "client.test", "a@signed.test")
            .await;
        let mut msg = message("a@signed.test");
        for (sel, (der, _)) in selectors.iter().zip(&keys) {
            msg = sign_ed25519(der, "signed.test", sel, &msg);
        }
        let check = auth.check_message(&sender, &msg).await;
        let dkim: Vec<_> = rows(&check).into_iter().filter(|r| r.0 == "dkim").collect();
        // Signatures are prepended, so s4 is first in the header section.
        assert_eq!(
            dkim,
            vec![
                row("dkim", "pass", "header.d=signed.test header.s=s4"),
                row("dkim", "pass", "header.d=signed.test header.s=s3"),
                row("dkim", "permerror", "header.d=signed.test header.s=s2"),
                row("dkim", "permerror", "header.d=signed.test header.s=s1"),
            ]
        );
        assert_eq!(dns.queries_for("s1._domainkey.signed.test"), 0);
        assert_eq!(dns.queries_for("s2._domainkey.signed.test"), 0);
        let snap = auth.counters().snapshot();
        assert_eq!(snap.get(AuthMethod::Dkim, AuthValue::PermError), 2);
    });
}

#[test]
fn silent_dns_makes_unfinished_methods_temperror() {
    let (der, _) = ed25519_key();
    let dns = TestDns::start(Zone::new().silent_all());
    let cfg = AuthConfig {
        check_duration_max_ms: 300,
        dns_timeout_ms: 10_000,
        ..config(&dns, AuthMode::Enforce)
    };
    run(async {
        let auth = authenticator(&cfg);
        let sender = auth
            .check_sender(ip(2), "client.test", "a@signed.test")
            .await;
        let signed = sign_ed25519(&der, "signed.test", "ed", &message("a@signed.test"));
        let check = auth.check_message(&sender, &signed).await;
        assert_eq!(
            rows(&check),
            vec![
                row("spf", "temperror", "smtp.mailfrom=signed.test"),
                row("dkim", "temperror", "header.d=signed.test header.s=ed"),
                row("dmarc", "temperror", "header.from=signed.test"),
                row("arc", "none", "smtp.remote-ip=127.0.0.2"),
            ]
        );
        assert!(check.temperror() && !check.rejects());
        assert_eq!(auth.counters().snapshot().timeouts, 2);
    });
}

#[test]
fn warm_cache_checks_a_repeated_message_without_queries() {
    let world = World::start();
    run(async {
        let auth = authenticator(&world.config(AuthMode::Record));
        let signed = sign_ed25519(&world.ed, "signed.test", "ed", &message("a@signed.test"));
        let sender = auth
            .check_sender(ip(2), "client.test", "a@signed.test")
            .await;
        let first = auth.check_message(&sender, &signed).await;
        assert_eq!(first.dmarc(), AuthValue::Pass);
        let cold = world.dns.queries();
        let sender = auth
            .check_sender(ip(2), "client.test", "a@signed.test")
            .await;
        let second = auth.check_message(&sender, &signed).await;
        assert_eq!(second.results(), first.results());
        assert_eq!(world.dns.queries(), cold, "{:?}", world.dns.queried());
    });
}

// Goal: the DMARC tree walk's parent names that the server refuses (outside its zone, as an
// authoritative-only server such as tempmx's own DNS answers) are asked once and the failure
// is remembered briefly (RFC 9520, `temperror_ttl_seconds`), so a repeated message costs no
// query; with that cache off they are asked again. The walk's failure makes DMARC a temperror, as in mail-auth.
#[test]
fn refused_parent_names_are_remembered() {
    let dns = TestDns::start(
        Zone::new()
            .with("pool.example.test", Rr::txt("v=spf1 ip4:127.0.0.2 -all"))
            .with("_dmarc.pool.example.test", Rr::txt("v=DMARC1; p=reject"))
            .refuse_outside("pool.example.test"),
    );
    for temperror_ttl_seconds in [5, 0] {
        let cfg = AuthConfig {
            temperror_ttl_seconds,
            ..config(&dns, AuthMode::Record)
        };
        run(async {
            let auth = authenticator(&cfg);
            let msg = message("a@pool.example.test");
            let before = dns.queries_for("_dmarc.example.test");
            let sender = auth
                .check_sender(ip(2), "client.test", "a@pool.example.test")
                .await;
            assert_eq!(sender.spf(), AuthValue::Pass);
            let first = auth.check_message(&sender, &msg).await;
            assert_eq!(first.dmarc(), AuthValue::TempError);
            assert!(
                dns.queries_for("_dmarc.example.test") > before,
                "{:?}",
                dns.queried()
            );
            let cold = dns.queries();
            let sender = auth
                .check_sender(ip(2), "client.test", "a@pool.example.test")
                .await;
            let second = auth.check_message(&sender, &msg).await;
            assert_eq!(second.results(), first.results());
            if temperror_ttl_seconds > 0 {
                assert_eq!(dns.queries(), cold, "{:?}", dns.queried());
            } else {
                assert!(
                    dns.queries() > cold,
                    "failures are asked again without the cache"
                );
            }
        });
    }
}

// Goal: parents that do not exist (NXDOMAIN, as a recursive resolver answers for
// `_dmarc.test.`) end in a real verdict, and a repeated message costs no query.
#[test]
fn absent_parent_names_give_a_verdict_and_are_remembered() {
    let dns = TestDns::start(
        Zone::new()
            .with("pool.example.test", Rr::txt("v=spf1 ip4:127.0.0.2 -all"))
            .with("_dmarc.pool.example.test", Rr::txt("v=DMARC1; p=reject")),
    );
    run(async {
        let auth = authenticator(&config(&dns, AuthMode::Enforce));
        let msg = message("a@pool.example.test");
        let sender = auth
            .check_sender(ip(3), "client.test", "a@pool.example.test")
            .await;
        assert_eq!(sender.spf(), AuthValue::Fail);
        let first = auth.check_message(&sender, &msg).await;
        assert_eq!(first.dmarc(), AuthValue::Fail);
        assert!(first.rejects(), "p=reject, enforce");
        assert_eq!(dns.queries_for("_dmarc.test"), 1, "{:?}", dns.queried());
        let cold = dns.queries();
        let sender = auth
            .check_sender(ip(3), "client.test", "a@pool.example.test")
            .await;
        let second = auth.check_message(&sender, &msg).await;
        assert_eq!(second.results(), first.results());
        assert_eq!(dns.queries(), cold, "{:?}", dns.queried());
    });
}
