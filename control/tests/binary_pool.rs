//! The domain pool through the running `tempmx serve` binary and real clients: a DNS
//! blocklist listing rotates a domain out (dig, lettre, the admin API's audit), message
//! counts come from real SMTP traffic (and drive `messages_max`), and the one mailbox
//! registry (tokens, registered-only SMTP, admin counts, delete-when-empty) survives a
//! restart on a data directory.
// A failed unwrap is how a test reports a broken precondition.
#![allow(clippy::unwrap_used)]

mod binary_support;

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use binary_support::{Running, config_text, start, wait_for};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use serde_json::{Value, json};

/// Bound on every wait for an effect that needs a tick (100 ms here) or two.
const TICKS: Duration = Duration::from_secs(10);

/// A DNSBL zone `dbl.test` served by hickory-server on 127.0.0.1 (UDP), empty at first;
/// the handler is kept so the test can list a domain while it runs.
async fn dnsbl() -> (SocketAddr, Arc<InMemoryZoneHandler>, Server<Catalog>) {
    let origin = Name::from_str("dbl.test.").unwrap();
    let mut zone = InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        Name::from_str("ns.dbl.test.").unwrap(),
        Name::from_str("hostmaster.dbl.test.").unwrap(),
        1,
        3600,
        600,
        86400,
        1,
    );
    zone.upsert_mut(Record::from_rdata(origin.clone(), 1, RData::SOA(soa)), 1);
    let zone = Arc::new(zone);
    let mut catalog = Catalog::new();
    catalog.upsert(
        LowerName::new(&origin),
        vec![zone.clone() as Arc<dyn ZoneHandler>],
    );
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut server = Server::new(catalog);
    server.register_socket(socket);
    (addr, zone, server)
}

fn write_config(
    dir: &Path,
    data_dir: Option<&Path>,
    ttl_secs: u64,
    extra: &str,
) -> std::path::PathBuf {
    let path = dir.join("tempmx.toml");
    std::fs::write(&path, config_text(data_dir, ttl_secs, extra)).unwrap();
    path
}

fn domain(app: &Running, name: &str) -> Value {
    let (status, d) = app.admin("GET", &format!("/admin/v1/domains/{name}"), None);
    assert_eq!(status, 200, "{d}");
    d
}

fn audit(app: &Running) -> Vec<Value> {
    let (status, a) = app.admin("GET", "/admin/v1/audit?limit=1000", None);
    assert_eq!(status, 200, "{a}");
    a["events"].as_array().unwrap().clone()
}

/// Asserts an SMTP refusal with this status code and enhanced code.
fn refused(result: Result<(), lettre::transport::smtp::Error>, code: &str, enhanced: &str) {
    let err = result.expect_err("the message must be refused");
    let text = err.to_string();
    assert!(
        err.is_permanent() && text.contains(code) && text.contains(enhanced),
        "want {code} {enhanced}, got {text}"
    );
}

// Goal: a listing in a DNSBL (hickory-server on loopback) reaches DNS and SMTP through the
// running binary within one check interval: the listed domain drains, then retires with a
// null MX and 550 5.1.2, the pending one is promoted with a real MX and takes mail, and
// the audit log names the blocklist. Method: two active + one pending domain (added with
// the CLI), the first cycle sees a clean list, then the domain is listed in the zone.
#[test]
fn blocklist_listing_rotates_through_the_binary() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (ns, zone, mut server) = rt.block_on(dnsbl());
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[pool]\ndomains = [\"a.pool.test\", \"b.pool.test\"]\n\
         [pool.policy]\nactive_target = 2\nlisting_confirmations = 1\ndrain_secs = 2\n\
         [pool.limits]\ntick_ms = 100\n\
         [blocklists]\nnameservers = [\"{ns}\"]\ninterval_secs = 10\njitter_secs = 0\ntimeout_ms = 2000\n\
         [[blocklists.zones]]\nzone = \"dbl.test\"\n"
    );
    let app = start(&write_config(dir.path(), None, 2, &extra));
    let (ok, out, err) = app.domains_cli(&["add", "c.pool.test", "--reason", "spare"]);
    assert!(ok, "{err}");
    assert_eq!(out, "c.pool.test\tadded\n");
    assert!(app.dig("a.pool.test", "MX").contains("mx.tempmx.test."));
    app.send("user@a.pool.test")
        .expect("250 while a.pool.test is active");

    // The first cycle runs at start (no jitter) and finds the list clean.
    wait_for(TICKS, "first blocklist cycle", || {
        let (_, b) = app.admin("GET", "/admin/v1/blocklists", None);
        (b["last_cycle"]["domains"].as_u64() == Some(3)).then_some(())
    });
    assert_eq!(domain(&app, "a.pool.test")["state"], "active");
    rt.block_on(zone.upsert(
        Record::from_rdata(
            Name::from_str("a.pool.test.dbl.test.").unwrap(),
            1,
            RData::A(A::new(127, 0, 1, 2)),
        ),
        2,
    ));

    // Next cycle (10 s) confirms the listing; the drain (2 s) then retires the domain.
    wait_for(Duration::from_secs(30), "null MX for a.pool.test", || {
        (app.dig("a.pool.test", "MX") == "0 .").then_some(())
    });
    let a = domain(&app, "a.pool.test");
    assert_eq!(
        (&a["state"], &a["listing"]["list"]),
        (&json!("retired"), &json!("dbl.test"))
    );
    assert_eq!(domain(&app, "c.pool.test")["state"], "active");
    assert_eq!(app.dig("c.pool.test", "MX"), "10 mx.tempmx.test.");
    refused(app.send("user@a.pool.test"), "550", "5.1.2");
    app.send("user@c.pool.test")
        .expect("250 for the promoted domain");
    app.send("user@b.pool.test")
        .expect("250 for the untouched domain");

    let events = audit(&app);
    let find = |actor: &str, name: &str| {
        events
            .iter()
            .find(|e| {
                e["actor"] == actor && e["domain"] == name && e["action"]["kind"] == "state_changed"
            })
            .unwrap_or_else(|| panic!("{actor} on {name} in {events:?}"))
    };
    let out = find("rule:listing", "a.pool.test");
    assert_eq!(
        (&out["action"]["from"], &out["action"]["to"]),
        (&json!("active"), &json!("draining"))
    );
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("listed on dbl.test"),
        "{out}"
    );
    find("rule:promote", "c.pool.test");
    find("rule:drain-complete", "a.pool.test");
    app.stop();
    rt.block_on(server.shutdown_gracefully()).unwrap();
}

// Goal: real SMTP traffic is counted per domain (the CLI and the admin API show counts and
// the last-message time; a message with two recipients on one domain counts once), and
// `messages_max` rotates the domain on that traffic.
#[test]
fn message_counts_come_from_smtp_and_drive_messages_max() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[pool]\ndomains = [\"a.pool.test\"]\n\
                 [pool.policy]\nactive_target = 1\nmessages_max = 3\n\
                 [pool.limits]\ntick_ms = 100\n";
    let app = start(&write_config(dir.path(), None, 3600, extra));
    let (status, _) = app.admin(
        "POST",
        "/admin/v1/domains",
        Some(r#"{"domains":["b.pool.test"]}"#),
    );
    assert_eq!(status, 201);
    app.send("one@a.pool.test").unwrap();
    let msg = lettre::Message::builder()
        .from("sender@example.test".parse().unwrap())
        .to("two@a.pool.test".parse().unwrap())
        .to("three@a.pool.test".parse().unwrap())
        .body("two recipients\r\n".to_owned())
        .unwrap();
    use lettre::Transport;
    lettre::SmtpTransport::builder_dangerous(app.smtp.ip().to_string())
        .port(app.smtp.port())
        .build()
        .send(&msg)
        .unwrap();
    wait_for(TICKS, "two messages counted", || {
        (domain(&app, "a.pool.test")["messages"] == 2).then_some(())
    });
    let a = domain(&app, "a.pool.test");
    assert_eq!(a["state"], "active", "below messages_max");
    let last = a["last_message_at"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(last) < 60, "last message at {last}, now {now}");
    let (ok, out, err) = app.domains_cli(&["list"]);
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("a.pool.test\t"))
        .unwrap();
    let cols: Vec<&str> = row.split('\t').collect();
    assert_eq!(cols[..4], ["a.pool.test", "active", "-", "2"], "{out}");
    assert!(
        cols[5].ends_with('Z') && cols[5].len() == 24,
        "last message time: {row}"
    );

    app.send("four@a.pool.test").unwrap();
    wait_for(TICKS, "messages_max rotation", || {
        (domain(&app, "a.pool.test")["state"] == "draining").then_some(())
    });
    assert_eq!(domain(&app, "a.pool.test")["messages"], 3);
    assert_eq!(domain(&app, "b.pool.test")["state"], "active");
    assert!(
        audit(&app)
            .iter()
            .any(|e| e["actor"] == "rule:messages" && e["domain"] == "a.pool.test"),
        "audit names the messages rule"
    );
    app.stop();
}

const REGISTERED: &str = "[pool]\ndomains = [\"a.pool.test\", \"b.pool.test\"]\nrecipients = \"registered\"\n\
                          [pool.policy]\nactive_target = 2\ndrain_secs = 600\n\
                          [pool.limits]\ntick_ms = 100\n";

fn create(app: &Running, body: &str) -> (String, String) {
    let (status, m) = app.public("POST", "/api/v1/mailboxes", None, Some(body));
    assert_eq!(status, 201, "{m}");
    (
        m["address"].as_str().unwrap().to_owned(),
        m["token"].as_str().unwrap().to_owned(),
    )
}

fn messages(app: &Running, address: &str, token: &str) -> (u16, Value) {
    app.public(
        "GET",
        &format!("/api/v1/mailboxes/{address}/messages"),
        Some(token),
        None,
    )
}

// Goal: with a data directory, a mailbox's token, its registered-only SMTP acceptance, the
// admin mailbox count and the message counter all survive a restart of the real binary;
// delete-when-empty follows the same registry (refused while a mailbox lives, allowed once
// it expired); a corrupt registry log stops the start with a clear error.
#[test]
fn mailbox_registry_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), Some(&data), 600, REGISTERED);
    let app = start(&config);
    let (address, token) = create(&app, r#"{"domain":"a.pool.test","ttl_seconds":600}"#);
    app.send(&address).expect("registered address takes mail");
    refused(app.send("nobody@a.pool.test"), "550", "5.1.1");
    wait_for(TICKS, "message counted", || {
        (domain(&app, "a.pool.test")["messages"] == 1).then_some(())
    });
    assert_eq!(domain(&app, "a.pool.test")["mailboxes"], 1);
    app.stop();

    let app = start(&config);
    let (status, list) = messages(&app, &address, &token);
    assert_eq!(status, 200, "the token still opens the mailbox: {list}");
    assert_eq!(list["messages"].as_array().map(Vec::len), Some(1), "{list}");
    let (status, _) = messages(&app, &address, &"0".repeat(64));
    assert_eq!(status, 404, "a wrong token does not");
    app.send(&address)
        .expect("still registered for the ingress");
    refused(app.send("nobody@a.pool.test"), "550", "5.1.1");
    let a = domain(&app, "a.pool.test");
    assert_eq!(a["mailboxes"], 1);
    wait_for(TICKS, "counter kept and fed", || {
        (domain(&app, "a.pool.test")["messages"] == 2).then_some(())
    });

    // Delete-when-empty reads the same registry.
    let (short, _) = create(&app, r#"{"domain":"b.pool.test","ttl_seconds":2}"#);
    assert_eq!(domain(&app, "b.pool.test")["mailboxes"], 1, "{short}");
    let (status, _) = app.admin(
        "PUT",
        "/admin/v1/domains/b.pool.test/state",
        Some(r#"{"state":"retired","reason":"test"}"#),
    );
    assert_eq!(status, 200);
    let (status, p) = app.admin("DELETE", "/admin/v1/domains/b.pool.test", None);
    assert_eq!(
        (status, &p["type"]),
        (409, &json!("urn:tempmx:problem:domain-not-empty"))
    );
    wait_for(TICKS, "short mailbox expired and domain deleted", || {
        let (status, _) = app.admin("DELETE", "/admin/v1/domains/b.pool.test", None);
        (status == 204).then_some(())
    });
    app.stop();

    let log = data.join("control").join("mailboxes.log");
    let mut text = std::fs::read(&log).unwrap();
    text.extend_from_slice(b"{\"add\":42}\n");
    std::fs::write(&log, text).unwrap();
    let stderr = binary_support::start_fails(&config);
    assert!(
        stderr.contains("mailboxes.log") && stderr.contains("corrupt at line"),
        "{stderr}"
    );
}
