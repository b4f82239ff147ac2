//! What stays node-local in fleet mode, seen from outside (issue 15): two real `tempmx
//! serve --fleet` processes on one real 6-node Redis Cluster (Debian redis-server,
//! started and stopped by the test), lettre for SMTP and ureq for HTTP. A fleet node opens
//! no local message store, and the per-domain message counts it shows are the fleet's.

mod binary_support;

use std::path::Path;
use std::time::Duration;

use binary_support::{Running, wait_for};
use tempmx_store::cluster::testkit::TestCluster;

/// The store budget the nodes are given: a single node would hold it resident.
const STORE_BYTES: u64 = 256 << 20;

/// Starts node `name` of a fleet on `tc` with a [`STORE_BYTES`] store budget and the
/// blocklist file `list` checked every 10 s from start.
fn node(dir: &Path, tc: &TestCluster, name: &str, list: &Path) -> Running {
    let seeds: Vec<String> = tc.seeds().iter().map(|s| format!("{s:?}")).collect();
    let section = format!(
        "[fleet]\nredis = [{}]\nnode = \"{name}\"\n\
         [blocklists]\nfiles = [{:?}]\ninterval_secs = 10\njitter_secs = 0\n",
        seeds.join(", "),
        list.display().to_string()
    );
    let text = binary_support::config_text(None, 600, &section).replacen(
        "memory_bytes_max = 33554432",
        &format!("memory_bytes_max = {STORE_BYTES}"),
        1,
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("config");
    binary_support::start(&path)
}

#[test]
fn fleet_nodes_hold_no_local_store_and_count_every_nodes_mail() {
    // Goal: a fleet node reserves nothing for a local message store (its scrape has no
    // store families and its resident memory stays far below the store budget a single
    // node would hold resident); the per-domain message count on node A's admin API
    // counts the mail delivered through node B, exactly once, on both nodes; the
    // per-domain live mailboxes count a mailbox made on A on B (and its deletion through
    // B on A), each change once when two nodes make it at once; and the blocklist
    // tracker's state (run by the lease holder alone) is the
    // same on both.
    // Method: a real cluster, two real binaries given a 256 MiB store budget; resident
    // memory read from `tempmx_process_resident_memory_bytes` after mail was delivered;
    // three messages sent to B over SMTP with lettre; A's and B's
    // `/admin/v1/domains/{domain}` polled (bounded) until the count shows, then read again
    // after two more count intervals to see it did not grow; a real list file (naming
    // another domain) checked every 10 s, both nodes' domain records polled until they
    // show the same tracker state.
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "# listed here\nother.example\n").expect("list file");
    let a = node(dir.path(), &tc, "mx-a", &list);
    let b = node(dir.path(), &tc, "mx-b", &list);
    let (status, v) = a.public(
        "POST",
        "/api/v1/mailboxes",
        None,
        Some(r#"{"local_part":"counted"}"#),
    );
    assert_eq!(status, 201, "{v}");
    let address = v["address"].as_str().expect("address").to_owned();
    let token = v["token"].as_str().expect("token").to_owned();
    let domain = address.split_once('@').expect("domain").1.to_owned();
    let path = format!("/admin/v1/domains/{domain}");
    let (status, before) = a.admin("GET", &path, None);
    assert_eq!(status, 200, "{before}");
    let start = before["messages"].as_u64().expect("messages");

    for i in 0..3 {
        b.send_with_subject(&address, &format!("counted {i}"))
            .expect("B answers 250");
    }
    for (name, n) in [("A", &a), ("B", &b)] {
        let seen = wait_for(Duration::from_secs(10), "the fleet's count", || {
            let (status, d) = n.admin("GET", &path, None);
            assert_eq!(status, 200, "{d}");
            let m = d["messages"].as_u64().expect("messages");
            (m >= start + 3).then_some(d)
        });
        assert_eq!(seen["messages"], start + 3, "{name}: {seen}");
        assert!(seen["last_message_at"].is_u64(), "{name}: {seen}");
    }
    // The mailbox made on A counts on B, in the domain and in the live gauge.
    let mailboxes = |n: &Running| n.admin("GET", &path, None).1["mailboxes"].as_u64();
    wait_for(Duration::from_secs(5), "B counts A's mailbox", || {
        (mailboxes(&b) == Some(1)).then_some(())
    });
    assert_eq!(b.sample("tempmx_api_mailboxes_live"), Some(1.0));
    // Shared once: two more intervals add nothing.
    std::thread::sleep(Duration::from_millis(2500));
    for n in [&a, &b] {
        let (_, d) = n.admin("GET", &path, None);
        assert_eq!(d["messages"], start + 3, "{d}");
    }

    // Whichever node holds the lease checked; both show its answers, streaks and counts.
    let checks = wait_for(
        Duration::from_secs(40),
        "the same checks on A and B",
        || {
            let (_, da) = a.admin("GET", &path, None);
            let (_, db) = b.admin("GET", &path, None);
            let seen = da["blocklists"].as_array().is_some_and(|l| !l.is_empty());
            (seen && da["blocklists"] == db["blocklists"]).then_some(da)
        },
    );
    let status = &checks["blocklists"][0];
    assert_eq!(status["streak"], "clean", "{checks}");
    assert!(status["consecutive"].as_u64() >= Some(1), "{checks}");

    for n in [&a, &b] {
        let scrape = n.metrics();
        assert!(
            !scrape.contains("tempmx_store_"),
            "a fleet node exports local store families"
        );
        let resident = n
            .sample("tempmx_process_resident_memory_bytes")
            .expect("resident memory exported");
        assert!(
            resident < (STORE_BYTES / 2) as f64,
            "resident {resident} bytes: the {STORE_BYTES}-byte store budget is held"
        );
    }
    // Deleted through B: A counts it no more.
    let (status, _) = b.public(
        "DELETE",
        &format!("/api/v1/mailboxes/{address}"),
        Some(&token),
        None,
    );
    assert_eq!(status, 204);
    wait_for(Duration::from_secs(5), "A uncounts the mailbox", || {
        (mailboxes(&a) == Some(0)).then_some(())
    });

    // Two nodes changing one mailbox at once move the count by what each changed: three
    // mailboxes, one extended through A and B at once, then deleted through both at once.
    let made: Vec<(String, String)> = (0..3)
        .map(|i| {
            let body = format!(r#"{{"local_part":"raced{i}"}}"#);
            let (status, v) = a.public("POST", "/api/v1/mailboxes", None, Some(&body));
            assert_eq!(status, 201, "{v}");
            let field = |k: &str| v[k].as_str().expect("field").to_owned();
            (field("address"), field("token"))
        })
        .collect();
    let (raced, raced_token) = &made[0];
    let both = |method: &str, path: String, body: Option<&str>| {
        std::thread::scope(|s| {
            let runs =
                [&a, &b].map(|n| s.spawn(|| n.public(method, &path, Some(raced_token), body).0));
            runs.map(|r| r.join().expect("request thread"))
        })
    };
    let extended = both(
        "POST",
        format!("/api/v1/mailboxes/{raced}/extend"),
        Some(r#"{"ttl_seconds":300}"#),
    );
    assert_eq!(extended, [200, 200]);
    let deleted = both("DELETE", format!("/api/v1/mailboxes/{raced}"), None);
    assert!(deleted.contains(&204), "{deleted:?}");
    for n in [&a, &b] {
        wait_for(Duration::from_secs(5), "the two others counted", || {
            (mailboxes(n) == Some(2)).then_some(())
        });
    }
    // Bucket by bucket: no minute counted twice or below zero by the doubled changes.
    let key = format!("tmx:{{d:{domain}}}:mb");
    let primary = tc.primary_of(&key).expect("a primary owns the buckets");
    let fields = tc.cli(primary, &["hgetall", &key]).expect("redis-cli runs");
    let fields: Vec<&str> = fields.lines().map(str::trim).collect();
    let pairs: Vec<(&str, i64)> = fields
        .chunks(2)
        .map(|p| (p[0], p[1].parse().expect("a number")))
        .collect();
    assert!(pairs.iter().all(|&(_, n)| n > 0), "{pairs:?}");
    assert_eq!(pairs.iter().map(|(_, n)| n).sum::<i64>(), 2, "{pairs:?}");
    let sum = format!("tmx:{{d:{domain}}}:mbs");
    let t = tc
        .cli(primary, &["hget", &sum, "t"])
        .expect("redis-cli runs");
    assert_eq!(t.trim(), "2", "the running sum");
    a.stop();
    b.stop();
}
