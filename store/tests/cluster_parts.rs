//! Fleet mode's shared parts against a real 6-node Redis Cluster (Debian redis-server,
//! started and stopped by each test through `cluster::testkit`): a message to several
//! mailboxes and large MIME parts are stored once, live exactly as long as the messages
//! naming them, and a damaged or missing part fails the read.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use tempmx_store::cluster::testkit::TestCluster;
use tempmx_store::cluster::{
    Ack, Cluster, ClusterError, ClusterOptions, ClusterSink, MailboxKeys, Registration,
};
use tempmx_store::{Commit, Mailbox, MessageId, MessageSink, NewMessage, StoreError};

const TRACE: &[u8] = b"Received: from client.test by mx.fleet.test\r\n";

fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(s).expect("valid mailbox")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Hands one message to the sink and waits for the cluster's verdict.
async fn send(
    sink: &mut ClusterSink,
    to: &[Mailbox],
    body: &[u8],
) -> Result<MessageId, StoreError> {
    let msg = NewMessage {
        received_at_ms: 1,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        helo: "client.test",
        mail_from: "s@y.test",
        recipients: to,
        tls: None,
        trace_headers: TRACE,
        auth: &[],
        body,
    };
    let accepted = sink.accept(&msg)?;
    match accepted.commit {
        Commit::Done => Ok(accepted.id),
        Commit::Pending(rx) => match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(Ok(()))) => Ok(accepted.id),
            Ok(Ok(Err(e))) => Err(e),
            _ => panic!("commit never resolved"),
        },
    }
}

/// Registers `m` with message TTL `ttl_secs`.
async fn register(cluster: &Cluster, m: &Mailbox, ttl_secs: u64) {
    let reg = Registration {
        token_hash: [3; 32],
        expires_at_ms: now_ms() + 3 * 3600 * 1000,
        ttl_secs: Some(ttl_secs),
        cap: None,
    };
    assert!(cluster.create_mailbox(m, &reg).await.expect("create"));
}

/// Every shared-part key held by a primary.
fn part_keys(tc: &TestCluster) -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..tc.ports().len() {
        let role = tc.cli(i, &["role"]).expect("redis-cli runs");
        if !role.starts_with("master") {
            continue;
        }
        let out = tc
            .cli(i, &["--scan", "--pattern", "tmx:{p:*"])
            .expect("redis-cli runs");
        keys.extend(out.lines().filter(|l| !l.is_empty()).map(str::to_owned));
    }
    keys
}

/// Runs `args` on the primary of `key`'s slot; its reply, trimmed.
fn on_primary(tc: &TestCluster, key: &str, args: &[&str]) -> String {
    let node = tc.primary_of(key).expect("a primary owns the key");
    tc.cli(node, args)
        .expect("redis-cli runs")
        .trim()
        .to_owned()
}

fn pexpiretime(tc: &TestCluster, key: &str) -> i64 {
    on_primary(tc, key, &["pexpiretime", key])
        .parse()
        .expect("an integer")
}

fn raw(body: &[u8]) -> Vec<u8> {
    [TRACE, body].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_several_mailboxes_is_stored_once_for_as_long_as_they_keep_it() {
    // Goal: a message to mailboxes in different slots keeps its body once (one part key,
    // small per-mailbox records), every mailbox reads identical bytes, and the part
    // expires with the longest-lived message naming it, no earlier and no later (TTL
    // overrides longer and shorter than the default; a later message moves it later
    // only). Method: a real cluster; registrations with TTL overrides; PEXPIRETIME of the
    // part against the records'; 1-2 s TTLs waited out for the end of its life.
    let tc = TestCluster::start().expect("cluster starts");
    let cluster =
        Cluster::connect(ClusterOptions::new(tc.seeds(), "parts".to_owned())).expect("connects");
    let mut sink = cluster.sink(0).expect("sink");
    let (a, short, long) = (
        mailbox("a@fleet.test"),
        mailbox("short@fleet.test"),
        mailbox("long@fleet.test"),
    );
    register(&cluster, &short, 600).await;
    register(&cluster, &long, 7200).await;
    let slots: std::collections::HashSet<_> = [&a, &short, &long]
        .iter()
        .map(|m| MailboxKeys::of(m).slot())
        .collect();
    assert_eq!(slots.len(), 3, "the mailboxes are in different slots");

    let body = format!(
        "From: s@y.test\r\nSubject: to three\r\n\r\n{}\r\n",
        "shared text ".repeat(300)
    )
    .into_bytes();
    let to = vec![a.clone(), short.clone(), long.clone()];
    let id = send(&mut sink, &to, &body).await.expect("stored");
    for m in &to {
        let v = cluster.get(m, id).await.expect("get").expect("present");
        assert_eq!(v.raw, raw(&body), "{m}");
        assert_eq!(v.mailboxes.len(), 3);
        let rec = MailboxKeys::of(m).record(id);
        let len: usize = on_primary(&tc, &rec, &["strlen", &rec])
            .parse()
            .expect("an integer");
        assert!(
            len < body.len() / 2,
            "{m}'s record holds a reference: {len}"
        );
    }
    let parts = part_keys(&tc);
    assert_eq!(parts.len(), 1, "{parts:?}");
    let part = &parts[0];
    let rec_exp = |m: &Mailbox, id| pexpiretime(&tc, &MailboxKeys::of(m).record(id));
    let (e_a, e_short, e_long) = (rec_exp(&a, id), rec_exp(&short, id), rec_exp(&long, id));
    assert!(e_short < e_a && e_a < e_long, "{e_short} {e_a} {e_long}");
    assert_eq!(
        pexpiretime(&tc, part),
        e_long,
        "the longest-lived copy sets it"
    );

    // The same body later to the two shorter-lived mailboxes: stored once still, and
    // its expiry only moves later (it stays at the long mailbox's).
    let id2 = send(&mut sink, &to[..2], &body).await.expect("stored");
    assert_eq!(part_keys(&tc).len(), 1);
    assert_eq!(pexpiretime(&tc, part), e_long);
    let v = cluster
        .get(&short, id2)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(v.raw, raw(&body));

    // Only short-lived mailboxes: the part lives as long as their messages, not the
    // default TTL; past that it is gone, and not before the last of them.
    let (e1, e2) = (mailbox("e1@fleet.test"), mailbox("e2@fleet.test"));
    register(&cluster, &e1, 1).await;
    register(&cluster, &e2, 2).await;
    let body2 = format!("Subject: brief\r\n\r\n{}\r\n", "brief text ".repeat(200)).into_bytes();
    let id3 = send(&mut sink, &[e1.clone(), e2.clone()], &body2)
        .await
        .expect("stored");
    let part2 = part_keys(&tc)
        .into_iter()
        .find(|k| k != part)
        .expect("a second part");
    let (x1, x2) = (rec_exp(&e1, id3), rec_exp(&e2, id3));
    assert!(x1 < x2);
    assert_eq!(pexpiretime(&tc, &part2), x2);
    let wait_past = |t: i64| async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        while (now_ms() as i64) <= t && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_past(x1).await;
    assert_eq!(cluster.get(&e1, id3).await.expect("get"), None);
    let v = cluster
        .get(&e2, id3)
        .await
        .expect("get")
        .expect("still there");
    assert_eq!(v.raw, raw(&body2));
    wait_past(x2).await;
    assert_eq!(on_primary(&tc, &part2, &["exists", &part2]), "0");
    assert_eq!(on_primary(&tc, part, &["exists", part]), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_mime_parts_are_shared_and_a_damaged_part_fails_the_read() {
    // Goal: two messages carrying the same large attachment keep it once and both read
    // back byte for byte; a part whose bytes changed or that is gone makes every read of
    // a message naming it an error (never a shorter message), while listings, which use
    // the index summaries, still work. Method: a real cluster; the part overwritten in
    // place (SETRANGE) and then deleted through redis-cli. With `ack = replicas:1`, so
    // the parts' own WAIT runs too.
    let tc = TestCluster::start().expect("cluster starts");
    let mut opts = ClusterOptions::new(tc.seeds(), "parts".to_owned());
    opts.ack = Ack::Replicas(1);
    let cluster = Cluster::connect(opts).expect("connects");
    let mut sink = cluster.sink(0).expect("sink");
    let att = "QUJDREVGR0g".repeat(800);
    let mail = |text: &str| {
        format!(
            "From: s@y.test\r\nSubject: {text}\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\n{text}\r\n\
             --b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\n{att}\r\n--b--\r\n"
        )
        .into_bytes()
    };
    let (m1, m2) = (mailbox("one@fleet.test"), mailbox("two@fleet.test"));
    let (b1, b2) = (mail("first"), mail("second"));
    let id1 = send(&mut sink, std::slice::from_ref(&m1), &b1)
        .await
        .expect("stored");
    let id2 = send(&mut sink, std::slice::from_ref(&m2), &b2)
        .await
        .expect("stored");
    assert_eq!(
        cluster
            .get(&m1, id1)
            .await
            .expect("get")
            .expect("present")
            .raw,
        raw(&b1)
    );
    let read = cluster
        .read_for(&m2, id2, |m| m.raw().to_vec())
        .await
        .expect("read")
        .expect("present");
    assert_eq!(read, raw(&b2));
    let parts = part_keys(&tc);
    assert_eq!(parts.len(), 1, "{parts:?}");
    let part = &parts[0];

    let len = on_primary(&tc, part, &["strlen", part]);
    assert_eq!(on_primary(&tc, part, &["setrange", part, "100", "X"]), len);
    for (m, id) in [(&m1, id1), (&m2, id2)] {
        let err = cluster.get(m, id).await.expect_err("damaged part");
        assert!(
            matches!(err, ClusterError::Corrupt { ref key } if key == part),
            "{err}"
        );
        let err = cluster
            .read_for(m, id, |m| m.raw().len())
            .await
            .expect_err("damaged part");
        assert!(matches!(err, ClusterError::Corrupt { .. }), "{err}");
        assert_eq!(cluster.list(m, None, 10).await.expect("list").len(), 1);
    }
    assert_eq!(on_primary(&tc, part, &["del", part]), "1");
    let err = cluster.get(&m1, id1).await.expect_err("missing part");
    assert!(
        matches!(err, ClusterError::PartMissing { ref key } if key == part),
        "{err}"
    );
}
