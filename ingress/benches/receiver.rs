//! The DATA receiver over whole messages: dot-unstuffing and line checks per byte of mail.
//!
//! `cargo bench -p tempmx-ingress --bench receiver`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tempmx_ingress::proto::receiver::{DataReceiver, MessageBuffer};

/// Text lines of 998 bytes at most, as the session allows.
const LINE_MAX: usize = 1000;

/// About `bytes` of mail in lines of `width` characters, each line starting with a dot when
/// `dotted`, then the terminator.
fn message(bytes: usize, width: usize, dotted: bool) -> Vec<u8> {
    let mut m = b"From: <s@x.test>\r\nTo: <r@pool.test>\r\nSubject: bench\r\n\r\n".to_vec();
    while m.len() < bytes {
        if dotted {
            m.extend_from_slice(b"..");
        }
        m.extend(std::iter::repeat_n(b'x', width));
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b".\r\n");
    m
}

fn feed(input: &[u8]) -> usize {
    let mut rx = DataReceiver::new(LINE_MAX);
    let mut body = MessageBuffer::new(1 << 20);
    let (n, done) = rx.feed(input, &mut body);
    assert!(done && rx.fault().is_none(), "a whole, clean message");
    n + body.as_slice().len()
}

fn receiver(c: &mut Criterion) {
    let mut group = c.benchmark_group("data_receiver");
    for (name, input) in [
        ("4k_lines_of_76", message(4096, 76, false)),
        ("64k_lines_of_76", message(64 << 10, 76, false)),
        ("4k_dotted_lines", message(4096, 76, true)),
    ] {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| b.iter(|| feed(black_box(&input))));
    }
    group.finish();
}

criterion_group!(benches, receiver);
criterion_main!(benches);
