//! Property tests mirroring the cargo-fuzz target (`dns/fuzz`): the fast
//! query parser never panics and agrees with hickory-proto's parser.

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use proptest::prelude::*;
use tempmx_dns::fuzzing::{parse_fast, respond_udp};

fn lower_wire(name: &Name) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut enc = BinEncoder::new(&mut wire);
    enc.set_name_encoding(NameEncoding::UncompressedLowercase);
    name.emit(&mut enc).expect("encode");
    wire
}

/// Both parsers agree on every field the fast path reports.
fn agree(bytes: &[u8]) {
    let Some(fast) = parse_fast(bytes) else {
        return;
    };
    let Ok(m) = Message::from_vec(bytes) else {
        return;
    };
    let q = &m.queries[0];
    assert_eq!(fast.id, m.metadata.id);
    assert_eq!(fast.qtype, u16::from(q.query_type()));
    assert_eq!(fast.qclass, u16::from(q.query_class()));
    assert_eq!(fast.name, lower_wire(q.name()));
    let theirs = m
        .edns
        .as_ref()
        .map(|e| (e.max_payload().max(512), e.flags().dnssec_ok));
    assert_eq!(fast.edns.map(|(p, d)| (p.max(512), d)), theirs);
}

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9_-]{0,19}"
}

fn query_strategy() -> impl Strategy<Value = Vec<u8>> {
    let types = prop::sample::select(vec![1u16, 2, 6, 15, 16, 28, 255, 99]);
    (
        prop::collection::vec(label(), 1..6),
        types,
        any::<u16>(),
        prop::option::of((512u16..4096, any::<bool>())),
    )
        .prop_map(|(labels, qtype, id, edns)| {
            let name = Name::from_ascii(format!("{}.", labels.join("."))).expect("valid name");
            let mut m = Message::query();
            m.metadata.id = id;
            let mut q = Query::query(name, RecordType::from(qtype));
            q.set_query_class(DNSClass::IN);
            m.add_query(q);
            if let Some((payload, dnssec_ok)) = edns {
                let mut e = Edns::new();
                e.set_max_payload(payload);
                e.set_dnssec_ok(dnssec_ok);
                m.set_edns(e);
            }
            m.to_vec().expect("encode")
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    // Goal: arbitrary bytes never panic either parser or the response path.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        agree(&bytes);
        if let Some(reply) = respond_udp(&bytes) {
            prop_assert!(reply.len() >= 12);
        }
    }

    // Goal: every valid single-question query takes the fast path and
    // agrees with hickory-proto.
    #[test]
    fn valid_queries(bytes in query_strategy()) {
        prop_assert!(parse_fast(&bytes).is_some(), "fast path declined a plain query");
        agree(&bytes);
        let reply = respond_udp(&bytes).expect("answered");
        let m = Message::from_vec(&reply).expect("our reply parses");
        prop_assert_eq!(m.metadata.id, Message::from_vec(&bytes).expect("query").metadata.id);
    }

    // Goal: mutated valid queries (bit flips, truncation) never panic and,
    // when both parsers accept them, agree.
    #[test]
    fn mutated_queries(bytes in query_strategy(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
        let mut b = bytes;
        for (at, x) in flips {
            let i = at.index(b.len());
            b[i] ^= x;
        }
        b.truncate(cut.index(b.len() + 1));
        agree(&b);
        let _ = respond_udp(&b);
    }
}
