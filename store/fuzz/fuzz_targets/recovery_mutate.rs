//! A real disk store's files with fuzz-chosen bytes changed: recovery must never crash, and
//! a second recovery of what the first one left must find nothing more to skip and must
//! show exactly what each mailbox showed. The untouched image, reopened, shows exactly
//! what the store showed before it closed.
//!
//! The image is built once: records to several mailboxes (some to more than one), a
//! deleted single-recipient message (a tombstone keeping its id), a deleted copy of a
//! shared message and a deleted mailbox (journal entries), under a per-mailbox cap small
//! enough to trim. Each input is a list of 4-byte edits `[target, offset lo, offset hi,
//! value]`: target even edits the shard file within its used bytes, odd the journal.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tempmx_store::{
    CommitPolicy, Mailbox, MessageSink, NewMessage, Persistence, Store, StoreConfig, journal_path,
    shard_path,
};

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        memory_bytes_max: 4 * (64 << 10) + (128 << 10),
        segment_bytes: 64 << 10,
        index_entries_per_mib: 8192,
        mailbox_records_max: 3,
        persistence: Persistence::Disk,
        dir: Some(dir.into()),
        commit: CommitPolicy::None,
        dedup_bytes_max: 64 << 10,
        ..StoreConfig::default()
    }
}

/// The shard file (cut after its last non-zero byte) and the journal of the base image.
fn image() -> &'static (Vec<u8>, Vec<u8>) {
    static IMAGE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (store, mut w, _) = Store::open(&config(dir.path()), 1).expect("open");
            let mut ids = Vec::new();
            for i in 0..40u32 {
                let rcpts: Vec<Mailbox> = (0..1 + i % 3)
                    .map(|k| Mailbox::parse(&format!("m{}@pool.test", (i + k) % 5)).expect("valid"))
                    .collect();
                let body = format!(
                    "From: <s{i}@shop.test>\r\nSubject: code {i}\r\nMessage-ID: <{i}@shop.test>\r\n\r\nYour code is {i:06}.\r\n"
                );
                let msg = NewMessage {
                    received_at_ms: 0,
                    client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    helo: "mx.shop.test",
                    mail_from: "bounce@shop.test",
                    recipients: &rcpts,
                    tls: None,
                    trace_headers: b"Received: from mx.shop.test by tempmx\r\n",
                    auth: &[],
                    body: body.as_bytes(),
                };
                ids.push((w[0].accept(&msg).expect("accept").id, rcpts));
            }
            for (id, rcpts) in ids.iter().step_by(7) {
                store.delete_message(&rcpts[0], *id);
            }
            store.delete_mailbox(&Mailbox::parse("m4@pool.test").expect("valid"));
            let before = visible(&store);
            drop((store, w));
            let (store, _, _) = Store::open(&config(dir.path()), 1).expect("reopen");
            assert_eq!(visible(&store), before, "a clean reopen shows what was shown");
        }
        let shard = std::fs::read(shard_path(dir.path(), 0)).expect("shard file");
        let used = shard.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let journal = std::fs::read(journal_path(dir.path())).unwrap_or_default();
        (shard[..used].to_vec(), journal)
    })
}

fuzz_target!(|data: &[u8]| {
    let (shard, journal) = image();
    let Ok(dir) = tempfile::tempdir() else { return };
    let cfg = config(dir.path());
    let Ok(g) = tempmx_store::sizing::plan(&cfg, 1) else {
        return;
    };
    let mut file = vec![0u8; g.arena_bytes()];
    file[..shard.len()].copy_from_slice(shard);
    let mut journal = journal.clone();
    for edit in data.chunks_exact(4) {
        let off = usize::from(u16::from_le_bytes([edit[1], edit[2]]));
        let target = if edit[0] % 2 == 0 {
            &mut file[..shard.len()]
        } else {
            &mut journal[..]
        };
        if !target.is_empty() {
            let at = off % target.len();
            target[at] = edit[3];
        }
    }
    if std::fs::write(shard_path(dir.path(), 0), &file).is_err()
        || std::fs::write(journal_path(dir.path()), &journal).is_err()
    {
        return;
    }
    // A config error here would turn every run into a no-op, so it fails loudly.
    let (store, _, rep) = Store::open(&cfg, 1).expect("a valid config opens");
    let _ = store.stats();
    let first = visible(&store);
    drop(store);
    if let Ok((store, _, again)) = Store::open(&cfg, 1) {
        assert_eq!(again.records_skipped, 0, "{rep} then {again}");
        // A restart neither hides a message a mailbox showed nor shows one it did not
        // (copies the per-mailbox cap had cut stay cut: the journal keeps its floor).
        assert_eq!(visible(&store), first, "{rep} then {again}");
    }
});

/// What each mailbox of the image lists.
fn visible(store: &Store) -> Vec<Vec<u64>> {
    (0..5)
        .map(|m| {
            store
                .list(
                    &Mailbox::parse(&format!("m{m}@pool.test")).expect("valid"),
                    None,
                    100,
                )
                .iter()
                .map(|s| s.id.0)
                .collect()
        })
        .collect()
}
