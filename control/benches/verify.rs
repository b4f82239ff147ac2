//! What finding verification codes and links costs per message: the work each live-push
//! event and each listing of a new message does once (then cached). Figures are
//! reported, never asserted.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A 4 KiB plain-text message without a code: prose lines, each with a year and a decoy
/// word, so every line holds a number the finder scores.
fn plain_4k() -> Vec<u8> {
    let mut m = b"From: Sender <s@sender.test>\r\nTo: r@tempmx.test\r\nSubject: Weekly update\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\n"
        .to_vec();
    let line = b"the quick brown fox jumps over the lazy dog while the total was paid 2024 \r\n";
    while m.len() + line.len() <= 4096 {
        m.extend_from_slice(line);
    }
    m
}

fn extract(c: &mut Criterion) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat_verify/corpus/");
    let mails = [
        ("plain_4k", plain_4k()),
        (
            "code_html_ru",
            std::fs::read(format!("{dir}096-l_code_block-ru.eml")).expect("corpus mail"),
        ),
        (
            "link_html_ja",
            std::fs::read(format!("{dir}148-l_confirm_link-ja.eml")).expect("corpus mail"),
        ),
    ];
    let mut g = c.benchmark_group("verify_extract");
    for (name, raw) in &mails {
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| tempmx::verify::extract(black_box(raw)))
        });
    }
    g.finish();
}

criterion_group!(benches, extract);
criterion_main!(benches);
