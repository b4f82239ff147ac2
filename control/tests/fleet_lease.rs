//! The fleet's rotation lease and shared pool (issue 15, part 7) with real `tempmx serve
//! --fleet` processes on one real 6-node Redis Cluster (Debian redis-server, started and
//! stopped by the test): one node at a time holds the lease, another takes it over when
//! the holder dies, a listed domain is rotated once however many nodes check it, a
//! blocklist streak carries over a take-over, and the SOA serial follows the fleet's pool
//! version on every node.

mod binary_support;

use std::path::Path;
use std::time::{Duration, Instant};

use binary_support::{Running, wait_for};
use serde_json::Value;
use tempmx::fleet::counts::COUNT_INTERVAL;
use tempmx_store::cluster::testkit::TestCluster;

/// The lease length the tests configure.
const LEASE: Duration = Duration::from_millis(2000);
/// The renew interval the tests configure.
const RENEW: Duration = Duration::from_millis(500);
/// What the test's own observation adds to a take-over: one admin API poll (every 100 ms)
/// and its round trip on a loaded 2-core machine.
const OBSERVE_SLACK: Duration = Duration::from_millis(250);
/// How long a pool change made on one node may take to show on another (the issue's bound).
const CROSS_NODE_MAX: Duration = Duration::from_secs(1);

/// Starts node `name` of a fleet on `tc` with the test's lease timings and `extra`
/// appended to the configuration.
fn node(dir: &Path, tc: &TestCluster, name: &str, extra: &str) -> Running {
    let seeds: Vec<String> = tc.seeds().iter().map(|s| format!("{s:?}")).collect();
    let section = format!(
        "[fleet]\nredis = [{}]\nnode = \"{name}\"\nlease_ms = {}\nlease_renew_ms = {}\n{extra}",
        seeds.join(", "),
        LEASE.as_millis(),
        RENEW.as_millis(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, binary_support::config_text(None, 60, &section)).expect("config");
    binary_support::start(&path)
}

/// (holder, epoch) as `GET /admin/v1/fleet` on `node` gives them.
fn lease_of(node: &Running) -> Option<(String, u64)> {
    let (status, v) = node.admin("GET", "/admin/v1/fleet", None);
    assert_eq!(status, 200, "{v}");
    Some((
        v["lease_holder"].as_str()?.to_owned(),
        v["lease_epoch"].as_u64()?,
    ))
}

/// The SOA serial `node`'s DNS serves for `zone`.
fn serial(node: &Running, zone: &str) -> Option<u64> {
    node.dig(zone, "SOA")
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Every node's `tempmx_fleet_lease_held`, once exactly one of them is 1.
fn one_gauge_held(nodes: &[&Running]) -> Vec<f64> {
    wait_for(RENEW * 2, "exactly one lease gauge is 1", || {
        let v: Vec<f64> = nodes
            .iter()
            .map(|n| n.sample("tempmx_fleet_lease_held"))
            .collect::<Option<_>>()?;
        Some(v).filter(|v| v.iter().sum::<f64>() == 1.0)
    })
}

#[test]
fn one_node_holds_the_lease_and_another_takes_it_when_the_holder_is_killed() {
    // Goal: with three nodes exactly one holds the rotation lease (every node's
    // `GET /admin/v1/fleet` names the same holder, and `tempmx_fleet_lease_held` is 1 on
    // it only); the SOA serial follows the fleet's pool version (a domain added on one
    // node moves another node's serial within 1 s, to the same serial on both); and once
    // the holder is SIGKILLed another node holds the lease within the lease length plus
    // one renew interval, with a new epoch. Method: a real cluster, three real binaries
    // with a 2 s lease renewed every 0.5 s, the admin API and metrics over ureq, dig
    // against the DNS listeners; the test kills only its own child, by PID.
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes = [
        node(dir.path(), &tc, "mx-a", ""),
        node(dir.path(), &tc, "mx-b", ""),
        node(dir.path(), &tc, "mx-c", ""),
    ];
    let (holder, epoch) = wait_for(LEASE + RENEW, "a lease holder", || lease_of(&nodes[0]));
    for n in &nodes {
        assert_eq!(
            lease_of(n),
            Some((holder.clone(), epoch)),
            "one holder seen by all"
        );
    }
    let held = one_gauge_held(&nodes.iter().collect::<Vec<_>>());
    let names = ["mx-a", "mx-b", "mx-c"];
    let at = names
        .iter()
        .position(|n| *n == holder)
        .expect("holder is one of ours");
    assert_eq!(held[at], 1.0, "the holder's gauge is the 1: {held:?}");
    let (ok, table) = fleet_cli(&nodes[0]);
    assert!(ok, "{table}");
    let holder_line = table.lines().find(|l| l.starts_with(&holder));
    assert!(
        holder_line.is_some_and(|l| l.ends_with("\tlease")),
        "{table}"
    );
    assert_eq!(table.matches("\tlease").count(), 1, "{table}");

    // The SOA serial follows the pool version: a domain added on one node moves the
    // serial another node serves, and both serve the same one.
    let (first, second) = (&nodes[(at + 1) % 3], &nodes[(at + 2) % 3]);
    let before = serial(second, "tempmx.test").expect("a serial");
    let (status, added) = first.admin(
        "POST",
        "/admin/v1/domains",
        Some(r#"{"domains":["serial.test"],"state":"active","reason":"lease test"}"#),
    );
    assert_eq!(status, 201, "{added}");
    let moved = wait_for(CROSS_NODE_MAX, "serial moved on another node", || {
        serial(second, "serial.test").filter(|s| *s > before)
    });
    assert_eq!(
        serial(second, "tempmx.test"),
        Some(moved),
        "every zone follows"
    );
    let same = wait_for(CROSS_NODE_MAX, "one serial on both nodes", || {
        serial(first, "serial.test").filter(|s| *s == moved)
    });
    assert_eq!(same, moved);

    // SIGKILL the holder: a survivor takes the lease within lease + renew.
    let pid = i32::try_from(nodes[at].pid()).expect("pid fits");
    // SAFETY: kill(2) on the test's own child process.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "SIGKILL sent");
    let killed = Instant::now();
    let bound = LEASE + RENEW + OBSERVE_SLACK;
    let (new_holder, new_epoch) = wait_for(bound, "a survivor takes the lease", || {
        lease_of(first).filter(|(h, _)| *h != holder)
    });
    let took = killed.elapsed();
    assert!(took <= bound, "take-over after {took:?}");
    assert!(new_epoch > epoch, "{new_epoch} after {epoch}");
    assert_eq!(lease_of(second), Some((new_holder.clone(), new_epoch)));
    let survivors = [first, second];
    let gauges = one_gauge_held(&survivors);
    let taker = survivors
        .iter()
        .zip(&gauges)
        .find(|(_, g)| **g == 1.0)
        .map(|(n, _)| *n)
        .expect("a holder");
    assert!(
        taker
            .sample("tempmx_fleet_lease_changes_total")
            .is_some_and(|c| c >= 1.0)
    );
    let [a, b, c] = nodes;
    for (i, n) in [a, b, c].into_iter().enumerate() {
        if i == at {
            drop(n);
        } else {
            n.stop();
        }
    }
}

/// `tempmx fleet status` against `node`'s admin API: (success, stdout).
fn fleet_cli(node: &Running) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tempmx"))
        .args([
            "fleet",
            "--admin",
            &format!("http://{}", node.admin),
            "status",
        ])
        .env("TEMPMX_ADMIN_TOKEN", binary_support::ADMIN_TOKEN)
        .output()
        .expect("tempmx fleet runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The fleet's audit events for `domain` as `node` shows them.
fn audit_of(node: &Running, domain: &str) -> Vec<Value> {
    let (status, page) = node.admin("GET", "/admin/v1/audit?limit=500", None);
    assert_eq!(status, 200, "{page}");
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["domain"] == domain)
        .cloned()
        .collect()
}

/// Asserts that the fleet's audit log, read through `node`, holds exactly one `listed`
/// event and one rotation out of the active set (by the listing rule) for `hot.test`,
/// both made by node `holder`.
fn listed_and_rotated_once_by(node: &Running, holder: &str) {
    let events = audit_of(node, "hot.test");
    let listed: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"]["kind"] == "listed")
        .collect();
    let rotations: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"]["kind"] == "state_changed" && e["action"]["from"] == "active")
        .collect();
    assert_eq!(listed.len(), 1, "{events:?}");
    assert_eq!(rotations.len(), 1, "{events:?}");
    assert_eq!(rotations[0]["actor"], "rule:listing", "{events:?}");
    for e in listed.iter().chain(&rotations) {
        assert_eq!(e["node"], holder, "made by the lease holder: {e}");
    }
}

/// Two nodes (`mx-a`, `mx-b`) of a fleet on a new cluster whose list file names
/// `hot.test`, needing `confirmations` listed answers, with a blocklist cycle every
/// `interval_secs`; `hot.test` is added (active) and known on both. Also returns the
/// cluster and the directory (kept alive by the caller) and the lease holder's name.
fn hot_fleet(
    confirmations: u32,
    interval_secs: u64,
) -> (TestCluster, tempfile::TempDir, [Running; 2], String) {
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("listed.txt");
    std::fs::write(&list, "# test list\nhot.test\n").expect("list file");
    let extra = format!(
        "[pool.policy]\nlisting_confirmations = {confirmations}\n\
         [blocklists]\ninterval_secs = {interval_secs}\njitter_secs = 0\nfiles = [{:?}]\n",
        list.display().to_string()
    );
    let a = node(dir.path(), &tc, "mx-a", &extra);
    let b = node(dir.path(), &tc, "mx-b", &extra);
    let (holder, _) = wait_for(LEASE + RENEW, "a lease holder", || lease_of(&a));
    let (status, added) = a.admin(
        "POST",
        "/admin/v1/domains",
        Some(r#"{"domains":["hot.test"],"state":"active","reason":"blocklist test"}"#),
    );
    assert_eq!(status, 201, "{added}");
    wait_for(CROSS_NODE_MAX, "hot.test known on B", || {
        let (status, _) = b.admin("GET", "/admin/v1/domains/hot.test", None);
        (status == 200).then_some(())
    });
    (tc, dir, [a, b], holder)
}

#[test]
fn two_nodes_checking_one_listed_domain_rotate_it_once() {
    // Goal: only the lease holder acts on blocklist answers and rotates: with the same
    // list file (listing `hot.test`) on two nodes, both asked at once to check `hot.test`
    // and both running their periodic cycles, the fleet's audit log (read through either
    // node) holds exactly one `listed` and one rotation out of the active set for it,
    // both made by the lease holder, and the domain is draining on both nodes. Method: a
    // real cluster, two real binaries with a blocklist file and a 10 s cycle; the two
    // check requests are sent from two threads at once; the test then waits past one
    // more cycle of both nodes before counting. Then policy and deletion made on B are
    // checked on A.
    let (_tc, _dir, [a, b], holder) = hot_fleet(1, 10);

    let body = Some(r#"{"domain":"hot.test"}"#);
    std::thread::scope(|s| {
        for n in [&a, &b] {
            s.spawn(move || {
                let (status, v) = n.admin("POST", "/admin/v1/blocklists/check", body);
                assert_eq!(status, 200, "{v}");
            });
        }
    });
    let state = wait_for(CROSS_NODE_MAX * 2, "hot.test rotated out on B", || {
        let (_, v) = b.admin("GET", "/admin/v1/domains/hot.test", None);
        v["state"]
            .as_str()
            .filter(|s| *s == "draining")
            .map(str::to_owned)
    });
    assert_eq!(state, "draining");
    // Both nodes' periodic cycles run once more (interval 10 s, no jitter).
    std::thread::sleep(Duration::from_secs(11));

    for n in [&a, &b] {
        listed_and_rotated_once_by(n, &holder);
        let (_, v) = n.admin("GET", "/admin/v1/domains/hot.test", None);
        assert_eq!(v["state"], "draining", "{v}");
        assert_eq!(
            v["listing"]["list"], "file:listed.txt",
            "the listing is shared: {v}"
        );
    }

    // Operator changes on either node hold on the other: a policy change made on B,
    // then hot.test retired and deleted on B, is gone from A within 1 s.
    let (status, policy) = b.admin("PUT", "/admin/v1/policy", Some(r#"{"active_target":3}"#));
    assert_eq!(status, 200, "{policy}");
    wait_for(CROSS_NODE_MAX, "B's policy on A", || {
        let (_, p) = a.admin("GET", "/admin/v1/policy", None);
        (p["active_target"] == 3).then_some(())
    });
    let (status, v) = b.admin(
        "PUT",
        "/admin/v1/domains/hot.test/state",
        Some(r#"{"state":"retired","reason":"race test"}"#),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = b.admin("DELETE", "/admin/v1/domains/hot.test?reason=done", None);
    assert_eq!(status, 204, "{v}");
    wait_for(CROSS_NODE_MAX, "hot.test deleted on A", || {
        let (status, _) = a.admin("GET", "/admin/v1/domains/hot.test", None);
        (status == 404).then_some(())
    });
    let deleted: Vec<Value> = audit_of(&a, "hot.test")
        .into_iter()
        .filter(|e| e["action"]["kind"] == "deleted")
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["node"], "mx-b");
    a.stop();
    b.stop();
}

#[test]
fn a_listing_streak_begun_under_one_holder_is_finished_by_the_next() {
    // Goal: blocklist streaks live in the fleet, so a lease take-over neither restarts nor
    // doubles them. With two listed answers needed for a listing, an answer seen by a node
    // without the lease counts for nothing; one answer on the holder, whose check request
    // returns once that answer is in the fleet, and one on the node that takes the lease
    // after the holder is SIGKILLed (right after its answer) make exactly one listing and
    // one rotation, made by the new holder. Method: a real cluster, two real binaries with
    // a list file naming `hot.test` and a one-hour cycle (the start-up cycles run before
    // `hot.test` is in the pool, so only the test's check requests answer for it); the test
    // kills only its own child, by PID.
    let (_tc, _dir, [a, b], holder) = hot_fleet(2, 3600);
    let (first, second) = if holder == "mx-a" { (a, b) } else { (b, a) };

    let body = Some(r#"{"domain":"hot.test"}"#);
    let check = |n: &Running| {
        let (status, v) = n.admin("POST", "/admin/v1/blocklists/check", body);
        assert_eq!(status, 200, "{v}");
        assert!(
            v["results"]
                .as_array()
                .is_some_and(|r| r.iter().any(|o| o["outcome"]["status"] == "listed")),
            "the list file answers `listed`: {v}"
        );
        v
    };
    let streak = |n: &Running| {
        let (_, v) = n.admin("GET", "/admin/v1/domains/hot.test", None);
        let l = &v["blocklists"][0];
        (l["streak"] == "listed").then(|| l["consecutive"].as_u64().unwrap_or(0))
    };
    // An answer on the node without the lease is only returned, never recorded.
    let v = check(&second);
    assert!(
        v["listing"].is_null(),
        "a node without the lease adds nothing: {v}"
    );
    for n in [&first, &second] {
        let (_, v) = n.admin("GET", "/admin/v1/domains/hot.test", None);
        assert_eq!(v["state"], "active", "{v}");
        assert_eq!(streak(n), None, "{v}");
    }
    // One answer on the holder: one of two, so nothing is listed (the other node's answer
    // did not count). Then, at once, SIGKILL the holder; the other node takes the lease
    // and its one answer completes the streak the first holder began.
    let v = check(&first);
    assert!(
        v["listing"].is_null(),
        "one answer of two lists nothing: {v}"
    );
    let pid = i32::try_from(first.pid()).expect("pid fits");
    // SAFETY: kill(2) on the test's own child process.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "SIGKILL sent");
    let (new_holder, _) = wait_for(
        LEASE + RENEW + OBSERVE_SLACK,
        "the other node takes the lease",
        || lease_of(&second).filter(|(h, _)| *h != holder),
    );
    // The new holder took over the streak the first one began.
    let seen = wait_for(
        COUNT_INTERVAL * 3,
        "the first holder's answer on the new one",
        || streak(&second),
    );
    assert_eq!(seen, 1, "one listed answer so far");
    check(&second);
    wait_for(CROSS_NODE_MAX * 2, "hot.test rotated out", || {
        let (_, v) = second.admin("GET", "/admin/v1/domains/hot.test", None);
        (v["state"] == "draining").then_some(())
    });
    listed_and_rotated_once_by(&second, &new_holder);
    drop(first);
    second.stop();
}
