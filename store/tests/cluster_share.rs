//! Fleet-wide greylisting and rate-limit functions (`share.lua`) against a real 6-node
//! Redis Cluster (Debian redis-server, started and stopped by each test through
//! `cluster::testkit`): atomic steps, bounded values and Redis expiry honoured.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempmx_store::cluster::testkit::TestCluster;
use tempmx_store::cluster::{Cluster, ClusterOptions, GreyStep, GreyTiming, RateQuota};

fn connect(tc: &TestCluster) -> Cluster {
    Cluster::connect(ClusterOptions::new(tc.seeds(), "share-test".to_owned())).expect("connects")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// `PTTL` of `key` (ms; -2 when absent) read from its slot's primary with redis-cli.
fn pttl(tc: &TestCluster, key: &str) -> i64 {
    let node = tc.primary_of(key).expect("a primary owns the slot");
    tc.cli(node, &["PTTL", key])
        .expect("redis-cli runs")
        .trim()
        .parse()
        .expect("PTTL is a number")
}

/// `GET` of `key` from its slot's primary ("" when absent).
fn get(tc: &TestCluster, key: &str) -> String {
    let node = tc.primary_of(key).expect("a primary owns the slot");
    tc.cli(node, &["GET", key])
        .expect("redis-cli runs")
        .trim()
        .to_owned()
}

fn triplet_key(network: u128, triplet: u128) -> String {
    format!("tmx:gl:{{{network:032x}}}:t:{triplet:032x}")
}

fn client_key(network: u128) -> String {
    format!("tmx:gl:{{{network:032x}}}:c")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greylisting_steps_are_shared_atomic_and_expire() {
    // Goal: the fleet's greylisting state machine. A first sighting defers for the delay
    // (set-if-absent with the retry window as expiry); a retry before the delay defers for
    // the rest; the first retry after it passes once (then known, remembered for the pass
    // lifetime) and counts one pass for its network; a network with enough passes skips;
    // a waiting triplet nobody retries is forgotten when its window ends, a passed one when
    // its lifetime ends (Redis expiry). The fingerprint key is set once for the fleet.
    // Method: a real cluster, two connections standing for two nodes, real time (short
    // delays), and redis-cli on the owning primary to read values and PTTLs.
    let tc = TestCluster::start().expect("cluster starts");
    let (a, b) = (connect(&tc), connect(&tc));
    let key = a.greylist_key([1; 16]).await.expect("key set");
    assert_eq!(key, [1; 16]);
    assert_eq!(b.greylist_key([2; 16]).await.expect("key read"), [1; 16]);

    let t = GreyTiming {
        delay_ms: 400,
        window_ms: 2_000,
        lifetime_ms: 1_500,
        auto_allow_after: 2,
    };
    let net: u128 = 0x1234_5678_9abc_def0_1234_5678_9abc_def0;
    let first = a.greylist_step(net, 1, now_ms(), t).await.expect("step");
    assert_eq!(first, GreyStep::Defer { retry_in_ms: 400 });
    let waiting = get(&tc, &triplet_key(net, 1));
    assert!(
        waiting.parse::<u64>().is_ok(),
        "first sighting time: {waiting}"
    );
    let ttl = pttl(&tc, &triplet_key(net, 1));
    assert!(
        (1..=2_000).contains(&ttl),
        "waiting expires with the window: {ttl}"
    );
    // Too early, through the other node: deferred for the rest of the delay.
    match b.greylist_step(net, 1, now_ms(), t).await.expect("step") {
        GreyStep::Defer { retry_in_ms } => assert!(retry_in_ms <= 400, "{retry_in_ms}"),
        other => panic!("early retry passed: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    // The retry after the delay passes on the other node, once; then it is known.
    match b.greylist_step(net, 1, now_ms(), t).await.expect("step") {
        GreyStep::Retried { waited_ms } => assert!(waited_ms >= 400, "{waited_ms}"),
        other => panic!("retry after the delay: {other:?}"),
    }
    assert_eq!(get(&tc, &triplet_key(net, 1)), "p");
    assert_eq!(get(&tc, &client_key(net)), "1");
    assert_eq!(
        a.greylist_step(net, 1, now_ms(), t).await.expect("step"),
        GreyStep::Known
    );
    let ttl = pttl(&tc, &triplet_key(net, 1));
    assert!(
        (1..=1_500).contains(&ttl),
        "passed expires with the lifetime: {ttl}"
    );

    // A second triplet of the network passes the same way: the network now skips.
    assert!(matches!(
        a.greylist_step(net, 2, now_ms(), t).await.expect("step"),
        GreyStep::Defer { .. }
    ));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(matches!(
        a.greylist_step(net, 2, now_ms(), t).await.expect("step"),
        GreyStep::Retried { .. }
    ));
    assert_eq!(
        get(&tc, &client_key(net)),
        "2",
        "count bounded by auto_allow_after"
    );
    assert_eq!(
        b.greylist_step(net, 3, now_ms(), t).await.expect("step"),
        GreyStep::AutoAllowlisted
    );
    assert_eq!(
        get(&tc, &client_key(net)),
        "2",
        "an allowlisted use does not count"
    );

    // Without the auto-allowlist, another network's triplet nobody retries is forgotten
    // at the end of its window: the next attempt starts over.
    let quiet = GreyTiming {
        auto_allow_after: 0,
        window_ms: 600,
        ..t
    };
    let other: u128 = 77;
    assert!(matches!(
        a.greylist_step(other, 9, now_ms(), quiet)
            .await
            .expect("step"),
        GreyStep::Defer { .. }
    ));
    assert_eq!(
        get(&tc, &client_key(other)),
        "",
        "no count without auto-allowlist"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        pttl(&tc, &triplet_key(other, 9)),
        -2,
        "expired with its window"
    );
    assert_eq!(
        a.greylist_step(other, 9, now_ms(), quiet)
            .await
            .expect("step"),
        GreyStep::Defer { retry_in_ms: 400 },
        "starts over"
    );
    // The passed triplet and the network's count lapse after the lifetime without use.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(
        pttl(&tc, &triplet_key(net, 1)),
        -2,
        "passed triplet expired"
    );
    assert_eq!(pttl(&tc, &client_key(net)), -2, "network count expired");
    assert!(matches!(
        a.greylist_step(net, 1, now_ms(), t).await.expect("step"),
        GreyStep::Defer { .. }
    ));
    drop((a, b));
    drop(tc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_buckets_hold_across_connections_and_expire_when_full() {
    // Goal: one client's bucket is shared by every node: the burst passes (split over two
    // connections), the next request is refused with the wait in seconds, the refill
    // lets one more through, classes are separate buckets, and the key expires once the
    // bucket is full again (nothing is kept for idle clients). Method: a real cluster, two
    // connections, real time, redis-cli for the key's PTTL.
    let tc = TestCluster::start().expect("cluster starts");
    let (a, b) = (connect(&tc), connect(&tc));
    let q = RateQuota {
        per_sec: 2.0,
        burst: 3,
    };
    let client = "192.0.2.7";
    assert_eq!(a.rate_take("create", client, q).await.expect("take"), None);
    assert_eq!(b.rate_take("create", client, q).await.expect("take"), None);
    assert_eq!(a.rate_take("create", client, q).await.expect("take"), None);
    assert_eq!(
        b.rate_take("create", client, q).await.expect("take"),
        Some(1),
        "the fourth in a burst of three waits"
    );
    assert_eq!(
        a.rate_take("read", client, q).await.expect("take"),
        None,
        "another class has its own bucket"
    );
    let key = format!("tmx:rl:create:{client}");
    let ttl = pttl(&tc, &key);
    assert!((1..=1_500).contains(&ttl), "expires when full: {ttl}");
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(b.rate_take("create", client, q).await.expect("take"), None);
    assert_eq!(
        a.rate_take("create", client, q).await.expect("take"),
        Some(1)
    );
    // The last take moved the arrival time to 2.5 s after the burst: full again then.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(pttl(&tc, &key), -2, "a full bucket is not kept");
    drop((a, b));
    drop(tc);
}
