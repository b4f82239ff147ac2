//! Fuzzes the fast-path query parser and the full UDP response path.
//! Mirrored by `dns/tests/parser_prop.rs` (proptest) on stable.
#![no_main]

use hickory_proto::op::Message;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use libfuzzer_sys::fuzz_target;
use tempmx_dns::fuzzing::{parse_fast, respond_udp};

fuzz_target!(|data: &[u8]| {
    if let Some(fast) = parse_fast(data) {
        // Oracle: whatever the fast path accepts, hickory-proto reads the same way.
        if let Ok(m) = Message::from_vec(data) {
            let q = &m.queries[0];
            assert_eq!(fast.id, m.metadata.id);
            assert_eq!(fast.qtype, u16::from(q.query_type()));
            assert_eq!(fast.qclass, u16::from(q.query_class()));
            let mut wire = Vec::new();
            let mut enc = BinEncoder::new(&mut wire);
            enc.set_name_encoding(NameEncoding::UncompressedLowercase);
            q.name().emit(&mut enc).expect("a parsed name encodes");
            assert_eq!(fast.name, wire);
        }
    }
    if let Some(reply) = respond_udp(data) {
        assert!(reply.len() >= 12);
        assert!(reply.len() <= 1232 || Message::from_vec(&reply).is_ok());
    }
});
