//! The ingest-time MIME scan on arbitrary message bytes: never panics, its pieces cover
//! the body exactly and in order, and the summary values keep their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tempmx_store::mime::{self, SUMMARY_VALUE_BYTES_MAX};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the share threshold, so small parts get shared too.
    let Some((&k, body)) = data.split_first() else {
        return;
    };
    let part_min = usize::from(k) * 4;
    let s = mime::scan(body, part_min);
    let mut at = 0;
    for p in &s.pieces {
        assert_eq!(p.range.start, at, "pieces are contiguous");
        assert!(p.range.end > p.range.start, "no empty piece");
        assert!(!p.shared || (part_min > 0 && p.range.len() >= part_min));
        at = p.range.end;
    }
    assert_eq!(at, body.len(), "pieces cover the body");
    for v in [&s.from, &s.subject, &s.date, &s.message_id] {
        assert!(v.len() <= SUMMARY_VALUE_BYTES_MAX * 3, "{} bytes", v.len());
        assert!(!v.chars().any(char::is_control));
    }
});
