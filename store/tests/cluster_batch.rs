//! Fleet mode's write batches against a real 6-node Redis Cluster (Debian redis-server,
//! started and stopped by each test through `cluster::testkit`): one pipeline per primary
//! per batch, a stale slot map (a slot moved under the writer) that stores or refuses
//! every message and never acknowledges a lost one, and the write reply naming the
//! recipients that have webhooks.

use std::time::Duration;

use tempmx_store::cluster::testkit::TestCluster;
use tempmx_store::cluster::{Ack, Cluster, ClusterOptions, ClusterSink, HookFeed, MailboxKeys};
use tempmx_store::{Commit, Mailbox, MessageId, MessageSink, StoreError};

mod fleet_support;
use fleet_support::{mailbox, message};

fn options(cluster: &TestCluster, ack: Ack) -> ClusterOptions {
    let mut o = ClusterOptions::new(cluster.seeds(), "batch-node".to_owned());
    o.ack = ack;
    o
}

/// Hands one message per recipient list to the sink without waiting, then waits for
/// every verdict: the messages queue up together, as concurrent sessions' do.
async fn send_all(
    sink: &mut ClusterSink,
    each: &[Vec<Mailbox>],
) -> Vec<(MessageId, Result<(), StoreError>)> {
    let mut pending = Vec::with_capacity(each.len());
    for (i, to) in each.iter().enumerate() {
        let body = format!("From: s@y.test\r\nSubject: batch {i}\r\n\r\nbody {i}\r\n");
        let msg = message(to, body.as_bytes());
        let accepted = sink.accept(&msg).expect("queued");
        pending.push((accepted.id, accepted.commit));
    }
    let mut out = Vec::with_capacity(pending.len());
    for (id, commit) in pending {
        let res = match commit {
            Commit::Done => Ok(()),
            Commit::Pending(rx) => match tokio::time::timeout(Duration::from_secs(20), rx).await {
                Ok(Ok(r)) => r,
                _ => panic!("commit of {id} never resolved"),
            },
        };
        out.push((id, res));
    }
    out
}

/// A mailbox (from `prefix`) on primary `from`, another on a different primary `to`, and
/// 30 more spread over the slots (so over every primary).
fn mailboxes_to_move(tc: &TestCluster, prefix: &str) -> (usize, usize, Vec<Mailbox>) {
    let all: Vec<Mailbox> = (0..32)
        .map(|i| mailbox(&format!("{prefix}{i}@batch.test")))
        .collect();
    let primary = |m: &Mailbox| {
        tc.primary_of(&MailboxKeys::of(m).index())
            .expect("a primary owns every slot")
    };
    let from = primary(&all[0]);
    let other = all[1..]
        .iter()
        .position(|m| primary(m) != from)
        .expect("a mailbox on another primary")
        + 1;
    let to = primary(&all[other]);
    (from, to, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_pipeline_per_primary_and_every_message_reads_back() {
    // Goal: a batch whose messages go to many slots on all three primaries costs one
    // pipeline per primary, not one per slot, and every message is stored and readable.
    // Method: queue 600 messages to 600 mailboxes (spread over the slots, so over every
    // primary) at once on one sink, wait for all verdicts, then compare the write
    // counters (batches, pipelines) and read every message back.
    let tc = TestCluster::start().expect("cluster starts");
    let cluster = Cluster::connect(options(&tc, Ack::Primary)).expect("connects");
    let mut sink = cluster.sink(0).expect("sink");
    let each: Vec<Vec<Mailbox>> = (0..600)
        .map(|i| vec![mailbox(&format!("spread{i}@batch.test"))])
        .collect();
    let got = send_all(&mut sink, &each).await;
    let stats = cluster.write_stats();
    let (batches, pipelines) = (stats.batches(), stats.pipelines());
    assert_eq!(stats.messages(), 600);
    assert_eq!(stats.retries(), 0, "nothing moved, nothing re-sent");
    assert!(batches < 600, "messages were batched: {batches} batches");
    assert!(
        pipelines <= 3 * batches,
        "{pipelines} pipelines for {batches} batches: at most one per primary each"
    );
    for ((id, res), to) in got.iter().zip(&each) {
        res.as_ref().expect("stored");
        let view = cluster.get(&to[0], *id).await.expect("read");
        assert!(view.is_some(), "message {id} readable in {}", to[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_under_the_writer_stores_or_refuses_every_message() {
    // Goal: with a stale slot map (a mailbox's slot moved to another primary after the
    // writer read the map), the batch still stores every message or refuses it; nothing
    // acknowledged is lost, the writes of the moved slot's neighbours on the old primary
    // are not refused for it, and the map is read again (the next batch needs no retry).
    // Method: a real cluster; write to 32 mailboxes; move the first one's slot (with its
    // keys) to another primary with CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE and
    // SETSLOT NODE; then write a batch to all of them twice over and another batch after
    // it, and read every acknowledged message back.
    let tc = TestCluster::start().expect("cluster starts");
    let cluster = Cluster::connect(options(&tc, Ack::Primary)).expect("connects");
    let mut sink = cluster.sink(1).expect("sink");
    let (from, to, targets) = mailboxes_to_move(&tc, "moved");
    let one_each: Vec<Vec<Mailbox>> = targets.iter().map(|m| vec![m.clone()]).collect();
    let mut acked: Vec<(Mailbox, MessageId)> = Vec::new();
    for ((id, res), to) in send_all(&mut sink, &one_each).await.iter().zip(&one_each) {
        res.as_ref().expect("stored before the move");
        acked.push((to[0].clone(), *id));
    }

    // Move the first mailbox's slot from its primary to another one.
    let moved = targets[0].clone();
    move_slot(&tc, &MailboxKeys::of(&moved).index(), from, to);
    assert_eq!(
        tc.primary_of(&MailboxKeys::of(&moved).index()),
        Some(to),
        "the slot moved"
    );

    // The moved mailbox is still grouped with the old primary's: that pipeline fails
    // as a whole, and its writes are re-sent per slot after the map is read again.
    let mut batch = one_each.clone();
    batch.extend(one_each.iter().cloned());
    let before = cluster.write_stats().retries();
    let results = send_all(&mut sink, &batch).await;
    let retried = cluster.write_stats().retries() - before;
    let mut refused = 0;
    for ((id, res), to) in results.iter().zip(&batch) {
        match res {
            Ok(()) => acked.push((to[0].clone(), *id)),
            Err(StoreError::Cluster(_)) => refused += 1,
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
    assert!(retried > 0, "the stale map's pipeline was re-sent");
    assert_eq!(
        refused, 0,
        "one retry after reading the map stores everything"
    );

    // The map is fresh now: the next batch needs no retry.
    let before = cluster.write_stats().retries();
    for ((id, res), to) in send_all(&mut sink, &batch).await.iter().zip(&batch) {
        res.as_ref().expect("stored with the fresh map");
        acked.push((to[0].clone(), *id));
    }
    assert_eq!(cluster.write_stats().retries(), before, "no retry needed");

    for (m, id) in &acked {
        let view = cluster.get(m, *id).await.expect("read");
        assert!(view.is_some(), "acknowledged message {id} readable in {m}");
    }
    let listed = cluster.list(&moved, None, 100).await.expect("list");
    let mine = acked.iter().filter(|(m, _)| *m == moved).count();
    assert_eq!(
        listed.len(),
        mine,
        "the moved mailbox lists each message once: {listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_reply_names_the_recipients_with_webhooks() {
    // Goal: an acknowledged message reaches the hook feed with exactly its recipients
    // whose webhooks hash exists, and a message without such recipients does not reach it
    // at all. Method: a real cluster; put a webhooks hash beside one mailbox's keys with a
    // plain HSET, write one message to it and another mailbox, one to the other alone,
    // and read what the feed got.
    let tc = TestCluster::start().expect("cluster starts");
    let cluster = Cluster::connect(options(&tc, Ack::Primary)).expect("connects");
    let (feed, mut rx) = HookFeed::new(16);
    let mut sink = cluster.sink_with_hooks(0, feed.clone()).expect("sink");
    let hooked = mailbox("hooked@batch.test");
    let plain = mailbox("plain@batch.test");
    let mut conn = redis::cluster::ClusterClient::new(tc.seeds())
        .expect("client")
        .get_async_connection()
        .await
        .expect("connection");
    let _: () = redis::cmd("HSET")
        .arg(MailboxKeys::of(&hooked).hooks())
        .arg("h1")
        .arg("{}")
        .query_async(&mut conn)
        .await
        .expect("hset");
    let each = vec![vec![plain.clone(), hooked.clone()], vec![plain.clone()]];
    let got = send_all(&mut sink, &each).await;
    for (_, res) in &got {
        res.as_ref().expect("stored");
    }
    let (id, mailboxes) = rx.recv().await.expect("one hand-over");
    assert_eq!(id, got[0].0);
    assert_eq!(mailboxes, vec![hooked]);
    assert!(
        rx.try_recv().is_err(),
        "nothing for the message without hooks"
    );
    assert_eq!(feed.dropped(), 0);
}

/// Moves the slot of `key` from primary `from` to primary `to` as `redis-cli --cluster
/// reshard` does: IMPORTING on the target, MIGRATING on the source, MIGRATE of its keys,
/// then SETSLOT NODE on both.
fn move_slot(tc: &TestCluster, key: &str, from: usize, to: usize) {
    let cli = |i: usize, args: &[&str]| tc.cli(i, args).expect("redis-cli runs");
    let slot = cli(from, &["cluster", "keyslot", key]).trim().to_owned();
    let from_id = cli(from, &["cluster", "myid"]).trim().to_owned();
    let to_id = cli(to, &["cluster", "myid"]).trim().to_owned();
    let to_port = tc.ports()[to].to_string();
    cli(to, &["cluster", "setslot", &slot, "importing", &from_id]);
    cli(from, &["cluster", "setslot", &slot, "migrating", &to_id]);
    let keys = cli(from, &["cluster", "getkeysinslot", &slot, "1000"]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(!keys.is_empty(), "the mailbox's keys are in the slot");
    let mut args = vec!["migrate", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
    args.extend(keys.iter().copied());
    let out = cli(from, &args);
    assert!(out.trim() == "OK", "MIGRATE: {out}");
    cli(to, &["cluster", "setslot", &slot, "node", &to_id]);
    cli(from, &["cluster", "setslot", &slot, "node", &to_id]);
    // Every node learns the new owner by gossip; bounded wait for all to agree.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < end {
        let agree = (0..tc.ports().len()).all(|i| {
            tc.cli(i, &["cluster", "nodes"]).is_ok_and(|nodes| {
                nodes.lines().any(|l| {
                    l.starts_with(&to_id)
                        && l.split_whitespace()
                            .skip(8)
                            .any(|r| r == slot || in_range(r, &slot))
                })
            })
        });
        if agree {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the cluster did not agree on the moved slot in time");
}

/// Whether `CLUSTER NODES` slot field `field` (`N` or `A-B`) holds slot `slot`.
fn in_range(field: &str, slot: &str) -> bool {
    let Ok(s) = slot.parse::<u16>() else {
        return false;
    };
    match field.split_once('-') {
        Some((a, b)) => {
            matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= s && s <= b)
        }
        None => false,
    }
}
