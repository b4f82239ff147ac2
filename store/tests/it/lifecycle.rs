//! Eviction, per-mailbox cap, TTL, deletion.

use tempmx_store::{MessageId, StoreConfig};

use crate::harness::{body, mb, open, put, small};

#[test]
fn ring_wraps_and_evicts_oldest_first() {
    // Goal: writing far past the arena keeps exactly a newest suffix; evictions are counted.
    let (store, mut w, clock, _) = open(&small(), 1);
    let segments = store.geometry().segments as u64;
    assert!(segments >= 4);
    let mut ids = Vec::new();
    for i in 0..2000 {
        clock.advance(1);
        let mb = format!("m{}@pool.test", i % 50);
        ids.push((
            mb.clone(),
            put(&mut w[0], &[mb.as_str()], &body("s", &"q".repeat(300))).id,
        ));
    }
    let present: Vec<bool> = ids.iter().map(|(_, id)| store.get(*id).is_some()).collect();
    let first_kept = present.iter().position(|&p| p).expect("something kept");
    assert!(
        present[first_kept..].iter().all(|&p| p),
        "kept set is a suffix"
    );
    assert!(first_kept > 1000);
    let st = store.stats();
    assert_eq!(st.totals.evicted_capacity as usize, first_kept);
    assert!(st.shards[0].segments_used <= segments);
    assert_eq!(st.shards[0].index_entries as usize, 2000 - first_kept);
}

#[test]
fn mailbox_cap_keeps_newest() {
    // Goal: a mailbox shows at most `mailbox_records_max`, the newest; cut entries are counted.
    let cfg = StoreConfig {
        mailbox_records_max: 5,
        ..small()
    };
    let (store, mut w, clock, _) = open(&cfg, 1);
    let mut ids = Vec::new();
    for _ in 0..23 {
        clock.advance(1);
        ids.push(put(&mut w[0], &["hot@pool.test"], &body("s", "x")).id);
    }
    let listed: Vec<MessageId> = store
        .list(&mb("hot@pool.test"), None, 100)
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        listed,
        ids.iter().rev().take(5).copied().collect::<Vec<_>>()
    );
    assert!(!store.contains(&mb("hot@pool.test"), ids[0]));
    assert!(store.stats().totals.evicted_mailbox_cap >= 10);
}

#[test]
fn ttl_expiry_with_controlled_clock_and_override() {
    // Goal: messages vanish at their TTL (before any recycling), expire() frees segments,
    // and a per-mailbox override changes the TTL of later messages.
    let cfg = StoreConfig {
        ttl_secs: 60,
        ..small()
    };
    let (store, mut w, clock, _) = open(&cfg, 1);
    store
        .set_mailbox_ttl(&mb("long@pool.test"), Some(600))
        .expect("override");
    let short = put(&mut w[0], &["a@pool.test"], &body("s", "x")).id;
    let long = put(&mut w[0], &["long@pool.test"], &body("l", "x")).id;
    clock.advance(59_999);
    assert!(store.get(short).is_some());
    clock.advance(1);
    assert!(store.get(short).is_none());
    assert!(store.list(&mb("a@pool.test"), None, 10).is_empty());
    assert!(store.get(long).is_some());
    store.expire();
    assert_eq!(
        store.stats().totals.expired,
        0,
        "segment held by the longer TTL"
    );
    clock.advance(540_000);
    store.expire();
    let st = store.stats();
    assert_eq!(st.totals.expired, 2);
    assert_eq!(st.shards[0].index_entries, 0);
    assert_eq!(st.shards[0].bytes_used, 0);
    store
        .set_mailbox_ttl(&mb("long@pool.test"), None)
        .expect("clear");
}

#[test]
fn deletion_is_immediate_and_respects_other_recipients() {
    // Goal: deleting from one mailbox hides it there only; deleting a mailbox empties it.
    let (store, mut w, _, _) = open(&small(), 2);
    let shared = put(
        &mut w[0],
        &["x@pool.test", "y@pool.test"],
        &body("both", "x"),
    )
    .id;
    let own = put(&mut w[1], &["x@pool.test"], &body("own", "x")).id;
    assert!(store.delete_message(&mb("x@pool.test"), shared));
    assert!(!store.delete_message(&mb("x@pool.test"), shared));
    assert!(!store.contains(&mb("x@pool.test"), shared));
    assert!(store.contains(&mb("y@pool.test"), shared));
    assert!(store.get(shared).is_some());
    assert_eq!(store.delete_mailbox(&mb("x@pool.test")), 1);
    assert!(store.get(own).is_none());
    assert!(store.list(&mb("x@pool.test"), None, 10).is_empty());
    assert_eq!(store.delete_mailbox(&mb("y@pool.test")), 1);
    assert!(store.get(shared).is_none());
    assert_eq!(store.stats().totals.deleted, 3);
}

#[test]
fn index_budget_is_held_to_and_reclaims_when_hit() {
    // Goal: a store whose index budget is far below what its arena could hold evicts for
    // the index (IndexFull) and never holds more index memory than the plan set aside.
    // Method: 1 entry per MiB, 3000 tiny messages to unique mailboxes, check held entries
    // and bytes after every append. Bounded: 3000 appends.
    let cfg = StoreConfig {
        memory_bytes_max: 4 << 20,
        segment_bytes: 256 << 10,
        index_entries_per_mib: 1,
        record_mailboxes_max: 400,
        dedup_bytes_max: 0,
        ..StoreConfig::default()
    };
    let (store, mut w, _, _) = open(&cfg, 1);
    let g = store.geometry();
    assert_eq!(g.entries, 400, "the recipient bound sets the budget");
    for i in 0..3000 {
        put(
            &mut w[0],
            &[format!("user{i}@pool.test").as_str()],
            b"Subject: x\r\n\r\nshort",
        );
        let s = &store.stats().shards[0];
        assert!(s.index_entries as usize <= g.entries);
        assert!(s.index_bytes as usize <= g.index_bytes_max(), "{s:?}");
    }
    let s = &store.stats().shards[0];
    assert!(s.counters.evicted_index_full > 0, "{:?}", s.counters);
    assert_eq!(s.counters.evicted_capacity, 0, "the arena never filled");
    assert_eq!(store.list(&mb("user2999@pool.test"), None, 10).len(), 1);
}

#[test]
fn deleting_never_brings_back_a_copy_the_cap_hid() {
    // Goal: after a user deletes a visible message, the mailbox shows the rest of what it
    // showed, never an older copy the cap had hidden (the cap is applied lazily, so such
    // copies may still be linked), and such copies are neither readable nor deletable by
    // id. Method: cap 3, five messages, delete newest and oldest.
    let cfg = StoreConfig {
        mailbox_records_max: 3,
        ..small()
    };
    let (store, mut w, clock, _) = open(&cfg, 1);
    let ids: Vec<MessageId> = (0..5)
        .map(|i| {
            clock.advance(1);
            put(&mut w[0], &["hot@pool.test"], &body(&i.to_string(), "x")).id
        })
        .collect();
    let listed = |store: &tempmx_store::Store| -> Vec<MessageId> {
        store
            .list(&mb("hot@pool.test"), None, 100)
            .iter()
            .map(|s| s.id)
            .collect()
    };
    assert_eq!(listed(&store), vec![ids[4], ids[3], ids[2]]);
    // Past the cap, though not trimmed yet: not shown, so neither readable nor deletable.
    assert!(!store.contains(&mb("hot@pool.test"), ids[1]));
    assert!(!store.delete_message(&mb("hot@pool.test"), ids[0]));
    assert!(store.delete_message(&mb("hot@pool.test"), ids[4]));
    assert_eq!(listed(&store), vec![ids[3], ids[2]]);
    assert!(store.delete_message(&mb("hot@pool.test"), ids[2]));
    assert_eq!(listed(&store), vec![ids[3]]);
    assert!(!store.contains(&mb("hot@pool.test"), ids[1]));
    let new = put(&mut w[0], &["hot@pool.test"], &body("new", "x")).id;
    assert_eq!(listed(&store), vec![new, ids[3]]);
}
