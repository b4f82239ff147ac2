//! The fuzz targets' logic as property tests (no nightly toolchain for cargo-fuzz here).

use proptest::prelude::*;
use tempmx_store::{CommitPolicy, Persistence, StoreConfig, shard_path};

use crate::harness::{body, mb, open, put_durable, small};

fn arb_record() -> impl Strategy<Value = tempmx_store::MessageRecord> {
    use tempmx_store::record::{Chunk, HeaderSummary};
    (
        any::<u64>(),
        prop::collection::vec("[a-z]{1,8}@[a-z]{1,8}\\.test", 1..4),
        ".{0,40}",
        prop::collection::vec(any::<u8>(), 0..2000),
        any::<bool>(),
    )
        .prop_map(
            |(id, mailboxes, subject, raw, att)| tempmx_store::MessageRecord {
                id,
                mailboxes,
                headers: HeaderSummary {
                    subject,
                    size: raw.len() as u64,
                    has_attachments: att,
                    ..Default::default()
                },
                raw: vec![Chunk::Inline(raw), Chunk::Shared { key: id, len: 7 }],
                ..Default::default()
            },
        )
}

#[repr(align(16))]
struct Slot([u8; 8192]);

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn encode_validate_decode_round_trips(rec in arb_record()) {
        // Goal: encode -> CRC + rkyv validation -> decode gives the same record.
        let mut slot = Slot([0; 8192]);
        let n = tempmx_store::record::encode_into(&rec, &mut slot.0).expect("fits");
        prop_assert!(n <= tempmx_store::record::encoded_bound(&rec));
        let p = &slot.0[..n];
        let a = tempmx_store::record::validate(p, tempmx_store::frame::checksum(p)).expect("valid");
        prop_assert_eq!(tempmx_store::record::to_owned(a), Some(rec));
    }

    #[test]
    fn checked_access_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // Goal: arbitrary payload bytes are rejected or accepted, never a crash.
        let mut slot = Slot([0; 8192]);
        slot.0[..bytes.len()].copy_from_slice(&bytes);
        let _ = tempmx_store::record::access_checked(&slot.0[..bytes.len()]);
    }

    #[test]
    fn recovery_survives_arbitrary_segment_bytes(
        writes in prop::collection::vec((0usize..(64 << 10), prop::collection::vec(any::<u8>(), 1..64)), 1..8),
    ) {
        // Goal: random overwrites of a shard file never crash recovery; the count adds up.
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = StoreConfig { persistence: Persistence::Disk, dir: Some(dir.path().into()),
            commit: CommitPolicy::None, ..small() };
        {
            let (_s, mut w, _, _) = open(&cfg, 1);
            for i in 0..10 {
                put_durable(&mut w[0], &["p@pool.test"], &body(&i.to_string(), "fuzz"));
            }
        }
        let path = shard_path(dir.path(), 0);
        let mut file = std::fs::read(&path).expect("read");
        for (off, b) in &writes {
            let end = (off + b.len()).min(file.len());
            file[*off..end].copy_from_slice(&b[..end - off]);
        }
        std::fs::write(&path, &file).expect("write");
        let (store, _, _, rep) = open(&cfg, 1);
        prop_assert!(rep.records_recovered <= 10);
        prop_assert_eq!(store.list(&mb("p@pool.test"), None, 100).len() as u64, rep.records_recovered);
        let (_s2, _, _, rep2) = open(&cfg, 1);
        prop_assert_eq!(rep2.records_recovered, rep.records_recovered);
        prop_assert_eq!(rep2.records_skipped, 0);
    }
}
