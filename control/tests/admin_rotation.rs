//! The full rotation scenario against a DNS blocklist served on loopback by hickory-server:
//! a domain becomes listed, is confirmed after N checks, rotates out, a pending domain is
//! promoted, the ingress snapshot and DNS snapshot follow, and the state survives a restart.

mod admin_support;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use admin_support::{Harness, open_plane, plane_config};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use serde_json::json;
use tempmx::api::admin::AdminAuth;
use tempmx::blocklist::{BlocklistConfig, DnsblZone};
use tempmx::mailboxes::Registry;
use tempmx::pool::{
    COUNTS_SAVE_SECS, ControlPlane, DomainState, ManualClock, MessageCounters, PlaneConfig,
};
use tempmx_dns::ZoneState;
use tempmx_ingress::policy::DomainStatus;

/// Serves zone `dbl.test` on 127.0.0.1 (UDP) with the given `<name> A <addr>` records.
async fn dnsbl(records: &[(&str, [u8; 4])]) -> (SocketAddr, Server<Catalog>) {
    let origin = Name::from_str("dbl.test.").expect("origin");
    let mut zone: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        Name::from_str("ns.dbl.test.").expect("mname"),
        Name::from_str("hostmaster.dbl.test.").expect("rname"),
        1,
        3600,
        600,
        86400,
        1,
    );
    zone.upsert_mut(Record::from_rdata(origin.clone(), 1, RData::SOA(soa)), 1);
    for (name, [a, b, c, d]) in records {
        let name = Name::from_str(&format!("{name}.dbl.test.")).expect("name");
        zone.upsert_mut(
            Record::from_rdata(name, 1, RData::A(A::new(*a, *b, *c, *d))),
            1,
        );
    }
    let mut catalog = Catalog::new();
    catalog.upsert(
        LowerName::new(&origin),
        vec![Arc::new(zone) as Arc<dyn ZoneHandler>],
    );
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp bind");
    let addr = socket.local_addr().expect("addr");
    let mut server = Server::new(catalog);
    server.register_socket(socket);
    (addr, server)
}

/// A pool of `a.pool.test` saved in `data_dir`.
fn config_in(data_dir: &std::path::Path) -> PlaneConfig {
    let mut c = plane_config(&["a.pool.test"]);
    c.data_dir = Some(data_dir.to_owned());
    c
}

/// Checking the `dbl.test` zone served at `ns`.
fn dnsbl_config(ns: SocketAddr) -> BlocklistConfig {
    BlocklistConfig {
        zones: vec![DnsblZone {
            zone: "dbl.test".into(),
            codes: Default::default(),
        }],
        nameservers: vec![ns],
        interval_secs: 10,
        jitter_secs: 0,
        timeout_ms: 2_000,
        ..BlocklistConfig::default()
    }
}

// Goal: listing → confirmation after 2 checks → drain + promotion → retirement after the
// drain, seen through the admin API, the ingress snapshot, the DNS snapshot and the audit
// log; error codes never count; then a restart reloads the same pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_rotates_domain_out() {
    let (ns, mut server) = dnsbl(&[
        ("a.pool.test", [127, 0, 1, 2]),
        ("err.pool.test", [127, 255, 255, 254]),
    ])
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let h = Harness::start_checking(
        config_in(dir.path()),
        dnsbl_config(ns),
        AdminAuth {
            loopback: true,
            ..AdminAuth::default()
        },
    )
    .await;
    let r = h
        .call(
            "POST",
            "/admin/v1/domains",
            None,
            Some(r#"{"domains":["b.pool.test"]}"#),
        )
        .await;
    assert_eq!(r.status, 201);
    h.clock.advance(1);
    h.call(
        "POST",
        "/admin/v1/domains",
        None,
        Some(r#"{"domains":["c.pool.test","err.pool.test"]}"#),
    )
    .await;

    // First listed answer: not confirmed yet (listing_confirmations = 2).
    let r = h
        .call(
            "POST",
            "/admin/v1/blocklists/check",
            None,
            Some(r#"{"domain":"a.pool.test"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json["results"][0]["outcome"],
        json!({"status":"listed","reason":"spam domain"})
    );
    assert_eq!(r.json["listing"], serde_json::Value::Null);
    assert_eq!(
        h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("a.pool.test").expect("test domain")),
        Some(DomainStatus::Active)
    );

    // The periodic cycle gives the second listed answer: confirmed, rotated out, b promoted.
    h.blocklists.check_cycle().await;
    let a = h
        .call("GET", "/admin/v1/domains/a.pool.test", None, None)
        .await;
    assert_eq!(
        (&a.json["state"], &a.json["listing"]["list"]),
        (&json!("draining"), &json!("dbl.test"))
    );
    assert_eq!(a.json["blocklists"][0]["consecutive"], 2);
    let snap = h.policy.snapshot();
    assert_eq!(
        snap.status(&tempmx_store::Domain::parse("a.pool.test").expect("test domain")),
        Some(DomainStatus::Draining)
    );
    assert_eq!(
        snap.status(&tempmx_store::Domain::parse("b.pool.test").expect("test domain")),
        Some(DomainStatus::Active),
        "oldest pending promoted"
    );
    assert_eq!(
        snap.status(&tempmx_store::Domain::parse("c.pool.test").expect("test domain")),
        Some(DomainStatus::Pending)
    );

    // A 127.255.255.x answer is an error, never a listing.
    for _ in 0..3 {
        h.blocklists
            .check_now(&tempmx_store::Domain::parse("err.pool.test").expect("test domain"))
            .await;
    }
    let e = h
        .call("GET", "/admin/v1/domains/err.pool.test", None, None)
        .await;
    assert_eq!(
        (&e.json["state"], &e.json["listing"]),
        (&json!("pending"), &serde_json::Value::Null)
    );
    assert_eq!(e.json["blocklists"][0]["last"]["status"], "error");
    let bl = h.call("GET", "/admin/v1/blocklists", None, None).await;
    assert_eq!(bl.json["listed"][0]["domain"], "a.pool.test");
    assert_eq!(bl.json["last_cycle"]["listed"], 1);

    // After the drain period the domain is retired; DNS serves it a null MX.
    h.clock.advance(h.plane.policy().drain_secs);
    h.plane.tick();
    assert_eq!(
        h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("a.pool.test").expect("test domain")),
        Some(DomainStatus::Retired)
    );
    let last_zone = h
        .zones
        .lock()
        .last()
        .cloned()
        .expect("dns snapshot published");
    assert!(last_zone.domains.contains(&(
        tempmx_store::Domain::parse("a.pool.test").expect("test domain"),
        ZoneState::Retired
    )));
    assert!(last_zone.domains.contains(&(
        tempmx_store::Domain::parse("b.pool.test").expect("test domain"),
        ZoneState::Serving
    )));

    let audit = h
        .call("GET", "/admin/v1/audit?limit=1000", None, None)
        .await;
    let actors: Vec<(String, String)> = audit.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_owned(),
                e["domain"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for want in [
        ("rule:listing", "a.pool.test"),
        ("rule:promote", "b.pool.test"),
        ("rule:drain-complete", "a.pool.test"),
    ] {
        assert!(
            actors.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} in {actors:?}"
        );
    }

    // Restart from the same data directory: the same pool, not the configured one.
    let before = h.plane.pool();
    let reopened = open_plane(
        config_in(dir.path()),
        Arc::new(ManualClock::new(admin_support::T0)),
    );
    assert_eq!(reopened.pool(), before);
    server.shutdown_gracefully().await.expect("dns shutdown");
}

// Goal: `run` checks on its own schedule (first cycle at once with zero jitter), rotates,
// and stops when told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_loop_checks_and_stops() {
    let (ns, mut server) = dnsbl(&[("a.pool.test", [127, 0, 1, 4])]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config_in(dir.path());
    config.policy.listing_confirmations = 1;
    let h = Harness::start_checking(config, dnsbl_config(ns), AdminAuth::default()).await;
    h.plane
        .add_domains(&["b.pool.test".into()], DomainState::Pending, "spare")
        .expect("add");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let counters = Arc::new(MessageCounters::new(1));
    let ticks = tokio::spawn(h.plane.clone().run(counters, stopped.clone()));
    let task = tokio::spawn(h.blocklists.clone().run(stopped));
    let mut rotated = false;
    for _ in 0..100 {
        if h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("b.pool.test").expect("test domain"))
            == Some(DomainStatus::Active)
        {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        rotated,
        "the run loop checked and promoted b.pool.test within 5 s"
    );
    assert_eq!(
        h.plane
            .domain(&tempmx_store::Domain::parse("a.pool.test").expect("test domain"))
            .expect("a")
            .domain
            .listing
            .map(|l| l.reason),
        Some("phish domain".to_owned())
    );
    stop.send(true).expect("stop");
    for task in [ticks, task] {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops in time")
            .expect("joins");
    }
    server.shutdown_gracefully().await.expect("dns shutdown");
}

// Goal: a corrupt or missing-but-expected state file stops the start with a clear error.
#[test]
fn bad_state_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = plane_config(&["a.pool.test"]);
    config.data_dir = Some(dir.path().to_owned());
    let clock = || Arc::new(ManualClock::new(admin_support::T0));
    let registry = || Arc::new(Registry::new(admin_support::MAILBOXES_MAX));
    drop(open_plane(config.clone(), clock()));
    let state = dir.path().join("control").join("state.json");
    std::fs::write(&state, b"{\"format\":1,").expect("corrupt");
    let err = ControlPlane::open(config.clone(), clock(), registry())
        .err()
        .expect("corrupt file refused");
    assert!(err.to_string().contains("corrupt"), "{err}");
    std::fs::remove_file(&state).expect("remove");
    std::fs::write(dir.path().join("control").join("other"), b"x").expect("other file");
    let err = ControlPlane::open(config, clock(), registry())
        .err()
        .expect("missing file refused");
    assert!(err.to_string().contains("no state.json"), "{err}");
}

// Goal: the message and age limits rotate through the plane with a controlled clock, the
// fed message counter is saved lazily at the next tick, and the registry's mailboxes are
// counted per domain and survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_and_age_limits_rotate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = plane_config(&["a.pool.test"]);
    config.data_dir = Some(dir.path().to_owned());
    config.policy.messages_max = Some(3);
    config.policy.active_age_max_secs = Some(3600);
    let h = Harness::start(config.clone(), AdminAuth::default()).await;
    let spares = ["b.pool.test".to_owned(), "c.pool.test".to_owned()];
    h.plane
        .add_domains(&spares, DomainState::Pending, "spares")
        .expect("add");
    let now = tempmx::mailboxes::now_ms();
    h.mailboxes
        .register(
            &tempmx_store::Mailbox::parse("x@a.pool.test").expect("test address"),
            now,
            now + 60_000,
        )
        .expect("mailbox");

    h.plane.record_messages(
        &tempmx_store::Domain::parse("a.pool.test").expect("test domain"),
        2,
        admin_support::T0,
    );
    h.plane.tick();
    assert_eq!(
        h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("a.pool.test").expect("test domain")),
        Some(DomainStatus::Active)
    );
    h.plane.record_messages(
        &tempmx_store::Domain::parse("a.pool.test").expect("test domain"),
        1,
        admin_support::T0,
    );
    h.plane.tick();
    assert_eq!(
        h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("a.pool.test").expect("test domain")),
        Some(DomainStatus::Draining)
    );
    assert_eq!(
        h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("b.pool.test").expect("test domain")),
        Some(DomainStatus::Active)
    );
    let stats = h
        .call("GET", "/admin/v1/domains/a.pool.test/stats", None, None)
        .await;
    assert_eq!(
        (&stats.json["messages"], &stats.json["mailboxes"]),
        (&json!(3), &json!(1))
    );

    h.clock.advance(3599);
    h.plane.tick();
    assert_eq!(
        h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("b.pool.test").expect("test domain")),
        Some(DomainStatus::Active)
    );
    h.clock.advance(1);
    h.plane.tick();
    assert_eq!(
        h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("b.pool.test").expect("test domain")),
        Some(DomainStatus::Draining),
        "age limit"
    );
    assert_eq!(
        h.policy
            .snapshot()
            .status(&tempmx_store::Domain::parse("c.pool.test").expect("test domain")),
        Some(DomainStatus::Active)
    );

    // The app syncs the registry once a second; the reopened plane reads what it synced.
    h.mailboxes.persist().expect("registry synced");
    let reopened = open_plane(config, Arc::new(ManualClock::new(admin_support::T0)));
    let a = reopened
        .domain(&tempmx_store::Domain::parse("a.pool.test").expect("test domain"))
        .expect("a");
    assert_eq!(
        (a.domain.messages, a.mailboxes),
        (3, 1),
        "counters and mailboxes saved"
    );
}

// Goal: message counts reach the rules at once but the state file only every
// COUNTS_SAVE_SECS, or when the plane stops, so traffic does not rewrite it every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_saved_lazily() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = plane_config(&["a.pool.test"]);
    config.data_dir = Some(dir.path().to_owned());
    let clock = Arc::new(ManualClock::new(admin_support::T0));
    let plane = Arc::new(open_plane(config.clone(), clock.clone()));
    let saved = || {
        open_plane(
            config.clone(),
            Arc::new(ManualClock::new(admin_support::T0)),
        )
        .domain(&tempmx_store::Domain::parse("a.pool.test").expect("test domain"))
        .expect("a")
        .domain
        .messages
    };
    plane.record_messages(
        &tempmx_store::Domain::parse("a.pool.test").expect("test domain"),
        5,
        admin_support::T0,
    );
    plane.tick();
    let live = plane
        .domain(&tempmx_store::Domain::parse("a.pool.test").expect("test domain"))
        .expect("a")
        .domain
        .messages;
    assert_eq!((live, saved()), (5, 0), "counted now, saved later");
    clock.advance(COUNTS_SAVE_SECS);
    plane.tick();
    assert_eq!(saved(), 5);
    plane.record_messages(
        &tempmx_store::Domain::parse("a.pool.test").expect("test domain"),
        1,
        admin_support::T0 + COUNTS_SAVE_SECS,
    );
    plane.tick();
    assert_eq!(saved(), 5);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(
        plane
            .clone()
            .run(Arc::new(MessageCounters::new(1)), stopped),
    );
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops in time")
        .expect("joins");
    assert_eq!(saved(), 6, "flushed when the plane stops");
}
