//! Store benchmarks: append throughput (1 and 2 writers), lookup latency vs. mailbox
//! count, and the ingest-time MIME scan. Figures are reported, never asserted.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tempmx_store::{Mailbox, MessageSink, NewMessage, ShardWriter, Store, StoreConfig};

fn msg<'a>(rcpt: &'a [Mailbox], body: &'a [u8]) -> NewMessage<'a> {
    NewMessage {
        received_at_ms: 0,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        helo: "mx.sender.test",
        mail_from: "bounce@sender.test",
        recipients: rcpt,
        tls: None,
        trace_headers: b"Received: from mx.sender.test by tempmx; Thu, 1 Jan 2026\r\n",
        auth: &[],
        body,
    }
}

fn body_4k() -> Vec<u8> {
    let mut b = b"From: a@sender.test\r\nSubject: verify\r\nDate: now\r\n\r\n".to_vec();
    b.resize(4096 - 60, b'x');
    b
}

fn append_many(w: &mut ShardWriter, n: u64, body: &[u8], rcpts: &[Vec<Mailbox>]) {
    for i in 0..n as usize {
        let r = &rcpts[i % rcpts.len()];
        black_box(w.accept(&msg(r, body)).ok());
    }
}

fn bench_append(c: &mut Criterion) {
    let body = body_4k();
    let rcpts: Vec<Vec<Mailbox>> = (0..10_000)
        .map(|i| vec![Mailbox::parse(&format!("user{i}@pool.test")).expect("valid")])
        .collect();
    let mut g = c.benchmark_group("append_4k");
    g.throughput(Throughput::Bytes(4096));
    for threads in [1usize, 2] {
        let cfg = StoreConfig {
            memory_bytes_max: (threads as u64) * (256 << 20),
            ..StoreConfig::default()
        };
        let (_store, writers, _) = Store::open(&cfg, threads).expect("open");
        let writers: Vec<_> = writers.into_iter().map(std::sync::Mutex::new).collect();
        let writers = Arc::new(writers);
        g.bench_function(BenchmarkId::new("writers", threads), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(threads as u64);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let (writers, body, rcpts) = (&writers, &body, &rcpts);
                        s.spawn(move || {
                            let mut w = writers[t].lock().expect("writer");
                            append_many(&mut w, per, body, rcpts);
                        });
                    }
                });
                // `iters` appends in all, spread over the writers: the wall time for all of
                // them makes criterion's per-iteration time the aggregate time per append.
                start.elapsed()
            });
        });
    }
    g.finish();
}

fn bench_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    let body =
        b"From: a@sender.test\r\nSubject: code 123456\r\n\r\nYour code is 123456\r\n".to_vec();
    for mailboxes in [1_000usize, 1_000_000] {
        let cfg = StoreConfig {
            memory_bytes_max: 1 << 30,
            index_entries_per_mib: 4096,
            ..StoreConfig::default()
        };
        let (store, mut w, _) = Store::open(&cfg, 1).expect("open");
        let messages = mailboxes.max(100_000);
        for i in 0..messages {
            let r = vec![Mailbox::parse(&format!("u{}@pool.test", i % mailboxes)).expect("valid")];
            w[0].accept(&msg(&r, &body)).expect("fits");
        }
        let probe = Mailbox::parse(&format!("u{}@pool.test", mailboxes / 2)).expect("valid");
        g.bench_function(BenchmarkId::new("list10", mailboxes), |b| {
            b.iter(|| black_box(store.list(black_box(&probe), None, 10)))
        });
        let id = store.list(&probe, None, 1)[0].id;
        g.bench_function(BenchmarkId::new("get", mailboxes), |b| {
            b.iter(|| black_box(store.get(black_box(id))))
        });
        let st = store.stats();
        let s = &st.shards[0];
        eprintln!(
            "lookup setup: {} mailboxes, {} messages, index {} bytes = {:.1} bytes/message",
            s.mailboxes,
            s.index_entries,
            s.index_bytes,
            s.index_bytes as f64 / s.index_entries as f64
        );
    }
    g.finish();
}

fn bench_scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("mime_scan");
    let plain = body_4k();
    let html = "<p>newsletter</p>".repeat(3000);
    let multi = format!(
        "From: n@x.test\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/html\r\n\r\n{html}\r\n--b--\r\n"
    );
    for (name, b, min) in [
        ("plain_4k", &plain[..], 4096),
        ("multipart_51k", multi.as_bytes(), 4096),
    ] {
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function(name, |bn| {
            bn.iter(|| black_box(tempmx_store::mime::scan(black_box(b), min)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench_append, bench_lookup, bench_scan
}
criterion_main!(benches);
