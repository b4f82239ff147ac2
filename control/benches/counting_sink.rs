//! What counting messages per domain costs the SMTP hot path: one store writer accepting
//! 4 KiB messages with and without the counting wrapper, and the wrapper alone around a
//! sink that stores nothing. Figures are reported, never asserted.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tempmx::pool::MessageCounters;
use tempmx_store::{
    Accepted, Commit, Mailbox, MessageId, MessageSink, NewMessage, Store, StoreConfig, StoreError,
};

/// Domains the recipients are spread over (a small pool).
const DOMAINS: usize = 4;

fn msg<'a>(rcpt: &'a [Mailbox], body: &'a [u8]) -> NewMessage<'a> {
    NewMessage {
        received_at_ms: 1,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        helo: "mx.sender.test",
        mail_from: "bounce@sender.test",
        recipients: rcpt,
        tls: None,
        trace_headers: b"Received: from mx.sender.test by tempmx\r\n",
        auth: &[],
        body,
    }
}

fn recipients() -> Vec<Vec<Mailbox>> {
    (0..10_000)
        .map(|i| {
            let address = format!("user{i}@d{}.pool.test", i % DOMAINS);
            vec![Mailbox::parse(&address).expect("valid")]
        })
        .collect()
}

fn body_4k() -> Vec<u8> {
    let mut b = b"From: a@sender.test\r\nSubject: verify\r\n\r\n".to_vec();
    b.resize(4096 - 40, b'x');
    b
}

/// Stores nothing: isolates the wrapper's own cost.
struct Discard;

impl MessageSink for Discard {
    fn accept(&mut self, _: &NewMessage<'_>) -> Result<Accepted, StoreError> {
        Ok(Accepted {
            id: MessageId(1),
            commit: Commit::Done,
        })
    }
}

fn run(sink: &mut dyn MessageSink, rcpts: &[Vec<Mailbox>], body: &[u8], iters: u64) {
    for i in 0..iters as usize {
        black_box(sink.accept(&msg(&rcpts[i % rcpts.len()], body)).ok());
    }
}

fn bench(c: &mut Criterion) {
    let (rcpts, body) = (recipients(), body_4k());
    let mut g = c.benchmark_group("accept_4k");
    g.throughput(Throughput::Elements(1));
    let cfg = StoreConfig {
        memory_bytes_max: 256 << 20,
        ..StoreConfig::default()
    };
    let (_plain_store, mut writers, _) = Store::open(&cfg, 1).expect("open");
    let mut plain = writers.pop().expect("one writer");
    g.bench_function("store", |b| {
        b.iter_custom(|n| {
            let t = std::time::Instant::now();
            run(&mut plain, &rcpts, &body, n);
            t.elapsed()
        })
    });
    let (_counted_store, mut writers, _) = Store::open(&cfg, 1).expect("open");
    let counters = MessageCounters::new(1_000);
    let mut counted = counters.wrap(Box::new(writers.pop().expect("one writer")));
    g.bench_function("store_counted", |b| {
        b.iter_custom(|n| {
            let t = std::time::Instant::now();
            run(counted.as_mut(), &rcpts, &body, n);
            // The plane drains once per tick; here once per batch, outside the timing.
            let e = t.elapsed();
            black_box(counters.drain());
            e
        })
    });
    let mut discard = counters.wrap(Box::new(Discard));
    g.bench_function("counting_only", |b| {
        b.iter_custom(|n| {
            let t = std::time::Instant::now();
            run(discard.as_mut(), &rcpts, &body, n);
            let e = t.elapsed();
            black_box(counters.drain());
            e
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
