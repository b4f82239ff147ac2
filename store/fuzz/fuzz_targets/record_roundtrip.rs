//! Records built from fuzz input round-trip through encode, validate and decode; the raw
//! input itself as a payload is validated without crashing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tempmx_store::frame;
use tempmx_store::record::{self, Chunk, HeaderSummary, MessageRecord};

#[repr(align(16))]
struct Slot([u8; 1 << 16]);

fuzz_target!(|data: &[u8]| {
    let mut slot = Slot([0; 1 << 16]);
    let n = data.len().min(slot.0.len());
    slot.0[..n].copy_from_slice(&data[..n]);
    let _ = record::access_checked(&slot.0[..n]);

    let text = String::from_utf8_lossy(data);
    let split = data.len() / 2;
    let rec = MessageRecord {
        id: data.len() as u64,
        mailboxes: text.split('\n').take(8).map(str::to_string).collect(),
        headers: HeaderSummary {
            subject: text.chars().take(64).collect(),
            ..Default::default()
        },
        raw: vec![
            Chunk::Inline(data[..split].to_vec()),
            Chunk::Inline(data[split..].to_vec()),
        ],
        ..Default::default()
    };
    let mut out = Slot([0; 1 << 16]);
    if let Ok(len) = record::encode_into(&rec, &mut out.0) {
        let p = &out.0[..len];
        let a = record::validate(p, frame::checksum(p)).expect("own encoding validates");
        assert_eq!(record::to_owned(a).as_ref(), Some(&rec));
    }
});
