//! Arbitrary bytes as a shard file: recovery must never crash, and a second recovery
//! of what the first one left must find nothing more to skip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tempmx_store::{CommitPolicy, Persistence, Store, StoreConfig, shard_path, sizing};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let cfg = StoreConfig {
        memory_bytes_max: 4 * (64 << 10) + (128 << 10),
        segment_bytes: 64 << 10,
        index_entries_per_mib: 8192,
        persistence: Persistence::Disk,
        dir: Some(dir.path().into()),
        commit: CommitPolicy::None,
        dedup_bytes_max: 0,
        ..StoreConfig::default()
    };
    let Ok(g) = sizing::plan(&cfg, 1) else { return };
    let mut file = vec![0u8; g.arena_bytes()];
    for (i, chunk) in data.chunks(4096).enumerate() {
        // Spread the input over the segments so every segment sees some of it.
        let at = (i * g.segment_bytes / 2) % file.len();
        let end = (at + chunk.len()).min(file.len());
        file[at..end].copy_from_slice(&chunk[..end - at]);
    }
    if std::fs::write(shard_path(dir.path(), 0), &file).is_err() {
        return;
    }
    // A config error here would turn every run into a no-op, so it fails loudly.
    let (store, _, rep) = Store::open(&cfg, 1).expect("a valid config opens");
    let _ = store.stats();
    drop(store);
    if let Ok((_, _, again)) = Store::open(&cfg, 1) {
        assert_eq!(again.records_skipped, 0);
        assert_eq!(
            again.records_recovered + again.records_expired,
            rep.records_recovered + rep.records_expired
        );
    }
});
