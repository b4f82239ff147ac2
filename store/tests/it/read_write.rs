//! Append, read, list paging, dedup, subscriptions, concurrency.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempmx_store::{Event, MessageSink, NewMessage, StoreConfig, StoreError, TlsSummary};

use crate::harness::{T0, body, mb, open, put, small};

#[test]
fn stored_message_reads_back_exactly() {
    // Goal: every field written comes back; raw = trace headers + body; ids name their shard.
    let (store, mut w, _, _) = open(&small(), 2);
    let b = body("Your code", "123456");
    let tls = TlsSummary {
        version: "TLSv1.3".into(),
        cipher: "TLS13_AES_128_GCM_SHA256".into(),
    };
    let rcpts = vec![mb("a@pool.test"), mb("b@pool.test")];
    let msg = NewMessage {
        received_at_ms: T0 + 5,
        client_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
        helo: "h.test",
        mail_from: "",
        recipients: &rcpts,
        tls: Some(&tls),
        trace_headers: b"Received: x\r\n",
        auth: &[],
        body: &b,
    };
    let id = w[1].accept(&msg).expect("accept").id;
    let v = store.get(id).expect("stored");
    assert_eq!(v.raw, [&b"Received: x\r\n"[..], &b].concat());
    assert_eq!(v.summary.subject, "Your code");
    assert_eq!(v.summary.from, "Sender <s@shop.test>");
    assert_eq!(v.summary.received_at_ms, T0 + 5);
    assert_eq!(v.summary.expires_at_ms, T0 + 3_600_000);
    assert_eq!(v.summary.size, v.raw.len() as u64);
    assert_eq!(v.client_ip, "::1");
    assert_eq!(v.tls, Some(tls));
    assert_eq!(v.mailboxes, ["a@pool.test", "b@pool.test"]);
    assert!(store.contains(&mb("a@pool.test"), id) && store.contains(&mb("b@pool.test"), id));
    assert!(!store.contains(&mb("c@pool.test"), id));
    assert_eq!(store.list(&mb("b@pool.test"), None, 10)[0].id, id);
    assert_eq!(id.to_string().len(), 16);
}

#[test]
fn list_merges_shards_newest_first_with_cursor() {
    // Goal: messages written by two shards list newest first; `before` pages without overlap.
    let (store, mut w, clock, _) = open(&small(), 2);
    let mut ids = Vec::new();
    for i in 0..10 {
        clock.advance(1);
        ids.push(
            put(
                &mut w[i % 2],
                &["u@pool.test"],
                &body(&format!("m{i}"), "x"),
            )
            .id,
        );
    }
    let page1 = store.list(&mb("u@pool.test"), None, 4);
    let want: Vec<_> = ids.iter().rev().take(4).copied().collect();
    assert_eq!(page1.iter().map(|s| s.id).collect::<Vec<_>>(), want);
    let page2 = store.list(&mb("u@pool.test"), Some(page1[3].id), 100);
    assert_eq!(page2.len(), 6);
    assert!(page2.iter().all(|s| s.id < page1[3].id));
    assert!(store.list(&mb("nobody@pool.test"), None, 10).is_empty());
}

#[test]
fn limits_reject_with_typed_errors() {
    // Goal: no recipients, too many recipients and an oversized message are typed errors.
    let cfg = StoreConfig {
        record_mailboxes_max: 2,
        ..small()
    };
    let (store, mut w, _, _) = open(&cfg, 1);
    let big = vec![b'x'; 70 << 10];
    let mk = |r: &[&str]| r.iter().map(|s| mb(s)).collect::<Vec<_>>();
    for (rcpts, b, want) in [
        (mk(&[]), &b"x"[..], "recipients"),
        (mk(&["a@p.t", "b@p.t", "c@p.t"]), &b"x"[..], "recipients"),
        (mk(&["a@p.t"]), &big[..], "large"),
    ] {
        let msg = NewMessage {
            received_at_ms: T0,
            client_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            helo: "h",
            mail_from: "",
            recipients: &rcpts,
            tls: None,
            trace_headers: b"",
            auth: &[],
            body: b,
        };
        let err = w[0].accept(&msg).expect_err("rejected");
        match (want, err) {
            ("recipients", StoreError::Recipients { .. })
            | ("large", StoreError::TooLarge { .. }) => {}
            (w, e) => panic!("{w}: {e}"),
        }
    }
    let fits = vec![b'y'; store.record_bytes_max() - 200];
    assert!(store.get(put(&mut w[0], &["a@p.t"], &fits).id).is_some());
}

#[test]
fn config_errors_are_all_reported() {
    // Goal: open reports every invalid relation at once.
    let cfg = StoreConfig {
        segment_bytes: 1000,
        ttl_secs: 0,
        batch_wait_us: 5000,
        ..StoreConfig::default()
    };
    match tempmx_store::Store::open(&cfg, 2) {
        Err(StoreError::Config(errs)) => assert!(errs.len() >= 3, "{errs:?}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted invalid config"),
    }
    let disk = StoreConfig {
        persistence: tempmx_store::Persistence::Disk,
        ..StoreConfig::default()
    };
    assert!(tempmx_store::Store::open(&disk, 1).is_err());
}

fn newsletter(to: &str, html: &str) -> Vec<u8> {
    format!(
        "From: news@shop.test\r\nTo: {to}\r\nSubject: Deals\r\nContent-Type: multipart/alternative; boundary=\"bb\"\r\n\r\n\
         --bb\r\nContent-Type: text/plain\r\n\r\nHello {to}\r\n--bb\r\nContent-Type: text/html\r\n\r\n{html}\r\n--bb--\r\n"
    )
    .into_bytes()
}

#[test]
fn dedup_shares_large_parts_and_counts_references() {
    // Goal: the same HTML to many recipients is stored once; refs follow deletes; bytes intact.
    let cfg = StoreConfig {
        dedup_bytes_max: 64 << 10,
        dedup_part_bytes_min: 1024,
        ..small()
    };
    let (store, mut w, _, _) = open(&cfg, 1);
    let html = format!("<html>{}</html>", "<p>buy now</p>".repeat(400));
    let key = tempmx_store::Parts::key(html.as_bytes());
    let mut ids = Vec::new();
    for i in 0..5 {
        let to = format!("u{i}@pool.test");
        let b = newsletter(&to, &html);
        let id = put(&mut w[0], &[to.as_str()], &b).id;
        let v = store.get(id).expect("stored");
        assert!(v.raw.ends_with(&b));
        ids.push((to, id));
    }
    assert_eq!(store.part_refs(key), 5);
    let st = store.stats();
    assert_eq!(st.shards[0].parts, 1);
    assert_eq!(st.totals.dedup_bytes_saved, 4 * html.len() as u64);
    for (to, id) in &ids[..4] {
        assert!(store.delete_message(&mb(to), *id));
    }
    assert_eq!(store.part_refs(key), 1);
    assert!(store.delete_message(&mb(&ids[4].0), ids[4].1));
    assert_eq!(store.part_refs(key), 0);
    assert_eq!(store.stats().shards[0].part_bytes, 0);
}

#[test]
fn subscriber_is_woken_and_told_when_it_lags() {
    // Goal: a waiting subscriber wakes with the summary; overflow yields Lagged with the count.
    let cfg = StoreConfig {
        subscriber_queue_max: 2,
        ..small()
    };
    let (store, mut w, _, _) = open(&cfg, 2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let sub = store.subscribe(&mb("live@pool.test")).expect("subscribe");
    let waiter = rt.spawn(async move {
        let e = tokio::time::timeout(Duration::from_secs(10), sub.recv()).await;
        (e, sub)
    });
    std::thread::sleep(Duration::from_millis(20));
    let id = put(
        &mut w[1],
        &["live@pool.test", "other@pool.test"],
        &body("hi", "x"),
    )
    .id;
    let (e, sub) = rt.block_on(waiter).expect("join");
    match e.expect("woken") {
        Event::New(s) => assert_eq!(
            (s.id, s.mailbox.as_str(), s.subject.as_str()),
            (id, "live@pool.test", "hi")
        ),
        other => panic!("{other:?}"),
    }
    for i in 0..5 {
        put(&mut w[i % 2], &["live@pool.test"], &body("flood", "x"));
    }
    assert_eq!(sub.try_recv(), Some(Event::Lagged { lost: 3 }));
    assert_eq!(sub.try_recv(), None);
    assert_eq!(store.stats().subscriber_events_lost, 3);
    assert_eq!(store.stats().subscribers, 1);
    drop(sub);
    assert_eq!(store.stats().subscribers, 0);
    let cfg1 = StoreConfig {
        subscribers_max: 1,
        ..small()
    };
    let (s1, _, _, _) = open(&cfg1, 1);
    let _keep = s1.subscribe(&mb("a@p.t")).expect("first");
    assert!(matches!(
        s1.subscribe(&mb("b@p.t")),
        Err(StoreError::Subscribers(1))
    ));
}

#[test]
fn concurrent_reader_sees_consistent_messages_while_writer_appends() {
    // Goal: a reader thread listing and fetching during appends (with wrap-around) only ever
    // sees complete, matching messages. Bounded: 3000 appends, 10 s deadline.
    let (store, mut w, _, _) = open(&small(), 1);
    let mut writer = w.remove(0);
    let reader_store = Arc::clone(&store);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let reader = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            for s in reader_store.list(&mb("c@pool.test"), None, 100) {
                if let Some(v) = reader_store.get(s.id) {
                    let text = format!("payload {}", s.subject);
                    assert!(v.raw.windows(text.len()).any(|x| x == text.as_bytes()));
                    seen += 1;
                }
            }
        }
        seen
    });
    for i in 0..3000 {
        put(
            &mut writer,
            &["c@pool.test"],
            &body(&i.to_string(), &format!("payload {i} {}", "z".repeat(200))),
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.join().expect("reader ok");
    assert!(seen > 0);
    assert!(store.stats().totals.evicted_capacity > 0, "ring wrapped");
}
