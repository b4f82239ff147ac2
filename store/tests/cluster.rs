//! Fleet mode's cluster backend against a real 6-node Redis Cluster (Debian redis-server,
//! started and stopped by each test through `cluster::testkit`), shared parts included.

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use tempmx_store::cluster::testkit::TestCluster;
use tempmx_store::cluster::{
    Ack, Cluster, ClusterError, ClusterOptions, ClusterSink, Extended, FleetSubscription, Heard,
    MailboxKeys, Registration,
};
use tempmx_store::{Commit, Mailbox, MessageId, MessageSink, StoreError};

mod fleet_support;
use fleet_support::{TRACE, mailbox, message};

fn options(cluster: &TestCluster, ack: Ack) -> ClusterOptions {
    let mut o = ClusterOptions::new(cluster.seeds(), "test-node".to_owned());
    o.ack = ack;
    o.mailbox_records_max = 50;
    o
}

fn body(i: usize) -> Vec<u8> {
    format!("From: s@y.test\r\nSubject: message {i}\r\n\r\nbody {i}\r\n").into_bytes()
}

/// Hands one message to the sink and waits for the cluster's verdict.
async fn send(
    sink: &mut ClusterSink,
    to: &[Mailbox],
    body: &[u8],
) -> Result<MessageId, StoreError> {
    let msg = message(to, body);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_registry_round_trip_through_the_cluster() {
    // Goal: the write path stores records every reader gets back byte for byte, newest
    // first, capped per mailbox, with expiry honoured at once; the registry creates once
    // (set-if-absent), looks up and deletes; deletions unlink. Method: a real cluster, one
    // sink, messages to several mailboxes (one to two of them at once), then the read API.
    let tc = TestCluster::start().expect("cluster starts");
    let cluster = Cluster::connect(options(&tc, Ack::Primary)).expect("connects");
    let mut sink = cluster.sink(0).expect("sink");

    // Registry: one creation wins, the second is refused, lookups see the first.
    let a = mailbox("Alice@Fleet.Test");
    let reg = Registration {
        token_hash: [7; 32],
        expires_at_ms: now_ms() + 600_000,
        ttl_secs: None,
        cap: Some(3),
    };
    assert!(cluster.create_mailbox(&a, &reg).await.expect("create"));
    let other = Registration {
        token_hash: [9; 32],
        ..reg.clone()
    };
    assert!(
        !cluster
            .create_mailbox(&a, &other)
            .await
            .expect("create again")
    );
    assert_eq!(
        cluster.mailbox(&a).await.expect("lookup"),
        Some(reg.clone())
    );
    assert_eq!(
        cluster
            .mailbox(&mailbox("nobody@fleet.test"))
            .await
            .expect("lookup"),
        None
    );

    // Messages: alice has a cap of 3 from her registration; bob has the default (50).
    let to_a = vec![a.clone()];
    let to_b = vec![mailbox("bob@fleet.test")];
    let to_both = vec![a.clone(), mailbox("bob@fleet.test")];
    let mut ids_a = Vec::new();
    let mut ids_b = Vec::new();
    for i in 0..5 {
        ids_a.push(send(&mut sink, &to_a, &body(i)).await.expect("stored"));
        ids_b.push(
            send(&mut sink, &to_b, &body(100 + i))
                .await
                .expect("stored"),
        );
    }
    let both = send(&mut sink, &to_both, &body(999)).await.expect("stored");
    ids_a.push(both);
    ids_b.push(both);

    let list_a = cluster.list(&a, None, 100).await.expect("list");
    let got: Vec<MessageId> = list_a.iter().map(|s| s.id).collect();
    let want: Vec<MessageId> = ids_a.iter().rev().take(3).copied().collect();
    assert_eq!(got, want, "alice: newest first, capped at 3");
    let b = mailbox("bob@fleet.test");
    let list_b = cluster.list(&b, None, 100).await.expect("list");
    assert_eq!(list_b.len(), 6);
    assert_eq!(list_b[0].subject, "message 999");
    assert_eq!(list_b[5].subject, "message 100");
    assert_eq!(cluster.list(&b, None, 2).await.expect("list").len(), 2);
    // The summary an index entry carries is the record's own, field for field.
    for s in &list_b {
        let view = cluster.get(&b, s.id).await.expect("get").expect("live");
        assert_eq!(s, &view.summary);
    }
    // An entry as an older node wrote it (no summary) is still listed, from its record.
    let keys = MailboxKeys::of(&b);
    let mut conn = redis::cluster::ClusterClient::new(tc.seeds())
        .expect("client")
        .get_async_connection()
        .await
        .expect("connection");
    let newest: String = redis::cmd("LINDEX")
        .arg(keys.index())
        .arg(0)
        .query_async(&mut conn)
        .await
        .expect("lindex");
    let old: Vec<&str> = newest.splitn(3, ':').take(2).collect();
    let _: () = redis::cmd("LSET")
        .arg(keys.index())
        .arg(0)
        .arg(old.join(":"))
        .query_async(&mut conn)
        .await
        .expect("lset");
    assert_eq!(cluster.list(&b, None, 100).await.expect("list"), list_b);
    // Paging: older than the third newest gives the three oldest, newest first.
    let page = cluster
        .list(&b, Some(list_b[2].id), 10)
        .await
        .expect("list");
    let paged: Vec<MessageId> = page.iter().map(|s| s.id).collect();
    let older: Vec<MessageId> = list_b[3..].iter().map(|s| s.id).collect();
    assert_eq!(paged, older);

    // A trimmed record is gone for good; a kept one reads back byte for byte.
    assert_eq!(cluster.get(&a, ids_a[0]).await.expect("get"), None);
    let view = cluster
        .get(&b, ids_b[2])
        .await
        .expect("get")
        .expect("present");
    let mut raw = b"Received: from client.test\r\n".to_vec();
    raw.extend_from_slice(&body(102));
    assert_eq!(view.raw, raw);
    assert_eq!(view.summary.mailbox, "bob@fleet.test");
    assert!(view.summary.expires_at_ms > now_ms());
    let shared = cluster.get(&a, both).await.expect("get").expect("present");
    assert_eq!(shared.mailboxes, [a.as_str(), "bob@fleet.test"]);
    // An id is only readable through a mailbox it was delivered to.
    assert_eq!(cluster.get(&b, ids_a[4]).await.expect("get"), None);

    // Deleting one message unlinks it from the listing at once.
    assert!(cluster.delete_message(&b, ids_b[0]).await.expect("delete"));
    assert!(
        !cluster
            .delete_message(&b, ids_b[0])
            .await
            .expect("delete again")
    );
    assert_eq!(cluster.list(&b, None, 100).await.expect("list").len(), 5);

    // Deleting the mailbox drops its registration and its messages.
    let dropped = cluster.delete_mailbox(&a).await.expect("drop");
    assert_eq!(dropped.messages, 3);
    assert_eq!(dropped.expires_at_ms, Some(reg.expires_at_ms));
    let again = cluster.delete_mailbox(&a).await.expect("drop again");
    assert_eq!(
        (again.messages, again.expires_at_ms),
        (0, None),
        "removed once"
    );
    assert_eq!(cluster.mailbox(&a).await.expect("lookup"), None);
    assert!(cluster.list(&a, None, 100).await.expect("list").is_empty());
    assert_eq!(cluster.get(&a, both).await.expect("get"), None);
    assert!(
        cluster
            .create_mailbox(&a, &other)
            .await
            .expect("create after drop")
    );

    // Extending moves the expiry later, never earlier; an unknown mailbox is `None`.
    let later = other.expires_at_ms + 60_000;
    let got = cluster.extend_mailbox(&a, later).await.expect("extend");
    assert_eq!(
        got,
        Some(Extended {
            before_ms: other.expires_at_ms,
            after_ms: later
        })
    );
    let got = cluster.extend_mailbox(&a, now_ms()).await.expect("extend");
    assert_eq!(
        got,
        Some(Extended {
            before_ms: later,
            after_ms: later
        }),
        "never earlier"
    );
    let nobody = mailbox("nobody@fleet.test");
    assert_eq!(
        cluster.extend_mailbox(&nobody, later).await.expect("x"),
        None
    );

    // Mail an address got before it was registered (catch-all) is not its new owner's.
    let carol = mailbox("carol@fleet.test");
    send(&mut sink, std::slice::from_ref(&carol), &body(5))
        .await
        .expect("stored");
    assert_eq!(cluster.list(&carol, None, 10).await.expect("list").len(), 1);
    assert!(cluster.create_mailbox(&carol, &reg).await.expect("create"));
    assert!(
        cluster
            .list(&carol, None, 10)
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_override_expires_messages_at_once_and_corruption_is_caught() {
    // Goal: a mailbox's TTL override sets its messages' expiry and readers stop showing
    // them the moment it passes; a value that is not a valid frame is reported as corrupt,
    // never served. Method: a 1 s TTL registration, reads before and just after expiry;
    // then one record overwritten with other bytes through redis-cli, read directly and
    // through an index entry without a summary.
    let tc = TestCluster::start().expect("cluster starts");
    let cluster = Cluster::connect(options(&tc, Ack::Primary)).expect("connects");
    let mut sink = cluster.sink(1).expect("sink");
    let short = mailbox("short@fleet.test");
    let reg = Registration {
        token_hash: [1; 32],
        expires_at_ms: now_ms() + 600_000,
        ttl_secs: Some(1),
        cap: None,
    };
    assert!(cluster.create_mailbox(&short, &reg).await.expect("create"));
    let to = vec![short.clone()];
    let id = send(&mut sink, &to, &body(1)).await.expect("stored");
    let listed = cluster.list(&short, None, 10).await.expect("list");
    assert_eq!(listed.len(), 1);
    let expires = listed[0].expires_at_ms;
    assert!(expires <= now_ms() + 1_000, "the 1 s override applies");
    let view = cluster
        .get(&short, id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(view.summary.expires_at_ms, expires);
    while now_ms() <= expires {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        cluster
            .list(&short, None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(cluster.get(&short, id).await.expect("get"), None);

    let long = mailbox("long@fleet.test");
    let to = vec![long.clone()];
    let id = send(&mut sink, &to, &body(2)).await.expect("stored");
    let key = tempmx_store::cluster::MailboxKeys::of(&long).record(id);
    let node = tc.primary_of(&key).expect("a primary owns the key");
    let out = tc
        .cli(node, &["set", &key, "TMXR not a frame", "KEEPTTL"])
        .expect("redis-cli runs");
    assert_eq!(out.trim(), "OK");
    let err = cluster.get(&long, id).await.expect_err("corrupt value");
    assert!(matches!(err, ClusterError::Corrupt { .. }), "{err}");
    // A listing comes from the index entries' summaries and does not read the record;
    // an entry without one (as older nodes wrote it) makes the listing read the record,
    // which is then found corrupt.
    assert_eq!(cluster.list(&long, None, 10).await.expect("list").len(), 1);
    let index = tempmx_store::cluster::MailboxKeys::of(&long).index();
    let entry = tc
        .cli(node, &["lindex", &index, "0"])
        .expect("redis-cli runs");
    let old: Vec<&str> = entry.trim().splitn(3, ':').take(2).collect();
    let out = tc
        .cli(node, &["lset", &index, "0", &old.join(":")])
        .expect("redis-cli runs");
    assert_eq!(out.trim(), "OK");
    let err = cluster
        .list(&long, None, 10)
        .await
        .expect_err("corrupt value");
    assert!(matches!(err, ClusterError::Corrupt { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_writes_survive_a_primary_kill_and_refusals_are_errors() {
    // Goal: with `ack = replicas:1` every acknowledged message survives its primary being
    // SIGKILLed, writes that cannot be replicated are errors (the ingress's 451), never Ok,
    // and writing resumes on the other slots. Method: store messages to one mailbox, kill
    // the primary of its slot, keep writing (bounded) until the cluster has failed over,
    // then read every acknowledged message back.
    let mut tc = TestCluster::start().expect("cluster starts");
    let cluster = Cluster::connect(options(&tc, Ack::Replicas(1))).expect("connects");
    let mut sink = cluster.sink(2).expect("sink");
    let m = mailbox("durable@fleet.test");
    let to = vec![m.clone()];
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(
            send(&mut sink, &to, &body(i))
                .await
                .expect("stored and replicated"),
        );
    }
    let key = tempmx_store::cluster::MailboxKeys::of(&m).index();
    let primary = tc.primary_of(&key).expect("a primary owns the mailbox");
    tc.kill(primary).expect("SIGKILL the primary");

    let (mut refused, mut after) = (0, 0);
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end && after < 5 {
        match send(&mut sink, &to, &body(500)).await {
            Ok(id) => {
                acked.push(id);
                after += 1;
            }
            Err(StoreError::Cluster(_)) => refused += 1,
            Err(e) => panic!("unexpected error kind: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused > 0, "writes during the failover were refused");
    // The promoted replica has no replica of its own, so `replicas:1` keeps refusing this
    // slot; a mailbox on another primary still takes replicated writes.
    assert!(tc.wait_ok(Duration::from_secs(20)), "cluster recovered");
    let elsewhere = (0..200)
        .map(|i| format!("other{i}@fleet.test"))
        .find(|a| {
            let k = tempmx_store::cluster::MailboxKeys::of(&mailbox(a)).index();
            tc.primary_of(&k)
                .is_some_and(|p| p != primary && tc.pid(p).is_some())
        })
        .expect("a mailbox on a live primary");
    send(&mut sink, &[mailbox(&elsewhere)], &body(7))
        .await
        .expect("other slots still replicate");
    for id in &acked {
        let got = cluster.get(&m, *id).await.expect("read after failover");
        assert!(
            got.is_some(),
            "acknowledged message {id} readable after failover"
        );
    }
}

#[test]
fn an_unreachable_cluster_is_a_connect_error_naming_the_seeds() {
    // Goal: start-up against seeds nobody listens on fails with an error that names them.
    // Method: two loopback ports bound and released just before, so nothing listens.
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port")
        })
        .collect();
    let seeds: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    let mut o = ClusterOptions::new(seeds.clone(), "n".to_owned());
    o.timeout = Duration::from_millis(500);
    let err = Cluster::connect(o).err().expect("no cluster there");
    let text = err.to_string();
    assert!(matches!(err, ClusterError::Connect { .. }), "{text}");
    for s in &seeds {
        assert!(text.contains(s.as_str()), "{text} names {s}");
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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

/// Zeroes every node's command statistics.
fn reset_stats(tc: &TestCluster) {
    for i in 0..tc.ports().len() {
        assert_eq!(
            tc.cli(i, &["config", "resetstat"])
                .expect("redis-cli runs")
                .trim(),
            "OK"
        );
    }
}

/// Calls of `command` (lower case) the primaries counted since the
/// last [`reset_stats`], from INFO commandstats (commands run inside functions count).
fn command_calls(tc: &TestCluster, command: &str) -> u64 {
    let field = format!("cmdstat_{command}:calls=");
    let mut calls = 0;
    for i in 0..tc.ports().len() {
        let role = tc.cli(i, &["role"]).expect("redis-cli runs");
        if !role.starts_with("master") {
            continue;
        }
        let info = tc
            .cli(i, &["info", "commandstats"])
            .expect("redis-cli runs");
        for line in info.lines() {
            if let Some(rest) = line.trim().strip_prefix(&field) {
                let n = rest.split(',').next().unwrap_or_default();
                calls += n.parse::<u64>().expect("a call count");
            }
        }
    }
    calls
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
    // only; overrides shorter than the default leave it at the default expiry, never
    // earlier than its messages'); the batch spends exactly one round on its parts before
    // its records and reads no TTL override (no `HGET`). Method: a real cluster;
    // registrations with TTL overrides; PEXPIRETIME of the part against the records';
    // the write counters and every node's INFO commandstats around the send; 1-2 s TTLs
    // waited out for the end of the messages' lives.
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
    reset_stats(&tc);
    let rounds = cluster.write_stats().part_rounds();
    let id = send(&mut sink, &to, &body).await.expect("stored");
    assert_eq!(
        cluster.write_stats().part_rounds() - rounds,
        1,
        "one round of parts before the records"
    );
    assert_eq!(command_calls(&tc, "hget"), 0, "no TTL override read");
    assert_eq!(
        command_calls(&tc, "fcall"),
        4,
        "one tempmx_part, three tempmx_put"
    );
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
    let sent = now_ms() as i64;
    let id3 = send(&mut sink, &[e1.clone(), e2.clone()], &body2)
        .await
        .expect("stored");
    let done = now_ms() as i64;
    let part2 = part_keys(&tc)
        .into_iter()
        .find(|k| k != part)
        .expect("a second part");
    let (x1, x2) = (rec_exp(&e1, id3), rec_exp(&e2, id3));
    assert!(x1 < x2);
    // The default TTL (3600 s) from the message's acceptance: past both records.
    let p2 = pexpiretime(&tc, &part2);
    assert!(
        p2 > x2 && (sent + 3_600_000..=done + 3_600_000).contains(&p2),
        "{p2} {x2}"
    );
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
    assert_eq!(cluster.get(&e2, id3).await.expect("get"), None);
    assert_eq!(on_primary(&tc, part, &["exists", part]), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_mime_parts_are_shared_and_a_damaged_part_fails_the_read() {
    // Goal: two messages carrying the same large attachment keep it once and both read
    // back byte for byte; a part whose bytes changed or that is gone makes every read of
    // a message naming it an error (never a shorter message), while listings, which use
    // the index summaries, still work; a new message whose part meets other bytes under
    // its key is refused; a node that stores uncompressed shares a compressed part.
    // Method: a real cluster; the part overwritten in place (SETRANGE) and then deleted
    // through redis-cli. With `ack = replicas:1`, so the parts' own WAIT runs too, and a
    // mailbox with a longer TTL moves the part later.
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
    // The attachment compresses, so the part is stored as an LZ4 block (version 2), and a
    // node storing uncompressed (`compress = false`) shares it.
    assert_eq!(
        on_primary(&tc, part, &["getrange", part, "12", "13"]),
        "\u{2}\u{0}"
    );
    let mut plain_opts = ClusterOptions::new(tc.seeds(), "plain".to_owned());
    plain_opts.compress = false;
    let plain = Cluster::connect(plain_opts).expect("connects");
    let mut plain_sink = plain.sink(1).expect("sink");
    let m4 = mailbox("four@fleet.test");
    let b4 = mail("uncompressed");
    let id4 = send(&mut plain_sink, std::slice::from_ref(&m4), &b4)
        .await
        .expect("stored beside the compressed part");
    assert_eq!(part_keys(&tc), parts);
    for c in [&cluster, &plain] {
        let got = c.get(&m4, id4).await.expect("get").expect("present");
        assert_eq!(got.raw, raw(&b4));
    }
    // A mailbox keeping mail longer than the default moves the part to its record's
    // expiry (after the record, before the 250, with the part's own WAIT).
    let long = mailbox("long@fleet.test");
    register(&cluster, &long, 7200).await;
    let id3 = send(&mut sink, std::slice::from_ref(&long), &mail("third"))
        .await
        .expect("stored");
    let rec = MailboxKeys::of(&long).record(id3);
    assert_eq!(pexpiretime(&tc, part), pexpiretime(&tc, &rec));

    // One byte of the stored data (past the 24-byte header) changed.
    let len = on_primary(&tc, part, &["strlen", part]);
    let mid = ((24 + len.parse::<usize>().expect("a length")) / 2).to_string();
    let was = on_primary(&tc, part, &["getrange", part, &mid, &mid]);
    let other = if was == "X" { "Y" } else { "X" };
    assert_eq!(on_primary(&tc, part, &["setrange", part, &mid, other]), len);
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
    // Other bytes under the attachment's content key (a collision, as far as the writer
    // can tell): a new message naming it is refused (451), from a node storing compressed
    // (Redis compares the bytes) or plain (the node reads the part back and compares the
    // data), and nothing of it is stored.
    let late = mailbox("late@fleet.test");
    for s in [&mut sink, &mut plain_sink] {
        let err = send(s, std::slice::from_ref(&late), &mail("fourth"))
            .await
            .expect_err("a part colliding with other bytes is refused");
        assert!(
            matches!(
                err,
                StoreError::Cluster(ClusterError::PartCollision { ref key }) if key == part
            ),
            "{err}"
        );
    }
    // Another header (here its CRC) under the key: Redis refuses it outright.
    on_primary(&tc, part, &["setrange", part, "8", "XXXX"]);
    let err = send(&mut sink, std::slice::from_ref(&late), &mail("fourth"))
        .await
        .expect_err("a part colliding with another header is refused");
    assert!(err.to_string().contains("COLLISION"), "{err}");
    assert!(
        cluster
            .list(&late, None, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(on_primary(&tc, part, &["del", part]), "1");
    let err = cluster.get(&m1, id1).await.expect_err("missing part");
    assert!(
        matches!(err, ClusterError::PartMissing { ref key } if key == part),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_each_stored_record_and_hears_when_it_may_have_missed_some() {
    // Goal: live push hands a subscriber each record stored for its mailbox, checked, in
    // the announcement itself when it is small (no read), and the id of a bigger one or
    // of one naming shared parts (it reads that record, not the index); an earlier
    // build's id-only announcement is still an id; and it says "re-list" whenever
    // announcements may have been lost: a payload it cannot read, a carried record that
    // fails its checks, or more than its buffer holds. Method: a real cluster, one
    // subscription, the sink's writes, then raw SPUBLISHes on the mailbox's channel
    // (redis-cli on the slot's primary).
    let tc = TestCluster::start().expect("cluster starts");
    let mut opts = options(&tc, Ack::Primary);
    // No shared parts, so the big message below is one record over the carried size.
    opts.part_bytes_min = 0;
    let cluster = Cluster::connect(opts).expect("connects");
    let mut sink = cluster.sink(0).expect("sink");
    let m = mailbox("listener@fleet.test");
    let mut sub = cluster.subscribe(&m).await.expect("subscribe");
    for i in 0..3 {
        let id = send(&mut sink, std::slice::from_ref(&m), &body(i))
            .await
            .expect("stored");
        let Some(Heard::Carried(a)) = heard(&mut sub).await else {
            panic!("a small record is carried");
        };
        assert_eq!(a.id(), id);
        let (raw_read, subject) = a
            .read_for(&m, |r| (r.raw().to_vec(), r.summary().subject.clone()))
            .expect("checked")
            .expect("live");
        assert_eq!(raw_read, raw(&body(i)));
        assert_eq!(subject, format!("message {i}"));
    }

    // Over 16 KiB even compressed (no run repeats within LZ4's reach): announced by id.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: String = (0..24 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    let big = format!("From: s@y.test\r\nSubject: big\r\n\r\n{noise}\r\n").into_bytes();
    let id = send(&mut sink, std::slice::from_ref(&m), &big)
        .await
        .expect("stored");
    assert!(matches!(heard(&mut sub).await, Some(Heard::Stored(got)) if got == id));

    // A record naming shared parts is announced by id too, from a sink that shares them.
    let sharing = Cluster::connect(options(&tc, Ack::Primary)).expect("connects");
    let mut sharing_sink = sharing.sink(0).expect("sink");
    let other = mailbox("other@fleet.test");
    let shared_body = format!(
        "From: s@y.test\r\nSubject: to two\r\n\r\n{}\r\n",
        "shared text ".repeat(300)
    )
    .into_bytes();
    let id = send(&mut sharing_sink, &[m.clone(), other], &shared_body)
        .await
        .expect("stored");
    assert!(matches!(heard(&mut sub).await, Some(Heard::Stored(got)) if got == id));

    let channel = MailboxKeys::of(&m).channel();
    let old = MessageId(77).to_string();
    on_primary(&tc, &channel, &["spublish", &channel, &old]);
    assert!(matches!(
        heard(&mut sub).await,
        Some(Heard::Stored(MessageId(77)))
    ));
    on_primary(&tc, &channel, &["spublish", &channel, "not an id"]);
    assert!(matches!(heard(&mut sub).await, Some(Heard::Missed)));
    let damaged = format!("{old} {} TMXR-not-a-frame", now_ms() + 60_000);
    on_primary(&tc, &channel, &["spublish", &channel, &damaged]);
    assert!(matches!(heard(&mut sub).await, Some(Heard::Missed)));

    // 100 announcements while the subscriber reads none: more than its buffer (64).
    let node = tc.primary_of(&channel).expect("a primary owns the channel");
    let script: String = (1..=100)
        .map(|i| format!("SPUBLISH {channel} {}\n", MessageId(i)))
        .collect();
    let mut cli = std::process::Command::new("redis-cli")
        .args(["-p", &tc.ports()[node].to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli runs");
    std::io::Write::write_all(&mut cli.stdin.take().expect("stdin"), script.as_bytes())
        .expect("script written");
    assert!(cli.wait().expect("redis-cli ends").success());
    // Pushes reach the connection asynchronously; a second is far more than 100 need.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(matches!(heard(&mut sub).await, Some(Heard::Missed)));
    // What the buffer kept follows, newest last.
    let mut kept = Vec::new();
    while let Ok(Some(Heard::Stored(id))) =
        tokio::time::timeout(Duration::from_millis(500), sub.next()).await
    {
        kept.push(id);
    }
    assert_eq!(kept.len(), 64, "the buffer keeps the newest 64");
    assert_eq!(kept.last(), Some(&MessageId(100)));
}

/// The subscription's next announcement; at most 10 s.
async fn heard(sub: &mut FleetSubscription) -> Option<Heard> {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("an announcement within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_builds_library_and_a_flushed_primary_do_not_stop_the_writes() {
    // Goal: a node of another build (its library loaded with `FUNCTION LOAD REPLACE`, as
    // every build did at start) leaves this build's functions in place, and a primary that
    // lost them (a `FUNCTION FLUSH`, or slots moved to a primary added later) gets them
    // back within seconds, while the writes it cannot take meanwhile are errors (451),
    // never acknowledged. Method: a real cluster; an older build's library loaded on
    // every primary, then every primary's functions flushed; writes before, between and
    // after (bounded), and every acknowledged message read back.
    let tc = TestCluster::start().expect("cluster starts");
    let cluster = Cluster::connect(options(&tc, Ack::Primary)).expect("connects");
    let mut sink = cluster.sink(0).expect("sink");
    let m = mailbox("upgrade@fleet.test");
    let to = vec![m.clone()];
    let mut acked = vec![send(&mut sink, &to, &body(0)).await.expect("stored")];

    let old = "#!lua name=tempmx\n\
               redis.register_function('tempmx_put', function() return redis.error_reply('old') end)";
    let primaries: Vec<usize> = (0..tc.ports().len())
        .filter(|&i| {
            tc.cli(i, &["role"])
                .expect("redis-cli runs")
                .starts_with("master")
        })
        .collect();
    assert_eq!(primaries.len(), 3);
    for &i in &primaries {
        let loaded = tc
            .cli(i, &["function", "load", "replace", old])
            .expect("redis-cli runs");
        assert_eq!(loaded.trim(), "tempmx", "the older build's library loads");
    }
    acked.push(
        send(&mut sink, &to, &body(1))
            .await
            .expect("stored beside an older build's library"),
    );

    for &i in &primaries {
        let flushed = tc.cli(i, &["function", "flush"]).expect("redis-cli runs");
        assert_eq!(flushed.trim(), "OK");
    }
    let mut refused = 0;
    let end = Instant::now() + Duration::from_secs(15);
    let mut back = None;
    for i in 2.. {
        if Instant::now() > end {
            break;
        }
        match send(&mut sink, &to, &body(i)).await {
            Ok(id) => {
                acked.push(id);
                back = Some(i);
                break;
            }
            Err(StoreError::Cluster(ClusterError::Command(e))) => {
                assert!(e.to_string().contains("Function not found"), "{e}");
                refused += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused >= 1,
        "the first write after the flush found no function"
    );
    assert!(back.is_some(), "the functions came back within 15 s");
    let listed = cluster.list(&m, None, 100).await.expect("listing");
    for id in &acked {
        assert!(
            cluster.get(&m, *id).await.expect("read").is_some(),
            "acknowledged message {id} readable"
        );
        assert!(listed.iter().any(|s| s.id == *id), "{id} listed");
    }
    assert_eq!(listed.len(), acked.len(), "nothing refused was stored");
}

/// The minute now, once it is not the last of an hour (waits for the next minute then):
/// a minute of which the script may step from an earlier one in the same hour.
async fn step_minute() -> u64 {
    loop {
        let minute = now_ms() / 60_000;
        if !(minute + 1).is_multiple_of(60) {
            return minute;
        }
        tokio::time::sleep(Duration::from_millis(60_000 - now_ms() % 60_000 + 10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_mailbox_buckets_count_until_their_minute_and_are_pruned() {
    // Goal: a domain's live-mailbox count is the sum of its expiry-minute buckets still
    // ahead, kept as a running sum; a bucket that reached zero or whose minute has come is
    // deleted when the count is next read or changed (a hash from before the sum is summed
    // once), a change for a minute already past adds nothing, and reading a domain without
    // mailboxes, or whose buckets have all passed, leaves nothing behind. Method: a real
    // cluster; an old-format hash and a lagging `lo` planted with redis-cli, changes
    // through `change_domain_mailboxes`, reads through `domain_mailboxes`, the hash's
    // fields read back.
    let tc = TestCluster::start().expect("cluster starts");
    let cluster = Cluster::connect(options(&tc, Ack::Primary)).expect("connects");
    let domain = "count.test";
    let key = format!("tmx:{{d:{domain}}}:mb");
    let sum = format!("tmx:{{d:{domain}}}:mbs");
    let field = |f: &str| on_primary(&tc, &sum, &["hget", &sum, f]);
    let now = now_ms();
    let minute = now / 60_000;
    let (soon, later) = (now + 5 * 60_000, now + 10 * 60_000);
    let bucket = |ms: u64| ms.div_ceil(60_000).to_string();
    let read = || cluster.domain_mailboxes(vec![domain.to_owned()]);
    let change = |changes: Vec<(u64, i64)>| cluster.change_domain_mailboxes(domain, changes);

    // A hash as the build before the running sum left it: a past bucket and a live one.
    let past = (minute - 3).to_string();
    on_primary(&tc, &key, &["hset", &key, &past, "3", &bucket(later), "1"]);
    assert_eq!(
        read().await.expect("read"),
        vec![1],
        "past minutes are not live"
    );
    assert_eq!(on_primary(&tc, &key, &["hexists", &key, &past]), "0");
    assert_eq!(field("t"), "1");

    assert_eq!(change(vec![(soon, 1)]).await.expect("add"), 2);
    assert_eq!(change(vec![(soon, -1)]).await.expect("remove"), 1);
    assert_eq!(
        on_primary(&tc, &key, &["hexists", &key, &bucket(soon)]),
        "0",
        "an emptied bucket is deleted"
    );
    assert_eq!(
        change(vec![(now - 120_000, 1)]).await.expect("past change"),
        1
    );
    // A bucket whose minute came since the last call is dropped from the sum: planted as
    // the sum would have it (a bucket up to two minutes ago, `lo` up to five minutes ago,
    // both within the hour of the minute after this one: across an hour the script sums
    // the buckets afresh instead of stepping through the minutes, the path tested here).
    let minute = step_minute().await;
    let into_hour = (minute + 1) % 60;
    let lo_planted = minute + 1 - into_hour.min(5);
    let gone = (minute - 2).max(lo_planted).to_string();
    let lagging = lo_planted.to_string();
    on_primary(&tc, &key, &["hset", &key, &gone, "4"]);
    on_primary(&tc, &sum, &["hset", &sum, "t", "5", "lo", &lagging]);
    assert_eq!(read().await.expect("read"), vec![1]);
    assert_eq!(on_primary(&tc, &key, &["hexists", &key, &gone]), "0");
    assert_eq!(field("t"), "1");
    // The minute after the one the call ran in (the test may have crossed one).
    let lo: u64 = field("lo").parse().expect("a minute");
    assert!(
        lo == minute + 1 || lo == minute + 2,
        "lo {lo}, minute {minute}"
    );
    assert_eq!(
        on_primary(&tc, &key, &["hlen", &key]),
        "1",
        "one bucket left"
    );

    let empty = "tmx:{d:none.test}:mb";
    let none = cluster
        .domain_mailboxes(vec!["none.test".to_owned()])
        .await
        .expect("read");
    assert_eq!(none, vec![0]);
    assert_eq!(on_primary(&tc, empty, &["exists", empty]), "0");

    // Buckets all past and no sum yet (an older build's hash): the read empties the hash
    // and leaves no sum behind (it would have no expiry).
    let (old, old_sum) = ("tmx:{d:old.test}:mb", "tmx:{d:old.test}:mbs");
    on_primary(&tc, old, &["hset", old, &past, "2"]);
    on_primary(&tc, old, &["expire", old, "600"]);
    let counted = cluster
        .domain_mailboxes(vec!["old.test".to_owned()])
        .await
        .expect("read");
    assert_eq!(counted, vec![0]);
    assert_eq!(on_primary(&tc, old, &["exists", old, old_sum]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_may_evict_mail_is_refused_at_connect() {
    // Goal: fleet mode does not start on a cluster whose primaries may evict keys under
    // memory pressure (that could drop acknowledged mail before its expiry); the error
    // names the primary and its policy, and the same cluster set to `noeviction` connects.
    // Method: a real cluster; one primary's policy changed with CONFIG SET.
    let tc = TestCluster::start().expect("cluster starts");
    let primary = (0..tc.ports().len())
        .find(|&i| {
            tc.cli(i, &["role"])
                .expect("redis-cli runs")
                .starts_with("master")
        })
        .expect("a primary");
    let set = |policy: &str| {
        let out = tc
            .cli(primary, &["config", "set", "maxmemory-policy", policy])
            .expect("redis-cli runs");
        assert_eq!(out.trim(), "OK");
    };
    set("volatile-ttl");
    let err = Cluster::connect(options(&tc, Ack::Primary))
        .err()
        .expect("refused");
    let port = tc.ports()[primary].to_string();
    assert!(
        matches!(&err, ClusterError::Evicting { node, policy }
            if node.ends_with(&port) && policy == "volatile-ttl"),
        "{err}"
    );
    assert!(err.to_string().contains("noeviction"), "{err}");
    set("noeviction");
    Cluster::connect(options(&tc, Ack::Primary)).expect("connects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_refused_for_one_recipient_leaves_nothing_in_the_others() {
    // Goal: when one mailbox's write of a message fails, the message is refused (451) and
    // the records already stored for its other mailboxes are removed, so the sender's
    // retry does not show twice there; the same when the writes were taken and a WAIT
    // for replicas fell short. Method: a real cluster; one recipient's index key made a
    // string (its write then fails with WRONGTYPE), a message to it and another mailbox,
    // then both listings; the same message again once the key is fixed; then a node
    // asking for more replicas than the cluster has.
    let tc = TestCluster::start().expect("cluster starts");
    let cluster = Cluster::connect(options(&tc, Ack::Primary)).expect("connects");
    let mut sink = cluster.sink(0).expect("sink");
    let (ok, broken) = (mailbox("fine@fleet.test"), mailbox("broken@fleet.test"));
    let index = MailboxKeys::of(&broken).index();
    assert_eq!(
        on_primary(&tc, &index, &["set", &index, "not a list"]),
        "OK"
    );
    let to = vec![ok.clone(), broken.clone()];
    let err = send(&mut sink, &to, &body(1))
        .await
        .expect_err("one recipient's write fails");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    assert!(
        cluster.list(&ok, None, 10).await.expect("list").is_empty(),
        "the other mailbox keeps nothing of the refused message"
    );
    assert_eq!(on_primary(&tc, &index, &["del", &index]), "1");
    let id = send(&mut sink, &to, &body(1))
        .await
        .expect("the retry is stored");
    for m in [&ok, &broken] {
        let listed = cluster.list(m, None, 10).await.expect("list");
        assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), vec![id]);
    }

    // A WAIT that falls short (two replicas asked of a cluster with one per primary)
    // refuses writes the primaries took: they are removed too.
    let mut opts = options(&tc, Ack::Replicas(2));
    opts.timeout = Duration::from_millis(500);
    let short = Cluster::connect(opts).expect("connects");
    let mut short_sink = short.sink(0).expect("sink");
    let lone = mailbox("lone@fleet.test");
    let err = send(&mut short_sink, std::slice::from_ref(&lone), &body(2))
        .await
        .expect_err("the WAIT falls short");
    // WAIT's own timeout and the client's are the same deadline: either may answer.
    let text = err.to_string();
    assert!(
        text.contains("replicas") || text.contains("timed out"),
        "{text}"
    );
    assert!(
        cluster
            .list(&lone, None, 10)
            .await
            .expect("list")
            .is_empty(),
        "a message refused for too few replicas leaves nothing"
    );
}
