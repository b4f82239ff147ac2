//! Disk persistence: group commit, crash recovery, zeroing on delete.

use std::io::{Seek, SeekFrom, Write};

use tempmx_store::{CommitPolicy, Persistence, StoreConfig, shard_path};

use crate::harness::{body, open, put, put_durable, small};

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
