//! Resolver outages: a loopback DNS server that reads queries and never answers (over UDP,
//! or over TCP after a truncated UDP reply) must not hold the reply to a message for longer
//! than the check deadline, must be marked down and then asked nothing but probes, and must
//! be used again once it answers. Checked on the authenticator and through real SMTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};
use parking_lot::Mutex;
use tempmx_ingress::auth::{AuthConfig, AuthMethod, AuthMode, AuthValue};
use tempmx_ingress::driver::{self, IngressHandle};
use tempmx_ingress::policy::{DomainStatus, Policy, PoolSnapshot, RecipientMode};
use tempmx_ingress::{Backend, IngressConfig};
use tempmx_store::{Accepted, Commit, MessageId, MessageSink, NewMessage, StoreError};

use crate::common::{HOSTNAME, authenticator, config, ip, message, run, zone};
use crate::support_dns::{Rr, TestDns, Zone};

/// The pool domain of the SMTP tests.
const POOL: &str = "pool.test";
/// Messages one test sink keeps.
const SINK_MESSAGES_MAX: usize = 200;
/// Longest a test waits for anything to change (a probe, a stored message).
const WAIT_MAX: Duration = Duration::from_secs(10);

/// A config for outage tests: short DNS timeout and deadline, quick probes.
fn outage_config(dns: &TestDns, mode: AuthMode) -> AuthConfig {
    AuthConfig {
        dns_timeout_ms: 250,
        dns_attempts: 1,
        check_duration_max_ms: 600,
        temperror_ttl_seconds: 1,
        resolver_unanswered_max: 2,
        resolver_probe_interval_ms: 200,
        ..config(dns, mode)
    }
}

// Goal: a silent resolver is marked down after `resolver_unanswered_max` cut checks; then
// checks answer temperror without asking it anything but probes, and once it answers again a
// probe brings it up and results are real. Method: the authenticator against a loopback DNS
// server that is muted, then unmuted on the same address; queries counted by the server.
#[test]
fn a_silent_resolver_is_marked_down_probed_and_used_again_once_it_answers() {
    let dns = TestDns::start(zone().with("back.test", Rr::txt("v=spf1 ip4:127.0.0.2 -all")));
    dns.set_muted(true);
    let cfg = outage_config(&dns, AuthMode::Record);
    run(async {
        let auth = authenticator(&cfg);
        // Two domains: a second check of the same one would be answered by the temperror cache.
        for from in ["a@spf.test", "a@soft.test"] {
            let started = Instant::now();
            let sender = auth.check_sender(ip(2), "client.test", from).await;
            assert_eq!(sender.spf(), AuthValue::TempError);
            let bound = Duration::from_millis(cfg.check_duration_max_ms) + Duration::from_secs(1);
            assert!(started.elapsed() < bound, "{:?}", started.elapsed());
        }
        let snap = auth.counters().snapshot();
        assert_eq!((snap.resolver_down, snap.resolvers_down), (1, 1));

        // Down: temperror at once, and the server hears nothing but probes (`.` NS).
        let before = dns.queried().len();
        for n in 0..20 {
            let from = format!("u{n}@signed.test");
            let sender = auth.check_sender(ip(2), "client.test", &from).await;
            assert_eq!(sender.spf(), AuthValue::TempError);
            let check = auth.check_message(&sender, &message(&from)).await;
            assert_eq!(check.dmarc(), AuthValue::TempError);
            assert!(!check.rejects());
            let header = String::from_utf8_lossy(check.header()).into_owned();
            assert!(header.contains("spf=temperror"), "{header}");
            assert!(header.contains("dmarc=temperror"), "{header}");
            assert!(header.contains("dkim=none"), "unsigned: {header}");
        }
        let asked: Vec<_> = dns.queried().split_off(before);
        assert!(
            asked.iter().all(|(name, _)| name == "."),
            "only probes while down: {asked:?}"
        );
        let snap = auth.counters().snapshot();
        assert_eq!(snap.down_temperrors, 40, "20 sender and 20 message checks");
        assert_eq!(snap.get(AuthMethod::Dmarc, AuthValue::TempError), 20);

        // Back: the next check due a probe starts it; an answered probe brings it up.
        dns.set_muted(false);
        let waited = Instant::now();
        while auth.counters().snapshot().resolver_up == 0 {
            assert!(waited.elapsed() < WAIT_MAX, "no probe brought it back");
            auth.check_sender(ip(2), "client.test", "a@nodmarc.test")
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let snap = auth.counters().snapshot();
        assert!(
            snap.probes_answered >= 1 && snap.resolvers_down == 0,
            "{snap:?}"
        );
        let sender = auth.check_sender(ip(2), "client.test", "a@back.test").await;
        assert_eq!(sender.spf(), AuthValue::Pass);
        let sender = auth
            .check_sender(ip(2), "client.test", "a@signed.test")
            .await;
        assert_eq!(sender.spf(), AuthValue::Pass);
        let check = auth.check_message(&sender, &message("a@signed.test")).await;
        assert_eq!(check.dmarc(), AuthValue::Pass);
    });
}

// Goal: a name whose lookup timed out is a temperror for `temperror_ttl_seconds` without a
// second query, while other names are still looked up and the resolver is not marked down.
// Method: a loopback DNS server that never answers queries for one name only.
#[test]
fn a_failed_name_is_remembered_briefly_and_the_resolver_stays_up() {
    let dns = TestDns::start(
        zone()
            .with("_dmarc.dead.test", Rr::txt("v=DMARC1; p=none"))
            .silent("dead.test"),
    );
    let cfg = AuthConfig {
        temperror_ttl_seconds: 60,
        ..outage_config(&dns, AuthMode::Record)
    };
    run(async {
        let auth = authenticator(&cfg);
        let first = auth.check_sender(ip(2), "client.test", "a@dead.test").await;
        assert_eq!(first.spf(), AuthValue::TempError);
        let asked = dns.queries_for("dead.test");
        assert!(asked >= 1);
        let started = Instant::now();
        let second = auth.check_sender(ip(2), "client.test", "b@dead.test").await;
        assert_eq!(second.spf(), AuthValue::TempError);
        assert_eq!(
            dns.queries_for("dead.test"),
            asked,
            "answered from the cache"
        );
        assert!(
            started.elapsed() < Duration::from_millis(cfg.dns_timeout_ms),
            "{:?}",
            started.elapsed()
        );
        let other = auth.check_sender(ip(2), "client.test", "a@spf.test").await;
        assert_eq!(other.spf(), AuthValue::Pass);
        let snap = auth.counters().snapshot();
        assert_eq!(snap.resolver_down, 0, "{snap:?}");
    });
}

// Goal: limits of the new keys: check_duration_max_ms 1..=60000, temperror_ttl_seconds
// at most 300, resolver_unanswered_max and resolver_probe_interval_ms at least 1; the values
// at the limits are accepted. Method: build authenticators from each config.
#[test]
fn outage_keys_are_checked_at_their_limits() {
    let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let base = AuthConfig {
        nameservers: vec![server],
        ..AuthConfig::default()
    };
    let bad = [
        (
            AuthConfig {
                check_duration_max_ms: 60_001,
                ..base.clone()
            },
            "check_duration_max_ms",
        ),
        (
            AuthConfig {
                temperror_ttl_seconds: 301,
                ..base.clone()
            },
            "temperror_ttl_seconds",
        ),
        (
            AuthConfig {
                resolver_unanswered_max: 0,
                ..base.clone()
            },
            "resolver_unanswered_max",
        ),
        (
            AuthConfig {
                resolver_probe_interval_ms: 0,
                ..base.clone()
            },
            "resolver_probe_interval_ms",
        ),
    ];
    let at_limit = AuthConfig {
        check_duration_max_ms: 60_000,
        temperror_ttl_seconds: 300,
        resolver_unanswered_max: 1,
        resolver_probe_interval_ms: 1,
        ..base.clone()
    };
    run(async {
        for (cfg, key) in bad {
            let Err(err) = tempmx_ingress::auth::Authenticator::new(
                &cfg,
                HOSTNAME,
                Arc::new(Default::default()),
            ) else {
                panic!("{key} accepted");
            };
            assert!(
                err.to_string().contains(&format!("ingress.auth.{key}")),
                "{err}"
            );
        }
        let built = tempmx_ingress::auth::Authenticator::new(
            &at_limit,
            HOSTNAME,
            Arc::new(Default::default()),
        );
        assert!(built.is_ok(), "{:?}", built.err());
    });
}

/// What the test sink kept of one message.
#[derive(Clone, Debug)]
struct Kept {
    trace_headers: String,
    auth: Vec<(String, String)>,
}

impl Kept {
    /// The stored result of `method` (the first row of it).
    fn result(&self, method: &str) -> Option<&str> {
        self.auth
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, r)| r.as_str())
    }
}

/// A bounded in-memory sink that keeps the authentication part of each message.
struct KeepingSink {
    kept: Arc<Mutex<Vec<Kept>>>,
    next_id: u64,
}

impl MessageSink for KeepingSink {
    fn accept(&mut self, msg: &NewMessage<'_>) -> Result<Accepted, StoreError> {
        let mut kept = self.kept.lock();
        if kept.len() >= SINK_MESSAGES_MAX {
            return Err(StoreError::Io(std::io::Error::other("test sink full")));
        }
        kept.push(Kept {
            trace_headers: String::from_utf8_lossy(msg.trace_headers).into_owned(),
            auth: msg
                .auth
                .iter()
                .map(|r| (r.method.clone(), r.result.clone()))
                .collect(),
        });
        self.next_id += 1;
        Ok(Accepted {
            id: MessageId(self.next_id),
            commit: Commit::Done,
        })
    }
}

/// A one-core ingress on 127.0.0.1 with `auth` on `backend`, and what it stored.
fn serve(backend: Backend, auth: AuthConfig) -> (IngressHandle, Arc<Mutex<Vec<Kept>>>) {
    let config = IngressConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        hostname: HOSTNAME.to_owned(),
        cores: 1,
        backend,
        read_buffers_per_core: 8,
        shutdown_grace_ms: 200,
        auth,
        ..IngressConfig::default()
    };
    let snapshot = PoolSnapshot::new(
        [(
            tempmx_store::Domain::parse(POOL).unwrap(),
            DomainStatus::Active,
        )],
        RecipientMode::CatchAll,
    );
    let kept = Arc::new(Mutex::new(Vec::new()));
    let sink = KeepingSink {
        kept: Arc::clone(&kept),
        next_id: 0,
    };
    let policy = Arc::new(Policy::new(snapshot, None));
    let handle = driver::start(&config, policy, vec![Box::new(sink)]).unwrap();
    (handle, kept)
}

/// Sends one message from `from` with lettre (one connection); returns how long the whole
/// transaction took, 250 included.
fn send(addr: SocketAddr, from: &str) -> Duration {
    let mailer = SmtpTransport::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .timeout(Some(WAIT_MAX))
        .build();
    let email = Message::builder()
        .from(from.parse::<Mailbox>().unwrap())
        .to(format!("user@{POOL}").parse::<Mailbox>().unwrap())
        .subject("Your code")
        .body("Your verification code is 123456.".to_owned())
        .unwrap();
    let started = Instant::now();
    let response = mailer.send(&email).unwrap();
    assert!(response.is_positive(), "{response:?}");
    started.elapsed()
}

/// Waits (bounded) until the sink holds `n` messages; returns them.
fn wait_kept(kept: &Mutex<Vec<Kept>>, n: usize) -> Vec<Kept> {
    let started = Instant::now();
    loop {
        let now = kept.lock().clone();
        if now.len() >= n || started.elapsed() > WAIT_MAX {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The zone of the SMTP tests: lettre connects from 127.0.0.1.
fn smtp_zone() -> Zone {
    Zone::new()
        .with("back.test", Rr::txt("v=spf1 ip4:127.0.0.1 -all"))
        .with("_dmarc.back.test", Rr::txt("v=DMARC1; p=reject"))
}

// Goal: in record mode with a resolver that reads and never answers over UDP, every message
// gets its 250 within the check deadline (plus slack), is stored with spf and dmarc
// `temperror`, the resolver is marked down so later messages cost it no query; once it
// answers again the results become real. Method: `driver::start` on 127.0.0.1 (one core)
// with a loopback DNS server muted then unmuted, lettre as the client.
mod record_mode_answers_250_within_the_deadline_while_the_resolver_is_silent {
    #[test]
    fn uring() {
        super::record_mode_answers_250_within_the_deadline_while_the_resolver_is_silent(
            tempmx_ingress::Backend::Uring,
        );
    }
    #[test]
    fn epoll() {
        super::record_mode_answers_250_within_the_deadline_while_the_resolver_is_silent(
            tempmx_ingress::Backend::Epoll,
        );
    }
}

fn record_mode_answers_250_within_the_deadline_while_the_resolver_is_silent(backend: Backend) {
    let dns = TestDns::start(smtp_zone());
    dns.set_muted(true);
    let auth = outage_config(&dns, AuthMode::Record);
    let bound = Duration::from_millis(auth.check_duration_max_ms) + Duration::from_secs(2);
    let (handle, kept) = serve(backend, auth);
    let reader = handle.counters_reader();
    for n in 0..10 {
        let took = send(handle.local_addr(), &format!("u{n}@back.test"));
        assert!(took < bound, "message {n}: {took:?}");
        if n == 3 {
            assert_eq!(reader.auth().resolver_down, 1, "{:?}", reader.auth());
        }
    }
    let stored = wait_kept(&kept, 10);
    assert_eq!(stored.len(), 10);
    for m in &stored {
        assert_eq!(m.result("spf"), Some("temperror"), "{m:?}");
        assert_eq!(m.result("dmarc"), Some("temperror"), "{m:?}");
        assert_eq!(m.result("dkim"), Some("none"), "{m:?}");
        assert!(m.trace_headers.contains("spf=temperror"), "{m:?}");
    }
    let snap = reader.auth();
    assert!(snap.down_temperrors >= 12, "{snap:?}");

    dns.set_muted(false);
    let started = Instant::now();
    let real = loop {
        assert!(started.elapsed() < WAIT_MAX, "results never became real");
        let before = kept.lock().len();
        send(handle.local_addr(), "again@back.test");
        let last = wait_kept(&kept, before + 1).pop().unwrap();
        if last.result("spf") == Some("pass") {
            break last;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(real.result("dmarc"), Some("pass"), "{real:?}");
    assert!(
        real.trace_headers
            .contains("spf=pass smtp.mailfrom=back.test"),
        "{real:?}"
    );
    let snap = reader.auth();
    assert_eq!((snap.resolver_up, snap.resolvers_down), (1, 0), "{snap:?}");
    handle.shutdown();
}

// Goal: enforce mode with a resolver that answers UDP only with truncated replies and
// accepts TCP but never answers keeps its rule that a temperror never refuses: every
// message gets 250 within the deadline bound, stored with temperror results, and the
// resolver is marked down. Method: as above, with the TCP-silent loopback DNS server.
mod enforce_mode_accepts_within_the_deadline_when_the_resolver_is_silent_over_tcp {
    #[test]
    fn uring() {
        super::enforce_mode_accepts_within_the_deadline_when_the_resolver_is_silent_over_tcp(
            tempmx_ingress::Backend::Uring,
        );
    }
    #[test]
    fn epoll() {
        super::enforce_mode_accepts_within_the_deadline_when_the_resolver_is_silent_over_tcp(
            tempmx_ingress::Backend::Epoll,
        );
    }
}

fn enforce_mode_accepts_within_the_deadline_when_the_resolver_is_silent_over_tcp(backend: Backend) {
    let dns = TestDns::start(smtp_zone().silent_over_tcp());
    let auth = outage_config(&dns, AuthMode::Enforce);
    let bound = Duration::from_millis(auth.check_duration_max_ms) + Duration::from_secs(2);
    let (handle, kept) = serve(backend, auth);
    for n in 0..6 {
        let took = send(handle.local_addr(), &format!("u{n}@back.test"));
        assert!(took < bound, "message {n}: {took:?}");
    }
    let stored = wait_kept(&kept, 6);
    assert_eq!(stored.len(), 6);
    for m in &stored {
        assert_eq!(m.result("spf"), Some("temperror"), "{m:?}");
        assert_eq!(m.result("dmarc"), Some("temperror"), "{m:?}");
    }
    let snap = handle.counters_reader().auth();
    assert_eq!(snap.resolver_down, 1, "{snap:?}");
    assert!(dns.queries() >= 1, "the server read the queries");
    handle.shutdown();
}
