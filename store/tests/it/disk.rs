//! Disk persistence: group commit, crash recovery, zeroing on delete.

use std::io::{Seek, SeekFrom, Write};

use tempmx_store::{CommitPolicy, Persistence, StoreConfig, journal_path, shard_path};

use crate::harness::{T0, body, mb, open, put, put_durable, small};

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
        assert!(store.contains(&mb("d@pool.test"), *id));
    }
    assert!(store.get(torn_id).is_none());
    assert_eq!(store.list(&mb("d@pool.test"), None, 100).len(), 20);
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
    assert_eq!(store.list(&mb("g@pool.test"), None, 100).len(), 51);
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
            assert!(store.delete_message(&mb("z@pool.test"), a.id));
            let bytes = std::fs::read(shard_path(dir.path(), 0)).expect("read");
            assert!(!bytes.windows(marker.len()).any(|x| x == marker.as_bytes()));
            assert!(!bytes.windows(11).any(|x| x == b"z@pool.test"));
        }
        let (store, _, _, rep) = open(&cfg, 1);
        assert_eq!((rep.records_recovered, rep.records_deleted), (0, 1));
        assert!(store.list(&mb("z@pool.test"), None, 10).is_empty());
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
fn parts_file_geometry_mismatch_is_an_error() {
    // Goal: a parts file of another size (another dedup budget) is reported, not misread
    // or truncated. Method: a short file where the parts file belongs, open.
    let dir = tempfile::tempdir().expect("tmp");
    let path = tempmx_store::parts_path(dir.path(), 0);
    std::fs::write(&path, b"short").expect("write");
    let cfg = dedup_disk(dir.path(), CommitPolicy::Batch);
    let err = tempmx_store::Store::open(&cfg, 1).err().expect("error");
    assert!(
        matches!(err, tempmx_store::StoreError::Geometry { .. }),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).expect("kept"), b"short");
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
        assert!(store.delete_message(&mb("a@pool.test"), shared));
        assert_eq!(store.delete_mailbox(&mb("c@pool.test")), 2);
        assert!(!store.contains(&mb("a@pool.test"), shared));
        (shared, wiped, own)
    };
    for round in 0..2 {
        // The second round reopens what the first reopen compacted.
        let (store, mut w, _, rep) = open(&cfg, 2);
        assert!(
            !store.contains(&mb("a@pool.test"), shared),
            "round {round}: {rep}"
        );
        assert!(store.contains(&mb("b@pool.test"), shared), "round {round}");
        assert!(
            store.contains(&mb("a@pool.test"), wiped) && store.contains(&mb("b@pool.test"), wiped)
        );
        assert!(!store.contains(&mb("c@pool.test"), wiped) && store.get(own).is_none());
        assert_eq!(store.list(&mb("a@pool.test"), None, 10).len(), 1);
        assert_eq!(store.list(&mb("c@pool.test"), None, 10).len(), 0);
        // `own` had only c, so its frame was zeroed at the deletion; the journal hides the rest.
        assert_eq!(rep.copies_deleted, 2, "round {round}: {rep}");
        assert_eq!(rep.journal_skipped, 0);
        if round == 1 {
            // Mail that arrives after a mailbox deletion is not covered by it.
            let late = put_durable(&mut w[1], &["c@pool.test"], &body("late", "4"));
            drop((store, w));
            let (store, _, _, _) = open(&cfg, 2);
            assert!(store.contains(&mb("c@pool.test"), late));
        }
    }
}

#[test]
fn copies_the_cap_hid_stay_hidden_after_deletions_and_reopen() {
    // Goal: a restart rebuilds each mailbox's cap from the records; after the user deleted
    // visible messages one by one, it must not show the older copies the cap had hidden.
    // Method: cap 3, eight messages to one mailbox and two to another; delete the newest,
    // then the oldest visible; reopen twice and compare the lists; then empty the mailbox
    // by single deletions and reopen again.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = StoreConfig {
        mailbox_records_max: 3,
        ..disk(dir.path(), CommitPolicy::Batch)
    };
    let listed = |store: &tempmx_store::Store, m: &str| -> Vec<tempmx_store::MessageId> {
        store.list(&mb(m), None, 100).iter().map(|s| s.id).collect()
    };
    let (ids, other) = {
        let (store, mut w, _, _) = open(&cfg, 1);
        let ids: Vec<_> = (0..8)
            .map(|i| put_durable(&mut w[0], &["hot@pool.test"], &body(&i.to_string(), "x")))
            .collect();
        let other: Vec<_> = (0..2)
            .map(|i| put_durable(&mut w[0], &["cold@pool.test"], &body(&i.to_string(), "y")))
            .collect();
        assert_eq!(
            listed(&store, "hot@pool.test"),
            vec![ids[7], ids[6], ids[5]]
        );
        assert!(store.delete_message(&mb("hot@pool.test"), ids[7]));
        assert!(store.delete_message(&mb("hot@pool.test"), ids[5]));
        assert_eq!(listed(&store, "hot@pool.test"), vec![ids[6]]);
        (ids, other)
    };
    for round in 0..2 {
        let (store, _, _, rep) = open(&cfg, 1);
        assert_eq!(
            listed(&store, "hot@pool.test"),
            vec![ids[6]],
            "round {round}: {rep}"
        );
        assert_eq!(listed(&store, "cold@pool.test"), vec![other[1], other[0]]);
    }
    {
        let (store, _, _, _) = open(&cfg, 1);
        assert!(store.delete_message(&mb("hot@pool.test"), ids[6]));
    }
    let (store, mut w, _, _) = open(&cfg, 1);
    assert!(listed(&store, "hot@pool.test").is_empty());
    let late = put_durable(&mut w[0], &["hot@pool.test"], &body("late", "z"));
    drop((store, w));
    let (store, _, _, _) = open(&cfg, 1);
    assert_eq!(listed(&store, "hot@pool.test"), vec![late]);
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
        assert!(store.delete_message(&mb("a@pool.test"), first));
        assert!(store.delete_message(&mb("a@pool.test"), second));
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
    assert!(!store.contains(&mb("a@pool.test"), first));
    assert!(
        store.contains(&mb("a@pool.test"), second),
        "its deletion was torn"
    );
    assert!(
        store.contains(&mb("b@pool.test"), first) && store.contains(&mb("b@pool.test"), second)
    );
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
            .set_mailbox_ttl(&mb("long@pool.test"), Some(86_400))
            .expect("set");
        store
            .set_mailbox_ttl(&mb("gone@pool.test"), Some(600))
            .expect("set");
        store
            .set_mailbox_ttl(&mb("gone@pool.test"), None)
            .expect("clear");
    }
    for _ in 0..2 {
        let (store, mut w, _, _) = open(&cfg, 2);
        let id = put_durable(&mut w[1], &["long@pool.test"], &body("t", "x"));
        let other = put_durable(&mut w[0], &["gone@pool.test"], &body("t", "y"));
        let exp = |m: &str, id| {
            store
                .list(&mb(m), None, 10)
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
        assert!(store.delete_message(&mb("a@pool.test"), id));
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
fn journal_holds_the_longest_mailbox() {
    // Goal: the journal's entry bound holds every mailbox: one over the journal's 512
    // bytes cannot even be named (the `Mailbox` type refuses it), and a deletion of the
    // longest mailbox there is survives a restart without a journal error. Method: parse
    // a 600-byte address; delete the copy of a 254-byte mailbox, reopen, compare.
    let too_long = format!("{}@pool.test", "l".repeat(600));
    assert!(tempmx_store::Mailbox::parse(&too_long).is_err());
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = disk(dir.path(), CommitPolicy::Batch);
    let domain = format!(
        "{}.{}.{}.test",
        "a".repeat(61),
        "b".repeat(61),
        "c".repeat(61)
    );
    let long = format!("{}@{domain}", "l".repeat(254 - domain.len() - 1));
    assert_eq!(long.len(), tempmx_store::address::ADDRESS_BYTES_MAX);
    let (first, second) = {
        let (store, mut w, _, _) = open(&cfg, 1);
        let first = put_durable(&mut w[0], &[long.as_str(), "b@pool.test"], &body("1", "x"));
        let second = put_durable(&mut w[0], &["c@pool.test", "d@pool.test"], &body("2", "y"));
        assert!(store.delete_message(&mb(&long), first));
        assert!(
            !store.contains(&mb(&long), first),
            "deleted in memory at once"
        );
        assert!(store.delete_message(&mb("c@pool.test"), second));
        assert_eq!(store.stats().journal_errors, 0);
        (first, second)
    };
    let (store, _, _, rep) = open(&cfg, 1);
    assert_eq!((rep.journal_entries, rep.journal_skipped), (2, 0), "{rep}");
    assert!(!store.contains(&mb("c@pool.test"), second));
    assert!(store.contains(&mb("d@pool.test"), second));
    assert!(store.contains(&mb("b@pool.test"), first));
    assert!(!store.contains(&mb(&long), first), "the deletion survives");
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
    let listed = store.list(&mb("r@pool.test"), None, 100);
    assert!(listed.iter().all(|m| m.id != second), "{rep}");
    assert_eq!(rep.records_skipped, 1, "{rep}");
}

/// A disk config with part dedup on: parts of 1 KiB and more, 128 KiB of parts per shard.
fn dedup_disk(dir: &std::path::Path, commit: CommitPolicy) -> StoreConfig {
    StoreConfig {
        dedup_bytes_max: 128 << 10,
        dedup_part_bytes_min: 1024,
        ..disk(dir, commit)
    }
}

/// Printable bytes with no 16-byte run of zeros, distinct per `seed`.
fn attachment(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|i| {
            if i % 77 == 76 {
                return '\n';
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'A' + (x % 26) as u8)
        })
        .collect()
}

/// A spam message to `to` carrying `att` as an attachment (the shared part).
fn spam(to: &str, att: &str) -> Vec<u8> {
    format!(
        "From: \"Prize\" <win@spam.test>\r\nTo: {to}\r\nSubject: You won, {to}\r\n\
         Content-Type: multipart/mixed; boundary=\"sp\"\r\n\r\n\
         --sp\r\nContent-Type: text/html\r\n\r\n<p>Claim it, {to}</p>\r\n\
         --sp\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=prize.pdf\r\n\r\n\
         {att}\r\n--sp--\r\n"
    )
    .into_bytes()
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Where `needle` first occurs in `hay` (the test fails if nowhere).
fn offset_of(hay: &[u8], needle: &[u8], what: &str) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{what} not found"))
}

fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).expect("read")
}

#[test]
fn spam_run_stores_the_part_once_and_survives_reopen() {
    // Goal: one attachment sent to many mailboxes is stored once in the parts file (not in
    // the shard file), and after a crash (drop) and reopen it is held by every referrer and
    // each raw message is byte-exact; a later copy shares the recovered part.
    // Method: 30 durable spam messages, compare files, counts and raw bytes across reopen.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dedup_disk(dir.path(), CommitPolicy::Batch);
    let att = attachment(1, 6000);
    let key = tempmx_store::Parts::key(att.as_bytes());
    let mut sent = Vec::new();
    {
        let (store, mut w, _, _) = open(&cfg, 1);
        for i in 0..30 {
            let to = format!("u{i}@pool.test");
            let id = put_durable(&mut w[0], &[to.as_str()], &spam(&to, &att));
            sent.push((to, id, store.get(id).expect("stored").raw));
        }
        assert_eq!(store.part_refs(key), 30);
        let st = store.stats();
        assert_eq!(st.shards[0].parts, 1);
        assert_eq!(st.totals.dedup_bytes_saved, 29 * att.len() as u64);
    }
    let parts = file_bytes(&tempmx_store::parts_path(dir.path(), 0));
    assert_eq!(count(&parts, att.as_bytes()), 1);
    let shard = file_bytes(&shard_path(dir.path(), 0));
    assert_eq!(count(&shard, &att.as_bytes()[..200]), 0);
    let (store, mut w, _, rep) = open(&cfg, 1);
    assert_eq!(
        (rep.records_recovered, rep.records_skipped),
        (30, 0),
        "{rep}"
    );
    assert_eq!(
        (
            rep.parts_recovered,
            rep.parts_skipped,
            rep.parts_orphans_zeroed
        ),
        (1, 0, 0),
        "{rep}"
    );
    assert_eq!(store.part_refs(key), 30);
    for (to, id, raw) in &sent {
        assert!(store.contains(&mb(to), *id));
        assert_eq!(&store.get(*id).expect("recovered").raw, raw);
    }
    let late = put_durable(
        &mut w[0],
        &["late@pool.test"],
        &spam("late@pool.test", &att),
    );
    assert_eq!(store.part_refs(key), 31);
    assert_eq!(store.stats().shards[0].parts, 1);
    assert!(store.get(late).is_some());
}

#[test]
fn deleting_every_referrer_zeroes_the_part_and_orphans_are_zeroed_at_open() {
    // Goal: the part of deleted mail leaves the parts file at once, and a part whose
    // zeroing had not reached the disk at a crash (an orphan) is zeroed at the next open.
    // Method: delete every referrer and look at the file; then put back a copy of the file
    // taken before the deletions (the crash image), reopen and look again.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dedup_disk(dir.path(), CommitPolicy::Always);
    let att = attachment(2, 5000);
    let key = tempmx_store::Parts::key(att.as_bytes());
    let path = tempmx_store::parts_path(dir.path(), 0);
    let before = {
        let (store, mut w, _, _) = open(&cfg, 1);
        let ids: Vec<_> = (0..5)
            .map(|i| {
                let to = format!("d{i}@pool.test");
                (
                    to.clone(),
                    put_durable(&mut w[0], &[to.as_str()], &spam(&to, &att)),
                )
            })
            .collect();
        let before = file_bytes(&path);
        assert_eq!(count(&before, att.as_bytes()), 1);
        for (to, id) in &ids {
            assert!(store.delete_message(&mb(to), *id));
        }
        assert_eq!(store.part_refs(key), 0);
        assert_eq!(store.stats().shards[0].parts, 0);
        assert_eq!(count(&file_bytes(&path), &att.as_bytes()[..64]), 0);
        before
    };
    let (store, _, _, rep) = open(&cfg, 1);
    assert_eq!(
        (rep.parts_recovered, rep.parts_orphans_zeroed),
        (0, 0),
        "{rep}"
    );
    assert_eq!(store.stats().shards[0].parts, 0);
    drop(store);
    std::fs::write(&path, &before).expect("crash image");
    let (store, _, _, rep) = open(&cfg, 1);
    assert_eq!(
        (rep.parts_recovered, rep.parts_orphans_zeroed),
        (0, 1),
        "{rep}"
    );
    assert_eq!(store.part_refs(key), 0);
    assert_eq!(count(&file_bytes(&path), &att.as_bytes()[..64]), 0);
}

/// Stores messages with two attachments (`a`: 3 referrers, `b`: 2) and one plain one;
/// returns the ids by group.
fn two_parts(
    cfg: &StoreConfig,
    a: &str,
    b: &str,
) -> (
    Vec<tempmx_store::MessageId>,
    Vec<tempmx_store::MessageId>,
    tempmx_store::MessageId,
) {
    let (_store, mut w, _, _) = open(cfg, 1);
    let with_a = (0..3)
        .map(|i| {
            let to = format!("a{i}@pool.test");
            put_durable(&mut w[0], &[to.as_str()], &spam(&to, a))
        })
        .collect();
    let with_b = (0..2)
        .map(|i| {
            let to = format!("b{i}@pool.test");
            put_durable(&mut w[0], &[to.as_str()], &spam(&to, b))
        })
        .collect();
    let plain = put_durable(&mut w[0], &["p@pool.test"], &body("plain", "no parts"));
    (with_a, with_b, plain)
}

#[test]
fn corrupt_part_frame_skips_the_part_and_its_referrers() {
    // Goal: a part whose bytes are damaged on disk is skipped and counted, its referrers
    // are skipped and counted, everything else is recovered, and nothing panics; the
    // damage is zeroed, so the next open finds none. Method: flip one byte of part `a`.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dedup_disk(dir.path(), CommitPolicy::Batch);
    let (a, b) = (attachment(3, 4000), attachment(4, 3000));
    let (with_a, with_b, plain) = two_parts(&cfg, &a, &b);
    let path = tempmx_store::parts_path(dir.path(), 0);
    let mut bytes = file_bytes(&path);
    let at = offset_of(&bytes, a.as_bytes(), "part a on disk");
    bytes[at + 1000] ^= 0x20;
    std::fs::write(&path, &bytes).expect("corrupt");
    let (store, _, _, rep) = open(&cfg, 1);
    assert_eq!((rep.parts_skipped, rep.parts_recovered), (1, 1), "{rep}");
    assert_eq!(
        (rep.records_skipped, rep.records_recovered),
        (3, 3),
        "{rep}"
    );
    assert!(with_a.iter().all(|id| store.get(*id).is_none()));
    assert!(with_b.iter().all(|id| store.get(*id).is_some()));
    assert!(store.get(plain).is_some());
    assert_eq!(count(&file_bytes(&path), &a.as_bytes()[..64]), 0);
    drop(store);
    let (_, _, _, rep) = open(&cfg, 1);
    assert_eq!((rep.parts_skipped, rep.records_skipped), (0, 0), "{rep}");
    assert_eq!(rep.records_recovered, 3, "{rep}");
}

#[test]
fn torn_parts_tail_costs_only_the_last_part() {
    // Goal: a part frame whose end never reached the disk (a torn tail) is skipped with its
    // referrers; earlier parts and their mail survive. Method: zero the last 500 bytes of
    // the newest part's data in the file, reopen.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dedup_disk(dir.path(), CommitPolicy::Batch);
    let (a, b) = (attachment(5, 4000), attachment(6, 3000));
    let (with_a, with_b, plain) = two_parts(&cfg, &a, &b);
    let path = tempmx_store::parts_path(dir.path(), 0);
    let mut bytes = file_bytes(&path);
    let at = offset_of(&bytes, b.as_bytes(), "part b on disk");
    bytes[at + b.len() - 500..at + b.len()].fill(0);
    std::fs::write(&path, &bytes).expect("tear");
    let (store, _, _, rep) = open(&cfg, 1);
    assert_eq!((rep.parts_skipped, rep.parts_recovered), (1, 1), "{rep}");
    assert_eq!(
        (rep.records_skipped, rep.records_recovered),
        (2, 4),
        "{rep}"
    );
    assert!(with_a.iter().all(|id| store.get(*id).is_some()));
    assert!(with_b.iter().all(|id| store.get(*id).is_none()));
    assert!(store.get(plain).is_some());
}

#[test]
fn part_of_a_recycled_record_is_released_and_zeroed() {
    // Goal: when the ring recycles the segment of a part's only referrer, the part is freed
    // and zeroed in the file, and a reopen finds nothing to recover or orphan.
    // Method: one spam message, then plain mail until its segment is recycled.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dedup_disk(dir.path(), CommitPolicy::None);
    let att = attachment(7, 5000);
    let key = tempmx_store::Parts::key(att.as_bytes());
    let path = tempmx_store::parts_path(dir.path(), 0);
    {
        let (store, mut w, _, _) = open(&cfg, 1);
        let first = put(&mut w[0], &["x@pool.test"], &spam("x@pool.test", &att)).id;
        assert_eq!(store.part_refs(key), 1);
        // Bounded: the arena holds well under 1000 of these. The filler stays under the
        // part threshold, so it is stored inline.
        for _ in 0..1000 {
            if store.get(first).is_none() {
                break;
            }
            put(&mut w[0], &["f@pool.test"], &body("fill", &"f".repeat(900)));
        }
        assert!(store.get(first).is_none());
        assert!(store.stats().totals.evicted_capacity > 0);
        assert_eq!(store.part_refs(key), 0);
        assert_eq!(store.stats().shards[0].parts, 0);
        assert_eq!(count(&file_bytes(&path), &att.as_bytes()[..64]), 0);
    }
    let (_, _, _, rep) = open(&cfg, 1);
    assert_eq!(
        (
            rep.parts_recovered,
            rep.parts_skipped,
            rep.parts_orphans_zeroed
        ),
        (0, 0, 0),
        "{rep}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    #[test]
    fn arbitrary_bytes_in_the_parts_file_never_panic_recovery(
        writes in proptest::collection::vec(
            (0usize..(128 << 10), proptest::collection::vec(proptest::prelude::any::<u8>(), 1..600)),
            1..8,
        )
    ) {
        // Goal: whatever the parts file holds, recovery neither panics nor serves a record
        // whose part it lost, and it cleans up: a second open finds no damage.
        // Method: two parts on disk, overwrite random ranges with random bytes, open twice.
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = dedup_disk(dir.path(), CommitPolicy::None);
        let (a, b) = (attachment(8, 2000), attachment(9, 1500));
        let (with_a, with_b, _) = two_parts(&cfg, &a, &b);
        let path = tempmx_store::parts_path(dir.path(), 0);
        let mut bytes = file_bytes(&path);
        for (at, w) in &writes {
            let at = (*at).min(bytes.len() - w.len());
            bytes[at..at + w.len()].copy_from_slice(w);
        }
        std::fs::write(&path, &bytes).expect("write");
        let (store, _, _, _) = open(&cfg, 1);
        for (id, att) in with_a.iter().map(|i| (i, &a)).chain(with_b.iter().map(|i| (i, &b))) {
            if let Some(v) = store.get(*id) {
                proptest::prop_assert!(count(&v.raw, att.as_bytes()) == 1);
            }
        }
        drop(store);
        let (_, _, _, rep) = open(&cfg, 1);
        proptest::prop_assert_eq!((rep.parts_skipped, rep.records_skipped), (0, 0), "{}", rep);
    }
}

#[test]
fn turning_dedup_off_removes_the_parts_file() {
    // Goal: reopening with dedup off skips (and counts) the records that need a part and
    // removes the parts file, so its mail does not linger; plain records stay.
    // Method: two spam messages and a plain one with dedup on, reopen with it off. The
    // dedup budget is small enough that the shard geometry is the same either way.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = StoreConfig {
        dedup_bytes_max: 8 << 10,
        ..dedup_disk(dir.path(), CommitPolicy::Batch)
    };
    let att = attachment(10, 3000);
    let plain = {
        let (_store, mut w, _, _) = open(&cfg, 1);
        for to in ["s1@pool.test", "s2@pool.test"] {
            put_durable(&mut w[0], &[to], &spam(to, &att));
        }
        put_durable(&mut w[0], &["p@pool.test"], &body("plain", "kept"))
    };
    let path = tempmx_store::parts_path(dir.path(), 0);
    assert!(path.exists());
    let off = StoreConfig {
        dedup_bytes_max: 0,
        ..cfg.clone()
    };
    let plan = |c: &StoreConfig| tempmx_store::sizing::plan(c, 1).expect("plan");
    assert_eq!(plan(&cfg).arena_bytes(), plan(&off).arena_bytes());
    let (store, _, _, rep) = open(&off, 1);
    assert_eq!(
        (rep.records_recovered, rep.records_skipped),
        (1, 2),
        "{rep}"
    );
    assert!(store.get(plain).is_some());
    assert!(!path.exists());
}

#[test]
fn journaled_deletion_releases_the_part_when_the_zeroing_was_lost() {
    // Goal: mail deleted before a crash whose zeroing never reached the disk (only the
    // journal entry did) does not come back, and its part is zeroed at the next open; a
    // record shared by two mailboxes keeps its part until both copies are deleted.
    // Method: put back images of the shard and parts files taken before the deletions.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dedup_disk(dir.path(), CommitPolicy::Always);
    let (gone_att, kept_att) = (attachment(11, 3000), attachment(12, 3000));
    let (kept_key, gone_key) = (
        tempmx_store::Parts::key(kept_att.as_bytes()),
        tempmx_store::Parts::key(gone_att.as_bytes()),
    );
    let (shard, parts) = (
        shard_path(dir.path(), 0),
        tempmx_store::parts_path(dir.path(), 0),
    );
    let (gone, kept, images) = {
        let (store, mut w, _, _) = open(&cfg, 1);
        let gone = put_durable(&mut w[0], &["g@pool.test"], &spam("g@pool.test", &gone_att));
        let kept = put_durable(
            &mut w[0],
            &["k1@pool.test", "k2@pool.test"],
            &spam("k@pool.test", &kept_att),
        );
        let images = (file_bytes(&shard), file_bytes(&parts));
        assert!(store.delete_message(&mb("g@pool.test"), gone));
        assert!(store.delete_message(&mb("k1@pool.test"), kept));
        (gone, kept, images)
    };
    std::fs::write(&shard, &images.0).expect("shard image");
    std::fs::write(&parts, &images.1).expect("parts image");
    let (store, _, _, rep) = open(&cfg, 1);
    assert!(store.get(gone).is_none(), "{rep}");
    assert!(
        !store.contains(&mb("k1@pool.test"), kept) && store.contains(&mb("k2@pool.test"), kept)
    );
    assert_eq!(
        (rep.parts_recovered, rep.parts_orphans_zeroed),
        (1, 1),
        "{rep}"
    );
    assert_eq!(
        (store.part_refs(gone_key), store.part_refs(kept_key)),
        (0, 1)
    );
    assert_eq!(count(&file_bytes(&parts), &gone_att.as_bytes()[..64]), 0);
    assert!(store.delete_message(&mb("k2@pool.test"), kept));
    assert_eq!(store.part_refs(kept_key), 0);
    assert_eq!(count(&file_bytes(&parts), &kept_att.as_bytes()[..64]), 0);
}

#[test]
fn group_commit_syncs_a_new_part_with_its_record() {
    // Goal: under `batch`, the commit of a record that stored a new part syncs the parts
    // file too before the 250 (two syncs); a record that only references a stored part
    // syncs its record only. Method: two spam messages, one at a time, count syncs.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dedup_disk(dir.path(), CommitPolicy::Batch);
    let att = attachment(13, 3000);
    let (store, mut w, _, _) = open(&cfg, 1);
    let syncs = || store.stats().syncs;
    let s0 = syncs();
    put_durable(&mut w[0], &["n1@pool.test"], &spam("n1@pool.test", &att));
    let s1 = syncs();
    put_durable(&mut w[0], &["n2@pool.test"], &spam("n2@pool.test", &att));
    assert_eq!((s1 - s0, syncs() - s1), (2, 1));
}
