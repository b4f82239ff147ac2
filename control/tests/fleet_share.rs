//! Greylisting and public-API rate limits shared by a fleet (issue 15 parts 5 and 6): two
//! real `tempmx serve` processes on one real 6-node Redis Cluster (Debian redis-server,
//! started and stopped by the test), a real SMTP client (lettre) and HTTP client (ureq).

mod binary_support;

use std::path::Path;
use std::time::Duration;

use binary_support::{Running, sample, wait_for};
use tempmx_store::cluster::testkit::{NODES, TestCluster};

/// Starts node `name` of a fleet on `tc`: `api` goes into the `[api]` section, `extra`
/// after the `[fleet]` section; node names ending in `-epoll` run the epoll ingress (the
/// others the default, io_uring where the kernel allows), so both drivers' hand-offs run.
fn node(dir: &Path, tc: &TestCluster, name: &str, api: &str, extra: &str) -> Running {
    let seeds: Vec<String> = tc.seeds().iter().map(|s| format!("{s:?}")).collect();
    let section = format!(
        "[fleet]\nredis = [{}]\nnode = \"{name}\"\n{extra}",
        seeds.join(", ")
    );
    let text = binary_support::config_text(None, 60, &section).replacen(
        "[api]\n",
        &format!("[api]\n{api}"),
        1,
    );
    let text = if name.ends_with("-epoll") {
        text.replacen("[ingress]\n", "[ingress]\nbackend = \"epoll\"\n", 1)
    } else {
        text
    };
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("config");
    binary_support::start(&path)
}

const GREYLIST: &str = "[ingress.greylist]\nenabled = true\ndelay_secs = 1\n\
                        retry_window_secs = 60\nauto_allow_after = 0\n";

#[test]
fn a_sender_greylisted_on_one_mx_passes_on_the_other() {
    // Goal: issue 15 part 5. With greylisting on in both nodes, a sender's first attempt
    // at node A is deferred (451 4.7.1) and its retry after the delay at node B passes
    // (250), because the triplet lives in the cluster; the mail is then readable. A second
    // sender (another triplet) retried too early on B is still deferred. When the cluster
    // is gone, greylisting answers 451 4.3.0 (never 250) and the rate limits fall back to
    // this node's buckets (counted), not to refusing every request.
    // Method: a real cluster and two real binaries (B on the epoll ingress, A on the
    // default one); lettre sends each attempt over its own
    // connection; the test waits out the 1 s delay; at the end it kills every cluster
    // process it started (by PID, through the testkit).
    let mut tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let a = node(dir.path(), &tc, "mx-a", "", GREYLIST);
    let b = node(dir.path(), &tc, "mx-b-epoll", "", GREYLIST);
    // The log thread stores the "serving" line just after `start` saw it.
    let serving = wait_for(Duration::from_secs(5), "B's serving line", || {
        let log = b.log.lock().expect("log lock");
        log.iter().find(|l| l.contains("tempmx serving")).cloned()
    });
    assert!(serving.contains("\"backend\":\"Epoll\""), "{serving}");
    let (status, created) = a.public(
        "POST",
        "/api/v1/mailboxes",
        None,
        Some(r#"{"local_part":"grey"}"#),
    );
    assert_eq!(status, 201, "{created}");
    let address = created["address"].as_str().expect("address").to_owned();
    let token = created["token"].as_str().expect("token").to_owned();

    let first = a
        .send_with_subject(&address, "greylisted first")
        .expect_err("A defers the first attempt");
    assert!(first.is_transient(), "{first}");
    assert!(first.to_string().contains("Greylisted"), "{first}");
    // Too early on B: the triplet's delay is the fleet's, not per node.
    let early = b
        .send_with_subject(&address, "greylisted first")
        .expect_err("B defers a retry before the delay");
    assert!(early.to_string().contains("Greylisted"), "{early}");

    std::thread::sleep(Duration::from_millis(1_100));
    b.send_with_subject(&address, "greylisted first")
        .expect("B passes the retry after the delay: 250");
    let listed = wait_for(Duration::from_secs(1), "the retried message listed", || {
        let (status, page) = a.public(
            "GET",
            &format!("/api/v1/mailboxes/{address}/messages"),
            Some(&token),
            None,
        );
        (status == 200)
            .then_some(page["messages"].as_array()?.len())
            .filter(|&n| n == 1)
    });
    assert_eq!(listed, 1);
    // The passed triplet is known on A as well.
    a.send_with_subject(&address, "greylisted first")
        .expect("A knows the passed triplet: 250");
    let m = b.metrics();
    assert_eq!(
        sample(&m, "tempmx_greylist_checks_total{verdict=\"retried\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &a.metrics(),
            "tempmx_greylist_checks_total{verdict=\"known\"}"
        ),
        Some(1.0)
    );

    // The cluster goes away: greylisting fails closed, rate limits fail open (counted).
    for i in 0..NODES {
        tc.kill(i).expect("kill a cluster node this test started");
    }
    let down = a
        .send_with_subject(&address, "cluster down")
        .expect_err("no 250 without the greylisting state");
    assert!(down.is_transient(), "{down}");
    assert!(
        down.to_string().contains("Greylisting state unavailable"),
        "{down}"
    );
    let (status, _) = b.public("GET", "/api/v1/domains", None, None);
    assert_ne!(status, 429, "rate limits fall back to the local bucket");
    let m = b.metrics();
    let fallback = sample(
        &m,
        "tempmx_api_rate_limit_fleet_checks_total{result=\"fallback\"}",
    );
    assert!(fallback.is_some_and(|n| n >= 1.0), "{m}");
    assert!(
        sample(
            &a.metrics(),
            "tempmx_greylist_checks_total{verdict=\"unavailable\"}"
        )
        .is_some_and(|n| n >= 1.0)
    );
    a.stop();
    b.stop();
    drop(tc);
}

#[test]
fn a_creation_quota_spent_on_one_node_is_refused_on_the_other() {
    // Goal: issue 15 part 6. A client that spends its creation quota (burst 3, one more
    // per minute) on node A is refused 429 on node B, and reads (their
    // own class) still work on B. Method: a real cluster and two real binaries; ureq
    // creates three mailboxes on A, then a fourth on B; /metrics shows the refusal.
    let tc = TestCluster::start().expect("cluster starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let quota = "create_per_minute = 1\ncreate_burst = 3\n";
    let a = node(dir.path(), &tc, "api-a", quota, "");
    let b = node(dir.path(), &tc, "api-b", quota, "");
    for i in 0..3 {
        let (status, body) = a.public(
            "POST",
            "/api/v1/mailboxes",
            None,
            Some(&format!(r#"{{"local_part":"quota{i}"}}"#)),
        );
        assert_eq!(status, 201, "creation {i} on A: {body}");
    }
    let (status, body) = b.public(
        "POST",
        "/api/v1/mailboxes",
        None,
        Some(r#"{"local_part":"quota3"}"#),
    );
    assert_eq!(status, 429, "the fleet's quota is spent: {body}");
    let (status, _) = b.public("GET", "/api/v1/domains", None, None);
    assert_eq!(status, 200, "reads are another class");
    let m = b.metrics();
    assert_eq!(
        sample(
            &m,
            "tempmx_api_rate_limit_fleet_checks_total{result=\"refused\"}"
        ),
        Some(1.0),
        "{m}"
    );
    a.stop();
    b.stop();
    drop(tc);
}
