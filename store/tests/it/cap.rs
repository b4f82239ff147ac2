//! The per-mailbox cap across shards: one cap for the mailbox as a whole.

use tempmx_store::{MessageId, StoreConfig};

use crate::harness::{body, mb, open, put, small};

#[test]
fn cap_holds_for_the_mailbox_across_shards() {
    // Goal: the per-mailbox cap (`mailbox_records_max`) holds for the mailbox as a whole,
    // the newest kept, whatever the shard count; listing, paging, `contains` and
    // `delete_message` agree, and a deletion never brings back a copy the cap hid.
    // Method: for 1, 2, 3 and 4 shards, store 15 messages round-robin over the writers
    // (as several ingress cores do) with a cap of 10, 1 ms apart, and compare everything
    // with the 10 newest ids.
    for shards in [1, 2, 3, 4] {
        let cfg = StoreConfig {
            memory_bytes_max: shards as u64 * (4 * (64 << 10) + (128 << 10)),
            mailbox_records_max: 10,
            ..small()
        };
        let (store, mut w, clock, _) = open(&cfg, shards);
        let hot = mb("hot@pool.test");
        let mut ids: Vec<MessageId> = Vec::new();
        for i in 0..15 {
            clock.advance(1);
            let b = body(&format!("m{i}"), "x");
            ids.push(put(&mut w[i % shards], &["hot@pool.test"], &b).id);
        }
        let newest: Vec<MessageId> = ids[5..].iter().rev().copied().collect();
        let listed: Vec<MessageId> = store.list(&hot, None, 100).iter().map(|s| s.id).collect();
        assert_eq!(listed, newest, "{shards} shards");
        let older = store.list(&hot, Some(newest[9]), 100);
        assert!(older.is_empty(), "{shards} shards: no page past the cap");
        let page: Vec<MessageId> = store
            .list(&hot, Some(newest[3]), 3)
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(page, newest[4..7], "{shards} shards");
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(
                store.contains(&hot, *id),
                i >= 5,
                "{shards} shards, message {i}"
            );
        }
        assert!(
            !store.delete_message(&hot, ids[0]),
            "{shards} shards: hidden"
        );
        assert!(store.delete_message(&hot, ids[14]), "{shards} shards");
        let after: Vec<MessageId> = store.list(&hot, None, 100).iter().map(|s| s.id).collect();
        assert_eq!(
            after,
            newest[1..],
            "{shards} shards: nothing hidden comes back"
        );
        assert!(!store.contains(&hot, ids[4]), "{shards} shards");
        assert_eq!(store.delete_mailbox(&hot), 9, "{shards} shards");
        assert!(store.list(&hot, None, 100).is_empty());
    }
}
