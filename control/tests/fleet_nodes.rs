//! Two `tempmx serve --fleet` processes (the real binary) on one real 6-node Redis Cluster
//! (Debian redis-server, started and stopped by the test): mail, mailboxes and deletions
//! are shared through the cluster, whichever node a client talks to.

mod binary_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use binary_support::{Running, wait_for};
use serde_json::Value;
use tempmx_store::cluster::testkit::TestCluster;

/// How long a change made on one node may take to show on the other (the issue's bound).
const CROSS_NODE_MAX: Duration = Duration::from_secs(1);

/// Starts node `name` of a fleet on `tc` with `extra` appended to its `[fleet]` section.
fn node(dir: &Path, tc: &TestCluster, name: &str, extra: &str) -> Running {
    let seeds: Vec<String> = tc.seeds().iter().map(|s| format!("{s:?}")).collect();
    let section = format!(
        "[fleet]\nredis = [{}]\nnode = \"{name}\"\n{extra}",
        seeds.join(", ")
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, binary_support::config_text(None, 60, &section)).expect("config");
    binary_support::start(&path)
}

/// The raw bytes of a message (the helper parses JSON only).
fn raw(node: &Running, path: &str, token: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .get(format!("http://{}{path}", node.http))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("http exchange");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().expect("body"))
}

/// Message ids listed by `node` for `address`.
fn listed(node: &Running, address: &str, token: &str) -> Vec<String> {
    let (status, page) = node.public(
        "GET",
        &format!("/api/v1/mailboxes/{address}/messages"),
        Some(token),
        None,
    );
    assert_eq!(status, 200, "listing on a fleet node: {page}");
    page["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn mail_mailboxes_and_deletions_are_shared_between_nodes() {
    // Goal: issue 15's first promise. A mailbox created on node A is known on node B (and
    // cannot be created again there); mail delivered over SMTP to A (250) is listed and
    // read through B's HTTP API within 1 s, byte for byte; a wrong token is the same 404 on
    // both; a message deleted on B is gone on A; a mailbox deleted on A is gone on B.
    // Method: a real cluster, two real `tempmx serve` processes configured with `[fleet]`,
    // lettre for SMTP and ureq for HTTP; every wait bounded.
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let a = node(dir.path(), &tc, "mx-a", "");
    let b = node(dir.path(), &tc, "mx-b", "ack = \"replicas:1\"\n");

    let (address, token) = create(&a, "alice");
    assert_eq!(address, "alice@tempmx.test");

    // Known on B: its token opens the (empty) mailbox there, and B will not hand it out.
    assert!(listed(&b, &address, &token).is_empty());
    let (status, taken) = b.public(
        "POST",
        "/api/v1/mailboxes",
        None,
        Some(r#"{"local_part":"alice"}"#),
    );
    assert_eq!(status, 409, "{taken}");
    for n in [&a, &b] {
        let (status, _) = n.public(
            "GET",
            &format!("/api/v1/mailboxes/{address}/messages"),
            Some("not-the-token"),
            None,
        );
        assert_eq!(status, 404, "wrong token");
    }

    // Mail through A's SMTP, read through B's HTTP API (B acknowledges with replicas:1).
    a.send_with_subject(&address, "through node A")
        .expect("A answers 250");
    let ids = wait_for(CROSS_NODE_MAX, "A's message listed on B", || {
        Some(listed(&b, &address, &token)).filter(|l| l.len() == 1)
    });
    let id = &ids[0];
    let (status, detail) = b.public(
        "GET",
        &format!("/api/v1/mailboxes/{address}/messages/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["subject"], Value::from("through node A"));
    let (status, body) = raw(
        &b,
        &format!("/api/v1/mailboxes/{address}/messages/{id}/raw"),
        &token,
    );
    assert_eq!(status, 200);
    assert!(body.contains("Subject: through node A"), "{body}");
    assert!(body.contains("\r\n\r\nhello"), "{body}");

    // Mail through B's SMTP shows on A too, newest first.
    b.send_with_subject(&address, "through node B")
        .expect("B answers 250");
    let both = wait_for(CROSS_NODE_MAX, "B's message listed on A", || {
        Some(listed(&a, &address, &token)).filter(|l| l.len() == 2)
    });
    assert_eq!(&both[1], id, "newest first");

    // Deleted on B: gone on A, at once.
    let (status, _) = b.public(
        "DELETE",
        &format!("/api/v1/mailboxes/{address}/messages/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(status, 204);
    assert_eq!(listed(&a, &address, &token), vec![both[0].clone()]);
    let (status, _) = a.public(
        "GET",
        &format!("/api/v1/mailboxes/{address}/messages/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(status, 404, "deleted on B, gone on A");

    // The mailbox deleted on A: B no longer opens it.
    let (status, _) = a.public(
        "DELETE",
        &format!("/api/v1/mailboxes/{address}"),
        Some(&token),
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = b.public(
        "GET",
        &format!("/api/v1/mailboxes/{address}/messages"),
        Some(&token),
        None,
    );
    assert_eq!(status, 404, "deleted on A, gone on B");

    // The compatible APIs and webhooks are served in fleet mode (fleet_compat.rs covers
    // them): an unknown tempmail.lol token reads as expired, and a hook for the deleted
    // mailbox is the 404 of an unknown mailbox.
    let (status, body) = raw(&b, "/compat/tempmail-lol/v2/inbox?token=x", &token);
    assert_eq!(status, 200, "compat APIs in fleet mode: {body}");
    assert!(body.contains("\"expired\":true"), "{body}");
    let (status, body) = b.public(
        "POST",
        &format!("/api/v1/mailboxes/{address}/webhooks"),
        Some(&token),
        Some(r#"{"url":"http://127.0.0.1:9/"}"#),
    );
    assert_eq!(status, 404, "webhooks in fleet mode: {body}");

    a.stop();
    b.stop();
    drop(tc);
}

/// The `data` of the first SSE event whose subject is `subject`, read within `within`.
fn pushed(lines: &mut BufReader<TcpStream>, subject: &str, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let mut line = String::new();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if let Some(data) = line.trim_end().strip_prefix("data:") {
            let v: Value = serde_json::from_str(data.trim()).expect("event json");
            if v["subject"] == subject {
                return Some(v);
            }
        }
    }
    None
}

/// `tempmx fleet status` against `node`'s admin API: (exit ok, stdout).
fn fleet_cli(node: &Running, json: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tempmx"));
    cmd.args([
        "fleet",
        "status",
        "--admin",
        &format!("http://{}", node.admin),
    ])
    .env("TEMPMX_ADMIN_TOKEN", binary_support::ADMIN_TOKEN);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("tempmx fleet runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The state `GET /admin/v1/fleet` on `node` gives node `name`, if listed.
fn member_state(node: &Running, name: &str) -> Option<String> {
    let (status, v) = node.admin("GET", "/admin/v1/fleet", None);
    assert_eq!(status, 200, "{v}");
    v["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
        .and_then(|n| n["state"].as_str().map(str::to_owned))
}

#[test]
fn live_push_and_membership_span_the_fleet() {
    // Goal: issue 15's live push and membership. An SSE client on node B is pushed mail
    // delivered over SMTP to node A (the stream is open before the mail, so it is pushed,
    // not listed), within 1 s; `messages/wait` on B returns mail delivered on A while it
    // waits; `GET /admin/v1/fleet` and `tempmx fleet status` (table and --json) list both
    // nodes up with their version, and a stopped node as gone once its heartbeat TTL
    // (2 s here) lapses. Method: a real cluster, two real binaries, a raw HTTP/1.1 SSE
    // reader, ureq, the real CLI; every wait bounded.
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let a = node(dir.path(), &tc, "mx-a", "node_ttl_secs = 2\n");
    let b = node(dir.path(), &tc, "mx-b", "node_ttl_secs = 2\n");
    let (address, token) = create(&b, "bob");

    let mut sse = TcpStream::connect(b.http).expect("http connects");
    sse.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        sse,
        "GET /api/v1/mailboxes/{address}/events HTTP/1.1\r\nHost: b\r\n\
         Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("request sent");
    let mut lines = BufReader::new(sse);
    let mut status_line = String::new();
    lines.read_line(&mut status_line).expect("status line");
    assert!(status_line.contains(" 200 "), "{status_line}");
    // The event carries what a listing shows, the verification code included: the
    // announcement carried the record, or B read it.
    let subject = "pushed from A: your code is 482913";
    a.send_with_subject(&address, subject)
        .expect("A answers 250");
    let event = pushed(&mut lines, subject, CROSS_NODE_MAX).expect("SSE on B saw A's mail");
    assert_eq!(event["verifications"][0]["value"], "482913", "{event}");
    assert_eq!(event["from"], "sender@example.test", "{event}");

    // A long poll on B, answered by mail that arrives on A while it waits.
    let url = format!(
        "http://{}/api/v1/mailboxes/{address}/messages/wait?timeout=10&subject=waited",
        b.http
    );
    let waiter = {
        let token = token.clone();
        std::thread::spawn(move || binary_support::http("GET", &url, Some(&token), None))
    };
    std::thread::sleep(Duration::from_millis(300));
    a.send_with_subject(&address, "waited on B")
        .expect("A answers 250");
    let (status, found) = waiter.join().expect("waiter");
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["subject"], Value::from("waited on B"));

    // Membership: both up, with their version, on either node's admin API and the CLI.
    for n in [&a, &b] {
        for name in ["mx-a", "mx-b"] {
            let state = wait_for(Duration::from_secs(5), "heartbeat listed", || {
                member_state(n, name)
            });
            assert_eq!(state, "up", "{name}");
        }
    }
    let (ok, json) = fleet_cli(&a, true);
    assert!(ok, "{json}");
    let v: Value = serde_json::from_str(&json).expect("--json prints JSON");
    assert_eq!(v["node"], Value::from("mx-a"));
    let versions: Vec<&Value> = v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| &n["version"])
        .collect();
    assert_eq!(
        versions,
        [env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_VERSION")]
    );
    let (ok, table) = fleet_cli(&a, false);
    assert!(ok, "{table}");
    assert!(table.contains("mx-a*\tup\t"), "{table}");
    assert!(table.contains("mx-b\tup\t"), "{table}");

    // B stops: once its 2 s TTL lapses it shows as gone (bounded at 3 TTLs).
    b.stop();
    let gone = wait_for(Duration::from_secs(6), "stopped node shown gone", || {
        member_state(&a, "mx-b").filter(|s| s == "gone")
    });
    assert_eq!(gone, "gone");
    let (ok, table) = fleet_cli(&a, false);
    assert!(ok && table.contains("mx-b\tgone\t"), "{table}");
    a.stop();
}

/// Messages a flood sends at most.
const FLOOD_MAX: usize = 400;
/// Acknowledged messages before the fault is injected. Twice this plus the refusals stays
/// below the mailbox cap (100 by default), so the cap trims nothing the test checks.
const FAULT_AFTER: usize = 30;
/// The mailbox cap in force (`store.mailbox_records_max`'s default).
const CAP: usize = 100;
/// Longest a flood runs.
const FLOOD_TIME_MAX: Duration = Duration::from_secs(60);

/// Every subject listed by `node` for `address`, page by page.
fn all_subjects(node: &Running, address: &str, token: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut before = String::new();
    for _ in 0..100 {
        let (status, page) = node.public(
            "GET",
            &format!("/api/v1/mailboxes/{address}/messages?limit=50{before}"),
            Some(token),
            None,
        );
        assert_eq!(status, 200, "{page}");
        for m in page["messages"].as_array().expect("messages") {
            out.push(m["subject"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_before"].as_str() {
            Some(id) => before = format!("&before={id}"),
            None => return out,
        }
    }
    panic!("more pages than the mailbox cap allows");
}

/// What a flood saw: subjects acknowledged with 250, and how many were refused with a
/// transient (4xx) or permanent (5xx) reply or failed to connect.
#[derive(Default)]
struct Flood {
    acked: Vec<String>,
    transient: usize,
    permanent: usize,
    unreachable: usize,
}

/// Sends up to `FLOOD_MAX` messages `flood-<i>` to `address` through `node`, calling
/// `step` after each (the test injects its faults there); stops at `FLOOD_MAX`, after
/// `FLOOD_TIME_MAX`, or when `done` says so.
fn flood(
    node: &Running,
    address: &str,
    mut step: impl FnMut(&Flood),
    done: impl Fn(&Flood) -> bool,
) -> Flood {
    let mut f = Flood::default();
    let end = Instant::now() + FLOOD_TIME_MAX;
    for i in 0..FLOOD_MAX {
        if Instant::now() > end || done(&f) {
            break;
        }
        let subject = format!("flood-{i}");
        match node.send_with_subject(address, &subject) {
            Ok(()) => f.acked.push(subject),
            Err(e) if e.is_transient() => f.transient += 1,
            Err(e) if e.is_permanent() => f.permanent += 1,
            Err(_) => f.unreachable += 1,
        }
        step(&f);
    }
    f
}

/// Creates `local@tempmx.test` on `node`; (address, token).
fn create(node: &Running, local: &str) -> (String, String) {
    let (status, created) = node.public(
        "POST",
        "/api/v1/mailboxes",
        None,
        Some(&format!(r#"{{"local_part":"{local}"}}"#)),
    );
    assert_eq!(status, 201, "{created}");
    (
        created["address"].as_str().expect("address").to_owned(),
        created["token"].as_str().expect("token").to_owned(),
    )
}

#[test]
fn a_node_killed_mid_flood_loses_no_acknowledged_message() {
    // Goal: a 250 from a fleet node is a promise the fleet keeps: with node A SIGKILLed in
    // the middle of a flood, every message A acknowledged is listed by node B. Method: a
    // real cluster, two real binaries, lettre sending one message per connection to A;
    // after 30 acknowledgements the test SIGKILLs A (its own child, by PID); the flood
    // goes on until A refuses connections; B's listing is then compared with the 250s.
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let a = node(dir.path(), &tc, "mx-a", "");
    let b = node(dir.path(), &tc, "mx-b", "");
    let (address, token) = create(&b, "flood");
    let pid = i32::try_from(a.pid()).expect("pid fits");
    let mut killed = false;
    let f = flood(
        &a,
        &address,
        |f| {
            if !killed && f.acked.len() >= FAULT_AFTER {
                // SAFETY: kill(2) on the test's own child process.
                let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
                assert_eq!(rc, 0, "SIGKILL sent");
                killed = true;
            }
        },
        |f| f.unreachable >= 3,
    );
    assert!(killed, "A was killed mid-flood");
    assert!(f.acked.len() >= FAULT_AFTER, "{} acked", f.acked.len());
    assert_eq!(f.permanent, 0, "no 5xx during the flood");
    let listed = all_subjects(&b, &address, &token);
    for s in &f.acked {
        assert!(
            listed.contains(s),
            "{s} got 250 from A but B does not list it"
        );
    }
    drop(a);
    b.stop();
}

#[test]
fn a_primary_killed_mid_flood_with_replicas_ack_loses_no_acknowledged_message() {
    // Goal: with `ack = "replicas:1"`, SIGKILLing the Redis primary of the mailbox's slot
    // in the middle of a flood loses no acknowledged message: after the replica's failover
    // every message that got 250 is readable, messages refused meanwhile got 4xx (never a
    // 5xx, never a 250 for mail that is lost), and the flood is acknowledged again once
    // the promoted primary has a replica again (the killed server restarted, as a
    // supervisor would; until then `WAIT 1` cannot succeed and every message is refused).
    // Method: a real cluster (node timeout 1 s), one real binary, lettre; the test finds
    // the slot's primary with CLUSTER NODES and SIGKILLs that redis-server (its own
    // child) after 30 acknowledgements, restarts it once CLUSTER NODES shows another
    // primary for the slot, and floods until 30 more were acknowledged or its bounds end
    // it.
    let mut tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let a = node(dir.path(), &tc, "mx-a", "ack = \"replicas:1\"\n");
    let (address, token) = create(&a, "failover");
    let key = format!("tmx:{{{address}}}:idx");
    let primary = tc.primary_of(&key).expect("slot has a primary");
    let (mut killed, mut restarted) = (false, false);
    let f = flood(
        &a,
        &address,
        |f| {
            if !killed && f.acked.len() >= FAULT_AFTER {
                tc.kill(primary).expect("primary killed");
                killed = true;
            } else if killed && !restarted && tc.primary_of(&key).is_some_and(|p| p != primary) {
                tc.restart(primary).expect("old primary restarted");
                restarted = true;
            }
        },
        |f| f.acked.len() >= 2 * FAULT_AFTER,
    );
    assert!(
        killed && restarted,
        "killed {killed}, restarted {restarted}"
    );
    assert_eq!(f.permanent, 0, "no 5xx during the failover");
    assert!(f.transient > 0, "the fault refused mail meanwhile (4xx)");
    assert!(
        f.acked.len() >= 2 * FAULT_AFTER,
        "the flood was acknowledged again after the failover: {} acked, {} refused",
        f.acked.len(),
        f.transient
    );
    assert!(
        f.acked.len() + f.transient < CAP,
        "the cap would trim the flood: {} acked, {} refused",
        f.acked.len(),
        f.transient
    );
    assert!(
        tc.wait_ok(Duration::from_secs(20)),
        "cluster state ok again"
    );
    let listed = all_subjects(&a, &address, &token);
    for s in &f.acked {
        assert!(listed.contains(s), "{s} got 250 but is lost after failover");
    }
    a.stop();
}

/// The state node `node`'s admin API gives domain `name`, if it knows it.
fn domain_state(node: &Running, name: &str) -> Option<String> {
    let (status, v) = node.admin("GET", &format!("/admin/v1/domains/{name}"), None);
    (status == 200)
        .then(|| v["state"].as_str().map(str::to_owned))
        .flatten()
}

#[test]
fn a_domain_changed_on_one_node_holds_on_the_other() {
    // Goal: domain states set through one node's admin API hold on every node within 2 s:
    // a domain added active on A is active on B and B's SMTP takes mail for it; retired on
    // A, B's SMTP refuses it with 550 and B's DNS serves its null MX. Method: a real
    // cluster, two real binaries, the admin API over ureq, lettre against B, dig against
    // B's DNS listener; every wait bounded.
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let a = node(dir.path(), &tc, "mx-a", "");
    let b = node(dir.path(), &tc, "mx-b", "");
    let (status, added) = a.admin(
        "POST",
        "/admin/v1/domains",
        Some(r#"{"domains":["shared.test"],"state":"active","reason":"fleet test"}"#),
    );
    assert_eq!(status, 201, "{added}");
    let state = wait_for(Duration::from_secs(2), "domain active on B", || {
        domain_state(&b, "shared.test").filter(|s| s == "active")
    });
    assert_eq!(state, "active");
    b.send_with_subject("someone@shared.test", "before retirement")
        .expect("B takes mail for the shared domain");

    let (status, changed) = a.admin(
        "PUT",
        "/admin/v1/domains/shared.test/state",
        Some(r#"{"state":"retired","reason":"fleet test"}"#),
    );
    assert_eq!(status, 200, "{changed}");
    let refused = wait_for(
        Duration::from_secs(2),
        "B refuses the retired domain",
        || match b.send_with_subject("someone@shared.test", "after retirement") {
            Err(e) if e.is_permanent() => Some(e.status().map(|c| c.to_string())),
            _ => None,
        },
    );
    assert_eq!(refused.as_deref(), Some("550"));
    assert_eq!(domain_state(&b, "shared.test").as_deref(), Some("retired"));
    let mx = b.dig("shared.test", "MX");
    assert_eq!(mx, "0 .", "B serves the null MX");
    a.stop();
    b.stop();
}
