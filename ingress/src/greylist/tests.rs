//! Greylist tests with a controlled clock (the table never reads the system clock).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;
use proptest::prelude::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn cfg() -> GreylistConfig {
    GreylistConfig {
        enabled: true,
        stripes: 4,
        entries_max: 64,
        clients_max: 16,
        ..GreylistConfig::default()
    }
}

/// The mailbox of a test address, leaked so requests built from literals can borrow it.
fn mailbox(address: &str) -> &'static Mailbox {
    Box::leak(Box::new(Mailbox::parse(address).unwrap()))
}

fn domain(name: &str) -> Domain {
    Domain::parse(name).unwrap()
}

fn req<'a>(client: &str, sender: &'a str, recipient: &str) -> GreyRequest<'a> {
    GreyRequest {
        client: client.parse().unwrap(),
        sender,
        recipient: mailbox(recipient),
        sender_trusted: false,
    }
}

const DEFER_60: GreyVerdict = GreyVerdict::Defer { retry_in_secs: 60 };
const RETRIED: GreyVerdict = GreyVerdict::Pass(PassReason::Retried);
const KNOWN: GreyVerdict = GreyVerdict::Pass(PassReason::Known);

/// Defers at `at`, passes at `at + 60`: one triplet through greylisting.
fn pass_triplet(g: &Greylist, r: &GreyRequest<'_>, at: u64) {
    assert_eq!(g.check(r, t(at)), DEFER_60);
    assert_eq!(g.check(r, t(at + 60)), RETRIED);
}

#[test]
fn state_machine_with_a_controlled_clock() {
    let g = Greylist::new(&cfg()).unwrap();
    let r = req("127.0.0.1", "a@b.test", "u@pool.test");
    assert_eq!(g.check(&r, t(0)), DEFER_60);
    assert_eq!(g.check(&r, t(10)), GreyVerdict::Defer { retry_in_secs: 50 });
    let just_before = t(59) + Duration::from_millis(999);
    assert_eq!(
        g.check(&r, just_before),
        GreyVerdict::Defer { retry_in_secs: 1 }
    );
    assert_eq!(g.check(&r, t(60)), RETRIED, "exactly at the delay");
    assert_eq!(g.check(&r, t(61)), KNOWN);
    let s = g.stats();
    assert_eq!(s.deferred, 3);
    assert_eq!(s.passed[PassReason::Retried as usize], 1);
    assert_eq!(s.passed[PassReason::Known as usize], 1);
    assert_eq!(s.entries, 1);
    assert_eq!(s.delay.count, 1);
    assert!((s.delay.sum_secs - 60.0).abs() < 1e-9);
}

#[test]
fn inside_and_after_the_retry_window() {
    let g = Greylist::new(&cfg()).unwrap();
    let inside = req("127.0.0.1", "a@b.test", "in@pool.test");
    assert_eq!(g.check(&inside, t(0)), DEFER_60);
    assert_eq!(g.check(&inside, t(14_400)), RETRIED, "window end is inside");
    let late = req("127.0.0.1", "a@b.test", "late@pool.test");
    assert_eq!(g.check(&late, t(0)), DEFER_60);
    assert_eq!(
        g.check(&late, t(14_401)),
        DEFER_60,
        "after the window: start over"
    );
    assert_eq!(g.check(&late, t(14_461)), RETRIED);
}

#[test]
fn pass_lifetime_expiry_starts_over() {
    let g = Greylist::new(&GreylistConfig {
        auto_allow_after: 0,
        ..cfg()
    })
    .unwrap();
    let r = req("127.0.0.1", "a@b.test", "u@pool.test");
    pass_triplet(&g, &r, 0);
    let life = 3_110_400;
    assert_eq!(g.check(&r, t(60 + life)), KNOWN, "last use refreshed");
    assert_eq!(g.check(&r, t(60 + 2 * life)), KNOWN);
    assert_eq!(g.check(&r, t(61 + 3 * life)), DEFER_60, "stale: start over");
}

#[test]
fn clock_going_backwards_never_panics() {
    let g = Greylist::new(&cfg()).unwrap();
    let r = req("127.0.0.1", "a@b.test", "u@pool.test");
    assert_eq!(g.check(&r, t(1000)), DEFER_60);
    assert_eq!(g.check(&r, t(0)), DEFER_60);
    assert_eq!(g.check(&r, UNIX_EPOCH - Duration::from_secs(5)), DEFER_60);
    assert_eq!(g.check(&r, t(1060)), RETRIED);
}

#[test]
fn auto_allowlist_after_n_passes_from_one_slash_24() {
    let g = Greylist::new(&cfg()).unwrap();
    for (i, client) in ["127.0.0.1", "127.0.0.2", "127.0.0.3"].iter().enumerate() {
        let rcpt = format!("u{i}@pool.test");
        pass_triplet(&g, &req(client, "a@b.test", &rcpt), 0);
    }
    // A new triplet from the same /24 skips greylisting; another /24 does not.
    let fresh = req("127.0.0.200", "new@other.test", "v@pool.test");
    let allowed = GreyVerdict::Pass(PassReason::AutoAllowlisted);
    assert_eq!(g.check(&fresh, t(100)), allowed);
    let other = req("127.0.1.1", "new@other.test", "v@pool.test");
    assert_eq!(g.check(&other, t(100)), DEFER_60);
    // The allowlisting expires a pass lifetime after its last use.
    assert_eq!(g.check(&fresh, t(100 + 3_110_400)), allowed);
    assert_eq!(g.check(&fresh, t(101 + 2 * 3_110_400)), DEFER_60);
}

#[test]
fn two_passes_are_not_enough_for_three() {
    let g = Greylist::new(&cfg()).unwrap();
    pass_triplet(&g, &req("127.0.0.1", "a@b.test", "1@pool.test"), 0);
    pass_triplet(&g, &req("127.0.0.1", "a@b.test", "2@pool.test"), 0);
    let r = req("127.0.0.1", "a@b.test", "3@pool.test");
    assert_eq!(g.check(&r, t(100)), DEFER_60);
}

#[test]
fn ipv6_groups_by_64() {
    let g = Greylist::new(&cfg()).unwrap();
    // Same /64, different hosts: one triplet.
    assert_eq!(
        g.check(&req("::1", "a@b.test", "u@pool.test"), t(0)),
        DEFER_60
    );
    assert_eq!(
        g.check(&req("::2", "a@b.test", "u@pool.test"), t(60)),
        RETRIED
    );
    // Another /64: a new triplet.
    let other = req("0:0:0:1::1", "a@b.test", "u@pool.test");
    assert_eq!(g.check(&other, t(61)), DEFER_60);
}

#[test]
fn allow_networks_v4_and_v6() {
    let g = Greylist::new(&GreylistConfig {
        allow_networks: vec!["127.0.0.0/30".into(), "::1".into(), "fd00::/8".into()],
        ..cfg()
    })
    .unwrap();
    let allowed = GreyVerdict::Pass(PassReason::AllowNetwork);
    for client in ["127.0.0.1", "127.0.0.3", "::1", "fd12::5"] {
        assert_eq!(
            g.check(&req(client, "a@b.test", "u@pool.test"), t(0)),
            allowed
        );
    }
    for client in ["127.0.0.4", "::2"] {
        assert_eq!(
            g.check(&req(client, "a@b.test", "u@pool.test"), t(0)),
            DEFER_60
        );
    }
    assert_eq!(g.stats().passed[PassReason::AllowNetwork as usize], 4);
}

#[test]
fn trusted_bypass_on_and_off() {
    let trusted = GreyRequest {
        sender_trusted: true,
        ..req("127.0.0.1", "codes@bank.test", "u@pool.test")
    };
    let on = Greylist::new(&cfg()).unwrap();
    let pass = GreyVerdict::Pass(PassReason::Trusted);
    assert_eq!(on.check(&trusted, t(0)), pass);
    let off = Greylist::new(&GreylistConfig {
        bypass_authenticated: false,
        ..cfg()
    })
    .unwrap();
    assert_eq!(off.check(&trusted, t(0)), DEFER_60);
}

#[test]
fn sender_variants_share_one_triplet() {
    let g = Greylist::new(&cfg()).unwrap();
    let first = req("127.0.0.1", "bounce+123@list.test", "u@pool.test");
    assert_eq!(g.check(&first, t(0)), DEFER_60);
    let retry = req("127.0.0.9", "Bounce+456@LIST.test", "u@pool.test");
    assert_eq!(g.check(&retry, t(60)), RETRIED);
    let null = req("127.0.0.1", "", "u@pool.test");
    assert_eq!(g.check(&null, t(60)), DEFER_60, "<> is its own sender");
}

#[test]
fn lru_bound_on_triplets_counts_evictions() {
    let c = GreylistConfig {
        entries_max: 8,
        stripes: 2,
        ..cfg()
    };
    let g = Greylist::new(&c).unwrap();
    for i in 0..100 {
        let rcpt = format!("u{i}@pool.test");
        assert_eq!(
            g.check(&req("127.0.0.1", "a@b.test", &rcpt), t(0)),
            DEFER_60
        );
        let s = g.stats();
        assert!(s.entries <= 8);
        assert_eq!(s.entries as usize, g.triplets.len());
    }
    let s = g.stats();
    assert_eq!(s.entries, 8, "each stripe full");
    assert_eq!(s.evicted, 92);
}

#[test]
fn lru_bound_on_clients() {
    let c = GreylistConfig {
        clients_max: 4,
        stripes: 2,
        ..cfg()
    };
    let g = Greylist::new(&c).unwrap();
    for i in 0..20u8 {
        let client = format!("127.0.{i}.1");
        pass_triplet(&g, &req(&client, "a@b.test", "u@pool.test"), 0);
        let clients = g.clients.as_ref().unwrap();
        assert!(clients.len() <= 4);
        assert_eq!(g.stats().clients as usize, clients.len());
    }
    let s = g.stats();
    assert_eq!(s.clients, 4);
    assert_eq!(s.clients_evicted, 16);
}

#[test]
fn lock_timeout_fails_open() {
    let g = Greylist::new(&GreylistConfig {
        stripes: 1,
        lock_wait_ms: 1,
        auto_allow_after: 0,
        ..cfg()
    })
    .unwrap();
    let r = req("127.0.0.1", "a@b.test", "u@pool.test");
    let held = g.triplets.stripe_for_test(0).lock();
    assert_eq!(g.check(&r, t(0)), GreyVerdict::Pass(PassReason::FailedOpen));
    drop(held);
    assert_eq!(g.check(&r, t(0)), DEFER_60);
    let s = g.stats();
    assert_eq!(s.passed[PassReason::FailedOpen as usize], 1);
    assert_eq!(s.lock_timeouts, 1);
}

#[test]
fn client_lock_timeout_fails_open() {
    let g = Greylist::new(&GreylistConfig {
        stripes: 1,
        lock_wait_ms: 0,
        ..cfg()
    })
    .unwrap();
    let held = g.clients.as_ref().unwrap().stripe_for_test(0).lock();
    let r = req("127.0.0.1", "a@b.test", "u@pool.test");
    assert_eq!(g.check(&r, t(0)), GreyVerdict::Pass(PassReason::FailedOpen));
    drop(held);
}

#[test]
fn domains_and_activity() {
    let off = Greylist::new(&GreylistConfig::default()).unwrap();
    assert!(!off.is_active());
    assert!(!off.applies_to(&domain("pool.test")));
    let some = Greylist::new(&GreylistConfig {
        domains: vec!["Pool.Test".into()],
        ..GreylistConfig::default()
    })
    .unwrap();
    assert!(some.is_active());
    assert!(some.applies_to(&domain("pool.test")));
    assert!(!some.applies_to(&domain("other.test")));
    let all = Greylist::new(&cfg()).unwrap();
    assert!(all.is_active() && all.applies_to(&domain("anything.test")));
    // A greylisted domain is a pool domain by the store's rule: no root dot, no IP.
    for bad in ["pool.test.", "127.0.0.1"] {
        let err = Greylist::new(&GreylistConfig {
            domains: vec![bad.into()],
            ..GreylistConfig::default()
        })
        .err()
        .unwrap();
        assert!(matches!(err, GreylistError::BadDomain { .. }), "{bad}");
    }
}

#[test]
fn config_errors_name_their_key() {
    for bad in ["127.0.0.0/33", "not-a-net", "2001:db8::/129", ""] {
        let err = Greylist::new(&GreylistConfig {
            allow_networks: vec![bad.into()],
            ..cfg()
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ingress.greylist.allow_networks"), "{msg}");
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
    }
    let err = Greylist::new(&GreylistConfig {
        stripes: 0,
        ..cfg()
    })
    .unwrap_err();
    assert!(matches!(err, GreylistError::ZeroStripes));
    let err = Greylist::new(&GreylistConfig {
        delay_secs: 14_400,
        ..cfg()
    })
    .unwrap_err();
    assert!(matches!(err, GreylistError::DelayNotBelowWindow { .. }));
    let err = Greylist::new(&GreylistConfig {
        domains: vec![" ".into()],
        ..cfg()
    })
    .unwrap_err();
    assert!(err.to_string().contains("ingress.greylist.domains"));
}

#[test]
fn labels_follow_the_index_order() {
    for (i, reason) in PassReason::ALL.iter().enumerate() {
        assert_eq!(*reason as usize, i);
    }
    let labels: Vec<_> = PassReason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(
        labels,
        [
            "allow_network",
            "trusted",
            "auto_allowlisted",
            "known",
            "retried",
            "failed_open"
        ]
    );
}

#[test]
fn greylist_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Greylist>();
}

#[test]
fn retries_from_another_thread_see_the_first_attempt() {
    let g = std::sync::Arc::new(Greylist::new(&cfg()).unwrap());
    let r = req("127.0.0.1", "a@b.test", "u@pool.test");
    assert_eq!(g.check(&r, t(0)), DEFER_60);
    let other = std::sync::Arc::clone(&g);
    let verdict = std::thread::spawn(move || {
        other.check(&req("127.0.0.1", "a@b.test", "u@pool.test"), t(60))
    })
    .join()
    .unwrap();
    assert_eq!(verdict, RETRIED);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_checks_never_panic_nor_exceed_bounds(
        ops in proptest::collection::vec(
            (0u8..6, 0u8..4, 0u8..5, 0u8..3, any::<bool>(), -100_000i64..5_000_000),
            1..200,
        ),
        entries_max in 3usize..12,
        clients_max in 3usize..6,
        stripes in 1usize..4,
    ) {
        let c = GreylistConfig {
            enabled: true,
            entries_max,
            clients_max,
            stripes,
            delay_secs: 30,
            retry_window_secs: 600,
            pass_lifetime_secs: 3_600,
            auto_allow_after: 2,
            allow_networks: vec!["127.0.5.0/24".into()],
            ..GreylistConfig::default()
        };
        let g = Greylist::new(&c).unwrap();
        let senders = ["", "a@b.test", "prvs=1=x@y.test", "SRS0=h=t=d.test=l@f.test", "n42@q.test"];
        let mut clock: i64 = 1_700_000_000;
        for (net, host, sender, rcpt, trusted, step) in ops {
            clock = (clock + step / 1000).max(0);
            let client = format!("127.0.{net}.{host}");
            let rcpt = format!("r{rcpt}@pool.test");
            let r = GreyRequest {
                client: client.parse().unwrap(),
                sender: senders[usize::from(sender)],
                recipient: mailbox(&rcpt),
                sender_trusted: trusted,
            };
            let now = UNIX_EPOCH + Duration::from_secs(clock.unsigned_abs());
            if let GreyVerdict::Defer { retry_in_secs } = g.check(&r, now) {
                prop_assert!((1..=30).contains(&retry_in_secs));
            }
            let s = g.stats();
            prop_assert!(s.entries as usize <= entries_max);
            prop_assert!(s.clients as usize <= clients_max);
            prop_assert_eq!(s.entries as usize, g.triplets.len());
        }
    }
}

/// Shared state that answers every step with one fixed result at once: the ingress side
/// of the hand-off is tested here; the real state (Redis) in the `tempmx` crate's tests.
#[derive(Debug)]
struct Fixed {
    key: [u8; 16],
    answer: Result<GreyStep, SharedError>,
}

impl SharedState for Fixed {
    fn fingerprint_key(&self) -> [u8; 16] {
        self.key
    }

    fn step(&self, _: SharedStep) -> SharedFuture {
        let answer = self.answer.clone();
        Box::pin(async move { answer })
    }
}

fn shared(key: u8, answer: Result<GreyStep, SharedError>) -> Greylist {
    let state = Arc::new(Fixed {
        key: [key; 16],
        answer,
    });
    Greylist::shared(&cfg(), state).unwrap()
}

#[test]
fn shared_state_gets_the_same_fingerprints_on_every_node() {
    // Goal: with shared state, allow networks and trusted senders are answered at once;
    // every other recipient becomes a step whose fingerprints depend only on the fleet's
    // key and the triplet (two nodes agree, another key differs), with the configured
    // timing. Method: two greylists with the same key, one with another.
    let mut c = cfg();
    c.allow_networks = vec!["192.0.2.0/24".into()];
    let node = |key| {
        Greylist::shared(
            &c,
            Arc::new(Fixed {
                key: [key; 16],
                answer: Ok(GreyStep::Known),
            }),
        )
        .unwrap()
    };
    let (a, b, other) = (node(7), node(7), node(8));
    assert!(a.is_shared());
    let allowed = req("192.0.2.9", "x@y.test", "u@pool.test");
    assert_eq!(
        a.begin(&allowed, t(0)),
        GreyCheck::Done(GreyVerdict::Pass(PassReason::AllowNetwork))
    );
    let mut trusted = req("198.51.100.1", "x@y.test", "u@pool.test");
    trusted.sender_trusted = true;
    assert_eq!(
        a.begin(&trusted, t(0)),
        GreyCheck::Done(GreyVerdict::Pass(PassReason::Trusted))
    );
    let r = req("198.51.100.1", "x@y.test", "u@pool.test");
    let (GreyCheck::Shared(sa), GreyCheck::Shared(sb), GreyCheck::Shared(so)) =
        (a.begin(&r, t(5)), b.begin(&r, t(5)), other.begin(&r, t(5)))
    else {
        panic!("a step for the shared state");
    };
    assert_eq!(sa, sb, "two nodes of one fleet hash alike");
    assert_ne!(sa.triplet, so.triplet, "another key, other fingerprints");
    assert_eq!(sa.now_ms, 1_700_000_005_000);
    assert_eq!(
        (sa.timing.delay_ms, sa.timing.auto_allow_after),
        (60_000, 3)
    );
    // The same network, another sender: same network fingerprint, another triplet.
    let GreyCheck::Shared(s2) = a.begin(&req("198.51.100.77", "z@y.test", "u@pool.test"), t(5))
    else {
        panic!("a step");
    };
    assert_eq!(s2.network, sa.network);
    assert_ne!(s2.triplet, sa.triplet);
    // `check` cannot wait for the shared state: it never passes such a recipient.
    assert_eq!(a.check(&r, t(5)), GreyVerdict::Unavailable);
}

#[test]
fn shared_answers_map_to_verdicts_and_errors_fail_closed() {
    // Goal: each answer of the shared state becomes its verdict (a defer in ms rounds up
    // to whole seconds, at least 1; a retried pass records its delay) and an error is
    // `Unavailable` (451 4.3.0), counted. Method: fixed answers, resolved on a runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let step = |g: &Greylist| match g.begin(&req("198.51.100.1", "x@y.test", "u@pool.test"), t(0)) {
        GreyCheck::Shared(s) => s,
        other => panic!("{other:?}"),
    };
    let cases = [
        (
            Ok(GreyStep::Defer { retry_in_ms: 1 }),
            GreyVerdict::Defer { retry_in_secs: 1 },
        ),
        (
            Ok(GreyStep::Defer {
                retry_in_ms: 59_001,
            }),
            DEFER_60,
        ),
        (Ok(GreyStep::Retried { waited_ms: 61_000 }), RETRIED),
        (Ok(GreyStep::Known), KNOWN),
        (
            Ok(GreyStep::AutoAllowlisted),
            GreyVerdict::Pass(PassReason::AutoAllowlisted),
        ),
        (
            Err(SharedError("cluster down".into())),
            GreyVerdict::Unavailable,
        ),
    ];
    for (answer, want) in cases {
        let g = shared(1, answer);
        let s = step(&g);
        assert_eq!(rt.block_on(g.resolve(s)), want);
        let stats = g.stats();
        match want {
            GreyVerdict::Unavailable => assert_eq!(stats.unavailable, 1),
            GreyVerdict::Pass(PassReason::Retried) => assert_eq!(stats.delay.count, 1),
            _ => assert_eq!(stats.unavailable, 0),
        }
    }
    // A greylist without shared state cannot resolve a step: unavailable, not a pass.
    let local = Greylist::new(&cfg()).unwrap();
    let s = step(&shared(1, Ok(GreyStep::Known)));
    assert_eq!(rt.block_on(local.resolve(s)), GreyVerdict::Unavailable);
}
