//! Disk persistence: group commit, crash recovery, zeroing on delete.

use std::io::{Seek, SeekFrom, Write};

use tempmx_store::{CommitPolicy, Persistence, StoreConfig, journal_path, shard_path};

use crate::harness::{T0, body, open, put, put_durable, small};

fn disk(dir: &std::path::Path, commit: CommitPolicy) -> StoreConfig {
    StoreConfig {
        persistence: Persistence::Disk,
        dir: Some(dir.to_path_buf()),
        commit,
        ..small()
    }
}

#[test]
fn batch_commit_survives_torn_tail() {
    // Goal: records acknowledged under `batch` survive a crash whose last record is torn;
    // the torn one is counted as skipped and recovery never panics.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = disk(dir.path(), CommitPolicy::Batch);
    let mut ids = Vec::new();
    let (tail_off, torn_id);
    {
        let (store, mut w, _, rep) = open(&cfg, 1);
        assert_eq!(rep.shards_existing, 0);
        for i in 0..20 {
            ids.push(put_durable(
                &mut w[0],
                &["d@pool.test"],
                &body(&format!("m{i}"), "durable"),
            ));
        }
        torn_id = put_durable(&mut w[0], &["d@pool.test"], &body("torn", "last one"));
        let st = store.stats();
        assert!(st.syncs >= 1 && st.syncs <= 21);
        tail_off = st.shards[0].bytes_used;
        // Dropping without any shutdown step is the crash.
    }
    let path = shard_path(dir.path(), 0);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("file");
    f.seek(SeekFrom::Start(tail_off - 40)).expect("seek");
    f.write_all(&[0xA5; 24]).expect("corrupt tail");
    drop(f);
    let (store, _w, _, rep) = open(&cfg, 1);
    assert_eq!(rep.records_recovered, 20, "{rep}");
    assert_eq!(rep.records_skipped, 1, "{rep}");
    for id in &ids {
        assert!(store.contains("d@pool.test", *id));
    }
    assert!(store.get(torn_id).is_none());
    assert_eq!(store.list("d@pool.test", None, 100).len(), 20);
}

#[test]
fn group_commit_shares_syncs_and_new_writes_follow_recovered_ones() {
    // Goal: concurrent pending commits share syncs; after reopen ids keep increasing.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = disk(dir.path(), CommitPolicy::Batch);
    let last = {
        let (store, mut w, _, _) = open(&cfg, 1);
        let pending: Vec<_> = (0..50)
            .map(|_| put(&mut w[0], &["g@pool.test"], &body("g", "x")))
            .collect();
        let mut last = None;
        for a in pending {
            if let tempmx_store::Commit::Pending(rx) = a.commit {
                rx.blocking_recv().expect("sent").expect("ok");
            }
            last = Some(a.id);
        }
        assert!(store.stats().syncs < 50, "syncs {}", store.stats().syncs);
        last.expect("some")
    };
    let (store, mut w, _, rep) = open(&cfg, 1);
    assert_eq!(rep.records_recovered, 50);
    let next = put_durable(&mut w[0], &["g@pool.test"], &body("after", "x"));
    assert!(next > last);
    assert_eq!(store.list("g@pool.test", None, 100).len(), 51);
}

#[test]
fn always_and_none_policies_and_deletion_zeroes_bytes() {
    // Goal: `always` and `none` give Done; a deleted message's bytes are gone from the
    // mapped file (and so from memory); a deleted record stays deleted after reopen.
    for policy in [CommitPolicy::Always, CommitPolicy::None] {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = disk(dir.path(), policy);
        let marker = "SECRET-CODE-918273";
        {
            let (store, mut w, _, _) = open(&cfg, 1);
            let a = put(&mut w[0], &["z@pool.test"], &body("code", marker));
            assert!(matches!(a.commit, tempmx_store::Commit::Done));
            let bytes = std::fs::read(shard_path(dir.path(), 0)).expect("read");
            assert!(bytes.windows(marker.len()).any(|x| x == marker.as_bytes()));
            assert!(store.delete_message("z@pool.test", a.id));
            let bytes = std::fs::read(shard_path(dir.path(), 0)).expect("read");
            assert!(!bytes.windows(marker.len()).any(|x| x == marker.as_bytes()));
            assert!(!bytes.windows(11).any(|x| x == b"z@pool.test"));
        }
        let (store, _, _, rep) = open(&cfg, 1);
        assert_eq!((rep.records_recovered, rep.records_deleted), (0, 1));
        assert!(store.list("z@pool.test", None, 10).is_empty());
    }
}

#[test]
fn geometry_mismatch_is_an_error() {
    // Goal: a shard file of the wrong size is reported, not truncated or misread.
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(shard_path(dir.path(), 0), b"short").expect("write");
    let cfg = disk(dir.path(), CommitPolicy::Batch);
    let err = tempmx_store::Store::open(&cfg, 1).err().expect("error");
    assert!(
        matches!(err, tempmx_store::StoreError::Geometry { .. }),
        "{err}"
    );
}

#[test]
fn deleting_one_recipients_copy_survives_reopen() {
    // Goal: deleting one mailbox's copy of a shared record, or a whole mailbox, stays
    // deleted after a reopen from disk while the other mailboxes keep the message.
    // Method: two shards, records for two and three mailboxes, delete, drop (crash), reopen.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = disk(dir.path(), CommitPolicy::Batch);
    let (shared, wiped, own) = {
        let (store, mut w, _, _) = open(&cfg, 2);
        let shared = put_durable(&mut w[0], &["a@pool.test", "b@pool.test"], &body("s", "1"));
        let wiped = put_durable(
            &mut w[1],
            &["a@pool.test", "b@pool.test", "c@pool.test"],
            &body("w", "2"),
        );
        let own = put_durable(&mut w[1], &["c@pool.test"], &body("o", "3"));
        assert!(store.delete_message("a@pool.test", shared));
        assert_eq!(store.delete_mailbox("c@pool.test"), 2);
        assert!(!store.contains("a@pool.test", shared));
        (shared, wiped, own)
    };
    for round in 0..2 {
        // The second round reopens what the first reopen compacted.
        let (store, mut w, _, rep) = open(&cfg, 2);
        assert!(
            !store.contains("a@pool.test", shared),
            "round {round}: {rep}"
        );
        assert!(store.contains("b@pool.test", shared), "round {round}");
        assert!(store.contains("a@pool.test", wiped) && store.contains("b@pool.test", wiped));
        assert!(!store.contains("c@pool.test", wiped) && store.get(own).is_none());
        assert_eq!(store.list("a@pool.test", None, 10).len(), 1);
        assert_eq!(store.list("c@pool.test", None, 10).len(), 0);
        // `own` had only c, so its frame was zeroed at the deletion; the journal hides the rest.
        assert_eq!(rep.copies_deleted, 2, "round {round}: {rep}");
        assert_eq!(rep.journal_skipped, 0);
        if round == 1 {
            // Mail that arrives after a mailbox deletion is not covered by it.
            let late = put_durable(&mut w[1], &["c@pool.test"], &body("late", "4"));
            drop((store, w));
            let (store, _, _, _) = open(&cfg, 2);
            assert!(store.contains("c@pool.test", late));
        }
    }
}

#[test]
fn torn_journal_tail_is_skipped_and_counted() {
    // Goal: a torn last journal entry costs that deletion only; earlier ones hold, and the
    // reopen never panics. Method: delete two copies, cut the file mid-entry, reopen.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = disk(dir.path(), CommitPolicy::Always);
    let (first, second) = {
        let (store, mut w, _, _) = open(&cfg, 1);
        let first = put_durable(&mut w[0], &["a@pool.test", "b@pool.test"], &body("1", "x"));
        let second = put_durable(&mut w[0], &["a@pool.test", "b@pool.test"], &body("2", "y"));
        assert!(store.delete_message("a@pool.test", first));
        assert!(store.delete_message("a@pool.test", second));
        (first, second)
    };
    let path = journal_path(dir.path());
    let len = std::fs::metadata(&path).expect("journal").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(len - 5).expect("truncate");
    drop(f);
    let (store, _, _, rep) = open(&cfg, 1);
    assert_eq!((rep.journal_entries, rep.journal_skipped), (1, 1), "{rep}");
    assert!(!store.contains("a@pool.test", first));
    assert!(
        store.contains("a@pool.test", second),
        "its deletion was torn"
    );
    assert!(store.contains("b@pool.test", first) && store.contains("b@pool.test", second));
    drop(store);
    let (_, _, _, rep) = open(&cfg, 1);
    assert_eq!(
        rep.journal_skipped, 0,
        "the reopen compacted the damage away"
    );
}

#[test]
fn mailbox_ttl_override_survives_reopen() {
    // Goal: a per-mailbox TTL set before a restart applies to mail that arrives after it;
    // a cleared one does not come back. Method: set two, clear one, reopen, store, compare.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = disk(dir.path(), CommitPolicy::Batch);
    {
        let (store, _, _, _) = open(&cfg, 2);
        store
            .set_mailbox_ttl("long@pool.test", Some(86_400))
            .expect("set");
        store
            .set_mailbox_ttl("gone@pool.test", Some(600))
            .expect("set");
        store
            .set_mailbox_ttl("gone@pool.test", None)
            .expect("clear");
    }
    for _ in 0..2 {
        let (store, mut w, _, _) = open(&cfg, 2);
        let id = put_durable(&mut w[1], &["long@pool.test"], &body("t", "x"));
        let other = put_durable(&mut w[0], &["gone@pool.test"], &body("t", "y"));
        let exp = |m: &str, id| {
            store
                .list(m, None, 10)
                .into_iter()
                .find(|s| s.id == id)
                .map(|s| s.expires_at_ms)
        };
        assert_eq!(exp("long@pool.test", id), Some(T0 + 86_400_000));
        assert_eq!(exp("gone@pool.test", other), Some(T0 + cfg.ttl_secs * 1000));
    }
}

#[test]
fn journal_is_compacted_once_deleted_records_are_recycled() {
    // Goal: the journal stays bounded: once the ring recycled the records its deletions
    // named, `expire` rewrites it without them. Method: delete copies, flood past the
    // arena, advance the clock past the compaction interval, expire, look at the file.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = disk(dir.path(), CommitPolicy::None);
    let (store, mut w, clock, _) = open(&cfg, 1);
    for i in 0..20 {
        let id = put(
            &mut w[0],
            &["a@pool.test", "b@pool.test"],
            &body(&i.to_string(), "x"),
        )
        .id;
        assert!(store.delete_message("a@pool.test", id));
    }
    let path = journal_path(dir.path());
    let full = std::fs::metadata(&path).expect("journal").len();
    assert!(full > 0);
    store.expire();
    assert_eq!(std::fs::metadata(&path).expect("journal").len(), full);
    for _ in 0..400 {
        put(
            &mut w[0],
            &["c@pool.test"],
            &body("fill", &"f".repeat(1500)),
        );
    }
    clock.advance(61_000);
    store.expire();
    assert_eq!(std::fs::metadata(&path).expect("journal").len(), 0);
    assert_eq!(store.stats().journal_errors, 0);
}

#[test]
fn journal_refuses_an_over_long_mailbox_and_counts_it() {
    // Goal: a deletion whose mailbox is over the journal's 512-byte bound is refused by the
    // journal, counted and logged, never a panic or a corrupt entry; the deletion holds in
    // memory and the journal stays valid for the next entries. Method: delete the copy of a
    // 600-byte mailbox and a normal one, reopen, compare.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = disk(dir.path(), CommitPolicy::Batch);
    let long = format!("{}@pool.test", "l".repeat(600));
    let (first, second) = {
        let (store, mut w, _, _) = open(&cfg, 1);
        let first = put_durable(&mut w[0], &[long.as_str(), "b@pool.test"], &body("1", "x"));
        let second = put_durable(&mut w[0], &["c@pool.test", "d@pool.test"], &body("2", "y"));
        assert!(store.delete_message(&long, first));
        assert!(!store.contains(&long, first), "deleted in memory at once");
        assert_eq!(store.stats().journal_errors, 1);
        assert!(store.delete_message("c@pool.test", second));
        assert_eq!(store.stats().journal_errors, 1, "the next entry is written");
        (first, second)
    };
    let (store, _, _, rep) = open(&cfg, 1);
    assert_eq!((rep.journal_entries, rep.journal_skipped), (1, 0), "{rep}");
    assert!(!store.contains("c@pool.test", second));
    assert!(store.contains("d@pool.test", second));
    assert!(store.contains("b@pool.test", first));
    assert!(
        store.contains(&long, first),
        "the refused deletion is undone by the restart, as logged"
    );
}

#[test]
fn deletions_replay_in_order_with_the_mailbox_cap() {
    // Goal: after a reopen each mailbox lists what it listed before. Copies the cap cut
    // do not come back once the visible ones were deleted one by one, and copies that a
    // deletion made room for before newer mail arrived are not cut by the replay.
    // Method: cap 3 (lists are trimmed lazily, back to the cap when they reach twice it).
    // `a` gets 7 messages (the 6th trims it to 3, the 7th makes 4) and the 3 visible ones
    // are deleted: only the 4th remains (replaying the deletions first would show the
    // 4th, 3rd and 2nd). `b` gets 3, loses 2, gets 4 more, then loses the 3 newest: the 4th
    // and the 1st remain (replaying the deletions last would trim the 1st away).
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = StoreConfig {
        mailbox_records_max: 3,
        ..disk(dir.path(), CommitPolicy::Batch)
    };
    let listed = |store: &tempmx_store::Store, m: &str| -> Vec<tempmx_store::MessageId> {
        store.list(m, None, 10).iter().map(|s| s.id).collect()
    };
    let delete_listed = |store: &tempmx_store::Store, m: &str| {
        for id in listed(store, m) {
            assert!(store.delete_message(m, id));
        }
    };
    let before = {
        let (store, mut w, _, _) = open(&cfg, 1);
        let a: Vec<_> = (0..7)
            .map(|i| put_durable(&mut w[0], &["a@pool.test"], &body("a", &i.to_string())))
            .collect();
        delete_listed(&store, "a@pool.test");
        let mut b: Vec<_> = (0..3)
            .map(|i| put_durable(&mut w[0], &["b@pool.test"], &body("b", &i.to_string())))
            .collect();
        assert!(store.delete_message("b@pool.test", b[2]));
        assert!(store.delete_message("b@pool.test", b[1]));
        b.truncate(1);
        for i in 3..7 {
            b.push(put_durable(
                &mut w[0],
                &["b@pool.test"],
                &body("b", &i.to_string()),
            ));
        }
        delete_listed(&store, "b@pool.test");
        let before = (listed(&store, "a@pool.test"), listed(&store, "b@pool.test"));
        assert_eq!(before.0, vec![a[3]]);
        assert_eq!(before.1, vec![b[1], b[0]]);
        before
    };
    for round in 0..2 {
        let (store, _, _, rep) = open(&cfg, 1);
        let after = (listed(&store, "a@pool.test"), listed(&store, "b@pool.test"));
        assert_eq!(after, before, "round {round}: {rep}");
    }
}

#[test]
fn frames_left_from_a_recycled_segment_are_not_recovered() {
    // Goal: if the zeroing of a recycled segment never reached the disk (power loss), the
    // old frames behind the new ones are cut off at recovery, not served again.
    // Method: 8 KiB messages, 7 to a 64 KiB segment: one more than the ring holds reuses
    // segment 0. Put the 2nd message's frame back where it was, right after the newest, as
    // the unsynced zeroing would have left it, and reopen.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = disk(dir.path(), CommitPolicy::Always);
    let text = "x".repeat(8000);
    let path = shard_path(dir.path(), 0);
    let frame_at = |file: &[u8], off: usize| -> Vec<u8> {
        let len = u32::from_le_bytes(file[off + 4..off + 8].try_into().expect("4")) as usize;
        file[off..off + 16 + len.div_ceil(16) * 16].to_vec()
    };
    let (second, newest, second_frame, newest_len) = {
        let (store, mut w, _, _) = open(&cfg, 1);
        let g = store.geometry();
        let mut ids: Vec<_> = (0..2)
            .map(|i| {
                put_durable(
                    &mut w[0],
                    &["r@pool.test"],
                    &body(&format!("m{i:03}"), &text),
                )
            })
            .collect();
        let file = std::fs::read(&path).expect("read");
        let first_len = frame_at(&file, 0).len();
        let second_frame = frame_at(&file, first_len);
        let wrap = g.segments * (g.segment_bytes / first_len) + 1;
        for i in 2..wrap {
            ids.push(put_durable(
                &mut w[0],
                &["r@pool.test"],
                &body(&format!("m{i:03}"), &text),
            ));
        }
        let file = std::fs::read(&path).expect("read");
        let newest_len = frame_at(&file, 0).len();
        assert_eq!(newest_len, first_len, "same-size frames share boundaries");
        (ids[1], ids[wrap - 1], second_frame, newest_len)
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("file");
    f.seek(SeekFrom::Start(newest_len as u64)).expect("seek");
    f.write_all(&second_frame).expect("stale frame");
    drop(f);
    let (store, _w, _, rep) = open(&cfg, 1);
    assert!(store.get(newest).is_some(), "{rep}");
    assert!(store.get(second).is_none(), "{rep}");
    let listed = store.list("r@pool.test", None, 100);
    assert!(listed.iter().all(|m| m.id != second), "{rep}");
    assert_eq!(rep.records_skipped, 1, "{rep}");
}
